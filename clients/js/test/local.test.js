// @sumu/client against the real stack: sumu-local (the gateway emulator, its pusher and presence
// handlers) on moto, with `ws` as the WebSocket. Channels are not here: channels-local.test.js
// holds those tests until sumu-local serves the channel routes.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { SumuClient } from '../dist/index.js';
import { devKey, startMoto, sumuLocal, until, WAIT_MS } from './lib/local.js';
import { spyWebSocket, frames } from './lib/spy.js';

const LIMIT = { timeout: 4 * WAIT_MS };
// The idle timeout and maximum duration, shortened so the tests take seconds (API Gateway: 10 min, 2 h).
const IDLE = '2s';
const MAX_DURATION_MS = 12_000;

let moto;
let key;
let stack;
const made = [];
afterEach(() => { for (const client of made.splice(0)) client.close(); });

before(async () => {
  moto = await startMoto();
  key = devKey();
  stack = await sumuLocal({ moto, key, args: ['--idle-timeout', IDLE, '--max-duration', `${MAX_DURATION_MS / 1000}s`] });
}, LIMIT);

after(async () => {
  await stack?.stop();
  await moto?.stop();
});

/** A unique user per test: the stack (table, queues) is shared by the tests of this file. */
const someone = (name) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

/** A client for `user` on `on` (default: the shared stack), recording events and token calls. */
function clientFor(user, options = {}, on = stack) {
  const spy = spyWebSocket();
  const events = { state: [], message: [], publication: [], presence: [], error: [] };
  const tokens = [];
  const client = new SumuClient({
    url: on.url,
    token: async () => { const token = key.mint(user); tokens.push(token); return token; },
    WebSocket: spy.SpyWebSocket,
    keepAliveMs: 500, // inside the 2 s idle timeout
    backoff: { baseMs: 100, maxMs: 1_000 },
    ...options,
  });
  for (const name of Object.keys(events)) client.on(name, (value) => events[name].push(value));
  made.push(client);
  return { client, events, tokens, sockets: spy.sockets };
}

const pongs = (socket) => frames(socket.received).filter((frame) => frame.type === 'pong').length;

test('connects, its pings are answered, a back-end notification arrives as `message`, presence() answers', LIMIT, async () => {
  const alice = someone('alice');
  const { client, events, sockets } = clientFor(alice);
  client.connect();
  await until(() => client.state === 'open', 'open');
  await until(() => pongs(sockets[0]) >= 1, 'a pong for the keep-alive ping');
  assert.ok(frames(sockets[0].sent).some((frame) => frame.action === 'ping'));

  await stack.notify({ users: [alice], data: { hello: alice } });
  await until(() => events.message.length >= 1, 'the notification');
  assert.equal(events.message.length, 1);
  assert.equal(typeof events.message[0].id, 'string');
  assert.deepEqual(events.message[0].data, { hello: alice });

  const nobody = someone('nobody');
  const answer = await client.presence([alice, nobody]);
  assert.deepEqual(answer, { type: 'presence', users: [
    { user_id: alice, status: 'ONLINE', connections: 1 },
    { user_id: nobody, status: 'OFFLINE', connections: 0 },
  ] });
  assert.deepEqual(events.presence, [answer]);
  assert.deepEqual(events.error, []);
  assert.deepEqual(events.state, ['connecting', 'open']);
});

test(`keep-alive beats the idle timeout (--idle-timeout ${IDLE}, keepAliveMs 500)`, LIMIT, async () => {
  const { client, events, sockets } = clientFor(someone('keeper'));
  client.connect();
  // Ten answered pings at 500 ms: the one connection has lived well past twice the idle timeout.
  await until(() => pongs(sockets[0] ?? { received: [] }) >= 10, 'ten pongs on the first connection');
  assert.equal(sockets.length, 1, 'still the first connection');
  assert.equal(sockets[0].closeCode, null);
  assert.deepEqual(events.state, ['connecting', 'open']);
});

test('without keep-alive, sumu-local closes the idle connection (1001) and the client reconnects', LIMIT, async () => {
  // The control for the test above: the idle timeout is real.
  const { client, events, sockets } = clientFor(someone('sleeper'), { keepAliveMs: 60_000 });
  client.connect();
  await until(() => sockets[0]?.closeCode === 1001, 'the idle timeout to close the first connection');
  await until(() => sockets.length >= 2 && client.state === 'open', 'the reconnect');
  assert.deepEqual(events.state.slice(0, 3), ['connecting', 'open', 'reconnecting']);
});

