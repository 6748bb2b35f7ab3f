/**
 * The recovery merge. A client that subscribes with a position gets the publications it missed
 * from history; publications that arrive live while history is being read wait, and are released
 * after the replay. The two overlap: whatever the replay already covered must not be sent again,
 * and nothing newer may be lost.
 */
import type { Publication } from './backbone.js';

/** Where a channel stood when history was read, and what the read replayed (oldest first). */
export interface Replay {
  readonly epoch: string;
  readonly offset: number;
  readonly publications: readonly Publication[];
}

/**
 * What to deliver after the `subscribed` reply: `replay.publications`, then each live publication
 * that the replay did not cover, in arrival order. A live publication is covered when it is in the
 * replay's epoch at or below the newest position the replay (or the channel head) reached.
 * Unsequenced publications (offset 0) carry no position and are always delivered; a publication
 * of another epoch (the history behind the channel was reset meanwhile) is delivered too: the hub
 * has already reported that gap.
 */
export function mergeRecovery(replay: Replay, live: readonly Publication[]): Publication[] {
  const out: Publication[] = replay.publications.slice();
  let last = replay.offset;
  const newest = replay.publications[replay.publications.length - 1];
  if (newest !== undefined && newest.epoch === replay.epoch && newest.offset > last) last = newest.offset;
  for (const p of live) {
    if (p.offset !== 0 && p.epoch === replay.epoch) {
      if (p.offset <= last) continue;
      last = p.offset;
    }
    out.push(p);
  }
  return out;
}
