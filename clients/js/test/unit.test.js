// The client's logic, against a fake gateway (a real `ws` server speaking sumu's frames, see
// lib/fake-sumu.js) or, for timing, a fake WebSocket under fake timers. The real stack is
// tested by local.test.js (and channels-local.test.js once sumu-local has channels).
import { test, describe, mock, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SumuClient, backoffCeiling, backoffDelay, patternMatches } from '../dist/index.js';
import { startFakeSumu, until } from './lib/fake-sumu.js';

const LIMIT = { timeout: 60_000 };
/** Every client a test made: closed after each test, passed or failed, so none keeps retrying. */
const made = [];
afterEach(() => { for (const client of made.splice(0)) client.close(); });

/** A client on `server` with fast settings, recording its events. */
function clientFor(server, options = {}) {
  const events = { state: [], message: [], publication: [], presence: [], error: [] };
  const tokens = [];
  const client = new SumuClient({
    url: server.url,
    token: async () => { const token = `alice`; tokens.push(token); return token; },
    WebSocket,
    backoff: { baseMs: 20, maxMs: 100 },
    ...options,
  });
  for (const name of Object.keys(events)) client.on(name, (value) => events[name].push(value));
  made.push(client);
  return { client, events, tokens };
}

/** What a connection received, without keep-alive pings and without `ref`s (fresh per request). */
const plain = (connection) => connection.received.filter((f) => f.action !== 'ping').map(({ ref, ...rest }) => rest);

