/**
 * deploy/envoy/envoy.yaml cannot run here (Envoy is not packaged for these machines), so this
 * checks what can be checked without it: the YAML parses, and the listener, routes, timeouts,
 * health check and limits the docs rely on are present with sane values.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { DEFAULTS } from '@gatehouse/server';
import { REPO_ROOT } from './support/processes.js';

type Node = Record<string, any>;

const config = parse(readFileSync(join(REPO_ROOT, 'deploy', 'envoy', 'envoy.yaml'), 'utf8')) as Node;

/** Envoy durations in this file are seconds: "75s", "0s", "2.5s". */
function seconds(d: unknown): number {
  assert.equal(typeof d, 'string', `a duration string, got ${JSON.stringify(d)}`);
  const m = /^(\d+(?:\.\d+)?)s$/.exec(d as string);
  assert.ok(m, `duration ${String(d)} is written in seconds`);
  return Number(m[1]);
}

const listener = (config['static_resources']?.['listeners'] as Node[] | undefined)?.[0] as Node;
const hcm = listener?.['filter_chains']?.[0]?.['filters']?.find(
  (f: Node) => f['name'] === 'envoy.filters.network.http_connection_manager',
)?.['typed_config'] as Node;
const routes = (hcm?.['route_config']?.['virtual_hosts']?.[0]?.['routes'] ?? []) as Node[];
const cluster = (config['static_resources']?.['clusters'] as Node[] | undefined)?.find((c) => c['name'] === 'gatehouse') as Node;

test('one listener with an HTTP connection manager that upgrades WebSockets', () => {
  assert.ok(listener, 'a listener');
  assert.ok(hcm, 'an http_connection_manager filter');
  assert.equal(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  assert.ok((hcm['upgrade_configs'] as Node[]).some((u) => u['upgrade_type'] === 'websocket'));
  assert.ok(hcm['http_filters'].some((f: Node) => f['name'] === 'envoy.filters.http.router'));
  assert.ok(seconds(hcm['request_headers_timeout']) <= DEFAULTS.headersTimeoutMs / 1000);
  assert.ok(Number(listener['per_connection_buffer_limit_bytes']) > 0, 'a per-connection buffer limit');
});

test('/ws goes to the gateways with no route timeout and an idle timeout of at least three heartbeats', () => {
  const ws = routes.find((r) => r['match']?.['path'] === '/ws') as Node;
  assert.ok(ws, 'a route for /ws');
  assert.equal(ws['route']['cluster'], 'gatehouse');
  assert.equal(seconds(ws['route']['timeout']), 0, 'the route timeout would cut every WebSocket');
  const idle = seconds(ws['route']['idle_timeout']);
  assert.ok(idle >= (3 * DEFAULTS.heartbeatMs) / 1000, `idle timeout ${idle} s >= 3 heartbeats`);
  assert.ok(seconds(hcm['stream_idle_timeout']) >= idle, 'the connection manager does not cut streams sooner');
  const retry = ws['route']['retry_policy'] as Node;
  assert.match(retry['retry_on'], /retriable-status-codes/);
  assert.deepEqual(retry['retriable_status_codes'], [503], 'a draining gateway refuses upgrades with 503; try another');
});

test('only /ws, the stream fallbacks and the publish API reach the gateways; everything else is 404', () => {
  const toCluster = routes.filter((r) => r['route']).map((r) => r['match']?.['path'] ?? r['match']?.['prefix']);
  assert.deepEqual(toCluster.sort(), ['/api/broadcast', '/api/publish', '/sse', '/sse/ticket', '/stream', '/stream/', '/ws']);
  for (const path of ['/sse', '/stream']) {
    const r = routes.find((x) => x['match']?.['path'] === path) as Node;
    assert.equal(seconds(r['route']['timeout']), 0, `${path}: a stream is one long response`);
    assert.ok(seconds(r['route']['idle_timeout']) >= (3 * DEFAULTS.heartbeatMs) / 1000, `${path}: idle timeout of three heartbeats`);
  }
  for (const r of routes.filter((x) => x['route'])) assert.equal(r['route']['cluster'], 'gatehouse');
  const last = routes.at(-1) as Node;
  assert.equal(last['match']['prefix'], '/');
  assert.equal(last['direct_response']['status'], 404, '/metrics, /healthz and /readyz stay private');
});

test('client addresses come from the peer, and X-Forwarded-For is overwritten, never appended', () => {
  assert.equal(hcm['use_remote_address'], true);
  const vh = hcm['route_config']['virtual_hosts'][0] as Node;
  const xff = (vh['request_headers_to_add'] as Node[]).find((h) => h['header']['key'].toLowerCase() === 'x-forwarded-for') as Node;
  assert.ok(xff);
  assert.equal(xff['append_action'], 'OVERWRITE_IF_EXISTS_OR_ADD');
  assert.equal(xff['header']['value'], '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%');
});

test('the gateway cluster balances by least requests, checks /readyz, and has limits and a short upstream keep-alive', () => {
  assert.ok(cluster, 'a cluster named gatehouse');
  assert.equal(cluster['lb_policy'], 'LEAST_REQUEST');
  const hc = cluster['health_checks'][0] as Node;
  assert.equal(hc['http_health_check']['path'], '/readyz');
  assert.ok(seconds(hc['interval']) <= 5 && Number(hc['unhealthy_threshold']) >= 1);
  assert.notEqual(cluster['close_connections_on_host_health_failure'], true, 'a draining gateway keeps its clients until it closes them');
  const limits = cluster['circuit_breakers']['thresholds'][0] as Node;
  assert.ok(Number(limits['max_connections']) > 0 && Number(limits['max_requests']) > 0);
  const upstream = cluster['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'] as Node;
  assert.ok(seconds(upstream['common_http_protocol_options']['idle_timeout']) < 5, 'below the gateway keep-alive of 5 s');
  assert.ok(seconds(cluster['connect_timeout']) <= 10);
  const endpoints = cluster['load_assignment']['endpoints'][0]['lb_endpoints'] as Node[];
  assert.ok(endpoints.length >= 2, 'several gateways');
  for (const e of endpoints) assert.equal(e['endpoint']['address']['socket_address']['port_value'], DEFAULTS.port);
});

test('the process-wide connection cap and the admin interface stay sane', () => {
  const monitor = config['overload_manager']['resource_monitors'][0] as Node;
  assert.equal(monitor['name'], 'envoy.resource_monitors.global_downstream_max_connections');
  assert.ok(Number(monitor['typed_config']['max_active_downstream_connections']) > 0);
  assert.equal(config['admin']['address']['socket_address']['address'], '127.0.0.1', 'admin only on loopback');
});
