/**
 * The accountant: from what the publisher sent and what every client saw, decides per client and
 * channel whether every publication arrived exactly once and in order, and whether every loss was
 * reported to the client as a gap. Pure functions over plain records, so the rules are unit-tested
 * on their own (test/accountant.test.ts) and the same code judges every scenario.
 */
import { percentiles, type Percentiles } from './stats.js';

/** One publication the publisher attempted. `seq` is unique per channel and rises with send order. */
export interface SentRecord {
  readonly channel: string;
  readonly seq: number;
  /** How it went out: `http:<node id>` (a gateway's publish API) or `direct` (into the backbone). */
  readonly route: string;
  sentAt: number;
  /**
   * `accepted`: the gateway or backbone confirmed it. `failed`: an error, which may or may not mean
   * it was applied (a reply lost with a dying node); the accountant counts it as published exactly
   * when some client received it.
   */
  outcome: 'pending' | 'accepted' | 'failed';
  ackAt?: number;
  epoch?: string;
  offset?: number;
  error?: string;
}

/** What one client saw, in the order it saw it. Times are ms since the Unix epoch. */
export type ClientEvent =
  | { readonly t: number; readonly type: 'connected'; readonly node: string; readonly reconnect: boolean }
  | { readonly t: number; readonly type: 'disconnected'; readonly code: number; readonly reason: string }
  | { readonly t: number; readonly type: 'subscribed'; readonly channel: string; readonly recovered?: boolean }
  | {
      readonly t: number;
      readonly type: 'pub';
      readonly channel: string;
      readonly seq: number;
      readonly route: string;
      readonly epoch: string;
      readonly offset: number;
    }
  | { readonly t: number; readonly type: 'gap'; readonly channel: string; readonly reason: string };

/** One client's record: its id and its events. */
export interface ClientLog {
  readonly id: string;
  readonly channels: readonly string[];
  readonly events: readonly ClientEvent[];
}

/** A fault the scenario caused: from `at`, the node (or every node, for a backbone restart) was lost or drained. */
export interface Incident {
  readonly at: number;
  readonly kind: 'kill' | 'drain' | 'backbone';
  /** The node id, or undefined when the incident concerns the backbone. */
  readonly node?: string;
}

/** The figures of one scenario. */
export interface Figures {
  /** Accepted publications, plus failed ones some client received (they were applied). */
  published: number;
  /** Publish attempts that failed and that no client received (not published). */
  rejected: number;
  /** Of `published`: attempts that failed but were applied (a reply lost in the fault). */
  ambiguous: number;
  /** Deliveries owed: published publications times the clients subscribed to their channel. */
  expected: number;
  /** Distinct owed publications the clients received. */
  delivered: number;
  /** Owed publications a client never received. */
  lost: number;
  /** Of `lost`: the ones the client was told about with a gap event at the point of the loss. */
  lostReported: number;
  /** Of `lost`: the ones with no gap event: a silent loss, never acceptable. */
  lostSilent: number;
  /** Receipts beyond the first of the same publication. */
  duplicated: number;
  /** Receipts out of per-channel order (by offset where the backbone sequences, else per route). */
  outOfOrder: number;
  /** Receipts of publications the publisher never sent (must be 0). */
  unknown: number;
  /** Gap events the clients received. */
  gaps: number;
  /** Gap events by reason (`history`, `epoch`, `backbone`). */
  gapReasons: Record<string, number>;
  /** Connections lost to an incident. */
  reconnects: number;
  /** Of those: clients without a new `connected` by the end. */
  notBack: number;
  /** From the incident (kill: the signal; drain: the node's close of that client) to the next `connected`. */
  reconnectMs: Percentiles;
  /** The first few losses, for diagnosis: which publication, how it went out, and how many clients missed it. */
  losses: LossSample[];
}

/** One lost publication. */
export interface LossSample {
  readonly channel: string;
  readonly seq: number;
  readonly route: string;
  readonly outcome: SentRecord['outcome'];
  /** The position the backbone gave it, when the publish was answered. */
  readonly offset?: number;
  /** When it was sent and answered (ms since the Unix epoch), to place it against the fault. */
  readonly sentAt: number;
  readonly ackAt?: number;
  /** Clients that never received it, and of those how many were told (gap). */
  missedBy: number;
  reported: number;
}

/** Loss samples kept in the figures. */
const LOSS_SAMPLES = 10;

/** What `account` needs. */
export interface AccountInput {
  readonly sent: readonly SentRecord[];
  readonly clients: readonly ClientLog[];
  /** The backbone gives positions (epoch, offset): order is checked by offset, else per route by seq. */
  readonly sequenced: boolean;
  readonly incidents?: readonly Incident[];
}

type PubEvent = Extract<ClientEvent, { type: 'pub' }>;

/** The key of a publication. */
function key(channel: string, seq: number): string {
  return `${channel}\u0000${seq}`;
}

