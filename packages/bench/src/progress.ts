/**
 * The live progress line: on a terminal, one line rewritten in place (connections open, messages
 * per second, current p99); elsewhere (CI logs, pipes) only the phase headlines are printed, so
 * a log is not flooded with carriage returns.
 */

/** Where progress goes. */
export interface ProgressSink {
  /** A headline ("gateway: connecting 15000"), printed on its own line. */
  phase(text: string): void;
  /** The live figures; shown only on a terminal. */
  update(fields: { label: string; open: number; target: number; perSecond: number; p99Ms: number | null; seconds: number }): void;
  /** Clears the live line. */
  done(): void;
}

/** Progress on a stream (stderr by default). `live` decides whether the in-place line is drawn. */
export class Progress implements ProgressSink {
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly live = out.isTTY === true,
    private readonly quiet = false,
  ) {}

  private readonly t0 = Date.now();

  phase(text: string): void {
    if (this.quiet) return;
    this.done();
    this.out.write(`[${Math.round((Date.now() - this.t0) / 1000)} s] ${text}\n`);
  }

  update(f: { label: string; open: number; target: number; perSecond: number; p99Ms: number | null; seconds: number }): void {
    if (!this.live || this.quiet) return;
    const p99 = f.p99Ms === null ? '-' : `${f.p99Ms.toFixed(2)} ms`;
    const line = `[${f.label}] open ${f.open.toLocaleString('en-US')}/${f.target.toLocaleString('en-US')} | ${Math.round(f.perSecond).toLocaleString('en-US')} msg/s | p99 ${p99} | ${Math.round(f.seconds)} s`;
    this.out.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }

  done(): void {
    if (!this.drawn) return;
    this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}