async function withServer(options, body) {
  const server = await startFakeSumu(options);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

describe('backoff', () => {
  test('the ceiling doubles from baseMs and stops at maxMs', () => {
    const options = { baseMs: 100, maxMs: 1000 };
    assert.deepEqual([0, 1, 2, 3, 4, 5, 60, 2000].map((n) => backoffCeiling(n, options)),
      [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    assert.equal(backoffCeiling(0), 1000, 'default base 1 s');
    assert.equal(backoffCeiling(10), 30_000, 'default cap 30 s');
  });

  test('full jitter: every delay is in [0, ceiling), and the whole range is used', () => {
    const options = { baseMs: 100, maxMs: 1000 };
    for (let attempt = 0; attempt < 8; attempt += 1) {
      const ceiling = backoffCeiling(attempt, options);
      const delays = Array.from({ length: 2000 }, () => backoffDelay(attempt, options));
      assert.ok(delays.every((d) => Number.isInteger(d) && d >= 0 && d < ceiling), `attempt ${attempt} within [0, ${ceiling})`);
      // Full jitter, not "equal jitter": small delays occur, and so do delays near the ceiling.
      assert.ok(Math.min(...delays) < ceiling * 0.1, `attempt ${attempt}: some delay below 10% of the ceiling`);
      assert.ok(Math.max(...delays) > ceiling * 0.9, `attempt ${attempt}: some delay above 90% of the ceiling`);
    }
    assert.equal(backoffDelay(3, { ...options, random: () => 0 }), 0);
    assert.equal(backoffDelay(3, { ...options, random: () => 0.5 }), 400);
    assert.equal(backoffDelay(3, { ...options, random: () => 0.9999999 }), 799);
  });

  test('the client waits within the full-jitter bounds between failed attempts (fake timers)', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    try {
      const attempts = []; // mock-clock time of each WebSocket construction
      class Refused {
        constructor() {
          attempts.push(Date.now());
          this.readyState = 0;
          // A refused upgrade: the socket never opens and closes (as browsers report it).
          queueMicrotask(() => { this.readyState = 3; this.onerror?.({}); this.onclose?.({ code: 1006, reason: '' }); });
        }
        send() { throw new Error('not open'); }
        close() {}
      }
      const errors = [];
      const backoff = { baseMs: 100, maxMs: 1000 };
      const client = new SumuClient({ url: 'ws://127.0.0.1:9/x', token: () => 't', WebSocket: Refused, backoff, errorAfterFailures: 3 });
      made.push(client);
      client.on('error', (error) => errors.push(error));
      client.connect();
      const settle = async () => { for (let i = 0; i < 10; i += 1) await Promise.resolve(); };
      await settle();
      assert.equal(attempts.length, 1);
      for (let retry = 0; retry < 9; retry += 1) {
        const ceiling = backoffCeiling(retry, backoff);
        const before = attempts.length;
        let waited = 0;
        while (attempts.length === before) {
          assert.ok(waited < ceiling, `retry ${retry} came within its ceiling of ${ceiling} ms`);
          mock.timers.tick(1);
          waited += 1;
          await settle();
        }
        const delay = attempts.at(-1) - attempts.at(-2);
        assert.ok(delay >= 0 && delay <= ceiling, `retry ${retry}: ${delay} ms within [0, ${ceiling}]`);
      }
      assert.equal(client.state, 'reconnecting');
      const failed = errors.filter((error) => error.code === 'connect_failed');
      assert.equal(failed.length, 1, 'one connect_failed error for the streak');
      assert.equal(failed[0].attempts, 3);
      // close() stops for good: no attempt however long we wait.
      client.close();
      const count = attempts.length;
      mock.timers.tick(60 * 60 * 1000);
      await settle();
      assert.equal(attempts.length, count, 'no attempt after close()');
      assert.equal(client.state, 'closed');
    } finally {
      mock.timers.reset();
    }
  });
});

test('channel names: patterns cover what DESIGN.md says', () => {
  assert.ok(patternMatches('room/42', 'room/42'));
  assert.ok(!patternMatches('room/42', 'room/421'));
  assert.ok(patternMatches('room/*', 'room/42'));
  assert.ok(patternMatches('room/*', 'room/a/b'));
  assert.ok(!patternMatches('room/*', 'room'));
  assert.ok(!patternMatches('room/*', 'roomy/1'));
  assert.ok(patternMatches('*', 'anything/at/all'));
});

test('options are checked', () => {
  assert.throws(() => new SumuClient({ url: 'http://x', token: () => 't' }), /ws:\/\/ or wss:\/\//);
  assert.throws(() => new SumuClient({ url: 'ws://x/dev', token: 't' }), /token/);
  assert.throws(() => new SumuClient({ url: 'ws://x/dev', token: () => 't', keepAliveMs: 0 }), /keepAliveMs/);
  const noWebSocket = new SumuClient({ url: 'ws://x/dev', token: () => 't', WebSocket: undefined });
  if (!globalThis.WebSocket) assert.throws(() => noWebSocket.connect(), /no global WebSocket/);
});

test('connects with the token in the query, reports states, pings, and closes for good', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events, tokens } = clientFor(server, { keepAliveMs: 30 });
    client.connect();
    await until(() => client.state === 'open', 'open');
    assert.equal(server.open()[0].token, 'alice');
    await until(() => server.open()[0].received.filter((f) => f.action === 'ping').length >= 3, 'three pings');
    client.close();
    await until(() => server.open().length === 0, 'the server to see the close');
    assert.equal(server.connections[0].closeCode, 1000);
    assert.deepEqual(events.state, ['connecting', 'open', 'closed']);
    assert.deepEqual(tokens, ['alice']);
    assert.deepEqual(events.message, [], 'pongs are not messages');
  });
});

test('an unexpected close reconnects with a fresh token; refused attempts are retried, then reported', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events, tokens } = clientFor(server, { errorAfterFailures: 3 });
    client.connect();
    await until(() => client.state === 'open', 'open');
    server.refuseUpgrades(true);
    server.open()[0].socket.terminate();
    await until(() => events.error.some((e) => e.code === 'connect_failed'), 'connect_failed after 3 refusals');
    assert.equal(client.state, 'reconnecting');
    server.refuseUpgrades(false);
    await until(() => client.state === 'open', 'open again');
    assert.ok(tokens.length >= 5, `a token for every attempt (${tokens.length})`);
    assert.equal(server.open().length, 1);
    assert.deepEqual(events.state.slice(0, 3), ['connecting', 'open', 'reconnecting']);
    assert.equal(events.state.at(-1), 'open');
    client.close();
  });
});

