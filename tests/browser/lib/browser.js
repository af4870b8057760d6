// Launches Debian's Chromium headless through playwright-core (no browser download), and drives
// the demo page by its data-testid attributes.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.SUMU_CHROMIUM || '/usr/bin/chromium';

/** Generous: a cold sumu-local + moto on a busy 2-core machine can take seconds per hop. */
export const WAIT_MS = Number(process.env.SUMU_BROWSER_WAIT_MS) || 30_000;

export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/lib/browser.sh ensure_chromium) or set SUMU_CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** One person: a browser context of their own (no shared storage) with one demo page. */
export async function openDemo(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A refused WebSocket upgrade is logged by Chromium itself; the page handles it.
    if (message.type() === 'error' && !message.text().startsWith('WebSocket connection')) problems.push(`console error: ${message.text()}`);
  });
  await page.goto(url);
  return { page, context, problems };
}

export async function signIn(page, name) {
  await page.getByTestId('name').fill(name);
  await page.getByTestId('sign-in').click();
}

/** Waits until the connection state badge shows `state` (e.g. "open"). */
export async function waitForState(page, state, timeout = WAIT_MS) {
  await page.waitForFunction(
    (expected) => document.querySelector('[data-testid=state]')?.dataset.state === expected,
    state,
    { timeout },
  ).catch(async (error) => {
    const shown = await page.getByTestId('state').textContent().catch(() => '?');
    throw new Error(`connection state never became "${state}" (shows "${shown}"): ${error.message}`);
  });
}

export async function onlineUsers(page) {
  return page.$$eval('[data-testid=online-user]', (items) => items.map((item) => item.dataset.user));
}

/** Waits until the online list is exactly `users` (any order). */
export async function waitForOnline(page, users, timeout = WAIT_MS) {
  const want = [...users].sort();
  await page.waitForFunction(
    (expected) => JSON.stringify([...document.querySelectorAll('[data-testid=online-user]')]
      .map((item) => item.dataset.user).sort()) === JSON.stringify(expected),
    want,
    { timeout },
  ).catch(async (error) => {
    const who = await page.getByTestId('me').textContent().catch(() => '?');
    throw new Error(`${who}'s online list never became ${JSON.stringify(want)} (shows ${JSON.stringify(await onlineUsers(page))}): ${error.message}`);
  });
}

/** Every chat message the page shows: {from, mode, route, text}, plus `room` for a room message. */
export async function chatMessages(page) {
  return page.$$eval('[data-testid=chat-message]', (items) => items.map((item) => ({
    from: item.dataset.from,
    mode: item.dataset.mode,
    ...(item.dataset.room === undefined ? {} : { room: item.dataset.room }),
    route: item.dataset.route,
    text: item.querySelector('[data-testid=chat-text]').textContent,
  })));
}

/** Waits until a chat message with this text is shown, and returns it. */
export async function waitForChat(page, text, timeout = WAIT_MS) {
  await page.waitForFunction(
    (wanted) => [...document.querySelectorAll('[data-testid=chat-text]')].some((node) => node.textContent === wanted),
    text,
    { timeout },
  ).catch(async (error) => {
    const shown = (await chatMessages(page)).map((message) => message.text);
    const who = await page.getByTestId('me').textContent().catch(() => '?');
    throw new Error(`message "${text}" never arrived in ${who}'s window (it shows ${JSON.stringify(shown)}): ${error.message}`);
  });
  return (await chatMessages(page)).find((message) => message.text === text);
}

/**
 * Sends a chat message from the compose form; `to` ticks users in the online list, `room` picks
 * the room of a ROOM message (`route` 'emit', 'publish' or 'send').
 */
export async function sendChat(page, { mode, route, text, to = [], room }) {
  for (const user of await onlineUsers(page)) {
    const box = page.getByTestId(`pick-${user}`);
    if (await box.count()) await box.setChecked(to.includes(user));
  }
  await page.getByTestId('mode').selectOption(mode);
  if (room !== undefined) await page.getByTestId('compose-room').selectOption(room);
  await page.getByTestId('route').selectOption(route);
  await page.getByTestId('text').fill(text);
  await page.getByTestId('send').click();
}

/** The frame log: [{direction: 'in'|'out'|'event', text}]. */
export async function loggedFrames(page) {
  return page.$$eval('[data-testid=log] li', (items) => items.map((item) => ({
    direction: item.dataset.direction,
    text: item.querySelector('.frame').textContent,
  })));
}

/** Every room in the room list: {room: state} ('left', 'joining', 'joined', 'leaving', 'refused'). */
export async function roomStates(page) {
  return Object.fromEntries(await page.$$eval('[data-testid=room]', (items) => items.map((item) => [item.dataset.room, item.dataset.state])));
}

/** Waits until room `room` shows `state` (e.g. "joined": the gateway answered `subscribed`). */
export async function waitForRoom(page, room, state, timeout = WAIT_MS) {
  await page.waitForFunction(
    ([name, wanted]) => [...document.querySelectorAll('[data-testid=room]')]
      .some((item) => item.dataset.room === name && item.dataset.state === wanted),
    [room, state],
    { timeout },
  ).catch(async (error) => {
    const who = await page.getByTestId('me').textContent().catch(() => '?');
    throw new Error(`room ${room} never became "${state}" in ${who}'s window (rooms: ${JSON.stringify(await roomStates(page))}): ${error.message}`);
  });
}

/** The members room `room` shows in the room list (its `presence()` answer kept by join/leave), sorted. */
export async function roomMembers(page, room) {
  return page.$$eval(`[data-testid=room][data-room="${room}"] [data-testid=room-member]`, (items) => items.map((item) => item.dataset.user));
}

/** Waits until room `room` shows exactly `users` as its members (sorted). */
export async function waitForMembers(page, room, users, timeout = WAIT_MS) {
  const want = JSON.stringify([...users].sort());
  await page.waitForFunction(
    ([name, expected]) => JSON.stringify([...document.querySelectorAll(`[data-testid=room][data-room="${name}"] [data-testid=room-member]`)]
      .map((item) => item.dataset.user)) === expected,
    [room, want],
    { timeout },
  ).catch(async (error) => {
    const who = await page.getByTestId('me').textContent().catch(() => '?');
    throw new Error(`room ${room} never showed the members ${want} in ${who}'s window (shows ${JSON.stringify(await roomMembers(page, room))}): ${error.message}`);
  });
}

/** Joins `room` (adding it by name when the list does not have it) and waits for `subscribed`. */
export async function joinRoom(page, room) {
  if (room in await roomStates(page)) {
    await page.getByTestId(`room-toggle-${room}`).click();
  } else {
    await page.getByTestId('room-name').fill(room);
    await page.getByTestId('add-room-submit').click();
  }
  await waitForRoom(page, room, 'joined');
}

/** Leaves `room` and waits for `unsubscribed`. */
export async function leaveRoom(page, room) {
  await page.getByTestId(`room-toggle-${room}`).click();
  await waitForRoom(page, room, 'left');
}
