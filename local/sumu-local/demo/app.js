// The sumu demo page, built on @sumu/client (./sumu-client.js is the package bundled by
// clients/js/scripts/bundle.js): the client keeps the WebSocket alive — keep-alive ping,
// reconnect with backoff and a fresh development token per attempt, proactive reconnect before
// the 2-hour limit — and the page shows who is online and sends chat messages through the
// `publish` or `send` route. See docs/demo.md. No build step of its own: a plain ES module.
import { SumuClient } from './sumu-client.js';

const params = new URLSearchParams(location.search);
const settings = {
  stage: params.get('stage') || 'dev',
  // Keep-alive below API Gateway's 10-minute idle timeout.
  pingMs: Number(params.get('ping_ms')) || 5 * 60 * 1000,
  backoffBaseMs: Number(params.get('backoff_ms')) || 1000,
  backoffMaxMs: 30 * 1000,
  // Proactive reconnect before API Gateway's 2-hour maximum (the client's default: 1 h 55 min).
  maxConnectionMs: Number(params.get('max_connection_ms')) || undefined,
  maxLogEntries: 500,
};

const $ = (id) => document.getElementById(id);
const ui = {
  signIn: $('sign-in'), name: $('name'), session: $('session'), me: $('me'),
  connect: $('connect'), disconnect: $('disconnect'), state: $('state'),
  online: $('online'), chat: $('chat'), compose: $('compose'), mode: $('mode'),
  route: $('route'), text: $('text'), send: $('send'), log: $('log'), clearLog: $('clear-log'),
};

const app = {
  user: null,          // who we signed in as
  client: null,        // the SumuClient, once signed in
  online: new Map(),   // user_id → live connection count (null when unknown)
  heardSinceAsk: new Set(), // users a presence event told us about since who_is_online
};
// For the browser tests and for poking at the client from the console.
window.demo = app;

// ---- connection state -------------------------------------------------------------------

// The client's states, as the badge shows them: `closed` is `disconnected` (by the user).
const SHOWN = { connecting: 'connecting', open: 'open', reconnecting: 'reconnecting', closed: 'disconnected' };

function setState(state, detail) {
  ui.state.dataset.state = state;
  ui.state.textContent = detail ? `${state} · ${detail}` : state;
  const running = state === 'open' || state === 'connecting' || state === 'reconnecting';
  ui.send.disabled = state !== 'open';
  ui.connect.disabled = running;
  ui.disconnect.disabled = !running;
}

function logFrame(direction, text) {
  const entry = document.createElement('li');
  entry.dataset.direction = direction;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  const frame = document.createElement('span');
  frame.className = 'frame';
  frame.textContent = text;
  entry.append(time, ' ', frame);
  ui.log.append(entry);
  while (ui.log.children.length > settings.maxLogEntries) ui.log.firstElementChild.remove();
  ui.log.scrollTop = ui.log.scrollHeight;
}

// The browser's WebSocket, logging every frame in and out (the client's own ping/pong too).
class LoggedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    this.addEventListener('message', (event) => logFrame('in', String(event.data)));
    this.addEventListener('close', (event) => {
      if (this.wasOpen) logFrame('event', `closed: code ${event.code}${event.reason ? ` (${event.reason})` : ''}`);
    });
    this.addEventListener('open', () => { this.wasOpen = true; logFrame('event', 'connected'); });
  }

  send(text) {
    logFrame('out', text);
    super.send(text);
  }
}

// ---- connecting: the client does it ------------------------------------------------------

async function fetchToken(user) {
  const response = await fetch(`/dev/token?sub=${encodeURIComponent(user)}`);
  if (!response.ok) throw new Error(`token endpoint answered HTTP ${response.status}`);
  const { token } = await response.json();
  if (!token) throw new Error('token endpoint answered without a token');
  return token;
}

function createClient(user) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const client = new SumuClient({
    url: `${scheme}://${location.host}/${encodeURIComponent(settings.stage)}`,
    // A fresh token for every attempt, so an expired one never blocks a reconnect.
    token: () => fetchToken(user),
    WebSocket: LoggedWebSocket,
    keepAliveMs: settings.pingMs,
    backoff: { baseMs: settings.backoffBaseMs, maxMs: settings.backoffMaxMs },
    ...(settings.maxConnectionMs ? { maxConnectionMs: settings.maxConnectionMs } : {}),
  });
  client.on('state', (state) => {
    setState(SHOWN[state]);
    if (state === 'open') onOpen();
    else {
      app.online.clear();
      renderOnline();
    }
  });
  client.on('message', onMessage);
  client.on('error', (error) => logFrame('event', `${error.code}: ${error.message}`));
  return client;
}

