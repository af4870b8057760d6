// Bugs of the client found by using it as an application would, each shown by a test written
// before its fix (against a fake gateway, lib/fake-sumu.js, or a fake WebSocket under fake
// timers).
import { test, mock, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SumuClient } from '../dist/index.js';
import { startFakeSumu, until } from './lib/fake-sumu.js';

const LIMIT = { timeout: 60_000 };
const made = [];
afterEach(() => { for (const client of made.splice(0)) client.close(); });

function clientFor(server, options = {}) {
  const events = { state: [], message: [], publication: [], presence: [], error: [] };
  const client = new SumuClient({ url: server.url, token: async () => 'alice', WebSocket, backoff: { baseMs: 20, maxMs: 100 }, ...options });
  for (const name of Object.keys(events)) client.on(name, (value) => events[name].push(value));
  made.push(client);
  return { client, events };
}

async function withServer(options, body) {
  const server = await startFakeSumu(options);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** Lets pending promise callbacks and I/O callbacks run (no timer involved). */
const drain = async () => { for (let i = 0; i < 3; i += 1) await new Promise((resolve) => setImmediate(resolve)); };

test('unsubscribe() then at once subscribe() on the same channel ends subscribed at the gateway (React StrictMode)', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client } = clientFor(server);
    client.connect();
    const first = client.subscribe('room/1', () => {});
    await until(() => server.open()[0]?.subscriptions.has('room/1'), 'subscribed');
    const connection = server.open()[0];
    // The gateway runs routes concurrently: the unsubscribe lands after a subscribe sent later.
    server.delayUnsubscribes(200);
    first.unsubscribe();
    const got = [];
    client.subscribe('room/1', (publication) => got.push(publication.data));
    await until(() => connection.applied.some(([action]) => action === 'unsubscribe'), 'the unsubscribe applied');
    await until(() => connection.subscriptions.has('room/1'), 'the gateway subscribed again after the unsubscribe');
    assert.deepEqual(connection.applied.at(-1), ['subscribe', 'room/1'], 'the last request applied is a subscribe');
    server.publishTo('room/1', 'after');
    await until(() => got.length === 1, 'a publication on the channel');
  });
});

test('a presence() question or a send() over 32 KB is refused before sending, with an error; exactly 32 KB passes', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server, { presenceTimeoutMs: 3_000 });
    client.connect();
    await until(() => client.state === 'open', 'open');
    const many = Array.from({ length: 3_000 }, (_, i) => `user-${i}-with-a-long-name`);
    await assert.rejects(client.presence(many), (error) => error.code === 'too_large' && /32768/.test(error.message));
    // {"action":"send","message":"…"} is 30 bytes around the text; é is 2 bytes in UTF-8.
    const exactly = 'é'.repeat(16_369);
    assert.equal(client.send(`${exactly}x`), false, 'one byte over: refused');
    const refusal = events.error.find((error) => error.code === 'too_large');
    assert.ok(refusal, 'a too_large error event');
    assert.equal(refusal.dropped, `${exactly}x`);
    assert.equal(client.send(exactly), true, 'exactly 32,768 bytes: sent');
    await client.presence(['bob']); // a round trip: the server has read everything before it
    const connection = server.open()[0];
    assert.equal(server.connections.length, 1, 'no reconnect');
    assert.equal(connection.received.filter((f) => f.action === 'send').length, 1);
    assert.equal(connection.received.filter((f) => f.action === 'presence').length, 1, 'the big question never went out');
  });
});

test('a slow token call that fails late does not cancel a newer attempt that was succeeding', LIMIT, async () => {
  await withServer({}, async (server) => {
    let calls = 0;
    let failSlow;
    const token = () => {
      calls += 1;
      // The second call (the proactive reconnect's) hangs, then fails.
      if (calls === 2) return new Promise((resolve, reject) => { failSlow = () => reject(new Error('identity provider timed out')); });
      return 'alice';
    };
    const { client } = clientFor(server, { token, maxConnectionMs: 300 });
    client.connect();
    await until(() => calls === 2, 'the proactive reconnect asking for its token');
    server.holdUpgrades(true);
    server.open()[0].socket.terminate();
    await until(() => calls === 3 && server.heldUpgrades() === 1, 'a newer attempt connecting');
    failSlow();
    await drain();
    server.holdUpgrades(false);
    await until(() => client.state === 'open' && server.open().length === 1, 'open again');
    await client.presence(['x']);
    assert.equal(server.connections.length, 2, 'the newer attempt became the connection');
    assert.equal(server.connections[1].closeCode, null, 'and the client did not close it');
    assert.equal(calls, 3, 'no further attempt');
  });
});

test('a gateway that accepts and then closes at once gets retries with a growing backoff (fake timers)', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  try {
    const attempts = [];
    class OpensThenCloses {
      constructor() {
        attempts.push(Date.now());
        this.readyState = 0;
        queueMicrotask(() => {
          this.readyState = 1;
          this.onopen?.({});
          queueMicrotask(() => { this.readyState = 3; this.onclose?.({ code: 1011, reason: '' }); });
        });
      }
      send() {}
      close() {}
    }
    const backoff = { baseMs: 100, maxMs: 1_000, random: () => 0.999 };
    const client = new SumuClient({ url: 'ws://127.0.0.1:9/x', token: () => 't', WebSocket: OpensThenCloses, backoff });
    made.push(client);
    client.connect();
    const settle = async () => { for (let i = 0; i < 10; i += 1) await Promise.resolve(); };
    await settle();
    while (attempts.length < 7) {
      mock.timers.tick(1);
      await settle();
      assert.ok(Date.now() < 60_000, 'seven attempts within a minute');
    }
    const delays = attempts.slice(1).map((at, i) => at - attempts[i]);
    // Ceilings 100, 200, 400, 800, 1000, 1000 with the delay pinned just under each.
    assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
  } finally {
    mock.timers.reset();
  }
});

test('a publication without an id is reported as an error, not dropped silently', LIMIT, async () => {
  await withServer({}, async (server) => {
    const { client, events } = clientFor(server);
    const got = [];
    client.subscribe('room/1', (publication) => got.push(publication));
    client.connect();
    await until(() => server.open()[0]?.subscriptions.has('room/1'), 'subscribed');
    const frame = { type: 'publication', channel: 'room/1', data: { text: 'no id' } };
    server.pushRaw('alice', JSON.stringify(frame));
    const error = await until(() => events.error[0], 'an error event', 5_000);
    assert.equal(error.code, 'server_error');
    assert.equal(error.reason, 'invalid_frame');
    assert.deepEqual(error.frame, frame);
    assert.deepEqual(got, [], 'not handed out');
    assert.deepEqual(events.publication, []);
  });
});
