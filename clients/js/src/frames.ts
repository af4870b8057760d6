// The wire: what sumu sends is one of a closed set of typed frames (docs/protocol.md); anything
// else — no `type`, an unknown one, a known one without its fields, not JSON — is not sumu's and
// must never be taken for application data or change the client's state. A back end's data
// only ever arrives inside a `message` (or `publication`) envelope, so whatever it looks like,
// it cannot pass for a frame of sumu's own.

/** API Gateway closes a connection (1009) on a client frame over 32 KB: the client checks first. */
export const FRAME_LIMIT = 32_768;

export type Frame = Record<string, unknown>;

export type Incoming =
  | { type: 'pong'; connectionId?: string }
  | { type: 'subscribed' | 'unsubscribed'; channel: string; ref?: string; frame: Frame }
  | { type: 'publication'; frame: Frame; channel: string; id: string }
  | { type: 'message'; id: string; data: unknown }
  | { type: 'presence'; frame: Frame; ref?: string }
  | { type: 'ack'; ref: string; channel: string; id: string; frame: Frame }
  | { type: 'error'; error: string; message: string; channel?: string; ref?: string; frame: Frame }
  | { type: 'join' | 'leave'; channel: string; userId: string }
  | { type: 'history'; frame: Frame; ref?: string }
  /** API Gateway's own `{"message":"Internal server error","connectionId","requestId"}`. */
  | { type: 'gateway_error'; message: string; frame: Frame }
  /** Not a frame of sumu's. */
  | { type: 'invalid'; frame: unknown };

/** Reads one text frame; never throws. */
export function parseFrame(text: string): Incoming {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: 'invalid', frame: text };
  }
  if (!isRecord(value)) return { type: 'invalid', frame: value };
  const frame = value;
  const channel = str(frame['channel']);
  const ref = str(frame['ref']);
  const id = str(frame['id']);
  const withRef = <T extends object>(incoming: T): T & { ref?: string } => (ref === undefined ? incoming : { ...incoming, ref });
  switch (frame['type']) {
    case 'pong': {
      const connectionId = str(frame['connection_id']);
      return connectionId === undefined ? { type: 'pong' } : { type: 'pong', connectionId };
    }
    case 'subscribed':
    case 'unsubscribed':
      if (channel !== undefined) return withRef({ type: frame['type'], channel, frame });
      break;
    case 'publication':
      if (channel !== undefined && id !== undefined && 'data' in frame) return { type: 'publication', frame, channel, id };
      break;
    case 'message':
      if (id !== undefined && 'data' in frame) return { type: 'message', id, data: frame['data'] };
      break;
    case 'presence':
      return withRef({ type: 'presence', frame });
    case 'ack':
      if (ref !== undefined && channel !== undefined && id !== undefined) return { type: 'ack', ref, channel, id, frame };
      break;
    case 'error': {
      const error = str(frame['error']) ?? 'error';
      const incoming = { type: 'error' as const, error, message: str(frame['message']) ?? error, frame };
      return withRef(channel === undefined ? incoming : { ...incoming, channel });
    }
    case 'join':
    case 'leave': {
      const userId = str(frame['user_id']);
      if (channel !== undefined && userId !== undefined) return { type: frame['type'], channel, userId };
      break;
    }
    case 'history':
      if (channel !== undefined && Array.isArray(frame['publications'])) return withRef({ type: 'history', frame });
      break;
    case undefined:
      if (typeof frame['message'] === 'string' && typeof frame['requestId'] === 'string') {
        return { type: 'gateway_error', message: frame['message'], frame };
      }
      break;
    default:
  }
  return { type: 'invalid', frame };
}

/** The JSON text of `frame`, or `undefined` when it is over FRAME_LIMIT bytes of UTF-8. */
export function encode(frame: Frame): string | undefined {
  const text = JSON.stringify(frame);
  return utf8Length(text) <= FRAME_LIMIT ? text : undefined;
}

/** Bytes of `text` in UTF-8 (what the gateway counts), without allocating them. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      // A surrogate pair: 2 UTF-16 units, 4 bytes; a lone surrogate becomes U+FFFD (3 bytes).
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2;
        i += 1;
        continue;
      }
      bytes += 2;
    } else if (code >= 0x800) {
      bytes += 2;
    } else if (code >= 0x80) {
      bytes += 1;
    }
  }
  return bytes;
}

export function isRecord(value: unknown): value is Frame {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
