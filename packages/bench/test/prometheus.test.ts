import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { combine, parseMetrics } from '../src/prometheus.js';

const TEXT = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total{node="a"} 1.5
process_resident_memory_bytes{node="a"} 1000
nodejs_eventloop_lag_p99_seconds{node="a"} 0.012
gatehouse_admission_rejects_total{node="a",reason="connect_rate"} 3
gatehouse_admission_rejects_total{node="a",reason="capacity"} 4
gatehouse_deliveries_total 250
weird line without value
`;

describe('parseMetrics', () => {
  test('sums label sets of one name and skips comments and junk', () => {
    const m = parseMetrics(TEXT);
    assert.equal(m.get('process_cpu_seconds_total'), 1.5);
    assert.equal(m.get('gatehouse_admission_rejects_total'), 7);
    assert.equal(m.get('gatehouse_deliveries_total'), 250);
    assert.equal(m.has('weird'), false);
  });

  test('combines processes: sums for counters and memory, worst for lag', () => {
    const a = parseMetrics(TEXT);
    const b = parseMetrics(TEXT.replace('0.012', '0.030'));
    const f = combine([a, b], 1);
    assert.equal(f.cpuSeconds, 3);
    assert.equal(f.rssBytes, 2000);
    assert.equal(f.deliveries, 500);
    assert.equal(f.eventLoopLagP99Ms, 30);
    assert.equal(f.admissionRejects, 14);
  });
});
