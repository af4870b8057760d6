// The sumu demo page, built on @sumu/client (./sumu-client.js is the package bundled by
// clients/js/scripts/bundle.js): the client keeps the WebSocket alive — keep-alive ping,
// reconnect with backoff and a fresh development token per attempt, proactive reconnect before
// the 2-hour limit, re-subscribing every room after a reconnect — and the page shows who is
// online, sends chat messages through the `publish` or `send` route, and joins, leaves and chats
// in rooms (the channels `room/<name>`, by `emit` or through the back end). Rooms keep history:
// joining a room for the first time shows its recent messages, and after a dropped connection the
// client recovers what the room said meanwhile (or the page says it could not). Each joined room
// shows its members live: asked with `presence()`, kept with `join`/`leave`. See docs/demo.md.
// No build step of its own: a plain ES module.
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
  // The rooms listed at the start (none joined); more can be added by name.
  rooms: (params.get('rooms') ?? 'lobby,random').split(',').map((room) => room.trim()).filter(isRoomName),
};

// The channel grants the page's tokens carry: rooms are the channels `room/<name>`, and every
// signed-in user may join and talk in any of them (docs/demo.md § Rooms).
const ROOM_PREFIX = 'room/';
const GRANTS = { subscribe: [`${ROOM_PREFIX}*`], publish: [`${ROOM_PREFIX}*`] };

// A room name is one channel segment (DESIGN.md § Channels), so `room/<name>` is always valid
// and a name can never reach another part of the channel tree (`room/a/b`, `room/*`).
function isRoomName(name) {
  return /^[A-Za-z0-9_\-.:@=+|]{1,64}$/.test(name);
}

const $ = (id) => document.getElementById(id);
const ui = {
  signIn: $('sign-in'), name: $('name'), session: $('session'), me: $('me'),
  connect: $('connect'), disconnect: $('disconnect'), state: $('state'),
  online: $('online'), chat: $('chat'), compose: $('compose'), mode: $('mode'),
  route: $('route'), text: $('text'), send: $('send'), log: $('log'), clearLog: $('clear-log'),
  rooms: $('rooms'), addRoom: $('add-room'), roomName: $('room-name'), roomProblem: $('room-problem'),
  room: $('room'),
};

const app = {
  user: null,          // who we signed in as
  client: null,        // the SumuClient, once signed in
  online: new Map(),   // user_id → live connection count (null when unknown)
  heardSinceAsk: new Set(), // users a presence event told us about since who_is_online
  // room name → {subscription (the client's handle, while we want to be in the room), state, received,
  //   members (user ids), heard (join/leave events while a presence() question is out)}
  // state: 'left' | 'joining' (subscribe not yet answered) | 'joined' | 'leaving' | 'refused'
  rooms: new Map(),
  // Ids of the publications shown: a room's history and its live publications may overlap.
  shown: new Set(),
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
    this.addEventListener('message', (event) => {
      logFrame('in', String(event.data));
      onGatewayFrame(String(event.data));
    });
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
  const query = new URLSearchParams([['sub', user],
    ...GRANTS.subscribe.map((pattern) => ['subscribe', pattern]),
    ...GRANTS.publish.map((pattern) => ['publish', pattern])]);
  const response = await fetch(`/dev/token?${query}`);
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
      roomsOffline();
    }
  });
  client.on('message', onMessage);
  // Every publication that arrived, from any room: what the page shows is what the gateway
  // delivered (so a delivery to a room we left would show up, and the browser test sees it).
  client.on('publication', showPublication);
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

// What the back end pushed: `data` of a `{"type":"message","id","data"}` frame, once per id
// (sumu's own frames never get here, and nothing the back end sends can pass for one of them).
function onMessage({ data: frame }) {
  switch (frame && frame.type) {
    case 'presence': return applyPresence(frame);
    case 'online_users': return applySnapshot(frame);
    case 'chat': return showChat(frame);
    default: return undefined; // anything else: the log shows it.
  }
}

// A room's subscription handle tells joining/joined/refused; once the page let go of it, only
// the gateway's `unsubscribed` says the room is left, and the page reads that from its own
// (logging) socket. Back-end data arrives enveloped in `message` frames, so a top-level
// `unsubscribed` is always the gateway's.
function onGatewayFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  if (frame?.type !== 'unsubscribed') return;
  const name = roomOf(frame.channel);
  const room = name === null ? undefined : app.rooms.get(name);
  // Joined again meanwhile: the handle's state decides.
  if (room && !room.subscription) setRoomState(name, 'left');
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

// A publication to a room. An `emit` carries `from`, set by the gateway from the sender's token
// (never from `data`); a back end's publication has none, and the demo back end names the
// sender and route in `data` itself.
function showPublication(publication, before = null) {
  if (app.shown.has(publication.id)) return;
  app.shown.add(publication.id);
  const data = publication.data !== null && typeof publication.data === 'object' ? publication.data : {};
  const emitted = typeof publication.from === 'string';
  return showChat({
    from: emitted ? publication.from : String(data.from ?? 'a back end'),
    mode: 'room',
    room: roomOf(publication.channel) ?? publication.channel,
    route: emitted ? 'emit' : String(data.route ?? 'a back end'),
    text: typeof data.text === 'string' ? data.text : JSON.stringify(publication.data),
    history: before !== null,
  }, before);
}

