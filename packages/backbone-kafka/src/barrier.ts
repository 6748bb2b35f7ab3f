/**
 * The history barrier (see `Backbone.history`): a history read of a subscribed channel resolves
 * only once the live reader has handed over every record of the channel's partition up to the
 * position the read answered. The history reader and the live reader are separate clients that
 * move independently, so the read can see the log further than the live reader has fetched; a
 * record at or below the answered position delivered after the read would reach a client twice
 * (once counted in its `subscribed` position, once live).
 *
 * The live reader settles the waits itself, after each fetch answer it consumed and after each
 * re-plan: nothing polls. A wait costs nothing when the live reader is already past the position.
 */
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';

/**
 * Whether nothing at or below Kafka offset `through - 1` of `partition` in `epoch` can be
 * delivered any more: the live reader passed it, or the partition's history moved to another
 * epoch (every later delivery carries the new one).
 */
export type PassedTest = (partition: number, epoch: string, through: bigint) => boolean;

/** How long a wait may last and how many may be pending at once. */
export interface BarrierLimits {
  readonly timeoutMs: number;
  readonly maxWaiting: number;
}

interface Waiter {
  readonly epoch: string;
  readonly through: bigint;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** History reads waiting for the live reader, by partition. */
export class LiveBarriers {
  private readonly waiting = new Map<number, Waiter[]>();
  private count = 0;

  constructor(
    private readonly passed: PassedTest,
    private readonly limits: BarrierLimits,
  ) {}

  /** Waits currently pending (for stats and tests). */
  get size(): number {
    return this.count;
  }

  /**
   * Resolves once `passed(partition, epoch, through)` holds, checked now and then each time the
   * live reader settles the partition; rejects (BackboneUnavailableError) after the timeout, when
   * too many waits are pending, or when `rejectAll` is called.
   */
  wait(partition: number, epoch: string, through: bigint, what: string): Promise<void> {
    if (this.passed(partition, epoch, through)) return Promise.resolve();
    if (this.count >= this.limits.maxWaiting) {
      return Promise.reject(new BackboneUnavailableError(`too many kafka history reads waiting for the live reader (${this.count})`));
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.remove(partition, waiter);
        // The live reader is stuck or far behind: what it still holds could follow the position.
        reject(
          new BackboneUnavailableError(`kafka live reader did not pass ${what} (position ${through}) within ${this.limits.timeoutMs} ms`),
        );
      }, this.limits.timeoutMs);
      const waiter: Waiter = { epoch, through, resolve, reject, timer };
      const list = this.waiting.get(partition);
      if (list) list.push(waiter);
      else this.waiting.set(partition, [waiter]);
      this.count++;
    });
  }

  /** Resolves the waits on `partition` that have passed; the live reader calls it after each answer. */
  settle(partition: number): void {
    const list = this.waiting.get(partition);
    if (!list) return;
    const left: Waiter[] = [];
    for (const w of list) {
      if (!this.passed(partition, w.epoch, w.through)) {
        left.push(w);
        continue;
      }
      clearTimeout(w.timer);
      this.count--;
      w.resolve();
    }
    if (left.length > 0) this.waiting.set(partition, left);
    else this.waiting.delete(partition);
  }

  /** Settles every partition: positions or epochs changed wholesale (a re-plan). */
  settleAll(): void {
    for (const partition of [...this.waiting.keys()]) this.settle(partition);
  }

  /** Rejects every pending wait with `err` (the backbone closed). */
  rejectAll(err: Error): void {
    for (const list of this.waiting.values()) {
      for (const w of list) {
        clearTimeout(w.timer);
        w.reject(err);
      }
    }
    this.waiting.clear();
    this.count = 0;
  }

  private remove(partition: number, waiter: Waiter): void {
    const list = this.waiting.get(partition);
    const i = list?.indexOf(waiter) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.waiting.delete(partition);
    this.count--;
  }
}