test('a connection whose pings go unanswered is taken for dead and replaced', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server, { keepAliveMs: 30, pongTimeoutMs: 150 });
    client.connect();
    await until(() => client.state === 'open', 'open');
    // Answered pings keep it: several intervals and timeouts pass on the first connection.
    await until(() => server.open()[0].received.filter((f) => f.action === 'ping').length >= 15, 'fifteen answered pings');
    assert.equal(server.connections.length, 1);
    server.answerPings(false);
    await until(() => server.connections.length >= 2, 'a new connection');
    assert.equal(server.connections[0].closeCode, 4000, 'closed by the client: keep-alive unanswered');
    assert.ok(events.state.includes('reconnecting'));
    server.answerPings(true);
    await until(() => client.state === 'open' && server.open().length === 1, 'open again');
  });
});

test('the token function failing is reported and retried', LIMIT, async () => {
  await withServer({}, async (server) => {
    let calls = 0;
    const { client, events } = clientFor(server, {
      token: async () => { calls += 1; if (calls < 3) throw new Error('identity provider down'); return 'alice'; },
    });
    client.connect();
    await until(() => client.state === 'open', 'open after two token failures');
    assert.equal(calls, 3);
    assert.equal(events.error.filter((e) => e.code === 'token_failed').length, 2);
    assert.match(events.error[0].message, /identity provider down/);
    client.close();
  });
});

test('messages sent while not open are queued, flushed in order, and overflow is reported', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server, { queueLimit: 3 });
    assert.equal(client.send({ n: 1 }), true);
    assert.equal(client.publish({ n: 2 }), true);
    assert.equal(client.emit('room/1', { n: 3 }), true);
    assert.equal(client.send({ n: 4 }), false, 'the fourth is dropped');
    assert.deepEqual(events.error.map((e) => [e.code, e.dropped]), [['queue_overflow', { n: 4 }]]);
    client.connect();
    await until(() => plain(server.open()[0] ?? { received: [] }).length >= 3, 'the queued frames');
    assert.deepEqual(plain(server.open()[0]), [
      { action: 'send', message: { n: 1 } },
      { action: 'publish', message: { n: 2 } },
      { action: 'emit', channel: 'room/1', data: { n: 3 } },
    ]);
    // Open: sent at once, in order.
    client.send({ n: 5 });
    client.publish({ n: 6 });
    await until(() => plain(server.open()[0]).length >= 5, 'two more frames');
    assert.deepEqual(plain(server.open()[0]).slice(3).map((f) => f.message.n), [5, 6]);
    // Dropped again: queued, then flushed on the next connection, after its subscriptions.
    client.subscribe('room/1', () => {});
    await until(() => server.open()[0].subscriptions.has('room/1'), 'subscribed');
    server.refuseUpgrades(true);
    server.open()[0].socket.terminate();
    await until(() => client.state === 'reconnecting', 'reconnecting');
    client.send({ n: 7 });
    client.emit('room/1', { n: 8 });
    server.refuseUpgrades(false);
    await until(() => plain(server.open()[0] ?? { received: [] }).length >= 3, 'the new connection\'s frames');
    assert.deepEqual(plain(server.open()[0]), [
      { action: 'subscribe', channel: 'room/1' },
      { action: 'send', message: { n: 7 } },
      { action: 'emit', channel: 'room/1', data: { n: 8 } },
    ]);
    client.close();
  });
});

