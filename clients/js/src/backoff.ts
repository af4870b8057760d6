// Reconnect delays: exponential backoff with full jitter (a uniformly random delay between 0 and
// the exponential ceiling), the variant that spreads a crowd of clients dropped together best
// ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

export interface BackoffOptions {
  /** The ceiling of the first retry's delay, in ms (default 1000). */
  baseMs?: number;
  /** The highest ceiling, in ms (default 30000). */
  maxMs?: number;
  /** A source of uniform numbers in [0, 1) (default Math.random); tests pin it. */
  random?: () => number;
}

export const DEFAULT_BACKOFF_BASE_MS = 1_000;
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

/** The ceiling for retry number `attempt` (0 = the first retry): min(max, base · 2^attempt). */
export function backoffCeiling(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const max = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  // 2^attempt overflows to Infinity for large attempts; min() then picks max, as intended.
  return Math.min(max, base * 2 ** Math.max(0, attempt));
}

/** The delay before retry number `attempt`: uniform in [0, ceiling), whole milliseconds. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const random = options.random ?? Math.random;
  const ceiling = backoffCeiling(attempt, options);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(Math.floor(r * ceiling), Math.max(0, ceiling - 1));
}
