// The error a promise of the client rejects with (`presence()`, `emit(…, { ack: true })`,
// `subscription.ready`): an Error with a `code` to branch on.

export type RequestErrorCode =
  /** The frame would be over 32,768 bytes: nothing was sent. */
  | 'too_large'
  /** Not connected and the queue is full: nothing was sent. */
  | 'queue_overflow'
  /** The gateway answered with an error frame: `reason` is its `error` (`forbidden`, …). */
  | 'refused'
  /** No answer in time (for an emit: it may still have been published). */
  | 'timeout'
  /** The connection that carried the request ended before the answer (an emit may have been published). */
  | 'connection_lost'
  /** `close()` was called first. */
  | 'closed'
  /** `unsubscribe()` was called before the gateway answered the subscribe. */
  | 'unsubscribed';

export class SumuRequestError extends Error {
  override readonly name = 'SumuRequestError';

  constructor(
    readonly code: RequestErrorCode,
    message: string,
    readonly reason?: string,
    readonly frame?: unknown,
  ) {
    super(message);
  }
}