test(`proactive reconnect before --max-duration (${MAX_DURATION_MS} ms): no message lost, none twice`, LIMIT, async () => {
  const bob = someone('bob');
  const { client, events, sockets } = clientFor(bob, { maxConnectionMs: 3_000, overlapMs: 1_500 });
  client.connect();
  await until(() => client.state === 'open', 'open');
  // Notifications to bob, one every 150 ms, until two proactive reconnects are done.
  let sent = 0;
  let sending = true;
  const stream = (async () => {
    while (sending) {
      sent += 1;
      await stack.notify({ users: [bob], data: { seq: sent } });
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  })();
  try {
    await until(() => sockets.length >= 3 && sockets[2].opened && sockets[1].closeCode !== null, 'two proactive reconnects');
  } finally {
    sending = false;
    await stream;
  }
  await until(() => new Set(events.message.map((m) => m.data.seq)).size === sent, `all ${sent} notifications`);
  const seqs = events.message.map((m) => m.data.seq).sort((a, b) => a - b);
  assert.deepEqual(seqs, Array.from({ length: sent }, (_, i) => i + 1), 'each notification exactly once');
  assert.ok(sent >= 10, `a stream of notifications across the overlaps (${sent})`);
  for (const old of sockets.slice(0, 2)) {
    assert.ok(old.closedByClient, 'the client closed the old connection itself');
    assert.notEqual(old.closeCode, 1001, 'before sumu-local\'s maximum duration');
  }
  assert.ok(!events.state.includes('reconnecting'), `the state stayed open: ${events.state}`);
  // Each overlap really had two connections getting the same notifications: some were dropped as copies.
  const delivered = sockets.flatMap((s) => frames(s.received)).filter((frame) => typeof frame.data?.seq === 'number').length;
  assert.ok(delivered > sent, `copies arrived on both connections during an overlap (${delivered} frames for ${sent})`);
});

test('the token function is called for every attempt; an expired token is replaced by the next one', LIMIT, async () => {
  const carol = someone('carol');
  const tokens = [];
  const expired = key.mint(carol, { fromSeconds: Math.floor(Date.now() / 1000) - 7_200, ttlSeconds: 3_600 });
  const { client, events, sockets } = clientFor(carol, {
    token: async () => {
      const token = tokens.length === 0 ? expired : key.mint(carol);
      tokens.push(token);
      return token;
    },
    maxConnectionMs: 2_000,
  });
  client.connect();
  await until(() => client.state === 'open', 'open with the second token');
  assert.equal(tokens.length, 2);
  assert.equal(sockets[0].token, expired);
  assert.equal(sockets[0].opened, false, 'the expired token was refused');
  assert.equal(sockets[1].token, tokens[1]);
  assert.equal(sockets[1].opened, true);
  // A proactive reconnect asks for a token again.
  await until(() => sockets.length >= 3 && sockets[2].opened, 'a proactive reconnect');
  assert.equal(tokens.length, 3);
  assert.equal(sockets[2].token, tokens[2]);
  assert.deepEqual(events.error, [], 'one refusal is not yet an error event');
  assert.deepEqual(events.state, ['connecting', 'reconnecting', 'open']);
});

test('sumu-local killed and restarted: the client reconnects and flushes what was queued, in order', LIMIT, async () => {
  // A stack of its own, since it gets killed.
  const own = await sumuLocal({ moto, key, name: 'sumu-local-restart' });
  try {
    const dave = someone('dave');
    const { client, events, sockets, tokens } = clientFor(dave, { keepAliveMs: 60_000 }, own);
    client.connect();
    await until(() => client.state === 'open', 'open');
    await own.kill();
    await until(() => client.state === 'reconnecting', 'reconnecting after the crash');
    assert.equal(client.send({ n: 1 }), true);
    assert.equal(client.publish({ n: 2 }), true);
    assert.equal(client.send({ n: 3 }), true);
    await until(() => sockets.length >= 2, 'reconnect attempts while sumu-local is down');
    await own.start();
    await until(() => client.state === 'open', 'open again');
    const fresh = sockets.find((socket, i) => i > 0 && socket.opened);
    const queued = () => frames(fresh.sent).filter((frame) => frame.action !== 'ping');
    await until(() => queued().length >= 3, 'the queued frames on the new connection');
    assert.deepEqual(queued().slice(0, 3), [
      { action: 'send', message: { n: 1 } },
      { action: 'publish', message: { n: 2 } },
      { action: 'send', message: { n: 3 } },
    ]);
    // They reached the back end's queue, from dave.
    const got = [];
    await until(async () => {
      got.push(...(await own.receiveMessages()).filter((m) => typeof m.body.n === 'number'));
      return got.length >= 3;
    }, 'the three messages on the messages queue');
    assert.deepEqual(got.map((m) => m.body.n).sort(), [1, 2, 3]);
    assert.ok(got.every((m) => m.attributes.user_id === dave));
    // And the new connection gets notifications.
    await own.notify({ users: [dave], data: { back: true } });
    await until(() => events.message.some((m) => m.data.back), 'a notification after the restart');
    assert.ok(tokens.length >= 3, 'a token per attempt');
  } finally {
    for (const client of made.splice(0)) client.close();
    await own.stop();
  }
});

test('every payload a back end may push arrives as exactly one `message`, and nothing else happens', LIMIT, async () => {
  const erin = someone('erin');
  const { client, events, sockets } = clientFor(erin);
  client.connect();
  await until(() => client.state === 'open', 'open');
  // Look-alikes of sumu's own frames (the demo back end itself pushes {"type":"presence",…}).
  const payloads = [
    { type: 'error', channel: 'room/1' },
    { type: 'error', error: 'forbidden', channel: 'room/1', ref: 'r1' },
    { type: 'subscribed', channel: 'room/1' },
    { type: 'unsubscribed', channel: 'room/1' },
    { type: 'publication', channel: 'room/1', id: 'fake', data: 1 },
    { type: 'presence', users: [{ user_id: erin, status: 'OFFLINE', connections: 0 }], ref: 'r2' },
    { type: 'ack', ref: 'r3', channel: 'room/1', id: 'x' },
    { type: 'pong', connection_id: 'someone' },
    { message: 'Internal server error', connectionId: 'c', requestId: 'r' },
    'text', 7, [1, 'two'], { order: { b: 1, a: 2 } },
  ]; // (not null: a notification request's data is required and not null, docs/protocol.md)
  for (const data of payloads) await stack.notify({ users: [erin], data });
  await until(() => events.message.length >= payloads.length, `all ${payloads.length} payloads`);
  // Queues do not keep order: compare as sets of texts.
  const texts = (list) => list.map((value) => JSON.stringify(value)).sort();
  assert.deepEqual(texts(events.message.map((m) => m.data)), texts(payloads.map((data) => JSON.parse(JSON.stringify(data)))));
  assert.equal(new Set(events.message.map((m) => m.id)).size, payloads.length, 'one id each');
  assert.deepEqual(events.error, []);
  assert.deepEqual(events.publication, []);
  assert.deepEqual(events.presence, []);
  assert.deepEqual(events.state, ['connecting', 'open']);
  // Every frame sumu sent is of its closed set.
  const closedSet = ['pong', 'error', 'subscribed', 'unsubscribed', 'publication', 'message', 'presence', 'history', 'ack', 'join', 'leave'];
  assert.ok(frames(sockets[0].received).every((frame) => closedSet.includes(frame.type)), 'only typed frames');
});

test('a presence() question too big for one frame is refused before sending: no reconnect loop', LIMIT, async () => {
  const { client, events, sockets } = clientFor(someone('frank'));
  client.connect();
  await until(() => client.state === 'open', 'open');
  const many = Array.from({ length: 3_000 }, (_, i) => `user-${i}-with-a-long-name`);
  await assert.rejects(client.presence(many), (error) => error.code === 'too_large');
  assert.equal(client.send({ blob: 'x'.repeat(33_000) }), false);
  assert.equal(events.error.at(-1).code, 'too_large');
  const answer = await client.presence(['nobody']);
  assert.equal(answer.users.length, 1);
  assert.equal(sockets.length, 1, 'the one connection still serves');
  assert.deepEqual(events.state, ['connecting', 'open']);
});
