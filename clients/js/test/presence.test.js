// Channel presence in the client, against a fake gateway that tracks members like the presence
// Lambda (lib/fake-sumu.js, `joinLeave`): `subscription.presence()` follows `more` page after
// page, refusals reject it, `join`/`leave` frames reach every covering handle as events, a
// `too_many_members` refusal fails the subscribe, and the README's live member list stays right.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SumuClient } from '../dist/index.js';
import { startFakeSumu, until } from './lib/fake-sumu.js';

const LIMIT = { timeout: 60_000 };
const made = [];
afterEach(() => { for (const client of made.splice(0)) client.close(); });

function clientFor(server, user, options = {}) {
  const events = { presence: [], error: [] };
  const client = new SumuClient({ url: server.url, token: async () => user, WebSocket, backoff: { baseMs: 20, maxMs: 100 }, ...options });
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

/** `user` connected and subscribed to `channel` (one more connection of theirs). */
async function member(server, user, channel) {
  const { client } = clientFor(server, user);
  const handle = client.subscribe(channel);
  client.connect();
  await handle.ready;
  return { client, handle };
}

/** A handle's join/leave events, in order, as [type, channel, userId]. */
function record(handle) {
  const seen = [];
  handle.on('join', (event) => seen.push(['join', event.channel, event.userId]));
  handle.on('leave', (event) => seen.push(['leave', event.channel, event.userId]));
  return seen;
}

test('presence() gives every member, following `more` with `after` until the last page', LIMIT, async () => {
  await withServer({ joinLeave: ['room/*'], membersPage: 2 }, async (server) => {
    const { client, events } = clientFor(server, 'alice');
    const room = client.subscribe('room/1');
    // Asked before connecting: sent once connected.
    const early = room.presence();
    client.connect();
    await room.ready;
    assert.deepEqual(await early, { members: [{ userId: 'alice', connections: 1 }] });
    for (const user of ['erin', 'bob', 'dave', 'carol']) await member(server, user, 'room/1');
    await member(server, 'bob', 'room/1');
    const { members } = await room.presence();
    assert.deepEqual(members, [
      { userId: 'alice', connections: 1 },
      { userId: 'bob', connections: 2 },
      { userId: 'carol', connections: 1 },
      { userId: 'dave', connections: 1 },
      { userId: 'erin', connections: 1 },
    ]);
    const asked = server.open().find((c) => c.user === 'alice').received
      .filter((f) => f.action === 'presence').slice(1).map(({ ref, ...frame }) => frame);
    assert.deepEqual(asked, [
      { action: 'presence', channel: 'room/1' },
      { action: 'presence', channel: 'room/1', after: 'bob' },
      { action: 'presence', channel: 'room/1', after: 'dave' },
    ]);
    assert.deepEqual(events.presence, [], 'a channel\'s members are not a users presence answer');
    assert.deepEqual(events.error, []);
  });
});

test('presence() is refused like the other requests: forbidden, invalid_channel for a pattern, presence_unavailable', LIMIT, async () => {
  await withServer({ joinLeave: ['room/*'], forbidden: ['secret/1'] }, async (server) => {
    const { client, events } = clientFor(server, 'alice');
    const pattern = client.subscribe('room/*');
    client.connect();
    await pattern.ready;
    const secret = client.subscribe('secret/1');
    await assert.rejects(secret.presence(), (error) => error.code === 'refused' && error.reason === 'forbidden');
    await assert.rejects(pattern.presence(), (error) => error.name === 'SumuRequestError' && error.code === 'refused' && error.reason === 'invalid_channel');
    server.presenceUnavailable(true);
    const room = client.subscribe('room/1');
    await assert.rejects(room.presence(), (error) => error.code === 'refused' && error.reason === 'presence_unavailable');
    assert.ok(!events.error.some((error) => error.code === 'server_error'), 'a refused question is its promise\'s business');
  });
});

test('join and leave reach every handle whose channel or pattern covers the room, as { channel, userId }', LIMIT, async () => {
  await withServer({ joinLeave: ['room/*'] }, async (server) => {
    const { client, events } = clientFor(server, 'alice');
    const exact = client.subscribe('room/1');
    const wild = client.subscribe('room/*');
    const other = client.subscribe('room/2');
    client.connect();
    await Promise.all([exact.ready, wild.ready, other.ready]);
    const [onExact, onWild, onOther] = [exact, wild, other].map(record);
    // bob's first connection joins, his second does not; closing one leaves him in; the last leaves.
    const bob1 = await member(server, 'bob', 'room/1');
    const bob2 = await member(server, 'bob', 'room/1');
    bob1.client.close();
    await until(() => server.members('room/1').get('bob') === 1, 'bob down to one connection');
    bob2.handle.unsubscribe();
    await until(() => onExact.length === 2, 'bob left');
    assert.deepEqual(onExact, [['join', 'room/1', 'bob'], ['leave', 'room/1', 'bob']]);
    assert.deepEqual(onWild, onExact, 'the pattern handle hears of room/1 too');
    assert.deepEqual(onOther, [], 'room/2 hears nothing of room/1');
    // A join frame without its user is not sumu's: reported, never delivered.
    server.sendTo('room/1', { type: 'join', channel: 'room/1' });
    await until(() => events.error.length === 1, 'the malformed frame reported');
    assert.deepEqual([events.error[0].code, events.error[0].reason], ['server_error', 'invalid_frame']);
    // alice's own subscription was what made her a member: she leaves with it, and the
    // unsubscribed handle hears nothing more.
    exact.unsubscribe();
    await member(server, 'carol', 'room/1');
    await until(() => onWild.length === 4, 'alice left, carol joined');
    assert.deepEqual(onWild.slice(2), [['leave', 'room/1', 'alice'], ['join', 'room/1', 'carol']]);
    assert.equal(onExact.length, 2);
  });
});

test('too_many_members refuses the subscribe for good, like the other final refusals', LIMIT, async () => {
  await withServer({ joinLeave: ['room/*'], maxMembers: 2 }, async (server) => {
    await member(server, 'alice', 'room/1');
    await member(server, 'bob', 'room/1');
    // A member's second connection is no new member: accepted.
    await member(server, 'bob', 'room/1');
    const { client, events } = clientFor(server, 'carol');
    const full = client.subscribe('room/1');
    const lobby = client.subscribe('room/2');
    const errors = [];
    full.on('error', (error) => errors.push(error));
    client.connect();
    await assert.rejects(full.ready, (error) => error.code === 'refused' && error.reason === 'too_many_members');
    assert.equal(full.state, 'failed');
    assert.deepEqual(errors.map((e) => [e.code, e.reason, e.retrying]), [['subscribe_failed', 'too_many_members', false]]);
    assert.deepEqual(events.error.map((e) => [e.code, e.reason, e.channel]), [['subscribe_failed', 'too_many_members', 'room/1']]);
    await lobby.ready;
    // Not asked again after a reconnect.
    const first = server.open().find((c) => c.user === 'carol');
    first.socket.terminate();
    await until(() => server.open().some((c) => c.user === 'carol' && c !== first && c.subscriptions.has('room/2')), 'resubscribed');
    const again = server.open().find((c) => c.user === 'carol' && c !== first);
    assert.deepEqual(again.received.filter((f) => f.action === 'subscribe').map((f) => f.channel), ['room/2']);
  });
});

test('the README\'s live member list: presence() once subscribed, then join/leave; asked again after a reconnect', LIMIT, async () => {
  await withServer({ joinLeave: ['room/*'], membersPage: 2 }, async (server) => {
    const { client } = clientFor(server, 'alice');
    // As clients/js/README.md § Channel presence shows it.
    const room = client.subscribe('room/42');
    const members = new Set();
    let heard = null; // join/leave events while a presence() question is out
    const apply = ({ userId }, joined) => (joined ? members.add(userId) : members.delete(userId));
    room.on('join', (event) => { heard?.push([event, true]); apply(event, true); });
    room.on('leave', (event) => { heard?.push([event, false]); apply(event, false); });
    let asked = 0;
    room.on('subscribed', async () => {
      asked += 1;
      heard = [];
      const { members: list } = await room.presence();
      members.clear();
      for (const { userId } of list) members.add(userId);
      for (const [event, joined] of heard) apply(event, joined);
      heard = null;
    });
    const already = [await member(server, 'bob', 'room/42'), await member(server, 'carol', 'room/42'), await member(server, 'dave', 'room/42')];
    client.connect();
    const truth = () => [...server.members('room/42').keys()].sort();
    const shown = () => [...members].sort();
    await until(() => asked === 1 && shown().join() === truth().join(), 'the first list');
    assert.deepEqual(shown(), ['alice', 'bob', 'carol', 'dave']);
    // Changes while connected arrive as join/leave.
    already[0].client.close();
    const erin = await member(server, 'erin', 'room/42');
    await until(() => shown().join() === 'alice,carol,dave,erin', 'bob left, erin joined');
    // Changes while alice is away are not replayed: the list is asked again after the reconnect.
    server.refuseUpgrades(true);
    server.open().find((c) => c.user === 'alice').socket.terminate();
    await until(() => client.state === 'reconnecting', 'alice away');
    already[1].client.close();
    erin.client.close();
    const frank = member(server, 'frank', 'room/42'); // connects with alice, once upgrades pass again
    server.refuseUpgrades(false);
    await frank;
    await until(() => asked === 2 && heard === null && shown().join() === truth().join(), 'the list after the reconnect');
    assert.deepEqual(shown(), truth());
    assert.ok(!members.has('carol') && !members.has('erin'), `left while alice was away: ${shown()}`);
  });
});
