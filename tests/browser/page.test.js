// The demo page's own logic in real headless Chromium, against a fake gateway that records what
// the page sends and lets the test push frames: sign-in, state display, who-is-online, the
// frames each push mode and route produce, rendering, rooms (grants, join/leave, refusals, the
// frames of a room message, publications, re-subscribing, members), keep-alive, reconnect with backoff,
// and disconnect. Runs without sumu-local (demo.test.js covers the real stack).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startFakeGateway } from './lib/fake-gateway.js';
import {
  launchChromium, openDemo, signIn, waitForState, waitForOnline, waitForChat, chatMessages,
  sendChat, loggedFrames, roomStates, waitForRoom, joinRoom, leaveRoom, roomMembers, waitForMembers, WAIT_MS,
} from './lib/browser.js';

const demoDir = fileURLToPath(new URL('../../local/sumu-local/demo/', import.meta.url));
// Generous per-test limit (Node 18's runner has no --test-timeout flag).
const LIMIT = { timeout: 120_000 };
let browser;
let gateway;

before(async () => {
  browser = await launchChromium();
}, LIMIT);

after(async () => {
  await browser?.close();
});

async function withPage(query, body) {
  gateway = await startFakeGateway({ demoDir });
  const { page, context, problems } = await openDemo(browser, `${gateway.url}${query}`);
  try {
    await body(page);
    assert.deepEqual(problems, [], 'no script errors on the page');
  } finally {
    await context.close();
    await gateway.close();
  }
}

/** Polls `condition` (a function of the gateway) until true. */
async function until(condition, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Sends one of sumu's own frames (a publication, …) to every open connection. */
const pushFrame = (frame) => {
  for (const connection of gateway.open()) connection.socket.send(JSON.stringify(frame));
};
let nextMessage = 0;
/** What a back end pushes: `data` in a `{"type":"message","id","data"}` envelope. */
const push = (data) => {
  nextMessage += 1;
  pushFrame({ type: 'message', id: `m${nextMessage}`, data });
};

/** What the page sent on a connection, without keep-alive pings and without `ref`s. */
const appFrames = (connection) => connection.received.filter((frame) => frame.action !== 'ping').map(({ ref, ...frame }) => frame);

test('signing in fetches a token for the name, connects and asks who is online', LIMIT, async () => {
  await withPage('', async (page) => {
    assert.equal(await page.getByTestId('state').getAttribute('data-state'), 'signed-out');
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    assert.deepEqual(gateway.tokenRequests, ['alice']);
    // The grants the rooms need: join and talk in any room/<name>.
    assert.deepEqual([...gateway.tokenQueries[0]], [['sub', 'alice'], ['subscribe', 'room/*'], ['publish', 'room/*']]);
    assert.equal(gateway.open().length, 1);
    assert.equal(gateway.open()[0].user, 'alice');
    await until(() => appFrames(gateway.open()[0]).length >= 1, 'the who_is_online request');
    assert.deepEqual(appFrames(gateway.open()[0])[0], { action: 'send', message: { type: 'who_is_online' } });
    await waitForOnline(page, ['alice']);
    assert.equal(await page.getByTestId('me').textContent(), 'alice');
  });
});

test('the online list follows the who-is-online answer and presence events', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await until(() => gateway.open()[0] && appFrames(gateway.open()[0]).length >= 1, 'the who_is_online request');
    push({ type: 'online_users', users: [
      { user_id: 'alice', status: 'ONLINE', connections: 1 },
      { user_id: 'bob', status: 'ONLINE', connections: 2 },
      { user_id: 'carol', status: 'ONLINE', connections: 1 },
    ], truncated: false, timestamp: 1 });
    await waitForOnline(page, ['alice', 'bob', 'carol']);
    push({ type: 'presence', users: [{ user_id: 'dave', status: 'ONLINE', connections: 1 }], timestamp: 2 });
    await waitForOnline(page, ['alice', 'bob', 'carol', 'dave']);
    push({ type: 'presence', users: [{ user_id: 'bob', status: 'OFFLINE', connections: 0 }], timestamp: 3, reason: 'disconnected' });
    await waitForOnline(page, ['alice', 'carol', 'dave']);
    // Only other users can be picked for a multicast.
    assert.equal(await page.getByTestId('pick-alice').count(), 0);
    assert.equal(await page.getByTestId('pick-carol').count(), 1);
  });
});

