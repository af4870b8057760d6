// Channel names and patterns as DESIGN.md § Channels defines them. The gateway is the judge of
// what is valid; the client only needs to know which of its subscriptions a publication's
// channel falls under, to hand it to the right callbacks.

/**
 * Whether `pattern` (a channel, `prefix/*`, or `*`) covers `channel`.
 * `room/*` covers `room/42` and `room/a/b` (any depth) but not `room` itself.
 */
export function patternMatches(pattern: string, channel: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}
