// The package's public types: options, events and the values they carry. No code here.
import type { BackoffOptions } from './backoff.js';

/** What a WebSocket implementation must offer: the browser's, Node ≥ 22's global, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // `any`: each implementation types its events differently (DOM Event, ws's Event …); the
  // client reads only `data` from messages and `code`/`reason` from closes.
  onopen: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  onmessage: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  onclose: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  onerror: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A back end's notification request: `{"type":"message","id","data"}`, once per `id`. */
export interface Message {
  /** Stable across the pusher's retries and re-queues: the client hands each id out once. */
  id: string;
  /** Exactly what the back end sent, parsed from JSON. */
  data: unknown;
}

/** A channel delivery: `{"type":"publication","channel","id","data","from"?}`. */
export interface Publication {
  channel: string;
  /** The same for every recipient and every retry: the client hands each id out once. */
  id: string;
  data: unknown;
  /** The user who emitted it (set by the gateway); absent when a back end published it. */
  from?: string;
  /** On a channel that keeps history: its place in the channel's sequence (consecutive within an epoch). */
  offset?: number;
  epoch?: string;
}

/** Where a channel that keeps history stands: everything up to `offset` of `epoch`. */
export interface Position {
  offset: number;
  epoch: string;
}

/**
 * A subscription's `subscribed` event: after every confirmation by the gateway (each reconnect,
 * proactive ones too), and when a recovery's outcome is known. `recovered: false` with
 * `wasRecovering: true` means publications may have been missed (outside the history window,
 * or the channel's epoch changed): reload the state the application built from them.
 */
export interface SubscribedContext {
  channel: string;
  /** Everything missed since the last position was handed out (in order, before anything newer). */
  recovered: boolean;
  /** The client asked to recover (it had a position on this channel). */
  wasRecovering: boolean;
  /** The channel's position as the client now stands (channels that keep history). */
  position?: Position;
}

/** `subscription.history()`: the kept publications, oldest first. */
export interface HistoryResult {
  publications: Publication[];
  /** The channel's latest offset and its epoch (absent: the channel keeps no history, or never had a publication). */
  offset?: number;
  epoch?: string;
  /** Without `since`: older kept ones were left out; with it: newer ones remain. */
  more: boolean;
  /** With `since`: false when what followed it cannot all be had (another epoch, or older than what is kept). */
  recovered?: boolean;
}

export interface HistoryOptions {
  /** The latest `limit` (1–100, default 100); with `since`, the first `limit` after it. */
  limit?: number;
  /** Only those after this position. */
  since?: Position;
}

/** The answer to an `emit(…, { ack: true })`: the publication's id, once the pusher accepted it. */
export interface Ack {
  id: string;
  channel: string;
  /** On a channel that keeps history: the publication's offset and epoch. */
  offset?: number;
  epoch?: string;
}

/**
 * A subscription's `join` / `leave` event (channels whose namespace has join_leave): `userId`'s
 * first connection subscribed to `channel`, or its last one left. A `room/*` handle gets them for
 * every room below it, so `channel` says which.
 */
export interface ChannelEvent {
  channel: string;
  userId: string;
}

/** A member of a channel: a user with `connections` connections subscribed to the channel itself. */
export interface Member {
  userId: string;
  connections: number;
}

/** `subscription.presence()`: every member of the channel, sorted by `userId`. */
export interface ChannelMembers {
  members: Member[];
}

export interface PresenceEntry {
  user_id: string;
  status: string;
  connections: number;
}

/** The answer to `{"action":"presence","users":[…]}`. */
export interface PresenceAnswer {
  type: 'presence';
  users: PresenceEntry[];
}

