// @sumu/client's channels against the real stack (sumu-local + moto): subscribe, back-end
// publications through the notifications queue, emit between clients, refusals, re-subscribe
// after a crash, and no publication lost or doubled across a proactive reconnect; on channels
// that keep history (`room/*`, `small/*`: lib/local.js NAMESPACES), recovery after sumu-local is
// killed mid-traffic, `recovered:false` past the window, and `subscription.history()`.
// The same logic is tested against a fake gateway in unit.test.js and bugs.test.js.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { SumuClient } from '../dist/index.js';
import { devKey, startMoto, sumuLocal, until, WAIT_MS } from './lib/local.js';
import { spyWebSocket, frames } from './lib/spy.js';

const LIMIT = { timeout: 4 * WAIT_MS };
const MAX_DURATION_MS = 12_000;

let moto;
let key;
let stack;
const made = [];
afterEach(() => { for (const client of made.splice(0)) client.close(); });

before(async () => {
  moto = await startMoto();
  key = devKey();
  stack = await sumuLocal({ moto, key, name: 'sumu-local-channels', args: ['--max-duration', `${MAX_DURATION_MS / 1000}s`] });
}, LIMIT);

after(async () => {
  await stack?.stop();
  await moto?.stop();
});

const someone = (name) => `${name}-${Math.random().toString(36).slice(2, 8)}`;
/** A channel of its own per test, under the granted `t/*` (no history) or `room/*`/`small/*` (history). */
const channelFor = (name, prefix = 't') => `${prefix}/${name}-${Math.random().toString(36).slice(2, 8)}`;
const GRANTED = ['t/*', 'room/*', 'small/*'];
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Tokens carry the channel grants claim (DESIGN.md § Channels → Grants). */
function clientFor(user, { subscribe = GRANTED, publish = GRANTED, ...options } = {}, on = stack) {
  const spy = spyWebSocket();
  const events = { state: [], message: [], publication: [], presence: [], error: [] };
  const tokens = [];
  const client = new SumuClient({
    url: on.url,
    token: async () => {
      const token = key.mint(user, { claims: { channels: { subscribe, publish } } });
      tokens.push(token);
      return token;
    },
    WebSocket: spy.SpyWebSocket,
    backoff: { baseMs: 100, maxMs: 1_000 },
    ...options,
  });
  for (const name of Object.keys(events)) client.on(name, (value) => events[name].push(value));
  made.push(client);
  return { client, events, tokens, sockets: spy.sockets };
}

const subscribedOn = (socket, channel) => frames(socket?.received ?? [])
  .some((frame) => frame.type === 'subscribed' && frame.channel === channel);

test('subscribe; a back end publishes through the notifications queue; the callback gets it once', LIMIT, async () => {
  const channel = channelFor('room');
  const { client, events, sockets } = clientFor(someone('alice'));
  const got = [];
  client.subscribe(channel, (publication) => got.push(publication));
  client.connect();
  await until(() => subscribedOn(sockets[0], channel), 'subscribed');
  await stack.notify({ channels: [channel], data: { text: 'from the back end' } });
  await until(() => got.length === 1, 'the publication');
  assert.equal(got[0].channel, channel);
  assert.equal(typeof got[0].id, 'string');
  assert.deepEqual(got[0].data, { text: 'from the back end' });
  assert.equal(got[0].from, undefined, 'a back end publication has no `from`');
  assert.deepEqual(events.publication, got);
});

test('emit reaches the other subscribers with `from`, never the sender; a wildcard subscription covers it', LIMIT, async () => {
  const channel = channelFor('chat');
  const aliceName = someone('alice');
  const bobName = someone('bob');
  const alice = clientFor(aliceName);
  const bob = clientFor(bobName);
  const aliceGot = [];
  const bobGot = [];
  alice.client.subscribe('t/*', (p) => { if (p.channel === channel) aliceGot.push(p); });
  bob.client.subscribe(channel, (p) => bobGot.push(p));
  alice.client.connect();
  bob.client.connect();
  await until(() => subscribedOn(alice.sockets[0], 't/*') && subscribedOn(bob.sockets[0], channel), 'both subscribed');
  bob.client.emit(channel, { text: 'hi' });
  await until(() => aliceGot.length === 1, 'bob\'s emit at alice');
  assert.equal(aliceGot[0].from, bobName);
  assert.deepEqual(aliceGot[0].data, { text: 'hi' });
  // A back-end publication after it: once it has arrived at bob, his own emit would have too.
  await stack.notify({ channels: [channel], data: { text: 'marker' } });
  await until(() => bobGot.some((p) => p.data.text === 'marker'), 'the marker at bob');
  assert.deepEqual(bobGot.map((p) => p.data.text), ['marker'], 'the sender does not get its own emit');
});