test('a who-is-online answer never undoes a presence event that overtook it', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await until(() => gateway.open()[0] && appFrames(gateway.open()[0]).length >= 1, 'the who_is_online request');
    // After the page asked: dave came, bob left. Then the (older) answer arrives.
    push({ type: 'presence', users: [{ user_id: 'dave', status: 'ONLINE', connections: 1 }], timestamp: 5 });
    push({ type: 'presence', users: [{ user_id: 'bob', status: 'OFFLINE', connections: 0 }], timestamp: 6 });
    push({ type: 'online_users', users: [
      { user_id: 'alice', status: 'ONLINE', connections: 1 },
      { user_id: 'bob', status: 'ONLINE', connections: 1 },
      { user_id: 'carol', status: 'ONLINE', connections: 1 },
    ], truncated: false, timestamp: 4 });
    await waitForOnline(page, ['alice', 'carol', 'dave']);
  });
});

test('each push mode and route sends exactly the documented frame', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    push({ type: 'online_users', users: [
      { user_id: 'alice', connections: 1 }, { user_id: 'bob', connections: 1 }, { user_id: 'carol', connections: 1 },
    ] });
    await waitForOnline(page, ['alice', 'bob', 'carol']);
    const sent = [
      { mode: 'unicast', route: 'publish', text: 'u-pub' },
      { mode: 'unicast', route: 'send', text: 'u-send' },
      { mode: 'multicast', route: 'publish', text: 'm-pub', to: ['bob'] },
      { mode: 'multicast', route: 'send', text: 'm-send', to: ['bob', 'carol'] },
      { mode: 'broadcast', route: 'publish', text: 'b-pub' },
      { mode: 'broadcast', route: 'send', text: 'b-send' },
    ];
    for (const message of sent) await sendChat(page, message);
    const connection = gateway.open()[0];
    await until(() => appFrames(connection).length >= 1 + sent.length, 'six chat frames');
    assert.deepEqual(appFrames(connection).slice(1), [
      { action: 'publish', message: { type: 'chat', mode: 'unicast', text: 'u-pub' } },
      { action: 'send', message: { type: 'chat', mode: 'unicast', text: 'u-send' } },
      { action: 'publish', message: { type: 'chat', mode: 'multicast', text: 'm-pub', to: ['bob'] } },
      { action: 'send', message: { type: 'chat', mode: 'multicast', text: 'm-send', to: ['bob', 'carol'] } },
      { action: 'publish', message: { type: 'chat', mode: 'broadcast', text: 'b-pub' } },
      { action: 'send', message: { type: 'chat', mode: 'broadcast', text: 'b-send' } },
    ]);
    const outgoing = (await loggedFrames(page)).filter((frame) => frame.direction === 'out');
    assert.equal(outgoing.length, 2 + sent.length, 'every frame out is logged (the opening ping too)');
  });
});

test('chat frames are shown with sender, mode and route, and text is never parsed as HTML', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    push({ type: 'chat', from: 'bob', mode: 'multicast', to: ['alice'], text: 'hi alice', route: 'send', timestamp: 1 });
    push({ type: 'chat', from: 'bob', mode: 'broadcast', text: '<img src=x onerror="window.pwned=1">', route: 'publish', timestamp: 2 });
    await waitForChat(page, '<img src=x onerror="window.pwned=1">');
    assert.deepEqual(await chatMessages(page), [
      { from: 'bob', mode: 'multicast', route: 'send', text: 'hi alice' },
      { from: 'bob', mode: 'broadcast', route: 'publish', text: '<img src=x onerror="window.pwned=1">' },
    ]);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    assert.equal(await page.locator('[data-testid=chat] img').count(), 0);
    const incoming = (await loggedFrames(page)).filter((frame) => frame.direction === 'in');
    assert.equal(incoming.length, 3, 'every frame in is logged (the pong too)');
  });
});

