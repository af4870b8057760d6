// A stand-in for a sumu gateway, for the client's logic tests: a real `ws` WebSocketServer on
// 127.0.0.1 that speaks the typed frames of docs/protocol.md (ping → pong with the connection's
// id, subscribe/unsubscribe with `ref`, emit → publication (+ `ack` with a `ref`), presence, error
// frames with `channel` and `ref`, back-end data enveloped as `message`) and lets the test push
// frames, publish to channels, refuse or hold upgrades, delay unsubscribes and drop connections.
// Like API Gateway it closes a connection with 1009 when a client frame exceeds 32 KB. Channels
// matching `history` keep their publications in memory as the real stack does (offsets from 1
// per channel and epoch, `subscribe` with `since`, `history`, acks with the offset), and the
// test can lose, hold back, reorder or double deliveries, change a channel's epoch or give out
// an offset that is never kept. Channels matching `joinLeave` track members like the presence
// Lambda (a user is a member while one of its open connections is subscribed to the channel
// itself): `join`/`leave` frames to every connection whose subscription covers the channel, the
// `presence` question with `channel` (sorted, paged by `membersPage` with `after`), and
// `too_many_members` beyond `maxMembers`. No AWS: the real stack is tested by local.test.js and
// channels-local.test.js.
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
 * Options: `joinLeave` → patterns whose channels track members; `maxMembers` → the members cap
 * there; `membersPage` → the most members one presence answer carries (then `more`);
 * `accept(token)` → user id or null (401); `forbidden` → channels refused with
 * `forbidden`; `deliveryDelayMs` → publications and pushes reach connections this much later;
 * `history` → `{pattern: size}`, channels that keep their last `size` publications;
 * `replayLimit` → the most publications one recovery or history reply carries (then `more`).
 */
