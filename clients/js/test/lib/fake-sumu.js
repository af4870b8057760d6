// A stand-in for a sumu gateway, for the client's logic tests: a real `ws` WebSocketServer on
// 127.0.0.1 that speaks the frames of DESIGN.md (ping/pong, subscribe/subscribed,
// unsubscribe/unsubscribed, emit → publication, presence, error frames with `channel`) and lets
// the test push frames, publish to channels, refuse upgrades and drop connections. It has no
// storage and no AWS: the real stack is tested by local.test.js and channels-local.test.js.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

/** `prefix/*` covers every channel below prefix; `*` covers all. */
function covers(pattern, channel) {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}

/**
 * Options: `accept(token)` → user id or null (401); `forbidden` → channels refused with
 * `forbidden`; `silentSubscribes` → subscribe requests get no reply.
 */
export async function startFakeSumu({ stage = 'test', accept = (token) => token, forbidden = [], deliveryDelayMs = 0 } = {}) {
  const connections = []; // {user, token, socket, received: [frames], subscriptions: Set, closedBy}
  let refuse = false;
  let answerPings = true;
  let nextPublication = 1;
  const server = createServer((request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true });

  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url, 'http://localhost');
    const token = url.searchParams.get('authorization') || '';
    const user = refuse ? null : accept(token);
    if (url.pathname !== `/${stage}` || !user) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = { user, token, socket: ws, received: [], subscriptions: new Set(), closeCode: null, openedAt: Date.now() };
      connections.push(connection);
      ws.on('close', (code) => { connection.closeCode = code; });
      ws.on('message', (data) => {
        let frame;
        try { frame = JSON.parse(String(data)); } catch { return; }
        connection.received.push(frame);
        const reply = (value) => ws.send(JSON.stringify(value));
        switch (frame.action) {
          case 'ping': return answerPings ? reply({ type: 'pong' }) : undefined;
          case 'subscribe':
            if (forbidden.includes(frame.channel)) {
              return reply({ type: 'error', error: 'forbidden', channel: frame.channel, message: 'no grant' });
            }
            connection.subscriptions.add(frame.channel);
            return reply({ type: 'subscribed', channel: frame.channel });
          case 'unsubscribe':
            connection.subscriptions.delete(frame.channel);
            return reply({ type: 'unsubscribed', channel: frame.channel });
          case 'emit':
            if (forbidden.includes(frame.channel)) {
              return reply({ type: 'error', error: 'forbidden', channel: frame.channel, message: 'no grant' });
            }
            return publishTo(frame.channel, frame.data, { from: user, except: connection });
          case 'presence': {
            const users = [...new Set(frame.users)].map((id) => {
              const live = open().filter((c) => c.user === id).length;
              return { user_id: id, status: live ? 'ONLINE' : 'OFFLINE', connections: live };
            });
            return reply({ type: 'presence', users });
          }
          default: return undefined;
        }
      });
    });
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
  function publishTo(channel, data, { from, except, id } = {}) {
    const frame = { type: 'publication', channel, id: id ?? `pub-${nextPublication++}`, data };
    if (from) frame.from = from;
    const text = JSON.stringify(frame);
    const targets = open().filter((connection) => connection !== except
      && [...connection.subscriptions].some((pattern) => covers(pattern, channel)));
    deliver(targets, text);
    return frame.id;
  }

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `ws://127.0.0.1:${port}/${stage}`,
    connections,
    open,
    publishTo,
    /** Sends `value` (JSON) to every open connection of `user` (a notification request by user). */
    push(user, value) {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      deliver(open().filter((connection) => connection.user === user), text);
    },
    refuseUpgrades(value) { refuse = value; },
    /** false: pings go unanswered, like a connection that died without a close. */
    answerPings(value) { answerPings = value; },
    async close() {
      for (const connection of connections) connection.socket.terminate();
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