test('keep-alive pings go out at the interval given by ping_ms', LIMIT, async () => {
  await withPage('?ping_ms=200', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await until(() => gateway.open()[0].received.filter((f) => f.action === 'ping').length >= 2, 'two pings');
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=log] .frame')]
      .filter((node) => node.textContent.startsWith('{"type":"pong"')).length >= 2, null, { timeout: WAIT_MS });
  });
});

test('a dropped connection is re-established with a fresh token; refused attempts back off and retry', LIMIT, async () => {
  await withPage('?backoff_ms=50', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    gateway.refuseUpgrades(true);
    gateway.open()[0].socket.terminate();
    await waitForState(page, 'reconnecting');
    await until(() => gateway.tokenRequests.length >= 4, 'three refused reconnect attempts');
    gateway.refuseUpgrades(false);
    await waitForState(page, 'open');
    assert.equal(gateway.open().length, 1);
    assert.ok(gateway.tokenRequests.every((sub) => sub === 'alice'));
    // The new connection asks who is online again.
    await until(() => gateway.open()[0].received.some((f) => f.message?.type === 'who_is_online'), 'who_is_online after reconnect');
  });
});

test('disconnect closes the socket and stops reconnecting; connect opens it again', LIMIT, async () => {
  await withPage('?backoff_ms=50', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await page.getByTestId('disconnect').click();
    await waitForState(page, 'disconnected');
    await until(() => gateway.open().length === 0, 'the server to see the close');
    assert.equal(await page.evaluate(() => window.demo.client.state), 'closed', 'the client stopped for good');
    assert.equal(await page.getByTestId('send').isDisabled(), true);
    assert.deepEqual(await page.$$eval('[data-testid=online-user]', (items) => items.length), 0);
    await page.getByTestId('connect').click();
    await waitForState(page, 'open');
    assert.equal(gateway.open().length, 1);
  });
});

/** The frames a connection received after the first `skip`, without keep-alive pings and refs. */
const framesAfter = (connection, skip) => appFrames(connection).slice(skip);

test('joining and leaving rooms sends subscribe and unsubscribe, and each room shows its state', LIMIT, async () => {
  await withPage('', async (page) => {
    // The starting rooms are listed, none joined, and cannot be joined before signing in.
    await waitForRoom(page, 'random', 'left');
    assert.deepEqual(await roomStates(page), { lobby: 'left', random: 'left' });
    assert.equal(await page.getByTestId('room-toggle-lobby').isDisabled(), true);
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    const connection = gateway.open()[0];
    await until(() => appFrames(connection).length >= 1, 'the who_is_online request');
    await joinRoom(page, 'A');       // added by name
    await joinRoom(page, 'lobby');   // from the list
    assert.deepEqual(await roomStates(page), { lobby: 'joined', random: 'left', A: 'joined' });
    await leaveRoom(page, 'A');
    assert.deepEqual(await roomStates(page), { lobby: 'joined', random: 'left', A: 'left' });
    // The first join of a room also asks for its recent messages, and every `subscribed` for its members.
    assert.deepEqual(framesAfter(connection, 1), [
      { action: 'subscribe', channel: 'room/A' },
      { action: 'history', channel: 'room/A', limit: 50 },
      { action: 'presence', channel: 'room/A' },
      { action: 'subscribe', channel: 'room/lobby' },
      { action: 'history', channel: 'room/lobby', limit: 50 },
      { action: 'presence', channel: 'room/lobby' },
      { action: 'unsubscribe', channel: 'room/A' },
    ]);
    // A name that is not one channel segment is refused by the page; nothing is sent.
    for (const bad of ['a/b', '*', 'huone ä']) {
      await page.getByTestId('room-name').fill(bad);
      await page.getByTestId('add-room-submit').click();
      assert.equal(await page.getByTestId('room-problem').isVisible(), true, bad);
    }
    assert.deepEqual(Object.keys(await roomStates(page)), ['lobby', 'random', 'A']);
    assert.equal(framesAfter(connection, 1).length, 7);
  });
});