test('back-end pushes arrive as `message` {id, data}, once per id; other frames only as `error`', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server);
    client.connect();
    await until(() => client.state === 'open', 'open');
    const id = server.push('alice', { type: 'chat', text: 'hi' });
    server.push('alice', { type: 'chat', text: 'hi' }, { id }); // a pusher retry: same id
    server.push('alice', 'a string');
    server.pushRaw('alice', 'not json');
    server.pushRaw('alice', JSON.stringify({ message: 'Internal server error', connectionId: 'c', requestId: 'r' }));
    server.pushRaw('alice', JSON.stringify({ type: 'error', error: 'unknown_action', message: 'no such route' }));
    server.pushRaw('alice', JSON.stringify({ type: 'chat', text: 'not enveloped' }));
    server.pushRaw('alice', JSON.stringify({ type: 'message', data: 'no id' }));
    const last = server.push('alice', 'last');
    await until(() => events.message.some((m) => m.id === last), 'the last message');
    assert.deepEqual(events.message, [{ id, data: { type: 'chat', text: 'hi' } }, { id: events.message[1].id, data: 'a string' }, { id: last, data: 'last' }]);
    assert.deepEqual(events.error.map((e) => [e.code, e.reason, e.message]), [
      ['server_error', 'invalid_frame', 'a frame that is not one of sumu\'s: ignored'],
      ['server_error', undefined, 'Internal server error'],
      ['server_error', 'unknown_action', 'no such route'],
      ['server_error', 'invalid_frame', 'a frame that is not one of sumu\'s: ignored'],
      ['server_error', 'invalid_frame', 'a frame that is not one of sumu\'s: ignored'],
    ]);
    assert.deepEqual(events.error[0].frame, 'not json');
    client.close();
  });
});

test('presence() resolves with its answer, also when asked before connecting', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server);
    const early = client.presence(['alice', 'bob', 'alice']);
    client.connect();
    assert.deepEqual(await early, { type: 'presence', users: [
      { user_id: 'alice', status: 'ONLINE', connections: 1 },
      { user_id: 'bob', status: 'OFFLINE', connections: 0 },
    ] });
    assert.deepEqual((await client.presence(['bob'])).users, [{ user_id: 'bob', status: 'OFFLINE', connections: 0 }]);
    assert.equal(events.presence.length, 2);
    // A back end pushing a presence-shaped payload: a message, never an answer.
    const pushed = { type: 'presence', users: [{ user_id: 'carol', status: 'ONLINE', connections: 1 }], timestamp: 1 };
    server.push('alice', pushed);
    await until(() => events.message.length === 1, 'the pushed presence frame');
    assert.deepEqual(events.message[0].data, pushed);
    assert.equal(events.presence.length, 2);
    const closed = client.presence(['zed']);
    client.close();
    await assert.rejects(closed, /closed/);
  });
});

test('subscribe: publications reach the callbacks of every covering pattern once; unsubscribe stops them', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server);
    client.connect();
    const exact = [];
    const wild = [];
    const both = [];
    const a = client.subscribe('room/42', (p) => exact.push(p));
    client.subscribe('room/*', (p) => wild.push(p));
    const shared = (p) => both.push(p.id);
    client.subscribe('room/42', shared);
    client.subscribe('room/*', shared);
    await until(() => server.open()[0]?.subscriptions.size === 2, 'two subscriptions');
    assert.deepEqual(server.open()[0].received.filter((f) => f.action === 'subscribe').map((f) => f.channel),
      ['room/42', 'room/*'], 'one subscribe per channel, however many callbacks');
    const id = server.publishTo('room/42', { text: 'hello' });
    server.publishTo('room/7/x', { text: 'deep' });
    server.publishTo('lobby', { text: 'nobody' });
    await until(() => wild.length === 2, 'two publications under room/*');
    assert.deepEqual(exact, [{ channel: 'room/42', id, data: { text: 'hello' } }]);
    assert.deepEqual(wild.map((p) => p.data.text), ['hello', 'deep']);
    assert.deepEqual(both.sort(), [id, id, wild[1].id].sort(), 'each handle whose pattern covers the channel gets it once');
    // The same id again (a retry, or the other connection in an overlap) is dropped.
    server.publishTo('room/42', { text: 'hello' }, { id });
    server.publishTo('room/42', { text: 'after' });
    await until(() => exact.length === 2, 'the next publication');
    assert.deepEqual(exact.map((p) => p.data.text), ['hello', 'after']);
    assert.equal(events.publication.length, 3);
    a.unsubscribe();
    a.unsubscribe();
    await client.presence(['x']); // a round trip: the server has read everything sent before it
    assert.ok(!server.open()[0].received.some((f) => f.action === 'unsubscribe'), 'room/42 still has a callback');
    client.close();
  });
});

