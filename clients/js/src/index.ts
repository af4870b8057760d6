// @sumu/client: the browser and Node client that keeps a sumu connection alive.
export { SumuClient, DEFAULTS } from './client.js';
export { Subscription } from './subscription.js';
export { SumuRequestError } from './errors.js';
export type { RequestErrorCode } from './errors.js';
export type {
  Ack,
  ChannelEvent,
  ChannelMembers,
  ConnectionState,
  HistoryOptions,
  HistoryResult,
  Member,
  Message,
  Position,
  PresenceAnswer,
  PresenceEntry,
  Publication,
  SubscribedContext,
  SubscriptionEvents,
  SubscriptionState,
  SumuClientEvents,
  SumuClientOptions,
  SumuError,
  SumuErrorCode,
  SumuEvent,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
export { backoffCeiling, backoffDelay, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { patternMatches } from './channels.js';
export { FRAME_LIMIT } from './frames.js';
