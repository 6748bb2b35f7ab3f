/**
 * Fleet records of the JetStream backbone, kept in a JetStream key-value bucket of the fleet's own
 * (`<stream>_records`, so two fleets, which never share a stream, never share records). One KV key
 * per (kind, key), last value only: writing a key again replaces its record.
 *
 * KV key: `<kind with "." written "=">.<base64url of the UTF-8 key>`. The kind is one token and the
 * key is one token, so `<kind>.*` lists exactly one kind, and any record key (any characters) fits
 * the KV key alphabet. The value is the kit's record envelope
 * `{"v":1,"key":"<key>","expiresAt":<ms>,"value":<JSON>}`.
 *
 * Nothing grows without bound: the bucket holds at most `recordsMaxBytes` (writes are refused
 * beyond), drops a record `recordsMaxAgeSeconds` after its last write, and `records` purges the
 * expired records it reads. Expired records are never answered.
 */
import { StorageType, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import {
  BackboneInputError,
  BackboneUnavailableError,
  checkRecord,
  checkRecordKind,
  decodeRecord,
  encodeRecord,
  type ControlRecord,
} from '@gatehouse/backbone-kit';
import { within, type NatsLink } from './connection.js';
import type { ResolvedJetStreamOptions } from './options.js';

/** The KV bucket holding the fleet records of the JetStream backbone on `stream`. */
export function recordsBucket(stream: string): string {
  return `${stream}_records`;
}

/** The first KV key token of every record of `kind`. */
function kindToken(kind: string): string {
  return kind.replaceAll('.', '=');
}

/** The KV key of record `key` of `kind` (see the module comment). */
export function recordKvKey(kind: string, key: string): string {
  return `${kindToken(kind)}.${Buffer.from(key, 'utf8').toString('base64url')}`;
}

/** How many records `records` reads from the server at once. */
const READ_BATCH = 64;

/** The records of one JetStream backbone. */
export class JetStreamRecords {
  private kv: KV | undefined;

  constructor(
    private readonly link: NatsLink,
    private readonly options: ResolvedJetStreamOptions,
  ) {}

  /**
   * Opens the bucket, creating it if it is missing (with the stream's storage and replicas). An
   * existing bucket is used as it is: its limits are set once, when it is created.
   */
  async open(js: JetStreamClient): Promise<void> {
    const o = this.options;
    this.kv = await within(
      new Kvm(js).create(recordsBucket(o.stream), {
        history: 1,
        ttl: o.recordsMaxAgeSeconds * 1000,
        max_bytes: o.recordsMaxBytes,
        storage: o.storage === 'memory' ? StorageType.Memory : StorageType.File,
        replicas: o.replicas,
        description: `Gatehouse fleet records of stream ${o.stream}`,
      }),
      o.timeoutMs,
      'jetstream records bucket',
    );
  }

  /** Keeps `record` under `kind`, replacing the record with the same key. */
  async put(kind: string, record: ControlRecord): Promise<void> {
    checkRecord(kind, record);
    const kv = this.usable();
    const maxAgeMs = this.options.recordsMaxAgeSeconds * 1000;
    if (maxAgeMs > 0 && record.expiresAt > Date.now() + maxAgeMs) {
      throw new BackboneInputError(
        'invalid_record',
        `record expiresAt ${new Date(record.expiresAt).toISOString()} is more than recordsMaxAgeSeconds (${this.options.recordsMaxAgeSeconds}) from now: the records bucket would drop it before it expires`,
      );
    }
    try {
      await within(kv.put(recordKvKey(kind, record.key), encodeRecord(record)), this.options.timeoutMs, 'jetstream record put');
    } catch (err) {
      throw unavailable('put record', err);
    }
  }

  /** The unexpired records of `kind`, in no particular order. Purges the expired ones it meets. */
  async list(kind: string): Promise<ControlRecord[]> {
    checkRecordKind(kind);
    const kv = this.usable();
    const timeoutMs = this.options.timeoutMs;
    try {
      const keys = await listKeys(kv, `${kindToken(kind)}.*`, timeoutMs);
      const now = Date.now();
      const out: ControlRecord[] = [];
      for (let i = 0; i < keys.length; i += READ_BATCH) {
        const batch = keys.slice(i, i + READ_BATCH);
        const entries = await within(Promise.all(batch.map((k) => kv.get(k))), timeoutMs, 'jetstream record get');
        for (const entry of entries) {
          const record = entry ? this.decode(kind, entry) : undefined;
          if (!entry || !record) continue;
          if (record.expiresAt > now) out.push(record);
          // Guarded by the revision read, so a record written again meanwhile is not lost.
          else kv.purge(entry.key, { previousSeq: entry.revision }).catch(() => {});
        }
      }
      return out;
    } catch (err) {
      throw unavailable('read records', err);
    }
  }

  /** The record in `entry`, or undefined for a deletion or a value no gateway wrote (counted). */
  private decode(kind: string, entry: KvEntry): ControlRecord | undefined {
    if (entry.operation !== 'PUT') return undefined;
    const record = decodeRecord(kind, entry.value);
    const reason =
      typeof record === 'string'
        ? record
        : recordKvKey(kind, record.key) === entry.key
          ? undefined
          : 'key does not match the KV key it is stored under';
    if (reason === undefined) return record as ControlRecord;
    this.link.stats.recordsMalformed++;
    this.options.onMalformed?.(`record: ${reason}`, `$KV.${recordsBucket(this.options.stream)}.${entry.key}`);
    return undefined;
  }

  private usable(): KV {
    this.link.assertUp();
    if (!this.kv) throw new BackboneUnavailableError('jetstream records bucket is not open');
    return this.kv;
  }
}

/** The keys matching `filter`; the listing is stopped if it does not finish within `timeoutMs`. */
async function listKeys(kv: KV, filter: string, timeoutMs: number): Promise<string[]> {
  const listing = await within(kv.keys(filter), timeoutMs, 'jetstream record keys');
  const drain = async () => {
    const keys: string[] = [];
    // The listing ends by itself once every key was listed.
    for await (const k of listing) keys.push(k);
    return keys;
  };
  try {
    return await within(drain(), timeoutMs, 'jetstream record keys');
  } finally {
    listing.stop();
  }
}

function unavailable(what: string, err: unknown): Error {
  if (err instanceof BackboneUnavailableError || err instanceof BackboneInputError) return err;
  return new BackboneUnavailableError(`jetstream ${what}: ${(err as Error).message}`, { cause: err });
}
