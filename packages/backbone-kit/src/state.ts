/**
 * The connection state every adapter reports. Adapters used to keep it by hand, and each had to
 * remember the same three rules: report a transition once (a flapping client library emits
 * "disconnected" many times), never come back from `closed` (a late reconnect event after close
 * must not resurrect the backbone), and never let a throwing listener break the reconnect loop
 * that reported the change.
 */
import type { BackboneState } from './contract.js';

/** Receives each real state change. */
export type StateListener = (state: BackboneState, error?: Error) => void;

/** What the machine starts in and where a throwing listener's error goes. */
export interface StateMachineOptions {
  /** Default 'connecting'. */
  readonly initial?: BackboneState;
  /** Told about an error a listener threw (count it, log it); the error goes no further. */
  readonly onListenerError?: (err: unknown) => void;
}

/** Holds a backbone's state and reports real changes to one listener. */
export class BackboneStateMachine {
  private current: BackboneState;
  private error: Error | undefined;
  private listener: StateListener | undefined;
  private readonly onListenerError: ((err: unknown) => void) | undefined;

  constructor(options: StateMachineOptions = {}) {
    this.current = options.initial ?? 'connecting';
    this.onListenerError = options.onListenerError;
  }

  /** The current state. */
  get state(): BackboneState {
    return this.current;
  }

  /** The error reported with the latest change (undefined when it came with none). */
  get lastError(): Error | undefined {
    return this.error;
  }

  /** Sets the one listener (usually the handler's `onStateChange`), replacing any earlier one. */
  listen(listener: StateListener | undefined): void {
    this.listener = listener;
  }

  /**
   * Moves to `state`. Returns true and tells the listener when the state really changed; returns
   * false and stays silent when it is the current state or the machine is already `closed`.
   */
  set(state: BackboneState, error?: Error): boolean {
    if (this.current === 'closed' || state === this.current) return false;
    this.current = state;
    this.error = error;
    const listener = this.listener;
    if (listener) {
      try {
        listener(state, error);
      } catch (err) {
        this.reportListenerError(err);
      }
    }
    return true;
  }

  private reportListenerError(err: unknown): void {
    try {
      this.onListenerError?.(err);
    } catch {
      // The error reporter itself failed: there is nowhere left to report to, and the caller is
      // a reconnect loop that must keep running.
    }
  }
}