test('a refused subscribe shows the reason, and the room is not joined again on reconnect', LIMIT, async () => {
  await withPage('?backoff_ms=50&rooms=secret', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    gateway.refuseSubscribe('room/secret', 'forbidden');
    await page.getByTestId('room-toggle-secret').click();
    await waitForRoom(page, 'secret', 'refused');
    assert.match(await page.locator('[data-testid=room][data-room=secret] .status').textContent(), /refused: forbidden/);
    assert.equal(await page.getByTestId('room-toggle-secret').textContent(), 'Join');
    gateway.open()[0].socket.terminate();
    await waitForState(page, 'reconnecting');
    await waitForState(page, 'open');
    await until(() => gateway.open()[0]?.received.some((f) => f.message?.type === 'who_is_online'), 'who_is_online after reconnect');
    assert.equal(gateway.open()[0].received.some((f) => f.action === 'subscribe'), false, 'no subscribe re-sent');
  });
});

test('joined rooms are subscribed again after a reconnect; left ones are not', LIMIT, async () => {
  await withPage('?backoff_ms=50', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await joinRoom(page, 'A');
    await joinRoom(page, 'B');
    await leaveRoom(page, 'B');
    gateway.open()[0].socket.terminate();
    await waitForRoom(page, 'A', 'joining');
    await waitForState(page, 'open');
    await waitForRoom(page, 'A', 'joined');
    // From where it stopped: offset 0 of the room's epoch (nothing was said in it yet).
    assert.deepEqual(appFrames(gateway.open()[0]).filter((f) => f.action === 'subscribe' || f.action === 'unsubscribe'),
      [{ action: 'subscribe', channel: 'room/A', since: { offset: 0, epoch: 'fake-epoch' } }]);
    assert.equal((await roomStates(page)).B, 'left');
  });
});

test('a room message sends exactly the documented frame by emit, publish and send', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    const connection = gateway.open()[0];
    await until(() => appFrames(connection).length >= 1, 'the who_is_online request');
    // emit carries a channel: it is offered for ROOM only.
    assert.equal(await page.locator('[data-testid=route] option[value=emit]').isDisabled(), true);
    assert.equal(await page.getByTestId('compose-room').isVisible(), false);
    await joinRoom(page, 'A');
    await sendChat(page, { mode: 'room', room: 'A', route: 'emit', text: 'r-emit' });
    await sendChat(page, { mode: 'room', room: 'A', route: 'publish', text: 'r-pub' });
    // Talking in a room needs the publish grant, not membership: any listed room can be picked.
    await sendChat(page, { mode: 'room', room: 'lobby', route: 'send', text: 'r-send' });
    await until(() => framesAfter(connection, 1).length >= 6, 'three room frames');
    assert.deepEqual(framesAfter(connection, 1), [
      { action: 'subscribe', channel: 'room/A' },
      { action: 'history', channel: 'room/A', limit: 50 },
      { action: 'presence', channel: 'room/A' },
      { action: 'emit', channel: 'room/A', data: { type: 'chat', text: 'r-emit' } },
      { action: 'publish', message: { type: 'chat', mode: 'room', text: 'r-pub', room: 'A' } },
      { action: 'send', message: { type: 'chat', mode: 'room', text: 'r-send', room: 'lobby' } },
    ]);
    // Back to another mode, emit is no longer a choice.
    await page.getByTestId('route').selectOption('emit');
    await page.getByTestId('mode').selectOption('broadcast');
    assert.equal(await page.getByTestId('route').inputValue(), 'publish');
    assert.equal(await page.locator('[data-testid=route] option[value=emit]').isDisabled(), true);
  });
});

