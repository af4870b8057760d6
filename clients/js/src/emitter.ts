// A minimal typed event emitter, shared by the client and its subscriptions.
import { after } from './timers.js';

type Handler<T> = (value: T) => void;

export class Emitter<Events> {
  private readonly handlers = new Map<keyof Events, Set<Handler<never>>>();

  /** Adds an event handler; returns a function that removes it. */
  on<E extends keyof Events>(event: E, handler: Handler<Events[E]>): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as Handler<never>);
    return () => this.off(event, handler);
  }

  off<E extends keyof Events>(event: E, handler: Handler<Events[E]>): void {
    this.handlers.get(event)?.delete(handler as Handler<never>);
  }

  /** Calls every handler of `event`; one that throws does not stop the others (nor the client). */
  protected dispatch<E extends keyof Events>(event: E, value: Events[E]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) guarded(() => (handler as Handler<Events[E]>)(value));
  }
}

/** Runs an app callback; its exception surfaces (uncaught, on a fresh stack) without breaking the client. */
export function guarded(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    after(0, () => {
      throw error;
    });
  }
}
