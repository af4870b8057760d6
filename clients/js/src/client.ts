// SumuClient: one logical connection to a sumu WebSocket API, kept alive the way API Gateway
// needs (see README.md for the behaviour and the reasons behind each default).
//
// Internally a client holds up to three kinds of WebSocket ("links"):
// - the *primary*: open, where everything is sent;
// - a *candidate*: being opened (first connect, reconnect, or a proactive reconnect); it becomes
//   the primary once it is open (and, in a proactive reconnect, once its channels are confirmed);
// - *draining* links: former primaries kept open for `overlapMs` after a proactive reconnect, so
//   nothing already on its way to them is lost; what arrives twice is dropped.

import { backoffDelay, type BackoffOptions } from './backoff.js';
import { patternMatches } from './channels.js';
import { OverlapFilter, RecentIds } from './dedupe.js';
import { after, cancel, every, type TimerHandle } from './timers.js';

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

/** A channel delivery: `{"type":"publication","channel","id","data","from"?}`. */
export interface Publication {
  channel: string;
  /** The same for every recipient and every retry: the client hands each id out once. */
  id: string;
  data: unknown;
  /** The user who emitted it (set by the gateway); absent when a back end published it. */
  from?: string;
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
  /** The gateway refused a `subscribe` (`reason` says why); the subscription is forgotten. */
  | 'subscribe_failed'
  /** The gateway refused an `emit` (`reason`: `forbidden`, `invalid_channel`, `invalid_message`). */
  | 'emit_failed'
  /** Any other error frame from the gateway (`Internal server error`, `unknown_action`, …). */
  | 'server_error';

export interface SumuError {
  code: SumuErrorCode;
  message: string;
  /** The gateway's `error` field, when the error came in a frame. */
  reason?: string;
  channel?: string;
  /** The frame the gateway sent, when there was one. */
  frame?: unknown;
  /** For `connect_failed`: how many attempts in a row failed. */
  attempts?: number;
  /** For `queue_overflow`: the message that was dropped. */
  dropped?: unknown;
  cause?: unknown;
}

export interface SumuClientEvents {
  state: ConnectionState;
  /** Whatever a back end pushed (a notification request's `data`), parsed from JSON. */
  message: unknown;
  publication: Publication;
  /** Every answer to `presence()` (also the value its promise resolves with). */
  presence: PresenceAnswer;
  error: SumuError;
}

export type SumuEvent = keyof SumuClientEvents;

export interface Subscription {
  readonly channel: string;
  /** Stops this callback; the last one for a channel sends `unsubscribe`. Idempotent. */
  unsubscribe(): void;
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
  /** Reconnect delays: full jitter under min(maxMs, baseMs · 2^n). */
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
  /** `presence()` rejects when no answer came within this long (default 30 s). */
  presenceTimeoutMs?: number;
  /**
   * A connection that sends back nothing (not even the `pong`) within this long after a
   * keep-alive `ping` is taken for dead and replaced (default 30 s): after a laptop sleeps or
   * the network changes, a socket can stay "open" for many minutes without a close event.
   */
  pongTimeoutMs?: number;
}

export const DEFAULTS = {
  keepAliveMs: 5 * 60 * 1000,
  maxConnectionMs: (60 + 55) * 60 * 1000,
  queueLimit: 100,
  errorAfterFailures: 3,
  connectTimeoutMs: 15_000,
  overlapMs: 5_000,
  subscribeTimeoutMs: 10_000,
  presenceTimeoutMs: 30_000,
  pongTimeoutMs: 30_000,
} as const;

/** Publication ids remembered for dropping duplicates. */
const RECENT_IDS = 10_000;
/** Distinct frames counted while two connections overlap. */
const OVERLAP_FRAMES = 10_000;
const OPEN = 1;

interface PresenceRequest {
  users: string[];
  text: string;
  resolve(answer: PresenceAnswer): void;
  reject(error: Error): void;
  timer: TimerHandle;
}

type Outgoing = { kind: 'frame'; text: string; message: unknown } | { kind: 'presence'; request: PresenceRequest };

class Link {
  opened = false;
  closed = false;
  openTimer: TimerHandle | undefined;
  drainTimer: TimerHandle | undefined;
  pongTimer: TimerHandle | undefined;
  /** Frames received so far: the keep-alive check's sign of life. */
  framesReceived = 0;
  /** Channels with a `subscribe` sent on this link and no reply yet (channel → how many). */
  readonly pendingSubscribes = new Map<string, number>();
  /** `presence` requests sent on this link, oldest first. */
  presenceWaiting: PresenceRequest[] = [];