test('a subscribe without a grant and an emit without a grant are refused, and reported', LIMIT, async () => {
  const { client, events, sockets } = clientFor(someone('eve'), { subscribe: ['t/open/*'], publish: [] });
  client.subscribe('secret/1', () => {});
  client.connect();
  await until(() => events.error.some((e) => e.code === 'subscribe_failed'), 'the refused subscribe');
  const refusal = events.error.find((e) => e.code === 'subscribe_failed');
  assert.deepEqual([refusal.reason, refusal.channel], ['forbidden', 'secret/1']);
  client.emit('t/open/1', { x: 1 });
  await until(() => events.error.some((e) => e.code === 'emit_failed'), 'the refused emit');
  assert.equal(events.error.find((e) => e.code === 'emit_failed').reason, 'forbidden');
  // A refused channel is not asked for again after a reconnect.
  assert.equal(frames(sockets[0].sent).filter((f) => f.action === 'subscribe').length, 1);
});

for (const prefix of ['t', 'room']) test(`proactive reconnect before --max-duration (${MAX_DURATION_MS} ms): no publication lost, none twice (${prefix}/…${prefix === 'room' ? ', with history: in offset order' : ''})`, LIMIT, async () => {
  const channel = channelFor('stream', prefix);
  const { client, events, sockets } = clientFor(someone('bob'), { maxConnectionMs: 3_000, overlapMs: 1_500, keepAliveMs: 1_000 });
  const got = [];
  client.subscribe(channel, (p) => got.push(p));
  client.connect();
  await until(() => subscribedOn(sockets[0], channel), 'subscribed');
  let sent = 0;
  let sending = true;
  const stream = (async () => {
    while (sending) {
      sent += 1;
      await stack.notify({ channels: [channel], data: { seq: sent } });
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  })();
  try {
    await until(() => sockets.length >= 3 && sockets[2].opened && sockets[1].closeCode !== null, 'two proactive reconnects');
  } finally {
    sending = false;
    await stream;
  }
  await until(() => new Set(got.map((p) => p.data.seq)).size === sent, `all ${sent} publications`);
  assert.deepEqual(got.map((p) => p.data.seq).sort((a, b) => a - b), Array.from({ length: sent }, (_, i) => i + 1));
  assert.equal(new Set(got.map((p) => p.id)).size, got.length, 'each id once');
  if (prefix === 'room') {
    assert.deepEqual(got.map((p) => p.offset), Array.from({ length: sent }, (_, i) => i + 1), 'in offset order');
    const resubscribes = sockets.slice(1, 3).map((s) => frames(s.sent).find((f) => f.action === 'subscribe'));
    assert.ok(resubscribes.every((f) => f.since && typeof f.since.offset === 'number'), 'each new connection subscribed with since');
  }
  for (const old of sockets.slice(0, 2)) assert.ok(old.closedByClient && old.closeCode !== 1001, 'closed by the client, before the maximum');
  // The new connection was subscribed before the old one closed.
  assert.ok(subscribedOn(sockets[1], channel) && subscribedOn(sockets[2], channel));
  assert.ok(!events.state.includes('reconnecting'), `the state stayed open: ${events.state}`);
});

test('sumu-local killed and restarted: the client re-subscribes and flushes the queued emit', LIMIT, async () => {
  const own = await sumuLocal({ moto, key, name: 'sumu-local-channels-restart' });
  try {
    const channel = channelFor('after-crash');
    const listener = clientFor(someone('listener'), { keepAliveMs: 60_000 }, own);
    const talker = clientFor(someone('talker'), { keepAliveMs: 60_000 }, own);
    const heard = [];
    listener.client.subscribe(channel, (p) => heard.push(p.data));
    listener.client.connect();
    talker.client.connect();
    await until(() => subscribedOn(listener.sockets[0], channel) && talker.client.state === 'open', 'ready');
    await own.kill();
    await until(() => listener.client.state === 'reconnecting' && talker.client.state === 'reconnecting', 'both reconnecting');
    assert.equal(talker.client.emit(channel, { text: 'queued while down' }), true);
    await own.start();
    await until(() => listener.sockets.some((s, i) => i > 0 && subscribedOn(s, channel)), 're-subscribed on the new connection');
    // The emit may have been flushed before the listener re-subscribed: emit again to be sure the
    // channel works, and check the queued one was sent on the talker's new connection.
    const talkerFresh = talker.sockets.find((s, i) => i > 0 && s.opened);
    await until(() => frames(talkerFresh?.sent ?? []).some((f) => f.action === 'emit'), 'the queued emit sent');
    const { exclude_connections: _excluded, ...queuedEmit } = frames(talkerFresh.sent).find((f) => f.action === 'emit');
    assert.deepEqual(queuedEmit, { action: 'emit', channel, data: { text: 'queued while down' } });
    await own.notify({ channels: [channel], data: { text: 'after the restart' } });
    await until(() => heard.some((d) => d.text === 'after the restart'), 'a publication after the restart');
  } finally {
    for (const client of made.splice(0)) client.close();
    await own.stop();
  }
});

test('unsubscribe() then at once subscribe(), 15 rounds: the gateway ends subscribed every time (React StrictMode)', LIMIT, async () => {
  const { client, events } = clientFor(someone('strict'));
  client.connect();
  await until(() => client.state === 'open', 'open');
  for (let round = 1; round <= 15; round += 1) {
    const channel = channelFor(`strict-${round}`);
    const first = client.subscribe(channel);
    await first.ready;
    first.unsubscribe();
    const got = [];
    const second = client.subscribe(channel, (p) => got.push(p.data));
    await second.ready;
    // Whatever order the gateway applied them in, a publication now reaches the channel.
    await until(async () => {
      await stack.notify({ channels: [channel], data: { round } });
      return until(() => got.length > 0, `round ${round}: a publication`, 2_000).then(() => true, () => false);
    }, `round ${round}: subscribed at the gateway`);
    second.unsubscribe();
  }
  assert.deepEqual(events.error, []);
});

test('emit with { ack: true } resolves with the publication id the subscribers get; a refused one rejects', LIMIT, async () => {
  const channel = channelFor('acked');
  const talker = clientFor(someone('talker'));
  const listener = clientFor(someone('listener'));
  const heard = [];
  listener.client.subscribe(channel, (p) => heard.push(p));
  listener.client.connect();
  talker.client.connect();
  await until(() => subscribedOn(listener.sockets[0], channel), 'the listener subscribed');
  const ack = await talker.client.emit(channel, { text: 'acked' }, { ack: true });
  assert.equal(ack.channel, channel);
  await until(() => heard.length === 1, 'the publication');
  assert.equal(heard[0].id, ack.id);
  const refused = clientFor(someone('mute'), { publish: [] });
  refused.client.connect();
  await assert.rejects(refused.client.emit(channel, 1, { ack: true }), (error) => error.code === 'refused' && error.reason === 'forbidden');
});

// On a channel without history. On one that keeps history an emit whose ack had not reached the
// client before a reconnect's recovery reply comes back in that reply (README.md § History and
// recovery, "Own emits"): the gateway cannot yet tell the client's own emits in a replay.
for (const prefix of ['t']) test(`a client never gets its own emits back, across proactive reconnects (${prefix}/…)`, LIMIT, async () => {
  const channel = channelFor('echo', prefix);
  const { client, events, sockets } = clientFor(someone('echo'), { maxConnectionMs: 2_500, overlapMs: 1_500, keepAliveMs: 1_000 });
  client.subscribe(channel);
  client.connect();
  await until(() => subscribedOn(sockets[0], channel), 'subscribed');
  let sent = 0;
  let sending = true;
  const stream = (async () => {
    while (sending) {
      sent += 1;
      client.emit(channel, { seq: sent });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    await until(() => sockets.length >= 3 && sockets[2].opened && sockets[1].closeCode !== null, 'two proactive reconnects');
  } finally {
    sending = false;
    await stream;
  }
  await stack.notify({ channels: [channel], data: 'marker' });
  await until(() => events.publication.some((p) => p.data === 'marker'), 'a back-end publication after the emits');
  assert.deepEqual(events.publication.map((p) => p.data), ['marker'], 'none of its own emits');
  const emits = sockets.flatMap((s) => frames(s.sent)).filter((f) => f.action === 'emit');
  assert.ok(emits.some((f) => Array.isArray(f.exclude_connections)), 'emits during an overlap name the other connection');
});

/** A back end publishing `{seq}` to `channel` through the notifications queue, about `perSecond`, until stopped. */
function publisher(on, channel, perSecond) {
  let sent = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const started = Date.now();
      sent += 1;
      await on.notify({ channels: [channel], data: { seq: sent } });
      await pause(Math.max(0, 1000 / perSecond - (Date.now() - started)));
    }
  })();
  return { sent: () => sent, stop: async () => { running = false; await done; } };
}

