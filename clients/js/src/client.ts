// SumuClient: one logical connection to a sumu WebSocket API, kept alive the way API Gateway
// needs (see README.md for the behaviour and the reasons behind each default). This file is
// the connection lifecycle and the routing of frames; frames.ts reads and sizes them,
// subscription.ts holds channel state, requests.ts the answers awaited by `ref`.
//
// A client holds up to three kinds of WebSocket ("links"):
// - the *primary*: open, where everything is sent;
// - a *candidate*: being opened (first connect, reconnect, or a proactive reconnect); it becomes
//   the primary once it is open and its `pong` told its connection id (and, in a proactive
//   reconnect, once its channels are confirmed);
// - *draining* links: former primaries kept open for `overlapMs` after a proactive reconnect, so
//   nothing already on its way to them is lost; what arrives twice is dropped by id.

import { backoffDelay, type BackoffOptions } from './backoff.js';
import { patternMatches } from './channels.js';
import { RecentIds } from './dedupe.js';
import { Emitter } from './emitter.js';
import { SumuRequestError } from './errors.js';
import { encode, FRAME_LIMIT, isRecord, parseFrame, utf8Length, type Frame, type Incoming } from './frames.js';
import { Link } from './link.js';
import { Requests, type Pending } from './requests.js';
import { ChannelEntry, Subscription, type PublicationHandler, type SubscriptionOwner } from './subscription.js';
import { ChannelStream, readPublication } from './stream.js';
import { after, cancel, every, type TimerHandle } from './timers.js';
import type {
  Ack, ChannelMembers, ConnectionState, HistoryOptions, Member, HistoryResult, Position, PresenceAnswer, Publication, SumuClientEvents,
  SumuClientOptions, SumuError, WebSocketConstructor, WebSocketLike,
} from './types.js';

export const DEFAULTS = {
  keepAliveMs: 5 * 60 * 1000,
  maxConnectionMs: (60 + 55) * 60 * 1000,
  queueLimit: 100,
  errorAfterFailures: 3,
  connectTimeoutMs: 15_000,
  overlapMs: 5_000,
  subscribeTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  presenceTimeoutMs: 30_000,
  pongTimeoutMs: 30_000,
  gapMs: 1_000,
} as const;

/** The settings that may be their minimum (0; `errorAfterFailures`: 1); the others must be above 0. */
const MAY_BE_MIN: readonly string[] = ['queueLimit', 'errorAfterFailures', 'overlapMs', 'gapMs'];
/** Message and publication ids remembered for dropping duplicates. */
const RECENT_IDS = 10_000;
/** A connection open this long has proved healthy: the reconnect backoff starts over. */
export const HEALTHY_MS = 10_000;
/** Refusals that may pass: the subscribe is asked again, with backoff. Any other refusal is final. */
const RETRYABLE = new Set(['channels_unavailable', 'connection_gone', 'timeout']);
/** The gateway takes at most this many ids in `exclude_connections`. */
const MAX_EXCLUDED = 10;

interface Outgoing {
  frame: Frame;
  text: string;
  /** What the caller handed over (reported when dropped). */
  dropped: unknown;
  /** Set for presence questions and acked emits: tracked until answered. */
  request?: Pending<Link>;
}

type Settings = Required<Omit<SumuClientOptions, 'url' | 'token' | 'WebSocket' | 'backoff'>>;

export class SumuClient extends Emitter<SumuClientEvents> implements SubscriptionOwner {
  private readonly url: string;
  private readonly tokenSource: () => string | Promise<string>;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly settings: Settings;
  private readonly backoff: BackoffOptions;

  private current: ConnectionState = 'closed';
  private running = false;
  /** Bumped by every attempt and by close(): only the latest attempt may act on its outcome. */
  private attemptSeq = 0;
  private primary: Link | null = null;
  private candidate: Link | null = null;
  private readonly draining = new Set<Link>();
  /** Retries since the last healthy connection: the reconnect backoff exponent. */
  private failures = 0;
  /** Attempts in a row that did not open: `connect_failed` after `errorAfterFailures`. */
  private refusals = 0;
  private retryTimer: TimerHandle | undefined;
  private keepAliveTimer: TimerHandle | undefined;
  private rotateTimer: TimerHandle | undefined;
  private promoteTimer: TimerHandle | undefined;
  private queue: Outgoing[] = [];
  /** channel or pattern → its state and handles. */
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly recentIds = new RecentIds(RECENT_IDS);
  private readonly requests = new Requests<Link>();
  private readonly online = (): void => this.retryNow();