  constructor(readonly socket: WebSocketLike) {}

  get live(): boolean {
    return this.opened && !this.closed && this.socket.readyState === OPEN;
  }

  settle(channel: string): boolean {
    const count = this.pendingSubscribes.get(channel);
    if (count === undefined) return false;
    if (count <= 1) this.pendingSubscribes.delete(channel);
    else this.pendingSubscribes.set(channel, count - 1);
    return true;
  }
}

type Handler<E extends SumuEvent> = (value: SumuClientEvents[E]) => void;
type AnyHandler = (value: never) => void;

export class SumuClient {
  private readonly url: string;
  private readonly tokenSource: () => string | Promise<string>;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly settings: Required<Omit<SumuClientOptions, 'url' | 'token' | 'WebSocket' | 'backoff'>>;
  private readonly backoff: BackoffOptions;

  private current: ConnectionState = 'closed';
  private running = false;
  /** Bumped by close(): an attempt that started before it must not go on. */
  private epoch = 0;
  private primary: Link | null = null;
  private candidate: Link | null = null;
  private readonly draining = new Set<Link>();
  /** Attempts in a row that did not open: the backoff exponent. */
  private failures = 0;
  private retryTimer: TimerHandle | undefined;
  private keepAliveTimer: TimerHandle | undefined;
  private rotateTimer: TimerHandle | undefined;
  private promoteTimer: TimerHandle | undefined;
  private queue: Outgoing[] = [];
  /** channel or pattern → its callbacks (each wrapped, so the same function may be added twice). */
  private readonly channels = new Map<string, Set<{ callback: (publication: Publication) => void }>>();
  private readonly recentIds = new RecentIds(RECENT_IDS);
  private readonly overlap = new OverlapFilter<Link>(OVERLAP_FRAMES);
  private readonly handlers = new Map<SumuEvent, Set<AnyHandler>>();

  constructor(options: SumuClientOptions) {
    if (!options || typeof options.url !== 'string' || !/^wss?:\/\//i.test(options.url)) {
      throw new TypeError('SumuClient: `url` must be a ws:// or wss:// URL');
    }
    if (typeof options.token !== 'function') {
      throw new TypeError('SumuClient: `token` must be a function returning the token (it is called for every attempt)');
    }
    this.url = options.url;
    this.tokenSource = options.token;
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.backoff = { ...options.backoff };
    this.settings = {
      keepAliveMs: positive('keepAliveMs', options.keepAliveMs, DEFAULTS.keepAliveMs),
      maxConnectionMs: positive('maxConnectionMs', options.maxConnectionMs, DEFAULTS.maxConnectionMs),
      queueLimit: atLeast('queueLimit', options.queueLimit, DEFAULTS.queueLimit, 0),
      errorAfterFailures: atLeast('errorAfterFailures', options.errorAfterFailures, DEFAULTS.errorAfterFailures, 1),
      connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, DEFAULTS.connectTimeoutMs),
      overlapMs: atLeast('overlapMs', options.overlapMs, DEFAULTS.overlapMs, 0),
      subscribeTimeoutMs: positive('subscribeTimeoutMs', options.subscribeTimeoutMs, DEFAULTS.subscribeTimeoutMs),
      presenceTimeoutMs: positive('presenceTimeoutMs', options.presenceTimeoutMs, DEFAULTS.presenceTimeoutMs),
      pongTimeoutMs: positive('pongTimeoutMs', options.pongTimeoutMs, DEFAULTS.pongTimeoutMs),
    };
  }

  /** `connecting` | `open` | `reconnecting` | `closed`. */
  get state(): ConnectionState {
    return this.current;
  }

  /** Starts connecting (and keeps the connection up until `close()`). A no-op while running. */
  connect(): void {
    if (this.running) return;
    if (!this.WebSocketImpl) {
      throw new TypeError('SumuClient: no global WebSocket here (Node 20): pass one, e.g. `new SumuClient({ …, WebSocket })` with `import WebSocket from "ws"`');
    }
    this.running = true;
    this.failures = 0;
    this.setState('connecting');
    void this.attempt();
  }