/**
 * The publications a subscription handed out must be exactly the n published: each once, in
 * offset order. Offsets rise but may skip one: an offset given out by a pusher killed between
 * its two writes is never stored, and that publication goes out again under a later offset
 * (docs/channels.md § History and recovery, "A hole is not a loss").
 */
function assertComplete(got, n, who) {
  const offsets = got.map((p) => p.offset);
  assert.ok(offsets.every((offset, i) => i === 0 || offset > offsets[i - 1]), `${who}: offsets rise, none twice: ${JSON.stringify(offsets)}`);
  assert.equal(got.length, n, `${who}: ${n} publications handed out`);
  assert.deepEqual(got.map((p) => p.data.seq).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), `${who}: every publication once`);
  assert.equal(new Set(got.map((p) => p.id)).size, n, `${who}: each id once`);
}

test('sumu-local killed and restarted mid-traffic (20/s to a history channel, three clients): nothing lost, nothing twice, in order', LIMIT, async () => {
  const own = await sumuLocal({ moto, key, name: 'sumu-local-recovery' });
  try {
    const channel = channelFor('why', 'room');
    // Each client waits 2–4 s before reconnecting, while the restarted pusher delivers the
    // backlog to connections that are gone: what they miss meanwhile only recovery brings back.
    const backoff = { baseMs: 4_000, maxMs: 4_000, random: () => 0.5 + Math.random() / 2 };
    const clients = ['ann', 'ben', 'cat'].map((name) => {
      const made_ = clientFor(someone(name), { backoff }, own);
      const got = [];
      const told = [];
      const handle = made_.client.subscribe(channel, (p) => got.push(p));
      handle.on('subscribed', (context) => told.push(context));
      made_.client.connect();
      return { ...made_, got, told, handle };
    });
    await until(() => clients.every((c) => c.told.length === 1), 'all three subscribed');
    const backEnd = publisher(own, channel, 20);
    let total;
    try {
      await until(() => clients.every((c) => c.got.length >= 40), 'forty delivered to each');
      await own.kill();
      const atKill = backEnd.sent();
      // The back end keeps publishing to the queue while the gateway is down.
      await until(() => backEnd.sent() >= atKill + 40, 'forty more published during the outage');
      await own.start();
      await until(() => clients.every((c) => c.told.length >= 2 && c.client.state === 'open'), 'every client resubscribed');
      await until(() => backEnd.sent() >= atKill + 100, 'traffic after the restart');
    } finally {
      await backEnd.stop();
      total = backEnd.sent();
    }
    await until(() => clients.every((c) => c.got.length >= total), `all ${total} at each client`).catch((error) => {
      for (const c of clients) {
        const offsets = c.got.map((p) => p.offset);
        const subs = c.sockets.flatMap((socket) => frames(socket.received)).filter((f) => f.type === 'subscribed' || f.type === 'history' || f.type === 'error')
          .map((f) => ({ ...f, publications: f.publications?.map((p) => p.offset) }));
        const sentFrames = c.sockets.flatMap((socket) => frames(socket.sent)).filter((f) => f.action !== 'ping');
        console.log(`# ${c.got.length}: ${JSON.stringify(offsets)}\n# ${JSON.stringify(subs)}\n# ${JSON.stringify(sentFrames)}\n# told ${JSON.stringify(c.told)}`);
      }
      throw error;
    });
    // A last one: anything doubled would have come before it.
    await own.notify({ channels: [channel], data: { seq: total + 1 } });
    await until(() => clients.every((c) => c.got.length >= total + 1), 'the last one');
    for (const c of clients) {
      const replays = c.sockets.flatMap((socket) => frames(socket.received)).filter((f) => f.type === 'subscribed' && f.recovered === true);
      const history = c.sockets.flatMap((socket) => frames(socket.sent)).filter((f) => f.action === 'history');
      const replayed = replays.reduce((sum, f) => sum + f.publications.length, 0);
      console.log(`# ${c.handle.channel}: ${total + 1} delivered, ${replayed} of them replayed by subscribe with since, ${history.length} history requests`);
      assert.ok(replayed > 0, 'the outage made the client miss publications that recovery brought back');
      assertComplete(c.got, total + 1, c.handle.channel);
      assert.ok(c.told.slice(1).every((t) => t.recovered && t.wasRecovering), `every resubscribe recovered: ${JSON.stringify(c.told)}`);
    }
  } finally {
    for (const client of made.splice(0)) client.close();
    await own.stop();
  }
});