test('the last callback of a channel unsubscribes; emits carry `from` to others', LIMIT, async () => {
  await withServer({ accept: (token) => token }, async (server) => {
    const alice = clientFor(server);
    const bob = clientFor(server, { token: () => 'bob' });
    alice.client.connect();
    bob.client.connect();
    const got = [];
    const sub = alice.client.subscribe('room/1', (p) => got.push(p));
    bob.client.subscribe('room/1', () => {});
    await until(() => server.open().length === 2 && server.open().every((c) => c.subscriptions.has('room/1')), 'both subscribed');
    bob.client.emit('room/1', { text: 'from bob' });
    await until(() => got.length === 1, 'bob\'s emit');
    assert.equal(got[0].from, 'bob');
    sub.unsubscribe();
    const aliceConnection = server.open().find((c) => c.user === 'alice');
    await until(() => !aliceConnection.subscriptions.has('room/1'), 'unsubscribed');
    assert.deepEqual(plain(aliceConnection).at(-1), { action: 'unsubscribe', channel: 'room/1' });
    alice.client.close();
    bob.client.close();
  });
});

test('refused subscribe and emit are reported; a refused channel is not re-subscribed', LIMIT, async () => {
  await withServer({ forbidden: ['secret/1'] }, async (server) => {
    const { client, events } = clientFor(server);
    client.connect();
    client.subscribe('secret/1', () => {});
    client.subscribe('room/1', () => {});
    await until(() => events.error.length === 1, 'the refusal');
    assert.deepEqual([events.error[0].code, events.error[0].reason, events.error[0].channel], ['subscribe_failed', 'forbidden', 'secret/1']);
    client.emit('secret/1', { x: 1 });
    await until(() => events.error.length === 2, 'the emit refusal');
    assert.deepEqual([events.error[1].code, events.error[1].reason], ['emit_failed', 'forbidden']);
    server.open()[0].socket.terminate();
    await until(() => server.open()[0]?.subscriptions.has('room/1'), 're-subscribed after the reconnect');
    assert.deepEqual(server.open()[0].received.filter((f) => f.action === 'subscribe').map((f) => f.channel), ['room/1']);
    client.close();
  });
});

test('every channel is re-subscribed after a reconnect', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client } = clientFor(server);
    const got = [];
    client.subscribe('room/1', (p) => got.push(p.data));
    client.subscribe('user/alice', (p) => got.push(p.data));
    client.connect();
    await until(() => server.open()[0]?.subscriptions.size === 2, 'subscribed');
    server.open()[0].socket.terminate();
    await until(() => server.connections.length === 2 && server.open()[0]?.subscriptions.size === 2, 're-subscribed');
    server.publishTo('room/1', 1);
    server.publishTo('user/alice', 2);
    await until(() => got.length === 2, 'publications on the new connection');
    assert.deepEqual(got.sort(), [1, 2]);
    client.close();
  });
});