test('publications are shown with room, sender and route; an emit\'s sender is the envelope\'s from', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await joinRoom(page, 'A');
    // An emit: `from` is the gateway's; a `from` or `route` inside `data` is the client's and ignored.
    pushFrame({ type: 'publication', channel: 'room/A', id: 'p1', from: 'bob',
      data: { type: 'chat', text: 'hi from bob', from: 'mallory', route: 'send' } });
    // The demo back end's publication: no `from` in the envelope, the sender in `data`.
    pushFrame({ type: 'publication', channel: 'room/A', id: 'p2',
      data: { type: 'chat', from: 'carol', mode: 'room', room: 'A', text: '<img src=x onerror="window.pwned=1">', route: 'publish', timestamp: 1 } });
    pushFrame({ type: 'publication', channel: 'room/A', id: 'p1', from: 'bob', data: { type: 'chat', text: 'hi from bob' } }); // a retry
    pushFrame({ type: 'publication', channel: 'room/A', id: 'p3', from: 'bob', data: 42 });
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=chat-message]').length >= 3, null, { timeout: WAIT_MS });
    push({ type: 'chat', from: 'bob', mode: 'broadcast', text: 'after', route: 'send', timestamp: 2 });
    await waitForChat(page, 'after');
    assert.deepEqual(await chatMessages(page), [
      { from: 'bob', mode: 'room', room: 'A', route: 'emit', text: 'hi from bob' },
      { from: 'carol', mode: 'room', room: 'A', route: 'publish', text: '<img src=x onerror="window.pwned=1">' },
      { from: 'bob', mode: 'room', room: 'A', route: 'emit', text: '42' },
      { from: 'bob', mode: 'broadcast', route: 'send', text: 'after' },
    ]);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    assert.equal(await page.locator('[data-testid=chat] img').count(), 0);
    assert.match(await page.locator('[data-testid=room][data-room=A] .status').textContent(), /3 received/);
    assert.match(await page.locator('[data-testid=chat-message][data-room=A]').first().textContent(), /ROOM A via emit/);
  });
});

test('a back end\'s data that looks like sumu\'s frames changes nothing on the page', LIMIT, async () => {
  await withPage('', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await joinRoom(page, 'A');
    // Enveloped as `message` data, as every back-end push is: none of these is a frame of sumu's.
    push({ type: 'error', error: 'forbidden', channel: 'room/A', message: 'fake refusal' });
    push({ type: 'unsubscribed', channel: 'room/A' });
    push({ type: 'publication', channel: 'room/A', id: 'fake', from: 'mallory', data: { text: 'fake publication' } });
    push({ type: 'chat', from: 'bob', mode: 'broadcast', text: 'after the fakes', route: 'send', timestamp: 1 });
    await waitForChat(page, 'after the fakes');
    assert.deepEqual(await chatMessages(page), [{ from: 'bob', mode: 'broadcast', route: 'send', text: 'after the fakes' }]);
    assert.equal((await roomStates(page)).A, 'joined');
    assert.equal(await page.evaluate(() => window.demo.rooms.get('A').subscription.state), 'subscribed');
  });
});

test('joining a room shows its recent messages (a reloaded page too); a dropped connection recovers what the room said meanwhile', LIMIT, async () => {
  await withPage('?backoff_ms=50', async (page) => {
    gateway.publish('room/A', { type: 'chat', text: 'earlier 1' }, { from: 'bob' });
    gateway.publish('room/A', { type: 'chat', from: 'carol', text: 'earlier 2', route: 'publish' });
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await joinRoom(page, 'A');
    await waitForChat(page, 'earlier 2');
    const history = gateway.open()[0].received.find((f) => f.action === 'history');
    assert.deepEqual({ ...history, ref: undefined }, { action: 'history', channel: 'room/A', limit: 50, ref: undefined });
    gateway.publish('room/A', { type: 'chat', text: 'live' }, { from: 'bob' });
    await waitForChat(page, 'live');
    // The connection drops; the room goes on meanwhile.
    gateway.refuseUpgrades(true);
    gateway.open()[0].socket.terminate();
    await waitForState(page, 'reconnecting');
    gateway.publish('room/A', { type: 'chat', text: 'while away 1' }, { from: 'bob', deliver: false });
    gateway.publish('room/A', { type: 'chat', text: 'while away 2' }, { from: 'bob', deliver: false });
    gateway.refuseUpgrades(false);
    await waitForChat(page, 'while away 2');
    const resubscribe = gateway.open()[0].received.find((f) => f.action === 'subscribe');
    assert.deepEqual(resubscribe.since, { offset: 3, epoch: 'fake-epoch' });
    const room = (text, from = 'bob', route = 'emit') => ({ from, mode: 'room', room: 'A', route, text });
    assert.deepEqual(await chatMessages(page), [
      room('earlier 1'), room('earlier 2', 'carol', 'publish'), room('live'), room('while away 1'), room('while away 2'),
    ]);
    assert.equal(gateway.open()[0].received.filter((f) => f.action === 'history').length, 0, 'history is loaded once, on the first join');
    // A reloaded page starts with nothing and loads the room's history again.
    await page.reload();
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await joinRoom(page, 'A');
    await waitForChat(page, 'while away 2');
    assert.deepEqual(await chatMessages(page), [
      room('earlier 1'), room('earlier 2', 'carol', 'publish'), room('live'), room('while away 1'), room('while away 2'),
    ]);
  });
});