function onOpen() {
  app.online.set(app.user, null);
  renderOnline();
  // Presence events only tell about changes: ask once for the current list.
  app.heardSinceAsk.clear();
  app.client.send({ type: 'who_is_online' });
}

// ---- frames from the server -------------------------------------------------------------

// What the back end pushed (the client parsed it; pongs and errors never get here).
function onMessage(frame) {
  switch (frame && frame.type) {
    case 'presence': return applyPresence(frame);
    case 'online_users': return applySnapshot(frame);
    case 'chat': return showChat(frame);
    default: return undefined; // anything else: the log shows it.
  }
}

function applyPresence(frame) {
  for (const user of frame.users || []) {
    app.heardSinceAsk.add(user.user_id);
    if (user.status === 'ONLINE') app.online.set(user.user_id, user.connections);
    else if (user.status === 'OFFLINE') app.online.delete(user.user_id);
  }
  renderOnline();
}

// The answer to who_is_online may be older than presence events that overtook it: it only
// decides about users no presence event has told us about since we asked. Arrival order, not
// clocks, so no two machines' clocks need to agree.
function applySnapshot(frame) {
  const listed = new Map((frame.users || []).map((user) => [user.user_id, user.connections]));
  for (const user of [...app.online.keys()]) {
    if (!listed.has(user) && !app.heardSinceAsk.has(user) && user !== app.user) app.online.delete(user);
  }
  for (const [user, connections] of listed) {
    if (!app.heardSinceAsk.has(user)) app.online.set(user, connections);
  }
  renderOnline();
}

function renderOnline() {
  const ticked = new Set(pickedUsers());
  ui.online.replaceChildren(...[...app.online.keys()].sort().map((user) => {
    const item = document.createElement('li');
    item.dataset.testid = 'online-user';
    item.dataset.user = user;
    const label = document.createElement('label');
    if (user !== app.user) {
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = user;
      box.dataset.testid = `pick-${user}`;
      box.checked = ticked.has(user);
      label.append(box, ' ');
    }
    label.append(user === app.user ? `${user} (you)` : user);
    item.append(label);
    const count = app.online.get(user);
    if (count > 1) {
      const badge = document.createElement('span');
      badge.className = 'count';
      badge.textContent = `×${count}`;
      item.append(badge);
    }
    return item;
  }));
}

function pickedUsers() {
  return [...ui.online.querySelectorAll('input[type=checkbox]:checked')].map((box) => box.value);
}

function showChat(frame) {
  const item = document.createElement('li');
  item.dataset.testid = 'chat-message';
  item.dataset.from = frame.from;
  item.dataset.mode = frame.mode;
  item.dataset.route = frame.route;
  if (frame.from === app.user) item.className = 'mine';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = frame.from;
  const text = document.createElement('span');
  text.className = 'text';
  text.dataset.testid = 'chat-text';
  text.textContent = frame.text;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const to = Array.isArray(frame.to) ? ` → ${frame.to.join(', ')}` : '';
  meta.textContent = `${String(frame.mode).toUpperCase()}${to} via ${frame.route}`;
  item.append(from, ': ', text, meta);
  ui.chat.append(item);
  ui.chat.scrollTop = ui.chat.scrollHeight;
}

// ---- user actions -----------------------------------------------------------------------

ui.signIn.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (!name) return;
  app.user = name;
  document.title = `sumu demo · ${name}`;
  ui.me.textContent = name;
  ui.signIn.hidden = true;
  ui.session.hidden = false;
  app.client = createClient(name);
  app.client.connect();
});

ui.connect.addEventListener('click', () => app.client?.connect());
ui.disconnect.addEventListener('click', () => app.client?.close());
ui.clearLog.addEventListener('click', () => ui.log.replaceChildren());

ui.compose.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim() || app.client?.state !== 'open') return;
  const message = { type: 'chat', mode: ui.mode.value, text };
  if (message.mode === 'multicast') message.to = pickedUsers();
  const sent = ui.route.value === 'send' ? app.client.send(message) : app.client.publish(message);
  if (sent) ui.text.value = '';
});

setState('signed-out');
ui.send.disabled = true;
