// Requests that wait for an answer matched by `ref`: presence questions, history and emits with an ack.
// (Subscribe/unsubscribe answers are the channels' business: see client.ts.)
import { SumuRequestError } from './errors.js';
import { cancel, type TimerHandle } from './timers.js';

export interface Pending<L> {
  ref: string;
  /** `fill`: a history the client asks itself to fill a gap (not asked again: a reconnect recovers). */
  kind: 'presence' | 'history' | 'ack' | 'fill';
  /** The frame as sent (a presence or history question is asked again on the next connection). */
  text: string;
  resolve(value: never): void;
  reject(error: SumuRequestError): void;
  timer: TimerHandle;
  /** The connection it was written to; undefined while queued. */
  link?: L;
}

export class Requests<L> {
  private readonly pending = new Map<string, Pending<L>>();
  private next = 0;

  /** A fresh `ref` (1–64 of A-Z a-z 0-9 _ - . : as the gateway requires). */
  ref(): string {
    this.next += 1;
    return `r${this.next.toString(36)}`;
  }

  add(request: Pending<L>): void {
    this.pending.set(request.ref, request);
  }

  has(ref: string): boolean {
    return this.pending.has(ref);
  }

  /** Ends the request `ref` with an answer or an error; false when no such request waits. */
  settle(ref: string, outcome: unknown): boolean {
    const request = this.pending.get(ref);
    if (!request) return false;
    this.pending.delete(ref);
    cancel(request.timer);
    if (outcome instanceof SumuRequestError) request.reject(outcome);
    else request.resolve(outcome as never);
    return true;
  }

  /**
   * `link` ended: its presence and history questions are returned, to be asked again on the
   * next connection; its emits are rejected (the gateway may or may not have published them).
   */
  linkLost(link: L): Pending<L>[] {
    const again: Pending<L>[] = [];
    for (const request of [...this.pending.values()]) {
      if (request.link !== link) continue;
      if (request.kind === 'presence' || request.kind === 'history') {
        delete request.link;
        again.push(request);
      } else {
        this.settle(request.ref, new SumuRequestError('connection_lost', 'the connection ended before the ack: the emit may or may not have been published'));
      }
    }
    return again;
  }

  rejectAll(error: SumuRequestError): void {
    for (const ref of [...this.pending.keys()]) this.settle(ref, error);
  }
}
