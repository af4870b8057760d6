// A stand-in for a sumu gateway, for the client's logic tests: a real `ws` WebSocketServer on
// 127.0.0.1 that speaks the typed frames of docs/protocol.md (ping → pong with the connection's
// id, subscribe/unsubscribe with `ref`, emit → publication (+ `ack` with a `ref`), presence, error
// frames with `channel` and `ref`, back-end data enveloped as `message`) and lets the test push
// frames, publish to channels, refuse or hold upgrades, delay unsubscribes and drop connections.
// Like API Gateway it closes a connection with 1009 when a client frame exceeds 32 KB. It has no
// storage and no AWS: the real stack is tested by local.test.js and channels-local.test.js.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

/** API Gateway's frame limit (32 KB): a larger frame closes the connection with 1009. */
export const FRAME_LIMIT = 32 * 1024;

/** `prefix/*` covers every channel below prefix; `*` covers all. */
function covers(pattern, channel) {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}

/**
 * Options: `accept(token)` → user id or null (401); `forbidden` → channels refused with
 * `forbidden`; `deliveryDelayMs` → publications and pushes reach connections this much later.
 */
export async function startFakeSumu({ stage = 'test', accept = (token) => token, forbidden = [], deliveryDelayMs = 0 } = {}) {
  const connections = []; // {id, user, token, socket, received: [frames], subscriptions: Set, closeCode}
  let refuse = false;
  let hold = false;
  const held = [];
  let answerPings = true;
  let unsubscribeDelayMs = 0;
  /** channel → error code the next subscribes to it get (then served normally), with a count. */
  const failNext = new Map();
  let nextPublication = 1;
  let nextConnection = 1;
  const server = createServer((request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true, maxPayload: FRAME_LIMIT });

  function upgrade(request, socket, head) {
    const url = new URL(request.url, 'http://localhost');
    const token = url.searchParams.get('authorization') || '';
    const user = refuse ? null : accept(token);
    if (url.pathname !== `/${stage}` || !user) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = {
        id: `conn-${nextConnection++}`, user, token, socket: ws, received: [], subscriptions: new Set(), closeCode: null,
        // subscribe/unsubscribe requests in the order the "gateway" applied them: [action, channel]
        applied: [],
      };
      connections.push(connection);
      ws.on('close', (code) => { connection.closeCode = code; });
      // A frame over maxPayload: ws closes the connection with 1009, as API Gateway does.
      ws.on('error', () => {});
      ws.on('message', (data) => {
        let frame;
        try { frame = JSON.parse(String(data)); } catch { return; }
        connection.received.push(frame);
        const reply = (value) => {
          if (frame.ref !== undefined) value.ref = frame.ref;
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(value));
        };
        const refuseWith = (error, message) => reply({ type: 'error', error, message, channel: frame.channel });
        switch (frame.action) {
          case 'ping':
            return answerPings ? reply({ type: 'pong', connection_id: connection.id, timestamp: Date.now() }) : undefined;
          case 'subscribe': {
            if (forbidden.includes(frame.channel)) return refuseWith('forbidden', 'no grant');
            const failure = failNext.get(frame.channel);
            if (failure && failure.count > 0) {
              failure.count -= 1;
              return refuseWith(failure.error, 'refused by the test');
            }
            connection.subscriptions.add(frame.channel);
            connection.applied.push(['subscribe', frame.channel]);
            return reply({ type: 'subscribed', channel: frame.channel });
          }
          case 'unsubscribe': {
            // Routes run concurrently at the gateway: an unsubscribe may be applied after a
            // subscribe sent later on the same connection.
            const apply = () => {
              connection.subscriptions.delete(frame.channel);
              connection.applied.push(['unsubscribe', frame.channel]);
              reply({ type: 'unsubscribed', channel: frame.channel });
            };
            if (unsubscribeDelayMs > 0) setTimeout(apply, unsubscribeDelayMs);
            else apply();
            return undefined;
          }
          case 'emit': {
            if (forbidden.includes(frame.channel)) return refuseWith('forbidden', 'no grant');
            const exclude = Array.isArray(frame.exclude_connections) ? frame.exclude_connections : [];
            const id = publishTo(frame.channel, frame.data, { from: user, except: connection, exclude });
            if (frame.ref !== undefined) reply({ type: 'ack', channel: frame.channel, id });
            return undefined;
          }
          case 'presence': {
            const users = [...new Set(frame.users)].map((userId) => {
              const live = open().filter((c) => c.user === userId).length;
              return { user_id: userId, status: live ? 'ONLINE' : 'OFFLINE', connections: live };
            });
            return reply({ type: 'presence', users });
          }
          case 'send':
          case 'publish':
            return undefined;
          default:
            return reply({ type: 'error', error: 'unknown_action', message: 'no such route' });
        }
      });
    });
  }

  server.on('upgrade', (request, socket, head) => {
    if (hold) held.push([request, socket, head]);
    else upgrade(request, socket, head);
  });

  function deliver(targets, text) {
    const send = () => {
      for (const connection of targets) {
        if (connection.socket.readyState === connection.socket.OPEN) connection.socket.send(text);
      }
    };
    if (deliveryDelayMs > 0) setTimeout(send, deliveryDelayMs);
    else send();
  }

  function open() {
    return connections.filter((c) => c.socket.readyState === c.socket.OPEN);
  }

  /** One publication (one id) to every open connection subscribed to a pattern covering `channel`. */
  function publishTo(channel, data, { from, except, exclude = [], id } = {}) {
    const frame = { type: 'publication', channel, id: id ?? `pub-${nextPublication++}`, data };
    if (from) frame.from = from;
    const text = JSON.stringify(frame);
    const targets = open().filter((connection) => connection !== except && !exclude.includes(connection.id)
      && [...connection.subscriptions].some((pattern) => covers(pattern, channel)));
    deliver(targets, text);
    return frame.id;
  }

  let nextMessage = 1;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `ws://127.0.0.1:${port}/${stage}`,
    connections,
    open,
    publishTo,
    /**
     * A back end's notification request to `user`: `{"type":"message","id","data"}` to each of
     * its open connections; returns the id (pass `id` to send a retry of an earlier one).
     */
    push(user, data, { id } = {}) {
      const messageId = id ?? `msg-${nextMessage++}`;
      deliver(open().filter((connection) => connection.user === user), JSON.stringify({ type: 'message', id: messageId, data }));
      return messageId;
    },
    /** Sends `text` as it is (a frame of the test's making) to every open connection of `user`. */
    pushRaw(user, text) {
      deliver(open().filter((connection) => connection.user === user), text);
    },
    refuseUpgrades(value) { refuse = value; },
    /** How many upgrades wait (see holdUpgrades). */
    heldUpgrades: () => held.length,
    /** true: upgrades wait (the socket stays CONNECTING) until holdUpgrades(false). */
    holdUpgrades(value) {
      hold = value;
      if (!value) for (const args of held.splice(0)) upgrade(...args);
    },
    /** false: pings go unanswered, like a connection that died without a close. */
    answerPings(value) { answerPings = value; },
    /** Unsubscribes are applied (and answered) this much later than they arrive. */
    delayUnsubscribes(ms) { unsubscribeDelayMs = ms; },
    /** The next `count` subscribes to `channel` are refused with `error` (e.g. channels_unavailable). */
    failSubscribes(channel, error, count = 1) { failNext.set(channel, { error, count }); },
    async close() {
      for (const connection of connections) connection.socket.terminate();
      for (const [, socket] of held.splice(0)) socket.destroy();
      wss.close();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Polls `condition` until it returns a truthy value (returned), or fails after `timeout` ms. */
export async function until(condition, what, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