// `before`: a room's history goes in front of what the room delivered since it was joined (or,
// with `true`, at the end).
function showChat(frame, before = null) {
  const item = document.createElement('li');
  item.dataset.testid = 'chat-message';
  item.dataset.from = frame.from;
  item.dataset.mode = frame.mode;
  item.dataset.route = frame.route;
  if (frame.mode === 'room') item.dataset.room = frame.room;
  if (frame.from === app.user) item.className = 'mine';
  if (frame.history) item.dataset.history = 'true';
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
  const room = frame.mode === 'room' ? ` ${frame.room}` : '';
  meta.textContent = `${String(frame.mode).toUpperCase()}${room}${to} via ${frame.route}`;
  item.append(from, ': ', text, meta);
  ui.chat.insertBefore(item, before instanceof Node ? before : null);
  ui.chat.scrollTop = ui.chat.scrollHeight;
  return item;
}

// ---- rooms ------------------------------------------------------------------------------

function roomOf(channel) {
  return typeof channel === 'string' && channel.startsWith(ROOM_PREFIX) ? channel.slice(ROOM_PREFIX.length) : null;
}

function addRoom(name) {
  if (!app.rooms.has(name)) {
    app.rooms.set(name, {
      subscription: null, state: 'left', received: 0, reason: null, historyLoaded: false, missed: false, members: new Set(), heard: null,
    });
  }
  renderRooms();
}

// subscribe() → the client sends `{"action":"subscribe","channel":"room/<name>","ref":…}` now
// or on connect, and again after every reconnect, until unsubscribe(). The handle's state is
// the room's: `subscribing` (joining…), `subscribed` (joined), `failed` (refused for good).
function joinRoom(name) {
  addRoom(name);
  const room = app.rooms.get(name);
  if (!app.client || room.subscription) return;
  const handle = app.client.subscribe(`${ROOM_PREFIX}${name}`, () => {
    room.received += 1;
    renderRooms();
  });
  room.subscription = handle;
  handle.on('state', (state) => {
    if (room.subscription !== handle) return;
    if (state === 'subscribed') setRoomState(name, 'joined');
    if (state === 'subscribing') setRoomState(name, 'joining');
  });
  handle.on('error', (error) => {
    if (room.subscription === handle && !error.retrying) roomRefused(name, error.reason);
  });
  // After a dropped connection the client resubscribes from where it stopped and hands the
  // missed publications over first (they show up like live ones). When the room's history no
  // longer holds them all, it says so: the page tells the reader.
  // Who is in the room: asked on every `subscribed` (the first, and after each reconnect, since
  // joins and leaves while away are not replayed), then kept by join/leave.
  handle.on('join', (event) => memberEvent(name, handle, event.userId, true));
  handle.on('leave', (event) => memberEvent(name, handle, event.userId, false));
  handle.on('subscribed', (context) => {
    loadMembers(name, handle);
    if (!context.wasRecovering || context.recovered) return;
    room.missed = true;
    logFrame('event', `room ${name}: messages were missed and could not be recovered (older than the room's history)`);
    renderRooms();
  });
  setRoomState(name, handle.state === 'subscribed' ? 'joined' : 'joining');
  if (!room.historyLoaded) loadHistory(name, handle);
}

// Joins and leaves are idempotent set operations: one that arrives while a presence() question
// is out is applied again on top of the answer, so the list ends right whether the answer was
// read before or after it (clients/js/README.md § Channel presence).
function memberEvent(name, handle, userId, joined) {
  const room = app.rooms.get(name);
  if (room.subscription !== handle) return;
  room.heard?.push([userId, joined]);
  if (joined) room.members.add(userId);
  else room.members.delete(userId);
  renderRooms();
}

async function loadMembers(name, handle) {
  const room = app.rooms.get(name);
  const heard = [];
  room.heard = heard;
  let answer;
  try {
    answer = await handle.presence();
  } catch (error) {
    if (room.heard === heard) room.heard = null;
    logFrame('event', `room ${name}: no member list (${error.reason || error.code})`);
    return;
  }
  // Left meanwhile, or asked again (after a reconnect): that answer decides.
  if (room.subscription !== handle || room.heard !== heard) return;
  room.members = new Set(answer.members.map((member) => member.userId));
  for (const [userId, joined] of heard) {
    if (joined) room.members.add(userId);
    else room.members.delete(userId);
  }
  room.heard = null;
  renderRooms();
}

// The first time the page joins a room it shows the room's latest messages (a reloaded page
// too): kept by sumu for rooms (the `room/*` channel namespace), fetched with `history`.
async function loadHistory(name, handle) {
  const room = app.rooms.get(name);
  room.historyLoaded = true;
  // What the room delivered from now on is newer than its history.
  const firstLive = () => ui.chat.querySelector(`[data-room="${CSS.escape(name)}"]:not([data-history])`);
  let page;
  try {
    page = await handle.history({ limit: 50 });
  } catch (error) {
    logFrame('event', `room ${name}: no history (${error.reason || error.code})`);
    return;
  }
  const before = firstLive() ?? true;
  for (const publication of page.publications) showPublication(publication, before);
}