  /**
   * Stops for good: closes every connection (code 1000), stops reconnecting and keep-alive,
   * drops what was queued and rejects pending `presence()` calls. `connect()` starts anew
   * (subscriptions are kept and re-sent).
   */
  close(): void {
    this.epoch += 1;
    this.running = false;
    for (const timer of [this.retryTimer, this.keepAliveTimer, this.rotateTimer, this.promoteTimer]) cancel(timer);
    this.retryTimer = this.keepAliveTimer = this.rotateTimer = this.promoteTimer = undefined;
    const links = [this.primary, this.candidate, ...this.draining].filter((link): link is Link => link !== null);
    this.primary = this.candidate = null;
    this.draining.clear();
    this.overlap.clear();
    const closed = new Error('SumuClient closed');
    for (const link of links) {
      link.closed = true;
      cancel(link.openTimer);
      cancel(link.drainTimer);
      cancel(link.pongTimer);
      for (const request of link.presenceWaiting) settlePresence(request, closed);
      link.presenceWaiting = [];
      closeQuietly(link.socket, 1000, 'client closed');
    }
    for (const item of this.queue) if (item.kind === 'presence') settlePresence(item.request, closed);
    this.queue = [];
    this.setState('closed');
  }

  /** `{"action":"send","message":…}` (to the messages queue). False when dropped (queue full). */
  send(message: unknown): boolean {
    return this.submit({ action: 'send', message }, message);
  }

  /** `{"action":"publish","message":…}` (to the messages topic). False when dropped (queue full). */
  publish(message: unknown): boolean {
    return this.submit({ action: 'publish', message }, message);
  }

  /** `{"action":"emit","channel":…,"data":…}`: a publication on a channel. False when dropped. */
  emit(channel: string, data: unknown): boolean {
    return this.submit({ action: 'emit', channel, data }, data);
  }

  /** Asks who of `users` is online; resolves with the gateway's answer (sent once connected). */
  presence(users: readonly string[]): Promise<PresenceAnswer> {
    const distinct = [...new Set(users)];
    return new Promise<PresenceAnswer>((resolve, reject) => {
      const request: PresenceRequest = {
        users: distinct,
        text: JSON.stringify({ action: 'presence', users: [...users] }),
        resolve,
        reject,
        timer: undefined,
      };
      request.timer = after(this.settings.presenceTimeoutMs, () => {
        this.forgetPresence(request);
        reject(new Error(`no presence answer within ${this.settings.presenceTimeoutMs} ms`));
      });
      if (!this.offer({ kind: 'presence', request }, users)) {
        settlePresence(request, new Error('presence request dropped: the queue is full'));
      }
    });
  }

