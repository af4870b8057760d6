// A stand-in for sumu-local, for testing the demo page's own logic: it serves the page's static
// files and a token endpoint like sumu-local does, accepts WebSockets at /<stage>, records every
// frame a page sends, and lets the test push frames or drop connections. It routes nothing —
// it only answers `ping` with `pong` (and the connection's id) and `subscribe`/`unsubscribe`
// with their replies (or with a refusal the test asks for), echoing each request's `ref` as
// sumu does (docs/protocol.md). Rooms (`room/*`) keep history as sumu-local's `room/*` namespace
// does: `publish()` gives a publication the room's next offset and keeps it, `subscribed` tells
// the room's offset and epoch, a `subscribe` with `since` replays what followed it, and
// `history` answers the latest ones. Rooms track members as sumu-local's `room/*` namespace with
// `join_leave` does: a subscribe that makes a user a member (or an unsubscribe or close that
// ends it) sends `join`/`leave` to the room's subscribers, and `presence` with `channel` lists
// the members in one page. The real stack is tested by demo.test.js.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { WebSocketServer } from 'ws';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

export async function startFakeGateway({ demoDir, stage = 'dev' }) {
  const sockets = [];        // every accepted connection: {user, socket, received: [parsed frames]}
  const tokenRequests = [];  // the `sub` of each /dev/token call
  const tokenQueries = [];   // the whole query of each /dev/token call (URLSearchParams)
  const refusedChannels = new Map(); // channel → the error a `subscribe` to it gets
  let refuseUpgrades = false;
  /** channel → the publications kept (offset = index + 1). */
  const kept = new Map();
  let EPOCH = 'fake-epoch';
  /** The members of `channel`: users with an open connection subscribed to it, sorted. */
  const membersOf = (channel) => [...new Set(sockets.filter((c) => c.subscriptions.has(channel)).map((c) => c.user))].sort();
  /** join/leave to every connection subscribed to the room, as rooms (room/*) track members. */
  const changing = (channel, change) => {
    const before = membersOf(channel);
    change();
    const after = membersOf(channel);
    const frames = [
      ...after.filter((user) => !before.includes(user)).map((user) => ({ type: 'join', channel, user_id: user })),
      ...before.filter((user) => !after.includes(user)).map((user) => ({ type: 'leave', channel, user_id: user })),
    ];
    for (const connection of sockets) {
      if (connection.socket.readyState !== connection.socket.OPEN || !connection.subscriptions.has(channel)) continue;
      for (const frame of frames) connection.socket.send(JSON.stringify(frame));
    }
  };
  const keptIn = (channel) => (channel.startsWith('room/') ? kept.get(channel) ?? kept.set(channel, []).get(channel) : undefined);

  const server = createServer(async (request, response) => {
    const url = new URL(request.url, 'http://localhost');
    if (url.pathname === '/dev/token') {
      const sub = url.searchParams.get('sub');
      tokenRequests.push(sub);
      tokenQueries.push(url.searchParams);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ token: `token-for-${sub}` }));
      return;
    }
    const file = url.pathname === '/demo/' ? 'index.html' : url.pathname.replace(/^\/demo\//, '');
    if (!url.pathname.startsWith('/demo/') || file.includes('..') || file.includes('/')) {
      response.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(demoDir, file));
      response.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url, 'http://localhost');
    const token = url.searchParams.get('authorization') || '';
    if (url.pathname !== `/${stage}` || !token.startsWith('token-for-') || refuseUpgrades) {
      socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = { id: `conn-${sockets.length + 1}`, user: token.slice('token-for-'.length), socket: ws, received: [], subscriptions: new Set() };
      sockets.push(connection);
      // A closed connection's subscriptions are removed: its user leaves the rooms it was the last in.
      ws.on('close', () => { for (const channel of [...connection.subscriptions]) changing(channel, () => connection.subscriptions.delete(channel)); });
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data));
        connection.received.push(frame);
        const reply = (value) => ws.send(JSON.stringify(frame.ref === undefined ? value : { ...value, ref: frame.ref }));
        if (frame.action === 'ping') reply({ type: 'pong', connection_id: connection.id, timestamp: Date.now() });
        if (frame.action === 'subscribe' && refusedChannels.has(frame.channel)) {
          reply({ type: 'error', error: refusedChannels.get(frame.channel), channel: frame.channel, message: 'refused by the test' });
        } else if (frame.action === 'subscribe') {
          changing(frame.channel, () => connection.subscriptions.add(frame.channel));
          const room = keptIn(frame.channel);
          const answer = { type: 'subscribed', channel: frame.channel };
          if (room) Object.assign(answer, { offset: room.length, epoch: EPOCH });
          if (room && frame.since) {
            const recoverable = frame.since.epoch === EPOCH && frame.since.offset <= room.length;
            Object.assign(answer, recoverable
              ? { recovered: true, publications: room.slice(frame.since.offset), more: false }
              : { recovered: false });
          }
          reply(answer);
        } else if (frame.action === 'unsubscribe') {
          changing(frame.channel, () => connection.subscriptions.delete(frame.channel));
          reply({ type: 'unsubscribed', channel: frame.channel });
        } else if (frame.action === 'presence' && frame.channel !== undefined) {
          const counts = membersOf(frame.channel).map((user) => ({
            user_id: user, connections: sockets.filter((c) => c.user === user && c.subscriptions.has(frame.channel)).length,
          }));
          reply({ type: 'presence', channel: frame.channel, members: counts, more: false });
        } else if (frame.action === 'history') {
          const room = keptIn(frame.channel) ?? [];
          const latest = room.slice(-(frame.limit ?? 100));
          reply({ type: 'history', channel: frame.channel, offset: room.length, epoch: EPOCH, publications: latest, more: latest.length < room.length });
        }
      });
    });
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/demo/`,
    sockets,
    tokenRequests,
    tokenQueries,
    open: () => sockets.filter((c) => c.socket.readyState === c.socket.OPEN),
    refuseUpgrades(refuse) { refuseUpgrades = refuse; },
    /**
     * A publication to a room: kept with the room's next offset, and sent to the open
     * connections subscribed to it unless `deliver` is false (published while the page was away).
     */
    publish(channel, data, { from, deliver = true } = {}) {
      const room = keptIn(channel);
      const publication = { type: 'publication', channel, id: `p-${channel}-${room.length + 1}`, offset: room.length + 1, epoch: EPOCH, data };
      if (from) publication.from = from;
      room.push(publication);
      if (!deliver) return;
      for (const connection of sockets) {
        if (connection.socket.readyState === connection.socket.OPEN && connection.subscriptions.has(channel)) connection.socket.send(JSON.stringify(publication));
      }
    },
    /** The room's sequence is lost (as when its state expires): a new epoch, nothing kept. */
    resetRoom(channel) { kept.set(channel, []); EPOCH = `${EPOCH}+`; },
    /** `subscribe` to `channel` gets `{"type":"error","error":reason,…}` instead of `subscribed`. */
    refuseSubscribe(channel, reason) { refusedChannels.set(channel, reason); },
    async close() {
      for (const connection of sockets) connection.socket.terminate();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
