/**
 * A small typed event emitter that runs in browsers and Node alike (Node's EventEmitter does not
 * exist in browsers, and EventTarget cannot type its payloads). A listener that throws never
 * breaks the SDK's own state: the error goes to the hook given at construction.
 */

/** A listener for one event's payload. */
export type Listener<T> = (payload: T) => void;

/** Receives an error thrown by a listener, with the event it was listening to. */
export type ListenerErrorHook = (error: unknown, event: string) => void;

/**
 * Emits typed events: `Events` maps each event name to its payload type. Listener lists are
 * copied when they change, not when they are read, so emitting (once per publication) allocates
 * nothing and a listener that adds or removes listeners does not disturb the round in progress.
 */
export class TypedEmitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Listener<never>[]>();
  readonly #onListenerError: ListenerErrorHook;

  constructor(onListenerError: ListenerErrorHook) {
    this.#onListenerError = onListenerError;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), listener as Listener<never>]);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs at most once; returns a function that removes it. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes a listener added with `on` (the first registration of it, if added twice). */
  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    const i = list.indexOf(listener as Listener<never>);
    if (i < 0) return;
    const next = list.slice(0, i).concat(list.slice(i + 1));
    if (next.length === 0) this.#listeners.delete(event);
    else this.#listeners.set(event, next);
  }

  /** The number of listeners for `event`. */
  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /** Calls every listener of `event` in registration order. */
  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    for (const listener of list) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (err) {
        this.#onListenerError(err, String(event));
      }
    }
  }
}