export async function startFakeSumu({ stage = 'test', accept = (token) => token, forbidden = [], deliveryDelayMs = 0, history = {}, replayLimit = 100,
  joinLeave = [], maxMembers = 100, membersPage = 100 } = {}) {
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
  /** channel → {epoch, top, kept: Map<offset, frame>} for channels that keep history. */
  const sequences = new Map();
  let nextEpoch = 1;
  /** Called after a subscribe is stored and before it is answered (a live publication may go out then). */
  let beforeSubscribeReply = null;
  let answerHistory = true;
  const keeps = (channel) => Object.entries(history).find(([pattern]) => covers(pattern, channel))?.[1];
  function sequence(channel) {
    if (!keeps(channel)) return undefined;
    if (!sequences.has(channel)) sequences.set(channel, { epoch: `e${nextEpoch++}`, top: 0, kept: new Map() });
    return sequences.get(channel);
  }
  /** As the real `recovery::after`: every kept one after `since`, or null when they cannot all be had. */
  function after(seq, size, since, limit) {
    if (since.epoch !== seq.epoch || since.offset > seq.top) return null;
    const first = since.offset + 1;
    if (first <= seq.top && (first < seq.top - size + 1 || !seq.kept.has(first))) return null;
    const publications = [];
    for (let offset = first; offset <= seq.top && publications.length < limit; offset += 1) {
      if (seq.kept.has(offset)) publications.push(seq.kept.get(offset));
    }
    const last = publications.at(-1)?.offset ?? since.offset;
    return { publications, more: last < seq.top };
  }
  let presenceUnavailable = false;
  const tracked = (channel) => joinLeave.some((pattern) => covers(pattern, channel));
  /** user → open connections subscribed to `channel` itself, sorted by user. */
  function members(channel) {
    const counts = new Map();
    for (const c of connections) if (c.subscriptions.has(channel)) counts.set(c.user, (counts.get(c.user) ?? 0) + 1);
    return new Map([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  /** Runs `change`, then sends join/leave for every tracked channel whose members it changed. */
  function changing(change) {
    const channels = new Set(connections.flatMap((c) => [...c.subscriptions]).filter(tracked));
    const before = new Map([...channels].map((channel) => [channel, members(channel)]));
    change();
    for (const c of connections) for (const channel of c.subscriptions) if (tracked(channel)) channels.add(channel);
    for (const channel of channels) {
      const was = before.get(channel) ?? new Map();
      const now = members(channel);
      for (const user of now.keys()) if (!was.has(user)) sendTo(channel, { type: 'join', channel, user_id: user });
      for (const user of was.keys()) if (!now.has(user)) sendTo(channel, { type: 'leave', channel, user_id: user });
    }
  }
  function sendTo(channel, frame) {
    deliver(open().filter((connection) => [...connection.subscriptions].some((pattern) => covers(pattern, channel))), JSON.stringify(frame));
  }
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
      ws.on('close', (code) => {
        connection.closeCode = code;
        // A closed connection's subscriptions go, as the stream-driven cleanup removes them.
        changing(() => connection.subscriptions.clear());
      });
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
            if (tracked(frame.channel)) {
              const now = members(frame.channel);
              if (!now.has(user) && now.size >= maxMembers) return refuseWith('too_many_members', `${frame.channel} has ${now.size} members`);
            }
            changing(() => connection.subscriptions.add(frame.channel));
            connection.applied.push(['subscribe', frame.channel]);
            beforeSubscribeReply?.(connection, frame);
            const seq = sequence(frame.channel);
            if (!seq) return reply(frame.since ? { type: 'subscribed', channel: frame.channel, recovered: false } : { type: 'subscribed', channel: frame.channel });
            const answer = { type: 'subscribed', channel: frame.channel, offset: seq.top, epoch: seq.epoch };
            if (frame.since) {
              const replay = after(seq, keeps(frame.channel), frame.since, replayLimit);
              if (replay) Object.assign(answer, { recovered: true, ...replay });
              else answer.recovered = false;
            }
            return reply(answer);
          }
          case 'history': {
            if (!answerHistory) return undefined;
            const seq = sequences.get(frame.channel);
            if (!seq) return reply({ type: 'history', channel: frame.channel, publications: [], more: false });
            const answer = { type: 'history', channel: frame.channel, offset: seq.top, epoch: seq.epoch };
            const limit = Math.min(frame.limit ?? 100, replayLimit);
            if (frame.since) {
              const replay = after(seq, keeps(frame.channel), frame.since, limit);
              if (replay) Object.assign(answer, replay);
              else Object.assign(answer, { recovered: false, publications: [], more: false });
            } else {
              const kept = [...seq.kept.values()].filter((p) => p.offset > seq.top - keeps(frame.channel));
              Object.assign(answer, { publications: kept.slice(-limit), more: kept.length > limit });
            }
            return reply(answer);
          }
          case 'unsubscribe': {
            // Routes run concurrently at the gateway: an unsubscribe may be applied after a
            // subscribe sent later on the same connection.
            const apply = () => {
              changing(() => connection.subscriptions.delete(frame.channel));
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
            const sent = publishTo(frame.channel, frame.data, { from: user, except: connection, exclude, full: true });
            if (frame.ref !== undefined) {
              const ack = { type: 'ack', channel: frame.channel, id: sent.id };
              if (sent.offset !== undefined) Object.assign(ack, { offset: sent.offset, epoch: sent.epoch });
              reply(ack);
            }
            return undefined;
          }
          case 'presence': {
            if (frame.channel !== undefined) {
              if (presenceUnavailable) return refuseWith('presence_unavailable', 'no members table');
              if (forbidden.includes(frame.channel)) return refuseWith('forbidden', 'no grant');
              if (frame.channel.endsWith('*')) return refuseWith('invalid_channel', 'a pattern has no members');
              const all = [...members(frame.channel)].filter(([user]) => frame.after === undefined || user > frame.after);
              const page = all.slice(0, membersPage).map(([user, count]) => ({ user_id: user, connections: count }));
              return reply({ type: 'presence', channel: frame.channel, members: page, more: all.length > membersPage });
            }
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

  /**
   * One publication (one id) to every open connection subscribed to a pattern covering
   * `channel`; on a channel that keeps history it gets the next offset and is kept first.
   * `deliver: false` keeps it without delivering it (a lost delivery); `keep: false` gives
   * out its offset and neither keeps nor delivers it (a gap). Returns the id (`full`: the frame).
   */
  function publishTo(channel, data, { from, except, exclude = [], id, full = false, deliver: send = true, keep = true } = {}) {
    const frame = { type: 'publication', channel, id: id ?? `pub-${nextPublication++}` };
    const seq = sequence(channel);
    if (seq) {
      seq.top += 1;
      Object.assign(frame, { offset: seq.top, epoch: seq.epoch });
    }
    frame.data = data;
    if (from) frame.from = from;
    if (seq && keep) seq.kept.set(seq.top, frame);
    if (send && keep) {
      const targets = open().filter((connection) => connection !== except && !exclude.includes(connection.id)
        && [...connection.subscriptions].some((pattern) => covers(pattern, channel)));
      deliver(targets, JSON.stringify(frame));
    }
    return full ? frame : frame.id;
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
    /** The channel's history state ({epoch, top, kept}), created as a subscribe would. */
    sequence,
    /** The channel's sequence is lost (as when its state expires): a new epoch from offset 0. */
    newEpoch(channel) { sequences.delete(channel); return sequence(channel); },
    /** false: `history` goes unanswered. */
    answerHistory(value) { answerHistory = value; },
    /** `hook(connection, frame)` runs after each subscribe is stored, before it is answered. */
    beforeSubscribeReply(hook) { beforeSubscribeReply = hook; },
    /** Sends `frame` (an object) to every open connection subscribed to a pattern covering `channel`. */
    sendTo,
    /** The channel's members now: user → connections. */
    members,
    /** true: a presence question with `channel` is refused with presence_unavailable. */
    presenceUnavailable(value) { presenceUnavailable = value; },
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
