/** Test support: run the entry points with their output captured. */
import { Writable } from 'node:stream';
import { benchMain } from '../src/bench.js';
import { capacityMain } from '../src/capacity.js';
import type { BenchIo } from '../src/bench.js';

/** What one run of an entry point printed, and its exit code. */
export interface Captured {
  code: number;
  out: string;
  err: string;
}

function io(): { io: BenchIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      err.push(chunk.toString());
      cb();
    },
  });
  return { io: { out: (t) => out.push(t), err: sink }, out, err };
}

/** Runs `gatehouse bench <argv>`. */
export async function bench(argv: string[]): Promise<Captured> {
  const c = io();
  const code = await benchMain(argv, c.io);
  return { code, out: c.out.join('\n'), err: c.err.join('') };
}

/** Runs `gatehouse capacity <argv>`. */
export async function capacity(argv: string[]): Promise<Captured> {
  const c = io();
  const code = await capacityMain(argv, c.io);
  return { code, out: c.out.join('\n'), err: c.err.join('') };
}