/** Counts everything `Figures` lists. */
export function account(input: AccountInput): Figures {
  const seen = new Set<string>();
  for (const c of input.clients) for (const e of c.events) if (e.type === 'pub') seen.add(key(e.channel, e.seq));
  const sentByKey = new Map<string, SentRecord>();
  const owed = new Map<string, SentRecord[]>();
  let rejected = 0;
  let ambiguous = 0;
  for (const s of input.sent) {
    sentByKey.set(key(s.channel, s.seq), s);
    if (s.outcome !== 'accepted' && !seen.has(key(s.channel, s.seq))) {
      rejected++;
      continue;
    }
    if (s.outcome !== 'accepted') ambiguous++;
    let list = owed.get(s.channel);
    if (!list) owed.set(s.channel, (list = []));
    list.push(s);
  }
  const f: Figures = {
    published: input.sent.length - rejected,
    rejected,
    ambiguous,
    expected: 0,
    delivered: 0,
    lost: 0,
    lostReported: 0,
    lostSilent: 0,
    duplicated: 0,
    outOfOrder: 0,
    unknown: 0,
    gaps: 0,
    gapReasons: {},
    reconnects: 0,
    notBack: 0,
    reconnectMs: percentiles([]),
    losses: [],
  };
  const samples = new Map<string, LossSample>();
  for (const c of input.clients) {
    for (const channel of c.channels) {
      const events = c.events.filter((e) => (e.type === 'pub' || e.type === 'gap') && e.channel === channel);
      const received = new Map<number, number>();
      let lastEpoch: string | undefined;
      let lastOffset = 0;
      const lastByRoute = new Map<string, number>();
      for (const e of events) {
        if (e.type === 'gap') {
          f.gaps++;
          f.gapReasons[e.reason] = (f.gapReasons[e.reason] ?? 0) + 1;
          continue;
        }
        if (e.type !== 'pub') continue;
        if (!sentByKey.has(key(channel, e.seq))) f.unknown++;
        const n = (received.get(e.seq) ?? 0) + 1;
        received.set(e.seq, n);
        if (n > 1) f.duplicated++;
        if (input.sequenced) {
          if (lastEpoch === e.epoch && e.offset <= lastOffset) f.outOfOrder++;
          lastEpoch = e.epoch;
          lastOffset = e.offset;
        } else {
          const last = lastByRoute.get(e.route);
          if (last !== undefined && e.seq <= last) f.outOfOrder++;
          lastByRoute.set(e.route, e.seq);
        }
      }
      for (const s of owed.get(channel) ?? []) {
        f.expected++;
        if (received.has(s.seq)) {
          f.delivered++;
          continue;
        }
        f.lost++;
        // NATS core orders only per publisher: where a loss sits is defined against the same route.
        const told = reported(input.sequenced ? events : events.filter((e) => e.type !== 'pub' || e.route === s.route), s.seq);
        if (told) f.lostReported++;
        else f.lostSilent++;
        const k = key(channel, s.seq);
        let sample = samples.get(k);
        if (!sample && samples.size < LOSS_SAMPLES) {
          sample = {
            channel,
            seq: s.seq,
            route: s.route,
            outcome: s.outcome,
            ...(s.offset !== undefined ? { offset: s.offset } : {}),
            sentAt: s.sentAt,
            ...(s.ackAt !== undefined ? { ackAt: s.ackAt } : {}),
            missedBy: 0,
            reported: 0,
          };
          samples.set(k, sample);
        }
        if (sample) {
          sample.missedBy++;
          if (told) sample.reported++;
        }
      }
    }
  }
  f.losses = [...samples.values()];
  const times = reconnectTimes(input.clients, input.incidents ?? []);
  f.reconnects = times.reconnects;
  f.notBack = times.notBack;
  f.reconnectMs = percentiles(times.ms);
  return f;
}

/**
 * A loss of publication `seq` is reported when a gap event sits where it went missing: after the
 * last receipt of an earlier publication that precedes the first receipt of a later one (or after
 * the last earlier receipt, when nothing later arrived). On an unsequenced backbone `events` holds
 * only the lost publication's own route: publications of two publishers may overtake each other
 * (the one through a gateway's API takes longer than the one straight into NATS), so a later one
 * from another route arriving before the gap says nothing about where this one went missing.
 */
function reported(events: readonly ClientEvent[], seq: number): boolean {
  let firstLater = events.length;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as ClientEvent;
    if (e.type === 'pub' && e.seq > seq) {
      firstLater = i;
      break;
    }
  }
  let lastEarlier = -1;
  for (let i = firstLater - 1; i >= 0; i--) {
    const e = events[i] as ClientEvent;
    if (e.type === 'pub' && (e as PubEvent).seq < seq) {
      lastEarlier = i;
      break;
    }
  }
  for (let i = lastEarlier + 1; i < firstLater; i++) if ((events[i] as ClientEvent).type === 'gap') return true;
  return false;
}

/**
 * Reconnect times: for every connection an incident took (the client was on the node when it was
 * killed or drained), the time from the incident to the client's next `connected`. For a kill
 * the clock starts at the signal; for a drain at the node's close of that client, since a drain
 * spreads its closes over its window on purpose.
 */
export function reconnectTimes(
  clients: readonly ClientLog[],
  incidents: readonly Incident[],
): { reconnects: number; notBack: number; ms: number[] } {
  const out = { reconnects: 0, notBack: 0, ms: [] as number[] };
  const nodeIncidents = incidents.filter((i) => i.node !== undefined);
  for (const c of clients) {
    let node: string | undefined;
    for (let i = 0; i < c.events.length; i++) {
      const e = c.events[i] as ClientEvent;
      if (e.type === 'connected') {
        node = e.node;
        continue;
      }
      if (e.type !== 'disconnected' || node === undefined) continue;
      const lostNode = node;
      node = undefined;
      const incident = nodeIncidents.filter((x) => x.node === lostNode && x.at <= e.t).at(-1);
      if (!incident) continue;
      out.reconnects++;
      const next = c.events.slice(i + 1).find((x) => x.type === 'connected');
      if (!next) {
        out.notBack++;
        continue;
      }
      out.ms.push(next.t - (incident.kind === 'kill' ? incident.at : e.t));
    }
  }
  return out;
}
