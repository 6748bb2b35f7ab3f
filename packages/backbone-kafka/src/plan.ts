/**
 * Where the live reader of one partition continues after (re)reading the log bounds, and whether
 * the partition's history was reset under it. A pure function so it can be tested without Kafka.
 */

/** What this node knows about one partition, and what the broker now reports. */
export interface PartitionPlanInput {
  /** Next Kafka offset this node would fetch (undefined: a partition not read before). */
  readonly at: bigint | undefined;
  /**
   * The highest log end (last stable offset / high watermark) this node has seen the broker
   * report for the partition, or -1n. Records below it were acknowledged to their producers.
   */
  readonly seen: bigint;
  /** Log start and end as the broker reports them now. */
  readonly start: bigint;
  readonly end: bigint;
}

export interface PartitionPlan {
  /** Next Kafka offset to fetch. */
  readonly position: bigint;
  /** Records retention removed before this node read them. */
  readonly skipped: number;
  /**
   * The log now ends below a position this node had already seen: the broker lost records it had
   * acknowledged (an unclean restart that truncated the log). Offsets from the new end on will be
   * given to new records, so the partition needs a new epoch: under the old one, the gateway core
   * would drop them as already delivered (silent loss), and a client's old position would point
   * into a different history.
   */
  readonly reset: boolean;
}

export function planPartition({ at, seen, start, end }: PartitionPlanInput): PartitionPlan {
  if (at === undefined) return { position: end, skipped: 0, reset: false };
  // Compare with the highest end seen, not only with our position: a node that was behind still
  // must leave the old epoch, because the other nodes may have delivered the records that are gone.
  const reset = end < (seen > at ? seen : at);
  if (at < start) return { position: start, skipped: Number(start - at), reset };
  return { position: at > end ? end : at, skipped: 0, reset };
}
