// Recovery on channels that keep history, against the fake gateway (lib/fake-sumu.js keeps
// history as the real stack does): the position per channel, `since` after every reconnect,
// publications in offset order, gaps filled with `history`, doubles dropped, `recovered:false`
// told, `subscription.history()`. The real stack is tested by channels-local.test.js.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SumuClient } from '../dist/index.js';
import { startFakeSumu, until } from './lib/fake-sumu.js';

const LIMIT = { timeout: 60_000 };
const made = [];
const servers = [];
afterEach(async () => {
  for (const client of made.splice(0)) client.close();
  for (const server of servers.splice(0)) await server.close();
});

async function fake(options = {}) {
  const server = await startFakeSumu({ history: { 'room/*': 100, 'small/*': 5 }, ...options });
  servers.push(server);
  return server;
}

/** A client subscribed to `channel`, recording what its handle hands out and tells. */
function subscriber(server, channel, options = {}) {
  const client = new SumuClient({ url: server.url, token: () => 'alice', WebSocket, backoff: { baseMs: 20, maxMs: 100 }, gapMs: 50, ...options });
  made.push(client);
  const got = [];
  const told = [];
  const errors = [];
  client.on('error', (error) => errors.push(error));
  const subscription = client.subscribe(channel, (p) => got.push(p));
  subscription.on('subscribed', (context) => told.push(context));
  client.connect();
  return { client, subscription, got, told, errors, data: () => got.map((p) => p.data) };
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** The connection drops and new ones are refused until the test calls refuseUpgrades(false). */
async function outage(server, client) {
  server.refuseUpgrades(true);
  server.open()[0].socket.terminate();
  await until(() => client.state === 'reconnecting', 'dropped');
}

/** Every frame the client sent with this action, over all its connections. */
const sent = (server, action) => server.connections.flatMap((c) => c.received.filter((f) => f.action === action));

test('first subscribe: the position comes from `subscribed`; the subscription is told it did not recover (nothing to recover)', LIMIT, async () => {
  const server = await fake();
  server.publishTo('room/1', 'before');
  const { told, data } = subscriber(server, 'room/1');
  await until(() => told.length === 1, 'subscribed');
  assert.deepEqual(told[0], { channel: 'room/1', recovered: false, wasRecovering: false, position: { offset: 1, epoch: server.sequence('room/1').epoch } });
  server.publishTo('room/1', 'after');
  await until(() => data().length === 1, 'the live one');
  assert.deepEqual(data(), ['after'], 'what was published before the subscription is not handed out');
});

test('after a reconnect the client resubscribes with since; what it missed comes first, in order, then live ones, none twice', LIMIT, async () => {
  const server = await fake();
  const { client, told, got, data } = subscriber(server, 'room/1');
  await until(() => told.length === 1, 'subscribed');
  for (const n of range(1, 3)) server.publishTo('room/1', n);
  await until(() => data().length === 3, 'three live');
  await outage(server, client);
  for (const n of range(4, 10)) server.publishTo('room/1', n);
  // A live publication goes out after the subscription is stored, before the reply is sent:
  // it arrives before the replay and is held back until 4–10 are out.
  server.beforeSubscribeReply((connection, frame) => { if (frame.since) server.publishTo('room/1', 11); });
  server.refuseUpgrades(false);
  await until(() => data().length === 11, 'the missed ones and the live one');
  server.beforeSubscribeReply(null);
  server.publishTo('room/1', 12);
  await until(() => data().length === 12, 'the next live one');
  assert.deepEqual(data(), range(1, 12));
  assert.deepEqual(got.map((p) => p.offset), range(1, 12));
  const resubscribe = server.connections[1].received.find((f) => f.action === 'subscribe');
  assert.deepEqual(resubscribe.since, { offset: 3, epoch: server.sequence('room/1').epoch });
  assert.deepEqual(told.map((c) => [c.recovered, c.wasRecovering]), [[false, false], [true, true]]);
  assert.equal(sent(server, 'history').length, 0, 'nothing asked besides the subscribe');
});

test('a recovery with more:true continues with history until done; live ones wait their turn', LIMIT, async () => {
  const server = await fake({ replayLimit: 4 });
  const { client, told, data } = subscriber(server, 'room/1');
  await until(() => told.length === 1, 'subscribed');
  await outage(server, client);
  for (const n of range(1, 15)) server.publishTo('room/1', n);
  server.beforeSubscribeReply((connection, frame) => { if (frame.since) server.publishTo('room/1', 16); });
  server.refuseUpgrades(false);
  await until(() => data().length === 16, 'all sixteen');
  assert.deepEqual(data(), range(1, 16));
  const pages = sent(server, 'history');
  assert.deepEqual(pages.map((f) => f.since.offset), [4, 8, 12], 'each page since the last offset received');
  assert.deepEqual(told.map((c) => c.recovered), [false, true]);
});

test('a gap seen while connected is filled with history before later ones are handed out', LIMIT, async () => {
  const server = await fake();
  const { told, data } = subscriber(server, 'room/1');
  await until(() => told.length === 1, 'subscribed');
  server.publishTo('room/1', 1);
  server.publishTo('room/1', 2, { deliver: false }); // kept, but its delivery was lost
  server.publishTo('room/1', 3, { deliver: false });
  server.publishTo('room/1', 4);
  server.publishTo('room/1', 5);
  await until(() => data().length === 5, 'all five');
  assert.deepEqual(data(), [1, 2, 3, 4, 5]);
  assert.deepEqual(sent(server, 'history').map((f) => f.since.offset), [1]);
});

test('publications overtaken in flight are put back in order without asking history; doubles are dropped', LIMIT, async () => {
  const server = await fake();
  const { told, data, got } = subscriber(server, 'room/1', { gapMs: 5_000 });
  await until(() => told.length === 1, 'subscribed');
  const one = server.publishTo('room/1', 1, { full: true, deliver: false });
  const two = server.publishTo('room/1', 2, { full: true, deliver: false });
  server.sendTo('room/1', two);
  server.sendTo('room/1', two);
  server.sendTo('room/1', one);
  server.sendTo('room/1', two);
  server.sendTo('room/1', { ...one, id: 'another id, same offset' });
  server.publishTo('room/1', 3);
  await until(() => data().length === 3, 'three');
  assert.deepEqual(data(), [1, 2, 3]);
  assert.equal(new Set(got.map((p) => p.id)).size, 3);
  assert.equal(sent(server, 'history').length, 0);
});

test('an offset given out but never kept (a failed write) does not stall the channel; history cannot tell it from a loss, so recovered:false is told', LIMIT, async () => {
  const server = await fake();
  const { told, data } = subscriber(server, 'room/1');
  await until(() => told.length === 1, 'subscribed');
  server.publishTo('room/1', 1);
  server.publishTo('room/1', 'never kept', { keep: false });
  server.publishTo('room/1', 3);
  server.publishTo('room/1', 4);
  await until(() => data().length === 3, 'the three that exist');
  assert.deepEqual(data(), [1, 3, 4]);
  server.publishTo('room/1', 5);
  await until(() => data().length === 4, 'the next one at once');
  // `history` since the offset before it answers recovered:false (the next one is not kept), twice.
  assert.deepEqual(told.map((c) => [c.recovered, c.wasRecovering]), [[false, false], [false, true]]);
  assert.equal(sent(server, 'history').length, 2);
});

test('a fill that gets no answer hands out what it holds and moves on', LIMIT, async () => {
  const server = await fake();
  const { told, data } = subscriber(server, 'room/1', { requestTimeoutMs: 300 });
  await until(() => told.length === 1, 'subscribed');
  server.publishTo('room/1', 1);
  server.publishTo('room/1', 2, { deliver: false });
  server.answerHistory(false);
  server.publishTo('room/1', 3);
  server.publishTo('room/1', 4);
  await until(() => data().length === 3, 'what exists');
  assert.deepEqual(data(), [1, 3, 4]);
});

test('an outage longer than the window: recovered:false is told, and what follows is handed out', LIMIT, async () => {
  const server = await fake();
  const { client, told, data } = subscriber(server, 'small/1');
  await until(() => told.length === 1, 'subscribed');
  server.publishTo('small/1', 1);
  await until(() => data().length === 1, 'the first');
  await outage(server, client);
  for (const n of range(2, 9)) server.publishTo('small/1', n); // 8 missed, 5 kept
  server.refuseUpgrades(false);
  await until(() => told.length === 2, 'told');
  assert.deepEqual(told[1], { channel: 'small/1', recovered: false, wasRecovering: true, position: { offset: 9, epoch: server.sequence('small/1').epoch } });
  server.publishTo('small/1', 10);
  await until(() => data().length === 2, 'the next live one');
  assert.deepEqual(data(), [1, 10]);
});

test('the channel\'s epoch changes under a live subscription: told recovered:false, and it goes on from the new epoch', LIMIT, async () => {
  const server = await fake();
  const { told, data } = subscriber(server, 'room/1');
  await until(() => told.length === 1, 'subscribed');
  server.publishTo('room/1', 'old 1');
  await until(() => data().length === 1, 'first');
  const fresh = server.newEpoch('room/1');
  server.publishTo('room/1', 'new 1');
  server.publishTo('room/1', 'new 2');
  await until(() => data().length === 3, 'the new epoch\'s');
  assert.deepEqual(data(), ['old 1', 'new 1', 'new 2']);
  assert.deepEqual(told[1], { channel: 'room/1', recovered: false, wasRecovering: true, position: { offset: 0, epoch: fresh.epoch } });
});

test('own emits: the ack tells their offset, so they are neither a gap nor replayed after a reconnect', LIMIT, async () => {
  const server = await fake();
  const { client, told, data } = subscriber(server, 'room/1', { gapMs: 5_000 });
  await until(() => told.length === 1, 'subscribed');
  assert.equal(client.emit('room/1', 'mine'), true);
  await until(() => server.sequence('room/1').top === 1, 'emitted');
  server.publishTo('room/1', 'theirs');
  await until(() => data().length === 1, 'the other one, without waiting for a gap');
  assert.equal(sent(server, 'history').length, 0);
  const emit = sent(server, 'emit')[0];
  assert.equal(typeof emit.ref, 'string', 'emits on a positioned channel are acked');
  server.open()[0].socket.terminate();
  await until(() => client.state === 'open' && told.length === 2, 'recovered');
  client.emit('room/1', 'mine again');
  server.publishTo('room/1', 'theirs again');
  await until(() => data().length === 2, 'the next');
  assert.deepEqual(data(), ['theirs', 'theirs again']);
});

test('a pattern subscription resubscribes without since', LIMIT, async () => {
  const server = await fake();
  const { client, told } = subscriber(server, 'room/*');
  await until(() => told.length === 1, 'subscribed');
  server.open()[0].socket.terminate();
  await until(() => told.length === 2, 'subscribed again');
  assert.ok(sent(server, 'subscribe').every((f) => f.since === undefined));
  assert.deepEqual(told.map((c) => [c.recovered, c.wasRecovering]), [[false, false], [false, false]]);
  client.close();
});

test('subscription.history({limit: 2}) gives the two latest, older first', LIMIT, async () => {
  const server = await fake();
  for (const n of range(1, 5)) server.publishTo('room/1', n);
  const { subscription } = subscriber(server, 'room/1');
  const page = await subscription.history({ limit: 2 });
  assert.deepEqual(page.publications.map((p) => [p.offset, p.data]), [[4, 4], [5, 5]]);
  assert.equal(page.offset, 5);
  assert.equal(page.more, true);
  const since = await subscription.history({ since: { offset: 3, epoch: page.epoch } });
  assert.deepEqual(since.publications.map((p) => p.data), [4, 5]);
  assert.equal(since.more, false);
  const gone = await subscription.history({ since: { offset: 3, epoch: 'other' } });
  assert.deepEqual([gone.recovered, gone.publications], [false, []]);
});
