/**
 * The memory backbone across the worker processes of one machine (`gatehouse start --workers n`).
 * The primary process keeps the only MemoryBus (offsets, history rings) and one MemoryBackbone per
 * worker on it; each worker talks to its twin over the IPC channel Node's cluster module provides.
 * Publications still take the one delivery path: worker -> primary bus -> every subscribed worker.
 */
import type {
  Backbone,
  BackboneCapabilities,
  BackboneHandler,
  BackboneState,
  ControlMessage,
  ControlRecord,
  HistoryResult,
  Publication,
  PublishOptions,
} from './backbone.js';
import { BackboneUnavailableError } from './backbone.js';
import { MemoryBackbone, MemoryBus } from './memory-backbone.js';

/** Something that exchanges structured messages with the other side (a cluster worker, or `process`). */
export interface IpcPort {
  send(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

type RequestBody =
  | { op: 'publish'; channel: string; data: string; options: PublishOptions }
  | { op: 'subscribe' | 'unsubscribe'; channel: string }
  | { op: 'history'; channel: string; after: { epoch: string; offset: number } | undefined; limit: number }
  | { op: 'control'; msg: ControlMessage }
  | { op: 'putRecord'; kind: string; record: ControlRecord }
  | { op: 'records'; kind: string };
type Request = RequestBody & { gh: 'req'; id: number };

type Reply = { gh: 'res'; id: number; ok: true; value: unknown } | { gh: 'res'; id: number; ok: false; error: string };
type Deliver = { gh: 'pub'; pub: Publication };
type DeliverControl = { gh: 'ctl'; msg: ControlMessage };

function isMessage(m: unknown, kind: string): boolean {
  return typeof m === 'object' && m !== null && (m as { gh?: unknown }).gh === kind;
}

/**
 * Primary side: serves one worker's backbone requests from a shared bus. Create one per worker,
 * all with the same bus; `close()` when the worker exits.
 */
export class IpcBackboneHost {
  private readonly backbone: MemoryBackbone;
  private readonly listener = (m: unknown) => this.onMessage(m);

  constructor(
    private readonly port: IpcPort,
    bus: MemoryBus,
  ) {
    this.backbone = new MemoryBackbone({ bus });
  }

  /** Starts serving. */
  async start(): Promise<void> {
    await this.backbone.start({
      onPublication: (pub) => this.port.send({ gh: 'pub', pub } satisfies Deliver),
      onStateChange: () => {},
      onControl: (msg) => this.port.send({ gh: 'ctl', msg } satisfies DeliverControl),
    });
    this.port.on('message', this.listener);
  }

  private onMessage(m: unknown): void {
    if (!isMessage(m, 'req')) return;
    const req = m as Request;
    let result: Promise<unknown>;
    switch (req.op) {
      case 'publish':
        result = this.backbone.publish(req.channel, req.data, req.options);
        break;
      case 'subscribe':
        result = this.backbone.subscribe(req.channel);
        break;
      case 'unsubscribe':
        result = this.backbone.unsubscribe(req.channel);
        break;
      case 'history':
        result = this.backbone.history(req.channel, req.after, req.limit);
        break;
      case 'control':
        result = this.backbone.sendControl(req.msg);
        break;
      case 'putRecord':
        result = this.backbone.putRecord(req.kind, req.record);
        break;
      case 'records':
        result = this.backbone.records(req.kind);
        break;
      default:
        return;
    }
    result.then(
      (value) => this.port.send({ gh: 'res', id: req.id, ok: true, value: value ?? null } satisfies Reply),
      (err: unknown) => this.port.send({ gh: 'res', id: req.id, ok: false, error: (err as Error).message } satisfies Reply),
    );
  }

  /** Stops serving and drops the worker's subscriptions. */
  async close(): Promise<void> {
    this.port.off('message', this.listener);
    await this.backbone.close();
  }
}

/** Worker side: a Backbone whose state lives in the primary process. */
export class IpcBackbone implements Backbone {
  readonly kind = 'memory';
  readonly capabilities: BackboneCapabilities = {
    sequenced: true,
    history: true,
    contiguousOffsets: true,
    durable: false,
    shared: true,
    durableRecords: true,
  };
  private current: BackboneState = 'connecting';
  private handler: BackboneHandler | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly listener = (m: unknown) => this.onMessage(m);

  constructor(private readonly port: IpcPort) {}

  get state(): BackboneState {
    return this.current;
  }

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    this.port.on('message', this.listener);
    this.current = 'up';
    handler.onStateChange('up');
  }

  private onMessage(m: unknown): void {
    if (isMessage(m, 'pub')) {
      this.handler?.onPublication((m as Deliver).pub);
    } else if (isMessage(m, 'ctl')) {
      this.handler?.onControl((m as DeliverControl).msg);
    } else if (isMessage(m, 'res')) {
      const r = m as Reply;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(new BackboneUnavailableError(r.error));
    }
  }

  private request<T>(req: RequestBody): Promise<T> {
    if (this.current !== 'up') return Promise.reject(new BackboneUnavailableError(`backbone is ${this.current}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.port.send({ gh: 'req', id, ...req });
    });
  }

  publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    return this.request({ op: 'publish', channel, data, options });
  }

  async subscribe(channel: string): Promise<void> {
    await this.request({ op: 'subscribe', channel });
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.request({ op: 'unsubscribe', channel });
  }

  history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    return this.request({ op: 'history', channel, after, limit });
  }

  async sendControl(msg: ControlMessage): Promise<void> {
    await this.request({ op: 'control', msg });
  }

  async putRecord(kind: string, record: ControlRecord): Promise<void> {
    await this.request({ op: 'putRecord', kind, record });
  }

  records(kind: string): Promise<ControlRecord[]> {
    return this.request({ op: 'records', kind });
  }

  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.port.off('message', this.listener);
    for (const p of this.pending.values()) p.reject(new BackboneUnavailableError('backbone closed'));
    this.pending.clear();
    this.handler?.onStateChange('closed');
  }
}