test('proactive reconnect: the new connection is subscribed before the old one closes; nothing lost, nothing twice', LIMIT, async () => {
  // Deliveries addressed before the new connection existed still reach the old one 30 ms later.
  await withServer({ deliveryDelayMs: 30 }, async (server) => {
    const { client, events } = clientFor(server, { maxConnectionMs: 300, overlapMs: 150 });
    const publications = [];
    client.subscribe('room/1', (p) => publications.push(p.data));
    client.connect();
    await until(() => server.open()[0]?.subscriptions.has('room/1'), 'subscribed');
    // A steady stream of publications and of pushed messages across several reconnects.
    let sent = 0;
    const stream = setInterval(() => {
      sent += 1;
      server.publishTo('room/1', sent);
      server.push('alice', { seq: sent });
    }, 5);
    try {
      await until(() => server.connections.length >= 4, 'three proactive reconnects', 20_000);
    } finally {
      clearInterval(stream);
    }
    const last = sent;
    // The last ones are on their way: wait for them, then compare.
    await until(() => publications.includes(last) && events.message.some((m) => m.data.seq === last), 'the last of the stream');
    const all = Array.from({ length: last }, (_, i) => i + 1);
    assert.deepEqual(publications, all, 'every publication once, in order');
    assert.deepEqual(events.message.map((m) => m.data.seq), all, 'every pushed message once, in order');
    assert.ok(!events.state.includes('reconnecting'), `the state stays open (${events.state})`);
    const [first, second] = server.connections;
    assert.equal(first.closeCode, 1000, 'the client closed the old connection itself');
    assert.deepEqual(second.received.slice(0, 2).map((f) => f.action), ['ping', 'subscribe'], 'the new connection learnt its id, then subscribed');
    client.close();
  });
});

