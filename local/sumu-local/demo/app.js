// The sumu demo page: plain JavaScript, no build step. It signs in with a development token
// from sumu-local, keeps one WebSocket open (reconnecting with backoff), shows who is online,
// and sends chat messages through the `publish` or `send` route. See docs/demo.md.
'use strict';

const params = new URLSearchParams(location.search);
const settings = {
  stage: params.get('stage') || 'dev',
  // Keep-alive below API Gateway's 10-minute idle timeout.
  pingMs: Number(params.get('ping_ms')) || 5 * 60 * 1000,
  backoffBaseMs: Number(params.get('backoff_ms')) || 1000,
  backoffMaxMs: 30 * 1000,
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
  socket: null,        // the current WebSocket, if any
  wantOpen: false,     // false once the user pressed Disconnect: stops reconnecting
  attempt: 0,          // consecutive failed attempts, for the backoff
  retryTimer: null,
  pingTimer: null,
  online: new Map(),   // user_id → live connection count (null when unknown)
  heardSinceAsk: new Set(), // users a presence event told us about since who_is_online
};

// ---- connection state -------------------------------------------------------------------

function setState(state, detail) {
  ui.state.dataset.state = state;
  ui.state.textContent = detail ? `${state} · ${detail}` : state;
  const connected = state === 'open';
  ui.send.disabled = !connected;
  ui.connect.disabled = app.wantOpen;
  ui.disconnect.disabled = !app.wantOpen;
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

// ---- connecting, reconnecting, keep-alive -----------------------------------------------

async function fetchToken(user) {
  const response = await fetch(`/dev/token?sub=${encodeURIComponent(user)}`);
  if (!response.ok) throw new Error(`token endpoint answered HTTP ${response.status}`);
  const { token } = await response.json();
  if (!token) throw new Error('token endpoint answered without a token');
  return token;
}

// A fresh token for every attempt, so an expired one never blocks a reconnect.
async function connect() {
  clearTimeout(app.retryTimer);
  app.wantOpen = true;
  setState('connecting', app.attempt ? `attempt ${app.attempt + 1}` : '');
  let token;
  try {
    token = await fetchToken(app.user);
  } catch (error) {
    logFrame('event', `could not get a token: ${error.message}`);
    scheduleReconnect();
    return;
  }
  if (!app.wantOpen) return; // Disconnect pressed while the token was on its way.
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/${encodeURIComponent(settings.stage)}?authorization=${encodeURIComponent(token)}`;
  const socket = new WebSocket(url);
  app.socket = socket;
  socket.onopen = () => onOpen(socket);
  socket.onmessage = (event) => onFrame(event.data);
  socket.onclose = (event) => onClose(socket, event);
  socket.onerror = () => logFrame('event', 'socket error');
}

function onOpen(socket) {
  if (socket !== app.socket) return;
  app.attempt = 0;
  setState('open', app.user);
  clearInterval(app.pingTimer);
  logFrame('event', 'connected');
  app.online.set(app.user, null);
  renderOnline();
  app.pingTimer = setInterval(() => sendFrame({ action: 'ping' }), settings.pingMs);
  // Presence events only tell about changes: ask once for the current list.
  app.heardSinceAsk.clear();
  sendFrame({ action: 'send', message: { type: 'who_is_online' } });
}

function onClose(socket, event) {
  if (socket !== app.socket) return;
  app.socket = null;
  clearInterval(app.pingTimer);
  logFrame('event', `closed: code ${event.code}${event.reason ? ` (${event.reason})` : ''}`);
  app.online.clear();
  renderOnline();
  if (app.wantOpen) scheduleReconnect();
  else setState('disconnected');
}

// Exponential backoff with "equal jitter": half the delay fixed, half random, so many clients
// dropped together do not come back together.
function scheduleReconnect() {
  const ceiling = Math.min(settings.backoffMaxMs, settings.backoffBaseMs * 2 ** app.attempt);
  const delay = ceiling / 2 + Math.random() * (ceiling / 2);
  app.attempt += 1;
  setState('reconnecting', `in ${(delay / 1000).toFixed(1)} s`);
  app.retryTimer = setTimeout(connect, delay);
}

function disconnect() {
  app.wantOpen = false;
  clearTimeout(app.retryTimer);
  clearInterval(app.pingTimer);
  app.attempt = 0;
  if (app.socket) app.socket.close(1000, 'bye');
  else setState('disconnected');
}

function sendFrame(frame) {
  if (!app.socket || app.socket.readyState !== WebSocket.OPEN) return false;
  const text = JSON.stringify(frame);
  app.socket.send(text);
  logFrame('out', text);
  return true;
}

// ---- frames from the server -------------------------------------------------------------

function onFrame(text) {
  logFrame('in', text);
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  switch (frame && frame.type) {
    case 'presence': return applyPresence(frame);
    case 'online_users': return applySnapshot(frame);
    case 'chat': return showChat(frame);
    default: return undefined; // pong, errors: the log shows them.
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
  connect();
});

ui.connect.addEventListener('click', () => { app.attempt = 0; connect(); });
ui.disconnect.addEventListener('click', disconnect);
ui.clearLog.addEventListener('click', () => ui.log.replaceChildren());

ui.compose.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  const message = { type: 'chat', mode: ui.mode.value, text };
  if (message.mode === 'multicast') message.to = pickedUsers();
  if (sendFrame({ action: ui.route.value, message })) ui.text.value = '';
});

setState('signed-out');
ui.send.disabled = true;
