/** Waiting on the SDK's own typed events with a deadline, and recording them for assertions. */
import { withDeadline } from '@gatehouse/testkit';
import type { TypedEmitter } from '../src/emitter.js';

/** The next `event` whose payload satisfies `match`, or a rejection naming what never came. */
export function nextOf<E extends object, K extends keyof E>(
  emitter: TypedEmitter<E>,
  event: K,
  match: (payload: E[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<E[K]> {
  let off: (() => void) | undefined;
  const p = new Promise<E[K]>((resolve) => {
    off = emitter.on(event, (payload) => {
      if (!match(payload)) return;
      off?.();
      resolve(payload);
    });
  });
  return withDeadline(`event "${String(event)}"`, p, timeoutMs).finally(() => off?.());
}

/** Collects every payload of `event` into an array. */
export function collect<E extends object, K extends keyof E>(emitter: TypedEmitter<E>, event: K): E[K][] {
  const out: E[K][] = [];
  emitter.on(event, (payload) => out.push(payload));
  return out;
}
