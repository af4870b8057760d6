// @sumu/client: the browser and Node client that keeps a sumu connection alive.
export { SumuClient, DEFAULTS } from './client.js';
export type {
  ConnectionState,
  PresenceAnswer,
  PresenceEntry,
  Publication,
  Subscription,
  SumuClientEvents,
  SumuClientOptions,
  SumuError,
  SumuErrorCode,
  SumuEvent,
  WebSocketConstructor,
  WebSocketLike,
} from './client.js';
export { backoffCeiling, backoffDelay, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { patternMatches } from './channels.js';