export type SumuErrorCode =
  /** `errorAfterFailures` connection attempts in a row did not open (refused upgrade or unreachable). */
  | 'connect_failed'
  /** The `token` function threw or returned no token. */
  | 'token_failed'
  /** `send`/`publish`/`emit`/`presence` while not open, with the queue full: the item was dropped. */
  | 'queue_overflow'
  /** A frame over 32,768 bytes (UTF-8 JSON text): refused before sending, nothing sent. */
  | 'too_large'
  /** The gateway refused a `subscribe` (`reason` says why); `retrying` tells whether it is asked again. */
  | 'subscribe_failed'
  /** The gateway refused an `emit` sent without ack (`reason`: `forbidden`, `invalid_channel`, `invalid_message`). */
  | 'emit_failed'
  /**
   * Any other error frame from the gateway (`Internal server error`, `unknown_action`, …), and
   * frames that are not sumu's (`reason` `invalid_frame`): reported, never acted upon.
   */
  | 'server_error';

export interface SumuError {
  code: SumuErrorCode;
  message: string;
  /** The gateway's `error` field when the error came in a frame; `invalid_frame` for a frame not sumu's. */
  reason?: string;
  channel?: string;
  /** The frame the gateway sent, when there was one. */
  frame?: unknown;
  /** For `connect_failed`: how many attempts in a row failed. */
  attempts?: number;
  /** For `queue_overflow` and `too_large`: what was dropped. */
  dropped?: unknown;
  /** For `subscribe_failed`: true when the refusal may pass and the subscribe is asked again. */
  retrying?: boolean;
  cause?: unknown;
}

export interface SumuClientEvents {
  state: ConnectionState;
  /** What a back end pushed to this user or connection, once per id. */
  message: Message;
  /** Every channel publication, once per id. */
  publication: Publication;
  /** Every answer to `presence()` (also the value its promise resolves with). */
  presence: PresenceAnswer;
  error: SumuError;
}

export type SumuEvent = keyof SumuClientEvents;

export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed' | 'failed';

export interface SubscriptionEvents {
  state: SubscriptionState;
  subscribed: SubscribedContext;
  publication: Publication;
  error: SumuError;
  join: ChannelEvent;
  leave: ChannelEvent;
}

export interface SumuClientOptions {
  /** `wss://…/{stage}` (or `ws://127.0.0.1:8080/dev` for sumu-local), without the token. */
  url: string;
  /** Called before every connection attempt; its result goes in the `authorization` query parameter. */
  token: () => string | Promise<string>;
  /** The WebSocket implementation; default `globalThis.WebSocket` (Node 20 has none: pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Keep-alive `ping` interval (default 5 min; API Gateway closes after 10 min idle). */
  keepAliveMs?: number;
  /** Proactive reconnect after this long (default 1 h 55 min; API Gateway closes at 2 h). */
  maxConnectionMs?: number;
  /** Reconnect (and subscribe retry) delays: full jitter under min(maxMs, baseMs · 2^n). */
  backoff?: BackoffOptions;
  /** Most messages held while not open (default 100); more are dropped with `queue_overflow`. */
  queueLimit?: number;
  /** After this many failed attempts in a row, an `error` event (`connect_failed`); default 3. */
  errorAfterFailures?: number;
  /** An attempt that has not opened after this long is abandoned (default 15 s). */
  connectTimeoutMs?: number;
  /** How long the old connection stays open after a proactive reconnect (default 5 s). */
  overlapMs?: number;
  /** In a proactive reconnect, the longest wait for `subscribed` replies before switching (default 10 s). */
  subscribeTimeoutMs?: number;
  /** A `subscribe`/`unsubscribe` answer or an emit's `ack` not in after this long: retried / rejected (default 10 s). */
  requestTimeoutMs?: number;
  /** `presence()` rejects when no answer came within this long (default 30 s). */
  presenceTimeoutMs?: number;
  /**
   * A connection that sends back nothing (not even the `pong`) within this long after a
   * `ping` is taken for dead and replaced (default 30 s): after a laptop sleeps or the network
   * changes, a socket can stay "open" for many minutes without a close event.
   */
  pongTimeoutMs?: number;
  /**
   * On a channel that keeps history, a publication that arrives past a gap in the offsets is
   * held back this long for the missing ones before they are asked for with `history` (default 1 s).
   */
  gapMs?: number;
}
