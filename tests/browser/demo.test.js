// The demo end to end, as a person would use it: sumu-local + moto + the demo back end + presence
// + pusher, two people in two headless Chromium windows. alice and bob sign in, see each other
// online, exchange UNICAST, MULTICAST and BROADCAST messages through both `publish` and `send`;
// alice joins rooms A and B, bob joins A only, and they talk in the rooms by `emit` and through
// the back end (`send`, `publish`): nothing said in B reaches bob, everything said in A reaches
// both, and once bob has left A nothing more from A reaches him. Each page shows exactly the
// messages meant for it; alice reloads her page, joins A again and sees what was said in A
// (the room's history); each room's member list shows who is in it, and bob closes his window and
// alice sees him go offline and leave room A. Screenshots and logs go to the artifacts directory (lib/stack.js: outside the
// tree); the two windows replace docs/demo.png only when SUMU_REFRESH_DEMO_PNG=1 asks for it.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startStack, artifact, ensureDir, REPO } from './lib/stack.js';
import {
  launchChromium, openDemo, signIn, waitForState, waitForOnline, waitForChat, chatMessages,
  sendChat, joinRoom, leaveRoom, roomStates, waitForMembers, WAIT_MS,
} from './lib/browser.js';

const ROUTES = ['publish', 'send'];
/** A room message goes by `emit` (straight to the channel) or through the demo back end. */
const ROOM_ROUTES = ['emit', 'send', 'publish'];
let stack;
let browser;
const people = {};

/** The messages each page must show, and only those, once everything was sent. */
const expected = { alice: [], bob: [] };
/** Everything said in each room, in order: what its history holds. */
const said = {};

after(async () => {
  for (const person of Object.values(people)) {
    for (const problem of person.problems) console.error(`${person.name}: ${problem}`);
  }
  await browser?.close();
  await stack?.stop();
});

/**
 * A step of the story. Steps run in order and build on each other: once one fails, the rest
 * are skipped (reported as such) instead of failing with consequential errors.
 */
let broken = null;
function step(name, body) {
  test(name, { timeout: 180_000 }, async (t) => {
    if (broken) {
      t.skip(`needs "${broken}"`);
      return;
    }
    try {
      await body();
    } catch (error) {
      broken = name;
      // What each window showed when it went wrong, and where the stack's logs are.
      for (const person of Object.values(people)) {
        await person.page.screenshot({ path: artifact(`failed-${person.name}.png`) }).catch(() => {});
      }
      if (stack) error.message += `\n(screenshots and sumu-local's log: ${stack.logPath.replace(/[^/]*$/, '')})`;
      throw error;
    }
  });
}

