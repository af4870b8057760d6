// Subscriptions: what the application holds (`Subscription`, one per `subscribe()` call) and
// what the client keeps per channel (`ChannelEntry`, shared by every handle on that channel:
// the gateway has one subscription per connection and channel, so the handles share its state).
import { Emitter } from './emitter.js';
import { SumuRequestError } from './errors.js';
import type { ChannelStream } from './stream.js';
import type { TimerHandle } from './timers.js';
import type { ChannelMembers, HistoryOptions, HistoryResult, Publication, SubscribedContext, SubscriptionEvents, SubscriptionState, SumuError } from './types.js';

/** What a handle needs from its client (kept narrow, so this module does not import the client). */
export interface SubscriptionOwner {
  release(handle: Subscription): void;
  history(channel: string, options: HistoryOptions): Promise<HistoryResult>;
  members(channel: string): Promise<ChannelMembers>;
}

/** The client's state for one channel (or pattern): its handles and the gateway's answers. */
export class ChannelEntry {
  state: 'subscribing' | 'subscribed' = 'subscribing';
  readonly handles = new Set<Subscription>();
  /** Refusals that may pass (or timeouts) in a row: the retry's backoff exponent. */
  retries = 0;
  /** Set while waiting to ask again after such a refusal. */
  retryTimer: TimerHandle | undefined;
  /** An exact channel's position and order (see stream.ts); none for a pattern. */
  stream: ChannelStream | undefined;

  constructor(readonly channel: string) {}

  tell(context: SubscribedContext): void {
    for (const handle of this.handles) handle.deliver('subscribed', context);
  }

  setState(state: 'subscribing' | 'subscribed'): void {
    if (state === this.state) return;
    this.state = state;
    if (state === 'subscribed') this.retries = 0;
    for (const handle of this.handles) handle.changed(state);
  }
}

/**
 * One `subscribe()` call's handle. Its state is its channel's (`subscribing` until the gateway
 * confirms, and again after each reconnect until it confirms again; `subscribed`), or its own
 * end: `unsubscribed` (by `unsubscribe()`) or `failed` (refused for good).
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  /** Settles on the gateway's first answer: resolves once subscribed, rejects when refused for good (or unsubscribed first). */
  readonly ready: Promise<void>;
  private current: SubscriptionState;
  private settle: ((error?: SumuRequestError) => void) | undefined;

  constructor(readonly channel: string, private readonly owner: SubscriptionOwner, state: SubscriptionState) {
    super();
    this.current = state;
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
    });
    // An application that never looks at `ready` must not get an unhandled rejection.
    this.ready.catch(() => {});
    if (state === 'subscribed') this.finish();
  }

  get state(): SubscriptionState {
    return this.current;
  }

  /**
   * The channel's kept publications, oldest first: the latest `limit` (1–100, default 100), or
   * with `since` those after it. Asked once connected; rejects (SumuRequestError) when refused
   * (`forbidden`, `invalid_channel` for a pattern) or not answered in time.
   */
  history(options: HistoryOptions = {}): Promise<HistoryResult> {
    return this.owner.history(this.channel, options);
  }

  /**
   * Who is in the channel: every user with a connection subscribed to it, sorted by `userId`
   * (asked page after page until the gateway says there is no more). Asked once connected;
   * rejects (SumuRequestError) when refused (`forbidden`, `invalid_channel` for a pattern,
   * `channels_unavailable`) or not answered in time. Keep the list with `join` / `leave`.
   */
  presence(): Promise<ChannelMembers> {
    return this.owner.members(this.channel);
  }

  /** Stops this handle; the last handle of a channel sends `unsubscribe`. Idempotent. */
  unsubscribe(): void {
    if (this.current === 'unsubscribed' || this.current === 'failed') return;
    this.owner.release(this);
    this.finish(new SumuRequestError('unsubscribed', `unsubscribed from ${this.channel} before the gateway answered`));
    this.set('unsubscribed');
  }

  /** @internal The channel's state changed. */
  changed(state: 'subscribing' | 'subscribed'): void {
    if (this.current === 'unsubscribed' || this.current === 'failed') return;
    if (state === 'subscribed') this.finish();
    this.set(state);
  }

  /** @internal Refused for good (`error.reason`: forbidden, invalid_channel, too_many_subscriptions). */
  failed(error: SumuError): void {
    if (this.current === 'unsubscribed' || this.current === 'failed') return;
    this.finish(new SumuRequestError('refused', error.message, error.reason, error.frame));
    this.set('failed');
    this.dispatch('error', error);
  }

  /** @internal */
  deliver<E extends 'publication' | 'subscribed' | 'error' | 'join' | 'leave'>(event: E, value: SubscriptionEvents[E]): void {
    if (this.current === 'unsubscribed' || this.current === 'failed') return;
    this.dispatch(event, value);
  }

  private set(state: SubscriptionState): void {
    if (state === this.current) return;
    this.current = state;
    this.dispatch('state', state);
  }

  private finish(error?: SumuRequestError): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.(error);
  }
}

export type PublicationHandler = (publication: Publication) => void;