function leaveRoom(name) {
  const room = app.rooms.get(name);
  if (!room?.subscription) return;
  room.subscription.unsubscribe();
  room.subscription = null;
  room.members.clear();
  // Only an open connection answers `unsubscribed`; otherwise there is nothing to leave.
  setRoomState(name, app.client.state === 'open' ? 'leaving' : 'left');
}

// The client forgets a subscription refused for good: so does the page.
function roomRefused(name, reason) {
  const room = app.rooms.get(name);
  if (!room) return;
  room.subscription = null;
  room.members.clear();
  room.reason = reason || 'refused';
  setRoomState(name, 'refused');
}

// Without a connection no room is left pending: the handles of those we want say `subscribing`
// until the next connection confirms them (and asks for their members again).
function roomsOffline() {
  for (const room of app.rooms.values()) {
    if (!room.subscription && room.state === 'leaving') room.state = 'left';
    room.members.clear();
  }
  renderRooms();
}

function setRoomState(name, state) {
  const room = app.rooms.get(name);
  room.state = state;
  if (state !== 'refused') room.reason = null;
  renderRooms();
}

const ROOM_STATUS = { left: 'not joined', joining: 'joining…', joined: 'joined', leaving: 'leaving…' };

function renderRooms() {
  ui.rooms.replaceChildren(...[...app.rooms].map(([name, room]) => {
    const item = document.createElement('li');
    item.dataset.testid = 'room';
    item.dataset.room = name;
    item.dataset.state = room.state;
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name;
    const status = document.createElement('span');
    status.className = 'status';
    status.textContent = room.state === 'refused' ? `refused: ${room.reason}` : ROOM_STATUS[room.state];
    if (room.received > 0) status.textContent += ` · ${room.received} received`;
    if (room.missed) status.textContent += ' · some messages missed';
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.testid = `room-toggle-${name}`;
    const member = room.subscription !== null;
    button.textContent = member ? 'Leave' : 'Join';
    button.disabled = !app.client;
    button.addEventListener('click', () => (member ? leaveRoom(name) : joinRoom(name)));
    item.append(label, status, button);
    if (room.members.size > 0) {
      const members = document.createElement('p');
      members.className = 'members';
      members.dataset.testid = 'room-members';
      members.append('in the room: ');
      for (const user of [...room.members].sort()) {
        const member = document.createElement('span');
        member.dataset.testid = 'room-member';
        member.dataset.user = user;
        member.textContent = user === app.user ? `${user} (you)` : user;
        members.append(member);
      }
      item.append(members);
    }
    return item;
  }));
  // The compose form's room picker lists every room (talking needs a publish grant, not
  // membership), keeping the current choice.
  const chosen = ui.room.value;
  ui.room.replaceChildren(...[...app.rooms.keys()].map((name) => {
    const option = document.createElement('option');
    option.value = name;
    option.textContent = name;
    return option;
  }));
  if (app.rooms.has(chosen)) ui.room.value = chosen;
}

// ROOM is the only mode `emit` can carry (an emit names a channel); the room picker shows
// only for it.
function modeChanged() {
  const room = ui.mode.value === 'room';
  ui.room.hidden = !room;
  const emit = ui.route.querySelector('option[value=emit]');
  emit.disabled = !room;
  if (!room && ui.route.value === 'emit') ui.route.value = 'publish';
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
  renderRooms();
});

ui.connect.addEventListener('click', () => app.client?.connect());
ui.disconnect.addEventListener('click', () => app.client?.close());
ui.clearLog.addEventListener('click', () => ui.log.replaceChildren());

ui.addRoom.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = ui.roomName.value.trim();
  const valid = isRoomName(name);
  ui.roomProblem.hidden = valid;
  ui.roomProblem.textContent = valid ? '' : `"${name}" is not a room name: 1–64 of A-Z a-z 0-9 _ - . : @ = + |`;
  if (!valid) return;
  joinRoom(name);
  ui.roomName.value = '';
});

ui.mode.addEventListener('change', modeChanged);

ui.compose.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim() || app.client?.state !== 'open') return;
  const mode = ui.mode.value;
  const room = ui.room.value;
  if (mode === 'room' && !room) return;
  let sent;
  if (mode === 'room' && ui.route.value === 'emit') {
    // Straight to the room's subscribers (not back to us): the gateway adds `from`.
    sent = app.client.emit(`${ROOM_PREFIX}${room}`, { type: 'chat', text });
  } else {
    const message = { type: 'chat', mode, text };
    if (mode === 'multicast') message.to = pickedUsers();
    if (mode === 'room') message.room = room;
    sent = ui.route.value === 'send' ? app.client.send(message) : app.client.publish(message);
  }
  if (sent) ui.text.value = '';
});

setState('signed-out');
ui.send.disabled = true;
for (const name of settings.rooms) addRoom(name);
modeChanged();