describe('typed frames', () => {
  test('no pushed payload changes the client: each arrives as exactly one `message` and nothing else happens', LIMIT, async () => {
    await withServer({}, async (server) => {
      const { client, events } = clientFor(server);
      const got = [];
      const handle = client.subscribe('room/1', (p) => got.push(p));
      const pattern = client.subscribe('room/*', () => {});
      client.connect();
      await handle.ready;
      await pattern.ready;
      const connection = server.open()[0];
      const sentBefore = connection.received.length;
      const pending = client.presence(['bob']);
      // Payloads that look like sumu's own frames, as a back end may push them (data is arbitrary JSON).
      const payloads = [
        { type: 'error', channel: 'room/1' },
        { type: 'error', error: 'forbidden', channel: 'room/1', message: 'no grant' },
        { type: 'error', error: 'forbidden', channel: 'room/1', ref: 'r1' },
        { type: 'subscribed', channel: 'room/1' },
        { type: 'unsubscribed', channel: 'room/1', ref: 'r2' },
        { type: 'publication', channel: 'room/1', id: 'fake', data: { text: 'fake' } },
        { type: 'presence', users: [{ user_id: 'bob', status: 'ONLINE', connections: 1 }] },
        { type: 'presence', users: [{ user_id: 'bob', status: 'ONLINE', connections: 1 }], ref: 'r3' },
        { type: 'ack', ref: 'r4', channel: 'room/1', id: 'x' },
        { type: 'pong', connection_id: 'someone-else' },
        { type: 'message', id: 'inner', data: 'nested' },
        { type: 'join', channel: 'room/1', user_id: 'mallory' },
        { message: 'Internal server error', connectionId: 'c', requestId: 'r' },
        'plain text', 42, null, [1, 2],
      ];
      const ids = payloads.map((payload) => server.push('alice', payload));
      await until(() => events.message.length >= payloads.length, 'every payload');
      assert.deepEqual(events.message, payloads.map((data, i) => ({ id: ids[i], data })));
      assert.deepEqual(events.error, [], 'no error event');
      assert.deepEqual(events.publication, [], 'no publication');
      assert.deepEqual(got, []);
      assert.equal(handle.state, 'subscribed');
      assert.equal(pattern.state, 'subscribed');
      // The real answer (bob is offline) settles the question, not the pushed look-alikes.
      const answer = await pending;
      assert.deepEqual(answer.users, [{ user_id: 'bob', status: 'OFFLINE', connections: 0 }]);
      assert.deepEqual(events.presence, [answer], 'no presence answer taken from a push');
      server.publishTo('room/1', 'real');
      await until(() => got.length === 1, 'a real publication');
      assert.ok(connection.subscriptions.has('room/1'));
      assert.deepEqual(connection.received.slice(sentBefore).map((f) => f.action), ['presence'], 'nothing sent because of a push');
      assert.deepEqual(events.state, ['connecting', 'open']);
    });
  });

  test('a subscription has a state, events and a ready promise; handles on one channel share it', LIMIT, async () => {
    await withServer({ forbidden: ['secret/1'] }, async (server) => {
      const { client, events } = clientFor(server);
      const a = client.subscribe('room/1');
      const states = [];
      a.on('state', (state) => states.push(state));
      assert.equal(a.state, 'subscribing');
      client.connect();
      await a.ready;
      assert.equal(a.state, 'subscribed');
      // A second handle on the same channel: already subscribed, no second subscribe.
      const b = client.subscribe('room/1');
      assert.equal(b.state, 'subscribed');
      await b.ready;
      const connection = server.open()[0];
      assert.equal(connection.received.filter((f) => f.action === 'subscribe').length, 1);
      const subscribeFrame = connection.received.find((f) => f.action === 'subscribe');
      assert.match(subscribeFrame.ref, /^[A-Za-z0-9_.:-]{1,64}$/, 'every subscribe carries a ref');
      a.unsubscribe();
      assert.equal(a.state, 'unsubscribed');
      await client.presence(['x']);
      assert.ok(connection.subscriptions.has('room/1'), 'b still holds the channel');
      b.unsubscribe();
      await until(() => !connection.subscriptions.has('room/1'), 'unsubscribed at the gateway');
      assert.deepEqual(states, ['subscribed', 'unsubscribed']);
      // A final refusal: the handle fails, its promise rejects, the client reports it.
      const secret = client.subscribe('secret/1');
      const secretErrors = [];
      secret.on('error', (error) => secretErrors.push(error));
      await assert.rejects(secret.ready, (error) => error.code === 'refused' && error.reason === 'forbidden');
      assert.equal(secret.state, 'failed');
      assert.deepEqual(secretErrors.map((e) => [e.code, e.reason, e.retrying]), [['subscribe_failed', 'forbidden', false]]);
      assert.deepEqual(events.error.map((e) => [e.code, e.channel]), [['subscribe_failed', 'secret/1']]);
      // A reconnect: subscribing until confirmed again.
      const c = client.subscribe('room/2');
      await c.ready;
      const cStates = [];
      c.on('state', (state) => cStates.push(state));
      server.open()[0].socket.terminate();
      await until(() => cStates.length === 2, 'subscribing, then subscribed again');
      assert.deepEqual(cStates, ['subscribing', 'subscribed']);
    });
  });

  test('channels_unavailable is retried with backoff until subscribed; the handle hears of each refusal', LIMIT, async () => {
    await withServer({}, async (server) => {
      const { client, events } = clientFor(server);
      client.connect();
      await until(() => client.state === 'open', 'open');
      server.failSubscribes('room/busy', 'channels_unavailable', 2);
      const handle = client.subscribe('room/busy');
      const errors = [];
      handle.on('error', (error) => errors.push(error));
      await handle.ready;
      assert.equal(handle.state, 'subscribed');
      assert.deepEqual(errors.map((e) => [e.reason, e.retrying]), [['channels_unavailable', true], ['channels_unavailable', true]]);
      assert.equal(server.open()[0].received.filter((f) => f.action === 'subscribe').length, 3);
      assert.deepEqual(events.error, [], 'a refusal that may pass is the handle\'s business');
    });
  });

  test('emit with { ack: true } resolves with the publication id; a refusal rejects; without ack no ref is sent', LIMIT, async () => {
    await withServer({ forbidden: ['secret/1'] }, async (server) => {
      const { client, events } = clientFor(server);
      const bobGot = [];
      const bob = clientFor(server, { token: () => 'bob' });
      bob.client.subscribe('room/1', (p) => bobGot.push(p));
      bob.client.connect();
      client.connect();
      const ack = await client.emit('room/1', { text: 'hi' }, { ack: true });
      assert.equal(ack.channel, 'room/1');
      await until(() => bobGot.length === 1, 'bob got it');
      assert.equal(bobGot[0].id, ack.id, 'the ack names the publication');
      await assert.rejects(client.emit('secret/1', 1, { ack: true }), (error) => error.code === 'refused' && error.reason === 'forbidden');
      assert.deepEqual(events.error, [], 'a refused acked emit rejects its promise, no error event');
      assert.equal(client.emit('room/1', 'no ack'), true);
      await until(() => bobGot.length === 2, 'the fire-and-forget emit');
      const emits = server.open().find((c) => c.user === 'alice').received.filter((f) => f.action === 'emit');
      assert.deepEqual(emits.map((f) => typeof f.ref), ['string', 'string', 'undefined']);
      await assert.rejects(client.emit('room/1', 'x'.repeat(40_000), { ack: true }), (error) => error.code === 'too_large');
    });
  });

  test('an acked emit with no answer rejects with timeout; a queued one times out unsent', LIMIT, async () => {
    await withServer({}, async (server) => {
      const { client } = clientFor(server, { requestTimeoutMs: 200 });
      const queued = client.emit('room/1', 'never', { ack: true });
      await assert.rejects(queued, (error) => error.code === 'timeout');
      client.connect();
      await until(() => client.state === 'open', 'open');
      await client.presence(['x']);
      assert.ok(!server.open()[0].received.some((f) => f.action === 'emit'), 'a timed-out emit is never sent');
    });
  });

  test('proactive reconnect: the client never gets its own emits back; the overlap\'s emits exclude the other connection', LIMIT, async () => {
    await withServer({ deliveryDelayMs: 30 }, async (server) => {
      const { client, events } = clientFor(server, { maxConnectionMs: 300, overlapMs: 150 });
      client.subscribe('room/1');
      client.connect();
      await until(() => client.state === 'open', 'open');
      let sent = 0;
      const stream = setInterval(() => { sent += 1; client.emit('room/1', { seq: sent }); }, 5);
      try {
        await until(() => server.connections.length >= 4, 'three proactive reconnects', 20_000);
      } finally {
        clearInterval(stream);
      }
      const marker = server.publishTo('room/1', 'marker');
      await until(() => events.publication.some((p) => p.id === marker), 'a publication after the stream');
      assert.deepEqual(events.publication.map((p) => p.data), ['marker'], 'none of its own emits');
      const emits = server.connections.flatMap((c) => c.received.filter((f) => f.action === 'emit'));
      assert.equal(emits.length, sent);
      const excluded = emits.filter((f) => f.exclude_connections);
      assert.ok(excluded.length > 0, 'some emits went during an overlap');
      const ids = new Set(server.connections.map((c) => c.id));
      assert.ok(excluded.every((f) => f.exclude_connections.every((id) => ids.has(id))), 'they name the client\'s connections');
    });
  });

  test('the browser going online retries at once instead of waiting for the backoff', LIMIT, async () => {
    const target = new EventTarget();
    const saved = { add: globalThis.addEventListener, remove: globalThis.removeEventListener };
    globalThis.addEventListener = target.addEventListener.bind(target);
    globalThis.removeEventListener = target.removeEventListener.bind(target);
    try {
      await withServer({}, async (server) => {
        // Every retry waits close to ten minutes.
        const { client } = clientFor(server, { backoff: { baseMs: 600_000, maxMs: 600_000, random: () => 0.999 } });
        client.connect();
        await until(() => client.state === 'open', 'open');
        server.open()[0].socket.terminate();
        await until(() => client.state === 'reconnecting', 'reconnecting');
        target.dispatchEvent(new Event('online'));
        await until(() => client.state === 'open', 'open again, long before the backoff');
        assert.equal(server.connections.length, 2);
        client.close();
        target.dispatchEvent(new Event('online'));
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(server.connections.length, 2, 'no attempt after close()');
      });
    } finally {
      globalThis.addEventListener = saved.add;
      globalThis.removeEventListener = saved.remove;
    }
  });
});