describe('the demo, in two browser windows', { concurrency: 1 }, () => {
  step('sumu-local starts with moto and serves the demo page', async () => {
    stack = await startStack();
    browser = await launchChromium();
  });

  step('alice and bob sign in and see each other online', async () => {
    // Keep-alive every 2 s, so the test also sees ping → pong through the real stack.
    const url = `${stack.baseUrl}/demo/?stage=${encodeURIComponent(stack.stage)}&ping_ms=2000`;
    for (const name of ['alice', 'bob']) {
      people[name] = { name, ...(await openDemo(browser, url)) };
      await signIn(people[name].page, name);
      await waitForState(people[name].page, 'open');
    }
    // alice learns about bob from a presence event, bob about alice from who_is_online.
    await waitForOnline(people.alice.page, ['alice', 'bob']);
    await waitForOnline(people.bob.page, ['alice', 'bob']);
  });

  step('keep-alive pings are answered with pongs', async () => {
    await people.alice.page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid=log] [data-direction=in] .frame')]
        .some((node) => JSON.parse(node.textContent).type === 'pong'),
      null,
      { timeout: WAIT_MS },
    );
  });

  for (const route of ROUTES) {
    step(`UNICAST via ${route} echoes to the sender only`, async () => {
      const text = `unicast via ${route} from alice`;
      await sendChat(people.alice.page, { mode: 'unicast', route, text });
      expected.alice.push({ from: 'alice', mode: 'unicast', route, text });
      assert.deepEqual(await waitForChat(people.alice.page, text), { from: 'alice', mode: 'unicast', route, text });
    });

    step(`MULTICAST via ${route} reaches the picked users and the sender`, async () => {
      const text = `multicast via ${route} from bob to alice`;
      await sendChat(people.bob.page, { mode: 'multicast', route, text, to: ['alice'] });
      const message = { from: 'bob', mode: 'multicast', route, text };
      expected.alice.push(message);
      expected.bob.push(message);
      assert.deepEqual(await waitForChat(people.alice.page, text), message);
      assert.deepEqual(await waitForChat(people.bob.page, text), message);
    });

    step(`BROADCAST via ${route} reaches everyone but the sender`, async () => {
      const text = `broadcast via ${route} from alice`;
      await sendChat(people.alice.page, { mode: 'broadcast', route, text });
      const message = { from: 'alice', mode: 'broadcast', route, text };
      expected.bob.push(message);
      assert.deepEqual(await waitForChat(people.bob.page, text), message);
    });
  }

  step('alice joins rooms A and B, bob joins room A only', async () => {
    // joinRoom waits for the gateway's `subscribed`: from then on the subscription is stored.
    await joinRoom(people.alice.page, 'A');
    await joinRoom(people.alice.page, 'B');
    await joinRoom(people.bob.page, 'A');
    assert.deepEqual(await roomStates(people.alice.page), { lobby: 'left', random: 'left', A: 'joined', B: 'joined' });
    assert.deepEqual(await roomStates(people.bob.page), { lobby: 'left', random: 'left', A: 'joined' });
  });

  step('both see each other in room A\'s member list; alice is alone in B', async () => {
    // bob's list comes from his presence() answer, alice's from bob's join frame.
    await waitForMembers(people.alice.page, 'A', ['alice', 'bob']);
    await waitForMembers(people.bob.page, 'A', ['alice', 'bob']);
    await waitForMembers(people.alice.page, 'B', ['alice']);
  });

  /** Sends a room message and records who must get it: the room's members, not an emit's sender. */
  async function sayInRoom(sender, room, route, text, members) {
    await sendChat(people[sender].page, { mode: 'room', room, route, text });
    const message = { from: sender, mode: 'room', room, route, text };
    (said[room] ??= []).push(message);
    const recipients = members.filter((member) => route !== 'emit' || member !== sender);
    for (const name of recipients) expected[name].push(message);
    for (const name of recipients) assert.deepEqual(await waitForChat(people[name].page, text), message);
    return recipients;
  }

  for (const route of ROOM_ROUTES) {
    step(`ROOM B via ${route} reaches B's members only, never bob`, async () => {
      // By emit, alice is B's only member and an emit is not delivered back to its sender, so
      // it reaches nobody; the final step proves that bob did not get it either.
      const recipients = await sayInRoom('alice', 'B', route, `room B via ${route} from alice`, ['alice']);
      assert.deepEqual(recipients, route === 'emit' ? [] : ['alice']);
    });

    step(`ROOM A via ${route} reaches both members of A`, async () => {
      await sayInRoom('alice', 'A', route, `room A via ${route} from alice`, ['alice', 'bob']);
      await sayInRoom('bob', 'A', route, `room A via ${route} from bob`, ['alice', 'bob']);
    });
  }

  step('bob leaves room A and gets nothing more from it', async () => {
    // leaveRoom waits for the gateway's `unsubscribed`: the subscription is gone from then on.
    await leaveRoom(people.bob.page, 'A');
    for (const route of ROOM_ROUTES) {
      await sayInRoom('alice', 'A', route, `room A via ${route} from alice after bob left`, ['alice']);
    }
    // bob may still talk in A (his token grants publish on room/*): alice, in A, gets it.
    await sayInRoom('bob', 'A', 'emit', 'room A via emit from bob after he left', ['alice']);
    assert.deepEqual(await roomStates(people.bob.page), { lobby: 'left', random: 'left', A: 'left' });
    // His leave frame took him off alice's list.
    await waitForMembers(people.alice.page, 'A', ['alice']);
  });

  step('each window shows exactly the messages meant for it, and nothing else', async () => {
    // A last message to each person, sent after all the others: once it has arrived, a stray
    // delivery of an earlier message would most likely have arrived too (queues do not order
    // strictly, so this narrows the window; it cannot close it).
    await sendChat(people.alice.page, { mode: 'unicast', route: 'send', text: 'last to alice' });
    await sendChat(people.bob.page, { mode: 'unicast', route: 'publish', text: 'last to bob' });
    expected.alice.push({ from: 'alice', mode: 'unicast', route: 'send', text: 'last to alice' });
    expected.bob.push({ from: 'bob', mode: 'unicast', route: 'publish', text: 'last to bob' });
    await waitForChat(people.alice.page, 'last to alice');
    await waitForChat(people.bob.page, 'last to bob');
    const byText = (a, b) => a.text.localeCompare(b.text);
    for (const name of ['alice', 'bob']) {
      const shown = await chatMessages(people[name].page);
      assert.deepEqual([...shown].sort(byText), [...expected[name]].sort(byText), `${name}'s window`);
    }

    await people.alice.page.screenshot({ path: artifact('alice.png') });
    await people.bob.page.screenshot({ path: artifact('bob.png') });
    const outputs = [artifact('two-windows.png')];
    if (process.env.SUMU_REFRESH_DEMO_PNG === '1') outputs.push(ensureDir(join(REPO, 'docs/demo.png')));
    await twoWindowsScreenshot([artifact('alice.png'), artifact('bob.png')], outputs);
  });

  step('alice reloads her page and joins room A again: it shows what was said in A', async () => {
    await people.alice.page.reload();
    await signIn(people.alice.page, 'alice');
    await waitForState(people.alice.page, 'open');
    await joinRoom(people.alice.page, 'A');
    // Her own emits too: the room's history holds every publication, whoever sent it.
    await waitForChat(people.alice.page, said.A.at(-1).text);
    assert.deepEqual(await chatMessages(people.alice.page), said.A);
  });

  step('bob joins room A again: alice and bob see each other in its member list', async () => {
    await joinRoom(people.bob.page, 'A');
    await waitForMembers(people.bob.page, 'A', ['alice', 'bob']);
    await waitForMembers(people.alice.page, 'A', ['alice', 'bob']);
  });

  step('bob closes his window: alice sees him go offline and leave room A', async () => {
    await people.bob.context.close();
    await waitForOnline(people.alice.page, ['alice']);
    // The connection's end removes its subscription, and with it bob from A: a leave frame.
    await waitForMembers(people.alice.page, 'A', ['alice']);
    await people.alice.page.screenshot({ path: artifact('alice-after-bob-left.png') });
    assert.deepEqual(people.alice.problems, [], 'no script errors in alice\'s window');
    assert.deepEqual(people.bob.problems, [], 'no script errors in bob\'s window');
  });
});

/** Puts two screenshots side by side on one page and saves that page to every path in `outputs`. */
async function twoWindowsScreenshot(inputs, outputs) {
  const [left, right] = await Promise.all(inputs.map(async (path) => (await readFile(path)).toString('base64')));
  const page = await browser.newPage({ viewport: { width: 2240, height: 760 } });
  await page.setContent(`<body style="margin:0;background:#8c959f;display:flex;gap:20px;padding:20px">
    <img style="box-shadow:0 2px 12px #0006" src="data:image/png;base64,${left}">
    <img style="box-shadow:0 2px 12px #0006" src="data:image/png;base64,${right}"></body>`);
  await page.waitForFunction(() => [...document.images].every((image) => image.complete));
  for (const path of outputs) await page.screenshot({ path, fullPage: true });
  await page.close();
}