test('a room whose history no longer holds what was missed says so', LIMIT, async () => {
  await withPage('?backoff_ms=50', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    await joinRoom(page, 'A');
    gateway.refuseUpgrades(true);
    gateway.open()[0].socket.terminate();
    await waitForState(page, 'reconnecting');
    // The page stopped at offset 0 of this epoch; the room's sequence starts over in another.
    gateway.resetRoom('room/A');
    gateway.refuseUpgrades(false);
    await page.waitForFunction(() => /some messages missed/.test(document.querySelector('[data-testid=room][data-room=A] .status').textContent), null, { timeout: WAIT_MS });
  });
});

test('each joined room shows its members: asked on joining and after a reconnect, kept by join and leave', LIMIT, async () => {
  await withPage('?backoff_ms=50', async (page) => {
    await signIn(page, 'alice');
    await waitForState(page, 'open');
    const first = gateway.open()[0];
    await joinRoom(page, 'A');
    await waitForMembers(page, 'A', ['alice']);
    assert.equal(await page.locator('[data-testid=room][data-room=A] [data-testid=room-member][data-user=alice]').textContent(), 'alice (you)');
    pushFrame({ type: 'join', channel: 'room/A', user_id: 'bob' });
    await waitForMembers(page, 'A', ['alice', 'bob']);
    // Twice the same join (a second tab, or two covering subscriptions) is one member.
    pushFrame({ type: 'join', channel: 'room/A', user_id: 'bob' });
    pushFrame({ type: 'join', channel: 'room/B', user_id: 'dave' });
    pushFrame({ type: 'leave', channel: 'room/A', user_id: 'bob' });
    await waitForMembers(page, 'A', ['alice']);
    assert.deepEqual(await roomMembers(page, 'B'), [], 'a room the page is not in shows nobody');
    // A reconnect asks again: what changed while away shows.
    gateway.refuseUpgrades(true);
    first.socket.terminate();
    await waitForState(page, 'reconnecting');
    assert.deepEqual(await roomMembers(page, 'A'), [], 'not connected: the list is not known');
    gateway.refuseUpgrades(false);
    await waitForState(page, 'open');
    await waitForMembers(page, 'A', ['alice']);
    const presence = gateway.open()[0].received.filter((f) => f.action === 'presence').map(({ ref, ...f }) => f);
    assert.deepEqual(presence, [{ action: 'presence', channel: 'room/A' }]);
    // Leaving the room empties its list.
    await leaveRoom(page, 'A');
    assert.deepEqual(await roomMembers(page, 'A'), []);
  });
});

test('two pages in one room see each other in its member list; a closed page leaves it', LIMIT, async () => {
  await withPage('', async (page) => {
    const other = await openDemo(browser, gateway.url);
    try {
      await signIn(page, 'alice');
      await waitForState(page, 'open');
      await joinRoom(page, 'A');
      await signIn(other.page, 'bob');
      await waitForState(other.page, 'open');
      await joinRoom(other.page, 'A');
      await waitForMembers(other.page, 'A', ['alice', 'bob']); // from presence()
      await waitForMembers(page, 'A', ['alice', 'bob']);       // from bob's join
      await other.context.close();
      await waitForMembers(page, 'A', ['alice']);
      assert.deepEqual(other.problems, []);
    } finally {
      await other.context.close().catch(() => {});
    }
  });
});