  constructor(options: SumuClientOptions) {
    super();
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
    const settings: Partial<Settings> = {};
    for (const name of Object.keys(DEFAULTS) as (keyof Settings)[]) {
      const value = options[name] ?? DEFAULTS[name];
      const min = name === 'errorAfterFailures' ? 1 : 0;
      const strict = !MAY_BE_MIN.includes(name);
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (strict && value <= min)) {
        throw new TypeError(`SumuClient: \`${name}\` must be a number ${strict ? '>' : '≥'} ${min}`);
      }
      settings[name] = value;
    }
    this.settings = settings as Settings;
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
    this.failures = this.refusals = 0;
    host().addEventListener?.('online', this.online);
    this.setState('connecting');
    void this.attempt();
  }

  /**
   * Stops for good: closes every connection (code 1000), stops reconnecting and keep-alive,
   * drops what was queued and rejects pending `presence()` and acked `emit()` calls.
   * Subscriptions are kept (`subscribing`): `connect()` starts anew and subscribes them again.
   */
  close(): void {
    this.attemptSeq += 1;
    this.running = false;
    host().removeEventListener?.('online', this.online);
    for (const timer of [this.retryTimer, this.keepAliveTimer, this.rotateTimer, this.promoteTimer]) cancel(timer);
    this.retryTimer = this.keepAliveTimer = this.rotateTimer = this.promoteTimer = undefined;
    for (const link of this.links()) {
      link.end();
      link.close(1000, 'client closed');
    }
    this.primary = this.candidate = null;
    this.draining.clear();
    this.queue = [];
    this.requests.rejectAll(new SumuRequestError('closed', 'SumuClient closed'));
    for (const entry of this.channels.values()) {
      cancel(entry.retryTimer);
      entry.retryTimer = undefined;
      entry.setState('subscribing');
    }
    this.setState('closed');
  }

  /** `{"action":"send","message":…}` (to the messages queue). False when refused: too large or queue full (an `error` event says which). */
  send(message: unknown): boolean {
    return this.submit({ action: 'send', message }, message);
  }

  /** `{"action":"publish","message":…}` (to the messages topic). False when refused, as `send`. */
  publish(message: unknown): boolean {
    return this.submit({ action: 'publish', message }, message);
  }

  /**
   * `{"action":"emit","channel":…,"data":…}`: a publication on a channel, never delivered back
   * to this client. Without `ack`: fire and forget, false when refused (as `send`). With
   * `{ ack: true }`: a promise of the publication's id once the pusher accepted it, rejected
   * (SumuRequestError) on refusal, timeout or when the connection ends first.
   */
  emit(channel: string, data: unknown): boolean;
  emit(channel: string, data: unknown, options: { ack: true }): Promise<Ack>;
  emit(channel: string, data: unknown, options?: { ack?: boolean }): boolean | Promise<Ack>;
  emit(channel: string, data: unknown, options?: { ack?: boolean }): boolean | Promise<Ack> {
    const frame = { action: 'emit', channel, data };
    if (options?.ack) return this.ask<Ack>('ack', frame, data, this.settings.requestTimeoutMs, 'no ack');
    const text = JSON.stringify(frame);
    // On a channel this client follows with a position, the emit is acked all the same: the
    // ack's offset is one the gateway never sends back to it, so the client skips it instead of
    // taking it for a gap (and a recovery's replay does not hand the client its own emit).
    if (!this.channels.get(channel)?.stream?.position || text === undefined || utf8Length(text) > FRAME_LIMIT - 32) return this.submit(frame, data);
    const [acked, accepted] = this.track<Ack>('ack', frame, data, this.settings.requestTimeoutMs, 'no ack');
    acked.catch((error: SumuRequestError) => {
      if (error.code === 'refused') this.dispatch('error', { code: 'emit_failed', message: error.message, reason: error.reason as string, channel, frame: error.frame });
    });
    return accepted;
  }

  /**
   * `{"action":"history","channel":…}` for `subscription.history()`: the kept publications,
   * oldest first (asked again on the next connection when the connection ends first).
   */
  history(channel: string, options: HistoryOptions): Promise<HistoryResult> {
    const frame: Frame = { action: 'history', channel };
    if (options.limit !== undefined) frame['limit'] = options.limit;
    if (options.since !== undefined) frame['since'] = { offset: options.since.offset, epoch: options.since.epoch };
    return this.ask<Frame>('history', frame, options, this.settings.requestTimeoutMs, 'no history answer').then((reply) => {
      const result: HistoryResult = {
        publications: (reply['publications'] as unknown[]).map(readPublication).filter((p): p is Publication => p !== undefined),
        more: reply['more'] === true,
      };
      if (typeof reply['offset'] === 'number') result.offset = reply['offset'];
      if (typeof reply['epoch'] === 'string') result.epoch = reply['epoch'];
      if (typeof reply['recovered'] === 'boolean') result.recovered = reply['recovered'];
      return result;
    });
  }

  /** Asks who of `users` is online; resolves with the gateway's answer (asked once connected). */
  presence(users: readonly string[]): Promise<PresenceAnswer> {
    return this.ask<PresenceAnswer>('presence', { action: 'presence', users: [...users] }, users, this.settings.presenceTimeoutMs, 'no presence answer');
  }

  /**
   * `{"action":"presence","channel":…}` for `subscription.presence()`: the channel's members,
   * following `more` with `after` = the last user id received until the gateway has no more.
   */
  async members(channel: string): Promise<ChannelMembers> {
    const members: Member[] = [];
    for (let after: unknown; ;) {
      const frame: Frame = { action: 'presence', channel };
      if (after !== undefined) frame['after'] = after;
      const reply = await this.ask<Frame>('presence', frame, channel, this.settings.presenceTimeoutMs, 'no presence answer');
      const page = Array.isArray(reply['members']) ? reply['members'] : [];
      for (const member of page) {
        if (isRecord(member) && typeof member['user_id'] === 'string') members.push({ userId: member['user_id'], connections: Number(member['connections']) || 0 });
      }
      const last: unknown = page[page.length - 1]?.user_id;
      // A page that moves nothing forward would be asked for again and again: done.
      if (reply['more'] !== true || typeof last !== 'string' || last === after) return { members };
      after = last;
    }
  }

  /**
   * Subscribes to `channel` (a channel, `prefix/*` or `*`): a handle with a state, events and a
   * `ready` promise; `onPublication`, if given, is its `publication` handler. Handles on the same
   * channel share one gateway subscription: the last `unsubscribe()` ends it. Subscribed again
   * after every reconnect.
   */
  subscribe(channel: string, onPublication?: PublicationHandler): Subscription {
    if (typeof channel !== 'string' || channel === '' || (onPublication !== undefined && typeof onPublication !== 'function')) {
      throw new TypeError('subscribe(channel, onPublication?): a channel name and, optionally, a function');
    }
    let entry = this.channels.get(channel);
    const fresh = !entry;
    if (!entry) {
      const created = new ChannelEntry(channel);
      // A pattern has no position: it is subscribed again plainly after a reconnect.
      if (channel !== '*' && !channel.endsWith('/*')) {
        created.stream = new ChannelStream(channel, {
          out: (publication) => this.handOut(publication),
          ask: (stream, since) => this.fill(stream, since),
          tell: (context) => created.tell(context),
        }, this.settings.gapMs);
      }
      entry = created;
      this.channels.set(channel, entry);
    }
    const handle = new Subscription(channel, this, entry.state);
    if (onPublication) handle.on('publication', onPublication);
    entry.handles.add(handle);
    if (fresh) this.reconcileAll(channel);
    return handle;
  }

  /** @internal A handle unsubscribed: the channel's last one ends the gateway's subscription. */
  release(handle: Subscription): void {
    const entry = this.channels.get(handle.channel);
    if (!entry?.handles.delete(handle) || entry.handles.size > 0) return;
    cancel(entry.retryTimer);
    entry.stream?.stop();
    this.channels.delete(handle.channel);
    this.reconcileAll(handle.channel);
  }

  // ---- connection attempts ------------------------------------------------------------------

  private async attempt(): Promise<void> {
    cancel(this.retryTimer);
    this.retryTimer = undefined;
    if (!this.running || this.candidate) return;
    // A newer attempt (or close()) supersedes this one, whatever its token call does later.
    const seq = ++this.attemptSeq;
    let token: string;
    try {
      token = await this.tokenSource();
    } catch (cause) {
      if (seq !== this.attemptSeq) return;
      this.dispatch('error', { code: 'token_failed', message: `the token function failed: ${describe(cause)}`, cause });
      this.attemptFailed();
      return;
    }
    if (seq !== this.attemptSeq || !this.running || this.candidate) return;
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
      if (link.ready) return;
      link.close(1000, 'connect timeout');
      this.linkClosed(link);
    });
  }

  /** An attempt did not open (or closed before taking over): back off; a primary keeps serving. */
  private attemptFailed(opened = false): void {
    this.candidate = null;
    cancel(this.promoteTimer);
    this.promoteTimer = undefined;
    if (!this.running) return;
    if (!opened) {
      this.refusals += 1;
      if (this.refusals === this.settings.errorAfterFailures) {
        this.dispatch('error', {
          code: 'connect_failed',
          message: `${this.refusals} connection attempts in a row failed (refused, unreachable or timed out); still retrying with a fresh token each time`,
          attempts: this.refusals,
        });
      }
    }
    if (!this.primary) this.setState('reconnecting');
    this.retryLater();
  }

  private retryLater(): void {
    const delay = backoffDelay(this.failures, this.backoff);
    this.failures += 1;
    cancel(this.retryTimer);
    this.retryTimer = after(delay, () => void this.attempt());
  }

  /** The browser is back online: a client waiting to reconnect tries at once. */
  private retryNow(): void {
    if (this.running && this.retryTimer !== undefined && !this.candidate) void this.attempt();
  }

  private linkOpened(link: Link): void {
    if (link.closed || link !== this.candidate || !this.running) {
      link.end();
      link.close(1000, 'not needed');
      return;
    }
    link.opened = true;
    this.refusals = 0;
    // Only a connection that stays up proves the gateway healthy: one that accepts and then
    // closes at once keeps the backoff growing.
    link.healthyTimer = after(HEALTHY_MS, () => {
      this.failures = 0;
    });
    // The pong tells this connection's id, which emits name in `exclude_connections`; channels
    // are subscribed only after it, so no delivery can reach a connection whose id is unknown.
    link.send('{"action":"ping"}');
    this.expectReply(link, () => this.linkReady(link));
  }

  private linkReady(link: Link): void {
    if (link.ready || link.closed) return;
    link.ready = true;
    cancel(link.openTimer);
    if (link !== this.candidate) return;
    for (const channel of this.channels.keys()) this.reconcile(link, channel);
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
    if (link !== this.candidate || !link.ready || !this.primary) return;
    for (const entry of this.channels.values()) {
      if (entry.retryTimer === undefined && !link.subscribed.has(entry.channel)) return;
    }
    this.promote(link);
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
        old.close(1000, 'reconnected');
        this.linkClosed(old);
      });
    }
    cancel(this.keepAliveTimer);
    this.keepAliveTimer = every(this.settings.keepAliveMs, () => this.keepAlive());
    cancel(this.rotateTimer);
    this.rotateTimer = after(this.settings.maxConnectionMs, () => void this.attempt());
    this.updateChannels();
    this.setState('open');
    this.flush();
  }

  /** Sends `ping` on the primary and checks that something comes back. */
  private keepAlive(): void {
    const link = this.primary;
    if (!link?.live) return;
    link.send('{"action":"ping"}');
    this.expectReply(link);
  }

  /**
   * A link that sends back nothing within `pongTimeoutMs` is taken for dead; one that sent
   * something but no pong (an older gateway, a failing ping route) is ready without an id.
   */
  private expectReply(link: Link, orElse?: () => void): void {
    if (link.pongTimer !== undefined) return;
    const seen = link.framesReceived;
    link.pongTimer = after(this.settings.pongTimeoutMs, () => {
      link.pongTimer = undefined;
      if (link.closed) return;
      if (link.framesReceived === seen) {
        link.close(4000, 'keep-alive unanswered');
        this.linkClosed(link);
      } else {
        orElse?.();
      }
    });
  }

  private linkClosed(link: Link): void {
    if (link.closed) return;
    const opened = link.opened;
    link.end();
    // Presence questions this link never answered are asked again on the next connection;
    // acked emits on it are rejected (published or not, nobody can tell).
    const again = this.requests.linkLost(link);
    if (again.length > 0) this.queue.unshift(...again.map((request): Outgoing => ({ frame: {}, text: request.text, dropped: undefined, request })));
    if (this.draining.delete(link)) {
      this.flush();
      return;
    }
    if (link === this.candidate) {
      // Never opened (refused, unreachable, timed out), or opened and closed before taking over.
      this.attemptFailed(opened);
      return;
    }
    if (link !== this.primary) return;
    this.primary = null;
    cancel(this.keepAliveTimer);
    cancel(this.rotateTimer);
    this.keepAliveTimer = this.rotateTimer = undefined;
    this.updateChannels();
    if (!this.running) return;
    // A proactive reconnect's candidate that is already ready takes over at once; a draining
    // link may still be open, but it is on its way out, so it does not.
    if (this.candidate?.ready) {
      this.promote(this.candidate);
      return;
    }
    this.setState('reconnecting');
    // An attempt still waiting for its token is superseded by this one (after the backoff).
    if (!this.candidate) this.retryLater();
  }

  // ---- channels -------------------------------------------------------------------------------

  /** Brings `channel` on every link that carries subscriptions to what the application wants. */
  private reconcileAll(channel: string): void {
    for (const link of [this.primary, this.candidate]) if (link) this.reconcile(link, channel);
  }

  /**
   * One request per channel and link at a time: the gateway runs routes concurrently, so an
   * `unsubscribe` and a `subscribe` in flight together could be applied in either order. The
   * next one goes when the answer (or the timeout) is in, and only if still needed.
   */
  private reconcile(link: Link, channel: string): void {
    if (!link.ready || link.closed || link.inFlight.has(channel)) return;
    const entry = this.channels.get(channel);
    const has = link.subscribed.has(channel);
    if (entry && !has && entry.retryTimer === undefined) this.channelRequest(link, 'subscribe', channel);
    else if (!entry && has) this.channelRequest(link, 'unsubscribe', channel);
  }

  private channelRequest(link: Link, action: 'subscribe' | 'unsubscribe', channel: string): void {
    const ref = this.requests.ref();
    // After a reconnect (a proactive one too) a channel with a position asks for what it missed.
    const since = action === 'subscribe' ? this.channels.get(channel)?.stream?.position : undefined;
    const frame: Frame = { action, channel, ref };
    if (since) frame['since'] = { ...since };
    const text = encode(frame);
    if (text === undefined) {
      const entry = this.channels.get(channel);
      if (entry) this.subscribeRefused(entry, 'invalid_channel', `the channel name is too long for one frame (${FRAME_LIMIT} bytes)`);
      return;
    }
    const timer = after(this.settings.requestTimeoutMs, () => {
      const request = link.inFlight.get(channel);
      if (request?.ref !== ref) return;
      link.inFlight.delete(channel);
      this.channelRefused(link, action, channel, 'timeout', `no answer to ${action} within ${this.settings.requestTimeoutMs} ms`);
    });
    link.inFlight.set(channel, { ref, action, channel, timer, since: since && { ...since } });
    link.send(text);
  }

  private channelAnswer(link: Link, type: 'subscribed' | 'unsubscribed', channel: string, ref: string | undefined, frame: Frame): void {
    const request = link.request(ref);
    // An answer to nothing waiting here (a stale ref after a timeout, or none): that request was retried.
    if (!request || request.channel !== channel) return;
    cancel(request.timer);
    link.inFlight.delete(channel);
    if (type === 'subscribed') link.subscribed.add(channel);
    else {
      link.subscribed.delete(channel);
      link.unsubscribeRetries.delete(channel);
    }
    this.updateChannels();
    const entry = this.channels.get(channel);
    if (type === 'subscribed' && entry) {
      if (entry.stream) entry.stream.subscribed(frame, request.since);
      else entry.tell({ channel, recovered: false, wasRecovering: false });
    }
    this.reconcile(link, channel);
    this.promoteIfReady(link);
  }

  private channelRefused(link: Link, action: 'subscribe' | 'unsubscribe', channel: string, reason: string, message: string, frame?: Frame): void {
    if (action === 'unsubscribe') {
      // Still subscribed there (as far as we know): ask again later, unless it no longer matters.
      if (!RETRYABLE.has(reason)) {
        link.subscribed.delete(channel);
        return;
      }
      const retries = link.unsubscribeRetries.get(channel) ?? 0;
      link.unsubscribeRetries.set(channel, retries + 1);
      after(backoffDelay(retries, this.backoff), () => this.reconcile(link, channel));
      return;
    }
    const entry = this.channels.get(channel);
    if (!entry) {
      this.reconcile(link, channel);
      return;
    }
    if (!RETRYABLE.has(reason)) {
      this.subscribeRefused(entry, reason, message, frame);
      this.promoteIfReady(link);
      return;
    }
    const error: SumuError = { code: 'subscribe_failed', message, reason, channel, retrying: true };
    if (frame) error.frame = frame;
    for (const handle of entry.handles) handle.deliver('error', error);
    const delay = backoffDelay(entry.retries, this.backoff);
    entry.retries += 1;
    entry.retryTimer = after(delay, () => {
      entry.retryTimer = undefined;
      if (this.channels.get(channel) === entry) this.reconcileAll(channel);
    });
    this.promoteIfReady(link);
  }

  /** Refused for good: every handle of the channel fails, and the channel is forgotten (not re-sent on reconnect). */
  private subscribeRefused(entry: ChannelEntry, reason: string, message: string, frame?: Frame): void {
    const error: SumuError = { code: 'subscribe_failed', message, reason, channel: entry.channel, retrying: false };
    if (frame) error.frame = frame;
    this.channels.delete(entry.channel);
    cancel(entry.retryTimer);
    entry.stream?.stop();
    for (const handle of entry.handles) handle.failed(error);
    this.dispatch('error', error);
    this.reconcileAll(entry.channel);
  }

  /** A channel is `subscribed` while the primary has the gateway's confirmation for it. */
  private updateChannels(): void {
    for (const entry of this.channels.values()) {
      entry.setState(this.primary?.subscribed.has(entry.channel) ? 'subscribed' : 'subscribing');
    }
  }

  // ---- frames in ------------------------------------------------------------------------------

  private linkFrame(link: Link, data: unknown): void {
    if (link.closed) return;
    link.framesReceived += 1;
    const incoming: Incoming = typeof data === 'string' ? parseFrame(data) : { type: 'invalid', frame: data };
    switch (incoming.type) {
      case 'pong':
        cancel(link.pongTimer);
        link.pongTimer = undefined;
        if (incoming.connectionId !== undefined) link.connectionId = incoming.connectionId;
        this.linkReady(link);
        return;
      case 'subscribed':
      case 'unsubscribed':
        this.channelAnswer(link, incoming.type, incoming.channel, incoming.ref, incoming.frame);
        return;
      case 'publication':
        this.publication(readPublication(incoming.frame) as Publication);
        return;
      case 'message':
        if (this.recentIds.add(`m:${incoming.id}`)) this.dispatch('message', { id: incoming.id, data: incoming.data });
        return;
      case 'presence':
        if (incoming.ref !== undefined && this.requests.has(incoming.ref)) {
          // The answer as the gateway gave it, less the ref that matched it.
          const { ref: _ref, ...answer } = incoming.frame;
          this.requests.settle(incoming.ref, answer);
          // A channel's members answer `subscription.presence()` only.
          if (answer['channel'] === undefined) this.dispatch('presence', answer as unknown as PresenceAnswer);
        }
        return;
      case 'ack': {
        const ack = readPublication({ ...incoming.frame, data: null }) as Publication;
        if (ack.offset !== undefined && ack.epoch !== undefined) this.channels.get(ack.channel)?.stream?.own(ack.offset, ack.epoch);
        delete (ack as { data?: unknown }).data;
        this.requests.settle(incoming.ref, ack);
        return;
      }
      case 'error':
        this.errorFrame(link, incoming);
        return;
      case 'join':
      case 'leave':
        for (const handle of this.handlesFor(incoming.channel)) handle.deliver(incoming.type, { channel: incoming.channel, userId: incoming.userId });
        return;
      case 'history':
        if (incoming.ref !== undefined) this.requests.settle(incoming.ref, incoming.frame);
        return;
      case 'gateway_error':
        this.dispatch('error', { code: 'server_error', message: incoming.message, frame: incoming.frame });
        return;
      default:
        this.dispatch('error', { code: 'server_error', reason: 'invalid_frame', message: 'a frame that is not one of sumu\'s: ignored', frame: incoming.frame });
    }
  }

  /** A publication as it arrived: in offset order through its channel's stream, where it has one. */
  private publication(publication: Publication): void {
    if (this.recentIds.has(`p:${publication.id}`)) return;
    const stream = this.channels.get(publication.channel)?.stream;
    if (stream && publication.offset !== undefined && publication.epoch !== undefined) stream.take(publication as Publication & Position);
    else this.handOut(publication);
  }

  /** Hands a publication to every handle that covers its channel and to the `publication` event, once per id. */
  private handOut(publication: Publication): void {
    if (!this.recentIds.add(`p:${publication.id}`)) return;
    for (const handle of this.handlesFor(publication.channel)) handle.deliver('publication', publication);
    this.dispatch('publication', publication);
  }

  /** A gap-filling `history` since `since`, on the primary; false when not connected (a reconnect recovers). */
  private fill(stream: ChannelStream, since: Position): boolean {
    if (!this.primary?.live) return false;
    const current = (): boolean => this.channels.get(stream.channel)?.stream === stream;
    this.ask<Frame>('fill', { action: 'history', channel: stream.channel, since }, undefined, this.settings.requestTimeoutMs, 'no history answer').then(
      (reply) => { if (current()) stream.fillReply(reply); },
      (error: SumuRequestError) => {
        if (error.code === 'connection_lost' || error.code === 'closed') stream.fillLost();
        else if (current()) stream.fillFailed();
      },
    );
    return true;
  }

  /** Every handle whose channel or pattern covers `channel`. */
  private handlesFor(channel: string): Subscription[] {
    const handles: Subscription[] = [];
    for (const [pattern, entry] of this.channels) if (patternMatches(pattern, channel)) handles.push(...entry.handles);
    return handles;
  }

  private errorFrame(link: Link, incoming: Extract<Incoming, { type: 'error' }>): void {
    const { error: reason, message, channel, ref, frame } = incoming;
    const request = link.request(ref);
    if (request) {
      cancel(request.timer);
      link.inFlight.delete(request.channel);
      this.channelRefused(link, request.action, request.channel, reason, message, frame);
      return;
    }
    if (ref !== undefined && this.requests.settle(ref, new SumuRequestError('refused', message, reason, frame))) return;
    if (reason === 'ping_failed') this.linkReady(link);
    // Without a ref of ours it changes nothing: an emit sent without ack names its channel.
    const error: SumuError = { code: channel !== undefined && ref === undefined ? 'emit_failed' : 'server_error', message, reason, frame };
    if (channel !== undefined) error.channel = channel;
    this.dispatch('error', error);
  }

  // ---- frames out -----------------------------------------------------------------------------

  private submit(frame: Frame, dropped: unknown): boolean {
    const text = encode(frame);
    if (text === undefined) {
      this.dispatch('error', { code: 'too_large', message: tooLarge(frame), dropped });
      return false;
    }
    return this.offer({ frame, text, dropped });
  }

  /** A request answered by `ref`: sent now or queued, rejected when refused before sending or not answered in time. */
  private ask<T>(kind: Pending<Link>['kind'], frame: Frame, dropped: unknown, timeoutMs: number, what: string): Promise<T> {
    return this.track<T>(kind, frame, dropped, timeoutMs, what)[0];
  }

  /** As `ask`, and whether it was sent or queued (false: too large, or the queue is full). */
  private track<T>(kind: Pending<Link>['kind'], frame: Frame, dropped: unknown, timeoutMs: number, what: string): [Promise<T>, boolean] {
    let accepted = true;
    const promise = new Promise<T>((resolve, reject) => {
      const ref = this.requests.ref();
      const text = encode({ ...frame, ref });
      if (text === undefined) {
        accepted = false;
        reject(new SumuRequestError('too_large', tooLarge(frame)));
        return;
      }
      const request: Pending<Link> = { ref, kind, text, resolve, reject, timer: undefined };
      const item: Outgoing = { frame: { ...frame, ref }, text, dropped, request };
      request.timer = after(timeoutMs, () => {
        // Not sent yet: it never will be.
        this.queue = this.queue.filter((queued) => queued !== item);
        this.requests.settle(ref, new SumuRequestError('timeout', `${what} within ${timeoutMs} ms`));
      });
      this.requests.add(request);
      if (!this.offer(item)) {
        accepted = false;
        this.requests.settle(ref, new SumuRequestError('queue_overflow', 'not connected and the queue is full: not sent'));
      }
    });
    return [promise, accepted];
  }

  /** Sends now when open, else queues (bounded); false when dropped. */
  private offer(item: Outgoing): boolean {
    if (this.primary?.live && this.queue.length === 0) {
      this.transmit(this.primary, item);
      return true;
    }
    if (this.queue.length >= this.settings.queueLimit) {
      this.dispatch('error', {
        code: 'queue_overflow',
        message: `not connected and ${this.queue.length} messages are already queued (queueLimit): dropped`,
        dropped: item.dropped,
      });
      return false;
    }
    this.queue.push(item);
    this.flush();
    return true;
  }

  /** Sends what was queued, in order, while the primary is open. */
  private flush(): void {
    while (this.queue.length > 0 && this.primary?.live) this.transmit(this.primary, this.queue.shift() as Outgoing);
  }

  private transmit(link: Link, item: Outgoing): void {
    let text = item.text;
    if (item.frame['action'] === 'emit') {
      // The gateway never delivers an emit back to the connection that sent it; the client's
      // other connections (a proactive reconnect's overlap) are named here.
      let others = this.links().filter((other) => other !== link && other.live && other.connectionId !== undefined).slice(0, MAX_EXCLUDED);
      if (others.length > 0) {
        const withExclusions = JSON.stringify({ ...item.frame, exclude_connections: others.map((other) => other.connectionId) });
        // Within the limit as asked for, it is never refused for the list the client adds.
        if (utf8Length(withExclusions) <= FRAME_LIMIT) text = withExclusions;
        else others = [];
      }
    }
    if (item.request) item.request.link = link;
    link.send(text);
  }

  private links(): Link[] {
    return [this.primary, this.candidate, ...this.draining].filter((link): link is Link => link !== null);
  }

  private setState(state: ConnectionState): void {
    if (this.current === state) return;
    this.current = state;
    this.dispatch('state', state);
  }
}

/** `addEventListener` where the host has one (browsers: `online`); Node has none. */
function host(): { addEventListener?(type: string, listener: () => void): void; removeEventListener?(type: string, listener: () => void): void } {
  return globalThis as never;
}

function tooLarge(frame: Frame): string {
  return `the ${String(frame['action'])} frame would be over ${FRAME_LIMIT} bytes (API Gateway's limit): not sent`;
}

function withToken(url: string, token: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}authorization=${encodeURIComponent(token)}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