  /**
   * Subscribes to `channel` (a channel, `prefix/*` or `*`) and calls `onPublication` for each
   * publication it covers, once per publication id. Re-subscribed after every reconnect.
   */
  subscribe(channel: string, onPublication: (publication: Publication) => void): Subscription {
    if (typeof channel !== 'string' || typeof onPublication !== 'function') {
      throw new TypeError('subscribe(channel, onPublication): a channel name and a function');
    }
    const entry = { callback: onPublication };
    let entries = this.channels.get(channel);
    if (!entries) {
      entries = new Set();
      this.channels.set(channel, entries);
      for (const link of this.subscribedLinks()) this.sendSubscribe(link, channel);
    }
    entries.add(entry);
    let active = true;
    return {
      channel,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        const set = this.channels.get(channel);
        if (!set?.delete(entry) || set.size > 0) return;
        this.channels.delete(channel);
        const text = JSON.stringify({ action: 'unsubscribe', channel });
        for (const link of this.subscribedLinks()) transmit(link, text);
      },
    };
  }

  /** Adds an event handler; returns a function that removes it. */
  on<E extends SumuEvent>(event: E, handler: Handler<E>): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as AnyHandler);
    return () => this.off(event, handler);
  }

  off<E extends SumuEvent>(event: E, handler: Handler<E>): void {
    this.handlers.get(event)?.delete(handler as AnyHandler);
  }

  // ---- connection attempts ------------------------------------------------------------------

  private async attempt(): Promise<void> {
    this.retryTimer = undefined;
    if (!this.running || this.candidate) return;
    const epoch = this.epoch;
    let token: string;
    try {
      token = await this.tokenSource();
    } catch (cause) {
      if (epoch !== this.epoch) return;
      this.dispatch('error', { code: 'token_failed', message: `the token function failed: ${describe(cause)}`, cause });
      this.attemptFailed();
      return;
    }
    if (epoch !== this.epoch || !this.running || this.candidate) return;
    if (typeof token !== 'string' || token === '') {
      this.dispatch('error', { code: 'token_failed', message: 'the token function returned no token' });
      this.attemptFailed();
      return;
    }
    const Impl = this.WebSocketImpl as WebSocketConstructor;
    let socket: WebSocketLike;
    try {
      socket = new Impl(withToken(this.url, token));
    } catch (cause) {
      this.dispatch('error', { code: 'connect_failed', message: `could not create the WebSocket: ${describe(cause)}`, cause });
      this.attemptFailed();
      return;
    }
    const link = new Link(socket);
    this.candidate = link;
    socket.onopen = () => this.linkOpened(link);
    socket.onmessage = (event: { data?: unknown }) => this.linkFrame(link, event?.data);
    socket.onclose = () => this.linkClosed(link);
    // A failed connection (refused upgrade, network) is followed by `close`, which decides;
    // browsers do not tell 401 from 403 from unreachable, so neither does the client.
    socket.onerror = () => {};
    link.openTimer = after(this.settings.connectTimeoutMs, () => {
      if (link.opened) return;
      closeQuietly(socket, 1000, 'connect timeout');
      this.linkClosed(link);
    });
  }

  /** An attempt did not open: back off (the primary, if any, keeps serving meanwhile). */
  private attemptFailed(): void {
    this.candidate = null;
    cancel(this.promoteTimer);
    this.promoteTimer = undefined;
    if (!this.running) return;
    this.failures += 1;
    if (this.failures === this.settings.errorAfterFailures) {
      this.dispatch('error', {
        code: 'connect_failed',
        message: `${this.failures} connection attempts in a row failed (refused, unreachable or timed out); still retrying with a fresh token each time`,
        attempts: this.failures,
      });
    }
    if (!this.primary) this.setState('reconnecting');
    this.scheduleAttempt(backoffDelay(this.failures - 1, this.backoff));
  }

  private scheduleAttempt(delayMs: number): void {
    cancel(this.retryTimer);
    this.retryTimer = after(delayMs, () => void this.attempt());
  }

  private linkOpened(link: Link): void {
    cancel(link.openTimer);
    if (link.closed || link !== this.candidate || !this.running) {
      link.closed = true;
      closeQuietly(link.socket, 1000, 'not needed');
      return;
    }
    link.opened = true;
    this.failures = 0;
    // Channels first, so publications flow on the new connection as early as possible.
    for (const channel of this.channels.keys()) this.sendSubscribe(link, channel);
    if (this.primary?.live) {
      // A proactive reconnect: switch once the gateway confirmed every channel on the new link.
      cancel(this.promoteTimer);
      this.promoteTimer = after(this.settings.subscribeTimeoutMs, () => this.promote(link));
      this.promoteIfReady(link);
    } else {
      this.promote(link);
    }
  }

  private promoteIfReady(link: Link): void {
    if (link === this.candidate && link.opened && this.primary && link.pendingSubscribes.size === 0) {
      this.promote(link);
    }
  }

  /** `link` becomes the primary; the old primary drains for `overlapMs`, then closes. */
  private promote(link: Link): void {
    if (link.closed || link !== this.candidate) return;
    cancel(this.promoteTimer);
    this.promoteTimer = undefined;
    this.candidate = null;
    const old = this.primary;
    this.primary = link;
    if (old) {
      this.draining.add(old);
      old.drainTimer = after(this.settings.overlapMs, () => {
        closeQuietly(old.socket, 1000, 'reconnected');
        this.linkClosed(old);
      });
    }
    cancel(this.keepAliveTimer);
    this.keepAliveTimer = every(this.settings.keepAliveMs, () => this.keepAlive());
    cancel(this.rotateTimer);
    this.rotateTimer = after(this.settings.maxConnectionMs, () => void this.attempt());
    this.setState('open');
    this.flush();
  }

  /** Sends `ping` on the primary and checks that something comes back. */
  private keepAlive(): void {
    const link = this.primary;
    if (!link?.live) return;
    transmit(link, '{"action":"ping"}');
    if (link.pongTimer !== undefined) return;
    const seen = link.framesReceived;
    link.pongTimer = after(this.settings.pongTimeoutMs, () => {
      link.pongTimer = undefined;
      if (link.closed || link.framesReceived !== seen) return;
      closeQuietly(link.socket, 4000, 'keep-alive unanswered');
      this.linkClosed(link);
    });
  }

  private linkClosed(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    cancel(link.openTimer);
    cancel(link.drainTimer);
    cancel(link.pongTimer);
    // Presence questions this link never answered are asked again on the next connection.
    if (link.presenceWaiting.length > 0) {
      this.queue.unshift(...link.presenceWaiting.map((request): Outgoing => ({ kind: 'presence', request })));
      link.presenceWaiting = [];
    }
    if (this.draining.delete(link)) {
      if (this.liveLinks() < 2) this.overlap.clear();
      this.flush();
      return;
    }
    if (link === this.candidate) {
      // Never opened (refused, unreachable, timed out), or opened and closed before taking over.
      this.attemptFailed();
      return;
    }
    if (link === this.primary) {
      this.primary = null;
      cancel(this.keepAliveTimer);
      cancel(this.rotateTimer);
      this.keepAliveTimer = this.rotateTimer = undefined;
      if (this.liveLinks() < 2) this.overlap.clear();
      if (!this.running) return;
      // A proactive reconnect's candidate that is already open takes over at once; a draining
      // link may still be open, but it is on its way out, so it does not.
      if (this.candidate?.opened) {
        this.promote(this.candidate);
        return;
      }
      this.setState('reconnecting');
      if (!this.candidate && this.retryTimer === undefined) {
        this.scheduleAttempt(backoffDelay(this.failures, this.backoff));
      }
    }
  }

  // ---- frames in ------------------------------------------------------------------------------

  private linkFrame(link: Link, data: unknown): void {
    if (link.closed) return;
    link.framesReceived += 1;
    if (typeof data !== 'string') return; // sumu sends text frames only
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      frame = undefined;
    }
    if (isRecord(frame)) {
      switch (frame['type']) {
        case 'pong':
        case 'unsubscribed':
          return;
        case 'subscribed':
          if (typeof frame['channel'] === 'string') link.settle(frame['channel']);
          this.promoteIfReady(link);
          return;
        case 'publication':
          this.publication(frame);
          return;
        case 'error':
          this.errorFrame(link, frame);
          return;
        case 'presence':
          if (this.presenceAnswer(link, frame)) return;
          break;
        default:
          if (frame['type'] === undefined && isGatewayError(frame)) {
            this.dispatch('error', { code: 'server_error', message: String(frame['message']), frame });
            return;
          }
      }
    }
    // What a back end pushed. While two connections overlap, a copy both got is handed out once.
    // Counting starts as soon as a candidate exists, not when it opens: the server registers
    // the new connection before the client sees it open, so a copy can reach the old one first.
    if (this.overlapping() && !this.overlap.admit(data, link)) return;
    this.dispatch('message', frame === undefined ? data : frame);
  }

  private publication(frame: Record<string, unknown>): void {
    const { channel, id } = frame;
    if (typeof channel !== 'string' || typeof id !== 'string') return;
    if (!this.recentIds.add(id)) return;
    const publication: Publication = { channel, id, data: frame['data'] };
    if (typeof frame['from'] === 'string') publication.from = frame['from'];
    const callbacks = new Set<(publication: Publication) => void>();
    for (const [pattern, entries] of this.channels) {
      if (!patternMatches(pattern, channel)) continue;
      for (const entry of entries) callbacks.add(entry.callback);
    }
    for (const callback of callbacks) guarded(() => callback(publication));
    this.dispatch('publication', publication);
  }

  private errorFrame(link: Link, frame: Record<string, unknown>): void {
    const reason = typeof frame['error'] === 'string' ? frame['error'] : 'error';
    const message = typeof frame['message'] === 'string' ? frame['message'] : reason;
    const channel = typeof frame['channel'] === 'string' ? frame['channel'] : undefined;
    if (channel !== undefined) {
      if (link.settle(channel)) {
        // Refused now means refused on every reconnect too: forget it instead of re-sending.
        if (link === this.primary || link === this.candidate) this.channels.delete(channel);
        this.dispatch('error', { code: 'subscribe_failed', message, reason, channel, frame });
        this.promoteIfReady(link);
        return;
      }
      this.dispatch('error', { code: 'emit_failed', message, reason, channel, frame });
      return;
    }
    if ((reason === 'invalid_request' || reason === 'presence_unavailable') && link.presenceWaiting.length > 0) {
      const request = link.presenceWaiting.shift() as PresenceRequest;
      settlePresence(request, Object.assign(new Error(`presence: ${message}`), { reason, frame }));
      return;
    }
    this.dispatch('error', { code: 'server_error', message, reason, frame });
  }

  /** Resolves the oldest presence request on `link` that `frame` answers; false if none. */
  private presenceAnswer(link: Link, frame: Record<string, unknown>): boolean {
    const users = frame['users'];
    if (!Array.isArray(users) || !users.every(isRecord)) return false;
    const asked = users.map((user) => user['user_id']);
    const index = link.presenceWaiting.findIndex((request) =>
      request.users.length === asked.length && request.users.every((user, i) => user === asked[i]));
    if (index < 0) return false;
    const [request] = link.presenceWaiting.splice(index, 1);
    const answer = frame as unknown as PresenceAnswer;
    if (request) settlePresence(request, answer);
    this.dispatch('presence', answer);
    return true;
  }

  // ---- frames out -----------------------------------------------------------------------------

  private submit(frame: Record<string, unknown>, message: unknown): boolean {
    return this.offer({ kind: 'frame', text: JSON.stringify(frame), message }, message);
  }

  /** Sends now when open, else queues (bounded); false when dropped. */
  private offer(item: Outgoing, message: unknown): boolean {
    if (this.primary?.live && this.queue.length === 0) {
      this.transmitItem(this.primary, item);
      return true;
    }
    if (this.queue.length >= this.settings.queueLimit) {
      this.dispatch('error', {
        code: 'queue_overflow',
        message: `not connected and ${this.queue.length} messages are already queued (queueLimit): dropped`,
        dropped: message,
      });
      return false;
    }
    this.queue.push(item);
    this.flush();
    return true;
  }

  /** Sends what was queued, in order, while the primary is open. */
  private flush(): void {
    while (this.queue.length > 0 && this.primary?.live) {
      this.transmitItem(this.primary, this.queue.shift() as Outgoing);
    }
  }

  private transmitItem(link: Link, item: Outgoing): void {
    if (item.kind === 'frame') {
      transmit(link, item.text);
    } else {
      link.presenceWaiting.push(item.request);
      transmit(link, item.request.text);
    }
  }

  private sendSubscribe(link: Link, channel: string): void {
    link.pendingSubscribes.set(channel, (link.pendingSubscribes.get(channel) ?? 0) + 1);
    transmit(link, JSON.stringify({ action: 'subscribe', channel }));
  }

  /** The open links that carry subscriptions: the primary and an opened candidate. */
  private subscribedLinks(): Link[] {
    return [this.primary, this.candidate].filter((link): link is Link => link !== null && link.live);
  }

  /** A proactive reconnect is under way: a candidate is connecting or a former primary drains. */
  private overlapping(): boolean {
    return (this.candidate !== null && this.primary !== null) || this.draining.size > 0;
  }

  private liveLinks(): number {
    return [this.primary, this.candidate, ...this.draining].filter((link) => link?.live).length;
  }

  private forgetPresence(request: PresenceRequest): void {
    this.queue = this.queue.filter((item) => item.kind !== 'presence' || item.request !== request);
    for (const link of [this.primary, this.candidate, ...this.draining]) {
      if (link) link.presenceWaiting = link.presenceWaiting.filter((waiting) => waiting !== request);
    }
  }

  // ---- events ---------------------------------------------------------------------------------

  private setState(state: ConnectionState): void {
    if (this.current === state) return;
    this.current = state;
    this.dispatch('state', state);
  }

  private dispatch<E extends SumuEvent>(event: E, value: SumuClientEvents[E]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) guarded(() => (handler as Handler<E>)(value));
  }
}

function transmit(link: Link, text: string): void {
  // A socket that is not OPEN would throw (CONNECTING) or silently drop (CLOSING): never here,
  // since callers check `live`, but a close event may still be on its way.
  if (link.socket.readyState !== OPEN) return;
  link.socket.send(text);
}

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closed or never opened: nothing left to close.
  }
}

function settlePresence(request: PresenceRequest, outcome: PresenceAnswer | Error): void {
  cancel(request.timer);
  if (outcome instanceof Error) request.reject(outcome);
  else request.resolve(outcome);
}

/** Runs an app callback; its exception surfaces (uncaught, on a fresh stack) without breaking the client. */
function guarded(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    after(0, () => {
      throw error;
    });
  }
}

function withToken(url: string, token: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}authorization=${encodeURIComponent(token)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** API Gateway's own error frames: `{"message":"Internal server error","connectionId":…,"requestId":…}`. */
function isGatewayError(frame: Record<string, unknown>): boolean {
  return typeof frame['message'] === 'string' && typeof frame['requestId'] === 'string';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`SumuClient: \`${name}\` must be a number > 0`);
  }
  return value;
}

function atLeast(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new TypeError(`SumuClient: \`${name}\` must be a number ≥ ${min}`);
  }
  return value;
}
