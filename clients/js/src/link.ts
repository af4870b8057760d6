// One WebSocket of the client ("link") and what the client knows about it.
import { cancel, type TimerHandle } from './timers.js';
import type { Position, WebSocketLike } from './types.js';

const OPEN = 1;

export interface ChannelRequest {
  ref: string;
  action: 'subscribe' | 'unsubscribe';
  channel: string;
  timer: TimerHandle;
  /** The position a subscribe asked to recover from. */
  since?: Position | undefined;
}

export class Link {
  opened = false;
  /** The `pong` to the opening `ping` came (or the ping failed): channels may be subscribed here. */
  ready = false;
  closed = false;
  /** From the `pong`: what an emit's `exclude_connections` names to keep it off this connection. */
  connectionId: string | undefined;
  openTimer: TimerHandle | undefined;
  drainTimer: TimerHandle | undefined;
  pongTimer: TimerHandle | undefined;
  healthyTimer: TimerHandle | undefined;
  /** Frames received so far: the keep-alive check's sign of life. */
  framesReceived = 0;
  /** Channels the gateway confirmed on this connection. */
  readonly subscribed = new Set<string>();
  /** channel → the one subscribe/unsubscribe waiting for its answer (never two at once per channel). */
  readonly inFlight = new Map<string, ChannelRequest>();
  /** channel → unsubscribe refusals in a row (the retry's backoff exponent). */
  readonly unsubscribeRetries = new Map<string, number>();

  constructor(readonly socket: WebSocketLike) {}

  get live(): boolean {
    return this.opened && !this.closed && this.socket.readyState === OPEN;
  }

  /** The channel request `ref` waiting here, if any. */
  request(ref: string | undefined): ChannelRequest | undefined {
    if (ref === undefined) return undefined;
    for (const request of this.inFlight.values()) if (request.ref === ref) return request;
    return undefined;
  }

  end(): void {
    this.closed = true;
    for (const timer of [this.openTimer, this.drainTimer, this.pongTimer, this.healthyTimer]) cancel(timer);
    for (const request of this.inFlight.values()) cancel(request.timer);
    this.inFlight.clear();
  }

  /** Writes `text` if the socket is OPEN (CONNECTING would throw, CLOSING drops silently). */
  send(text: string): void {
    if (this.socket.readyState === OPEN) this.socket.send(text);
  }

  close(code: number, reason: string): void {
    try {
      this.socket.close(code, reason);
    } catch {
      // Already closed or never opened: nothing left to close.
    }
  }
}