test('an outage inside the window recovers everything; one longer than the window (small/*: 5 kept) is told recovered:false', LIMIT, async () => {
  for (const [prefix, missed, recovered] of [['room', 12, true], ['small', 12, false]]) {
    const channel = channelFor('away', prefix);
    const { client } = clientFor(someone('away'));
    const got = [];
    const told = [];
    const handle = client.subscribe(channel, (p) => got.push(p));
    handle.on('subscribed', (context) => told.push(context));
    client.connect();
    await until(() => told.length === 1, 'subscribed');
    await stack.notify({ channels: [channel], data: { seq: 1 } });
    await until(() => got.length === 1, 'the first');
    client.close(); // away: the subscription and its position stay
    const listener = clientFor(someone('witness'));
    const witnessed = [];
    listener.client.subscribe(channel, (p) => witnessed.push(p));
    listener.client.connect();
    await until(() => listener.client.state === 'open' && listener.sockets[0] && subscribedOn(listener.sockets[0], channel), 'a witness subscribed');
    for (let seq = 2; seq <= missed + 1; seq += 1) await stack.notify({ channels: [channel], data: { seq } });
    await until(() => witnessed.length === missed, 'the missed ones published');
    client.connect();
    await until(() => told.length === 2, `${prefix}: resubscribed`);
    assert.equal(told[1].wasRecovering, true);
    assert.equal(told[1].recovered, recovered, `${prefix}: ${JSON.stringify(told[1])}`);
    await stack.notify({ channels: [channel], data: { seq: missed + 2 } });
    await until(() => got.some((p) => p.data.seq === missed + 2), `${prefix}: a live one after`);
    if (recovered) {
      assertComplete(got, missed + 2, channel);
    } else {
      // Nothing silently missing: the application was told, and got only what came after.
      assert.deepEqual(got.map((p) => p.data.seq), [1, missed + 2]);
      assert.deepEqual(told[1].position, { offset: missed + 1, epoch: got[0].epoch });
    }
    client.close();
    listener.client.close();
  }
});

test('subscription.history({limit: 2}) returns the two latest, older first; with since, what followed', LIMIT, async () => {
  const channel = channelFor('recent', 'room');
  const { client } = clientFor(someone('reader'));
  const got = [];
  const handle = client.subscribe(channel, (p) => got.push(p));
  client.connect();
  await handle.ready;
  for (let seq = 1; seq <= 5; seq += 1) await stack.notify({ channels: [channel], data: { seq } });
  await until(() => got.length === 5, 'five published');
  const page = await handle.history({ limit: 2 });
  assert.deepEqual(page.publications.map((p) => [p.offset, p.data.seq]), [[4, got[3].data.seq], [5, got[4].data.seq]]);
  assert.deepEqual([page.offset, page.epoch, page.more], [5, got[0].epoch, true]);
  assert.deepEqual(page.publications.map((p) => p.id), got.slice(3).map((p) => p.id));
  const after = await handle.history({ since: { offset: 2, epoch: page.epoch } });
  assert.deepEqual(after.publications.map((p) => p.offset), [3, 4, 5]);
  assert.equal(after.more, false);
  await assert.rejects(client.subscribe('room/*').history(), (error) => error.code === 'refused' && error.reason === 'invalid_channel');
});
