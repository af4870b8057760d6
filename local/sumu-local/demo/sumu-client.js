// @sumu/client, bundled for the demo page by clients/js/scripts/bundle.js. Do not edit:
// change clients/js/src/ and run `npm run bundle` in clients/js (a test checks this file).
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// src/backoff.ts
var DEFAULT_BACKOFF_BASE_MS = 1e3;
var DEFAULT_BACKOFF_MAX_MS = 3e4;
function backoffCeiling(attempt, options = {}) {
  const base = options.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const max = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  return Math.min(max, base * 2 ** Math.max(0, attempt));
}
function backoffDelay(attempt, options = {}) {
  const random = options.random ?? Math.random;
  const ceiling = backoffCeiling(attempt, options);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(Math.floor(r * ceiling), Math.max(0, ceiling - 1));
}

// src/channels.ts
function patternMatches(pattern, channel) {
  if (pattern === "*") return true;
  if (pattern.endsWith("/*")) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}

// src/dedupe.ts
var RecentIds = class {
  constructor(limit) {
    __publicField(this, "limit", limit);
    __publicField(this, "ids", /* @__PURE__ */ new Set());
  }
  /** Records `id`; false when it was already seen. */
  add(id) {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.limit) {
      const oldest = this.ids.values().next().value;
      if (oldest !== void 0) this.ids.delete(oldest);
    }
    return true;
  }
};
var OverlapFilter = class {
  constructor(limit) {
    __publicField(this, "limit", limit);
    __publicField(this, "counts", /* @__PURE__ */ new Map());
  }
  /** Whether the frame `text`, just received on connection `from`, is new to the app. */
  admit(text, from) {
    let perConnection = this.counts.get(text);
    if (!perConnection) {
      if (this.counts.size >= this.limit) this.counts.clear();
      perConnection = /* @__PURE__ */ new Map();
      this.counts.set(text, perConnection);
    }
    const mine = (perConnection.get(from) ?? 0) + 1;
    perConnection.set(from, mine);
    let others = 0;
    for (const [connection, count] of perConnection) {
      if (connection !== from) others = Math.max(others, count);
    }
    return mine > others;
  }
  clear() {
    this.counts.clear();
  }
};

// src/timers.ts
var host = () => globalThis;
function after(ms, callback) {
  return host().setTimeout(callback, ms);
}
function every(ms, callback) {
  return host().setInterval(callback, ms);
}
function cancel(handle) {
  if (handle === void 0) return;
  host().clearTimeout(handle);
  host().clearInterval(handle);
}

// src/client.ts
var DEFAULTS = {
  keepAliveMs: 5 * 60 * 1e3,
  maxConnectionMs: (60 + 55) * 60 * 1e3,
  queueLimit: 100,
  errorAfterFailures: 3,
  connectTimeoutMs: 15e3,
  overlapMs: 5e3,
  subscribeTimeoutMs: 1e4,
  presenceTimeoutMs: 3e4,
  pongTimeoutMs: 3e4
};
var RECENT_IDS = 1e4;
var OVERLAP_FRAMES = 1e4;
var OPEN = 1;
var Link = class {
  constructor(socket) {
    __publicField(this, "socket", socket);
    __publicField(this, "opened", false);
    __publicField(this, "closed", false);
    __publicField(this, "openTimer");
    __publicField(this, "drainTimer");
    __publicField(this, "pongTimer");
    /** Frames received so far: the keep-alive check's sign of life. */
    __publicField(this, "framesReceived", 0);
    /** Channels with a `subscribe` sent on this link and no reply yet (channel → how many). */
    __publicField(this, "pendingSubscribes", /* @__PURE__ */ new Map());
    /** `presence` requests sent on this link, oldest first. */
    __publicField(this, "presenceWaiting", []);
  }
  get live() {
    return this.opened && !this.closed && this.socket.readyState === OPEN;
  }
  settle(channel) {
    const count = this.pendingSubscribes.get(channel);
    if (count === void 0) return false;
    if (count <= 1) this.pendingSubscribes.delete(channel);
    else this.pendingSubscribes.set(channel, count - 1);
    return true;
  }
};
var SumuClient = class {
  constructor(options) {
    __publicField(this, "url");
    __publicField(this, "tokenSource");
    __publicField(this, "WebSocketImpl");
    __publicField(this, "settings");
    __publicField(this, "backoff");
    __publicField(this, "current", "closed");
    __publicField(this, "running", false);
    /** Bumped by close(): an attempt that started before it must not go on. */
    __publicField(this, "epoch", 0);
    __publicField(this, "primary", null);
    __publicField(this, "candidate", null);
    __publicField(this, "draining", /* @__PURE__ */ new Set());
    /** Attempts in a row that did not open: the backoff exponent. */
    __publicField(this, "failures", 0);
    __publicField(this, "retryTimer");
    __publicField(this, "keepAliveTimer");
    __publicField(this, "rotateTimer");
    __publicField(this, "promoteTimer");
    __publicField(this, "queue", []);
    /** channel or pattern → its callbacks (each wrapped, so the same function may be added twice). */
    __publicField(this, "channels", /* @__PURE__ */ new Map());
    __publicField(this, "recentIds", new RecentIds(RECENT_IDS));
    __publicField(this, "overlap", new OverlapFilter(OVERLAP_FRAMES));
    __publicField(this, "handlers", /* @__PURE__ */ new Map());
    if (!options || typeof options.url !== "string" || !/^wss?:\/\//i.test(options.url)) {
      throw new TypeError("SumuClient: `url` must be a ws:// or wss:// URL");
    }
    if (typeof options.token !== "function") {
      throw new TypeError("SumuClient: `token` must be a function returning the token (it is called for every attempt)");
    }
    this.url = options.url;
    this.tokenSource = options.token;
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    this.backoff = { ...options.backoff };
    this.settings = {
      keepAliveMs: positive("keepAliveMs", options.keepAliveMs, DEFAULTS.keepAliveMs),
      maxConnectionMs: positive("maxConnectionMs", options.maxConnectionMs, DEFAULTS.maxConnectionMs),
      queueLimit: atLeast("queueLimit", options.queueLimit, DEFAULTS.queueLimit, 0),
      errorAfterFailures: atLeast("errorAfterFailures", options.errorAfterFailures, DEFAULTS.errorAfterFailures, 1),
      connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs, DEFAULTS.connectTimeoutMs),
      overlapMs: atLeast("overlapMs", options.overlapMs, DEFAULTS.overlapMs, 0),
      subscribeTimeoutMs: positive("subscribeTimeoutMs", options.subscribeTimeoutMs, DEFAULTS.subscribeTimeoutMs),
      presenceTimeoutMs: positive("presenceTimeoutMs", options.presenceTimeoutMs, DEFAULTS.presenceTimeoutMs),
      pongTimeoutMs: positive("pongTimeoutMs", options.pongTimeoutMs, DEFAULTS.pongTimeoutMs)
    };
  }
  /** `connecting` | `open` | `reconnecting` | `closed`. */
  get state() {
    return this.current;
  }
  /** Starts connecting (and keeps the connection up until `close()`). A no-op while running. */
  connect() {
    if (this.running) return;
    if (!this.WebSocketImpl) {
      throw new TypeError('SumuClient: no global WebSocket here (Node 20): pass one, e.g. `new SumuClient({ …, WebSocket })` with `import WebSocket from "ws"`');
    }
    this.running = true;
    this.failures = 0;
    this.setState("connecting");
    void this.attempt();
  }
  /**
   * Stops for good: closes every connection (code 1000), stops reconnecting and keep-alive,
   * drops what was queued and rejects pending `presence()` calls. `connect()` starts anew
   * (subscriptions are kept and re-sent).
   */
  close() {
    this.epoch += 1;
    this.running = false;
    for (const timer of [this.retryTimer, this.keepAliveTimer, this.rotateTimer, this.promoteTimer]) cancel(timer);
    this.retryTimer = this.keepAliveTimer = this.rotateTimer = this.promoteTimer = void 0;
    const links = [this.primary, this.candidate, ...this.draining].filter((link) => link !== null);
    this.primary = this.candidate = null;
    this.draining.clear();
    this.overlap.clear();
    const closed = new Error("SumuClient closed");
    for (const link of links) {
      link.closed = true;
      cancel(link.openTimer);
      cancel(link.drainTimer);
      cancel(link.pongTimer);
      for (const request of link.presenceWaiting) settlePresence(request, closed);
      link.presenceWaiting = [];
      closeQuietly(link.socket, 1e3, "client closed");
    }
    for (const item of this.queue) if (item.kind === "presence") settlePresence(item.request, closed);
    this.queue = [];
    this.setState("closed");
  }
  /** `{"action":"send","message":…}` (to the messages queue). False when dropped (queue full). */
  send(message) {
    return this.submit({ action: "send", message }, message);
  }
  /** `{"action":"publish","message":…}` (to the messages topic). False when dropped (queue full). */
  publish(message) {
    return this.submit({ action: "publish", message }, message);
  }
  /** `{"action":"emit","channel":…,"data":…}`: a publication on a channel. False when dropped. */
  emit(channel, data) {
    return this.submit({ action: "emit", channel, data }, data);
  }
  /** Asks who of `users` is online; resolves with the gateway's answer (sent once connected). */
  presence(users) {
    const distinct = [...new Set(users)];
    return new Promise((resolve, reject) => {
      const request = {
        users: distinct,
        text: JSON.stringify({ action: "presence", users: [...users] }),
        resolve,
        reject,
        timer: void 0
      };
      request.timer = after(this.settings.presenceTimeoutMs, () => {
        this.forgetPresence(request);
        reject(new Error(`no presence answer within ${this.settings.presenceTimeoutMs} ms`));
      });
      if (!this.offer({ kind: "presence", request }, users)) {
        settlePresence(request, new Error("presence request dropped: the queue is full"));
      }
    });
  }
  /**
   * Subscribes to `channel` (a channel, `prefix/*` or `*`) and calls `onPublication` for each
   * publication it covers, once per publication id. Re-subscribed after every reconnect.
   */
  subscribe(channel, onPublication) {
    if (typeof channel !== "string" || typeof onPublication !== "function") {
      throw new TypeError("subscribe(channel, onPublication): a channel name and a function");
    }
    const entry = { callback: onPublication };
    let entries = this.channels.get(channel);
    if (!entries) {
      entries = /* @__PURE__ */ new Set();
      this.channels.set(channel, entries);
      for (const link of this.subscribedLinks()) this.sendSubscribe(link, channel);
    }
    entries.add(entry);
    let active = true;
    return {
      channel,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        const set = this.channels.get(channel);
        if (!set?.delete(entry) || set.size > 0) return;
        this.channels.delete(channel);
        const text = JSON.stringify({ action: "unsubscribe", channel });
        for (const link of this.subscribedLinks()) transmit(link, text);
      }
    };
  }
  /** Adds an event handler; returns a function that removes it. */
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }
  off(event, handler) {
    this.handlers.get(event)?.delete(handler);
  }
  // ---- connection attempts ------------------------------------------------------------------
  async attempt() {
    this.retryTimer = void 0;
    if (!this.running || this.candidate) return;
    const epoch = this.epoch;
    let token;
    try {
      token = await this.tokenSource();
    } catch (cause) {
      if (epoch !== this.epoch) return;
      this.dispatch("error", { code: "token_failed", message: `the token function failed: ${describe(cause)}`, cause });
      this.attemptFailed();
      return;
    }
    if (epoch !== this.epoch || !this.running || this.candidate) return;
    if (typeof token !== "string" || token === "") {
      this.dispatch("error", { code: "token_failed", message: "the token function returned no token" });
      this.attemptFailed();
      return;
    }
    const Impl = this.WebSocketImpl;
    let socket;
    try {
      socket = new Impl(withToken(this.url, token));
    } catch (cause) {
      this.dispatch("error", { code: "connect_failed", message: `could not create the WebSocket: ${describe(cause)}`, cause });
      this.attemptFailed();
      return;
    }
    const link = new Link(socket);
    this.candidate = link;
    socket.onopen = () => this.linkOpened(link);
    socket.onmessage = (event) => this.linkFrame(link, event?.data);
    socket.onclose = () => this.linkClosed(link);
    socket.onerror = () => {
    };
    link.openTimer = after(this.settings.connectTimeoutMs, () => {
      if (link.opened) return;
      closeQuietly(socket, 1e3, "connect timeout");
      this.linkClosed(link);
    });
  }
  /** An attempt did not open: back off (the primary, if any, keeps serving meanwhile). */
  attemptFailed() {
    this.candidate = null;
    cancel(this.promoteTimer);
    this.promoteTimer = void 0;
    if (!this.running) return;
    this.failures += 1;
    if (this.failures === this.settings.errorAfterFailures) {
      this.dispatch("error", {
        code: "connect_failed",
        message: `${this.failures} connection attempts in a row failed (refused, unreachable or timed out); still retrying with a fresh token each time`,
        attempts: this.failures
      });
    }
    if (!this.primary) this.setState("reconnecting");
    this.scheduleAttempt(backoffDelay(this.failures - 1, this.backoff));
  }
  scheduleAttempt(delayMs) {
    cancel(this.retryTimer);
    this.retryTimer = after(delayMs, () => void this.attempt());
  }
  linkOpened(link) {
    cancel(link.openTimer);
    if (link.closed || link !== this.candidate || !this.running) {
      link.closed = true;
      closeQuietly(link.socket, 1e3, "not needed");
      return;
    }
    link.opened = true;
    this.failures = 0;
    for (const channel of this.channels.keys()) this.sendSubscribe(link, channel);
    if (this.primary?.live) {
      cancel(this.promoteTimer);
      this.promoteTimer = after(this.settings.subscribeTimeoutMs, () => this.promote(link));
      this.promoteIfReady(link);
    } else {
      this.promote(link);
    }
  }
  promoteIfReady(link) {
    if (link === this.candidate && link.opened && this.primary && link.pendingSubscribes.size === 0) {
      this.promote(link);
    }
  }
  /** `link` becomes the primary; the old primary drains for `overlapMs`, then closes. */
  promote(link) {
    if (link.closed || link !== this.candidate) return;
    cancel(this.promoteTimer);
    this.promoteTimer = void 0;
    this.candidate = null;
    const old = this.primary;
    this.primary = link;
    if (old) {
      this.draining.add(old);
      old.drainTimer = after(this.settings.overlapMs, () => {
        closeQuietly(old.socket, 1e3, "reconnected");
        this.linkClosed(old);
      });
    }
    cancel(this.keepAliveTimer);
    this.keepAliveTimer = every(this.settings.keepAliveMs, () => this.keepAlive());
    cancel(this.rotateTimer);
    this.rotateTimer = after(this.settings.maxConnectionMs, () => void this.attempt());
    this.setState("open");
    this.flush();
  }
  /** Sends `ping` on the primary and checks that something comes back. */
  keepAlive() {
    const link = this.primary;
    if (!link?.live) return;
    transmit(link, '{"action":"ping"}');
    if (link.pongTimer !== void 0) return;
    const seen = link.framesReceived;
    link.pongTimer = after(this.settings.pongTimeoutMs, () => {
      link.pongTimer = void 0;
      if (link.closed || link.framesReceived !== seen) return;
      closeQuietly(link.socket, 4e3, "keep-alive unanswered");
      this.linkClosed(link);
    });
  }
  linkClosed(link) {
    if (link.closed) return;
    link.closed = true;
    cancel(link.openTimer);
    cancel(link.drainTimer);
    cancel(link.pongTimer);
    if (link.presenceWaiting.length > 0) {
      this.queue.unshift(...link.presenceWaiting.map((request) => ({ kind: "presence", request })));
      link.presenceWaiting = [];
    }
    if (this.draining.delete(link)) {
      if (this.liveLinks() < 2) this.overlap.clear();
      this.flush();
      return;
    }
    if (link === this.candidate) {
      this.attemptFailed();
      return;
    }
    if (link === this.primary) {
      this.primary = null;
      cancel(this.keepAliveTimer);
      cancel(this.rotateTimer);
      this.keepAliveTimer = this.rotateTimer = void 0;
      if (this.liveLinks() < 2) this.overlap.clear();
      if (!this.running) return;
      if (this.candidate?.opened) {
        this.promote(this.candidate);
        return;
      }
      this.setState("reconnecting");
      if (!this.candidate && this.retryTimer === void 0) {
        this.scheduleAttempt(backoffDelay(this.failures, this.backoff));
      }
    }
  }
  // ---- frames in ------------------------------------------------------------------------------
  linkFrame(link, data) {
    if (link.closed) return;
    link.framesReceived += 1;
    if (typeof data !== "string") return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      frame = void 0;
    }
    if (isRecord(frame)) {
      switch (frame["type"]) {
        case "pong":
        case "unsubscribed":
          return;
        case "subscribed":
          if (typeof frame["channel"] === "string") link.settle(frame["channel"]);
          this.promoteIfReady(link);
          return;
        case "publication":
          this.publication(frame);
          return;
        case "error":
          this.errorFrame(link, frame);
          return;
        case "presence":
          if (this.presenceAnswer(link, frame)) return;
          break;
        default:
          if (frame["type"] === void 0 && isGatewayError(frame)) {
            this.dispatch("error", { code: "server_error", message: String(frame["message"]), frame });
            return;
          }
      }
    }
    if (this.overlapping() && !this.overlap.admit(data, link)) return;
    this.dispatch("message", frame === void 0 ? data : frame);
  }
  publication(frame) {
    const { channel, id } = frame;
    if (typeof channel !== "string" || typeof id !== "string") return;
    if (!this.recentIds.add(id)) return;
    const publication = { channel, id, data: frame["data"] };
    if (typeof frame["from"] === "string") publication.from = frame["from"];
    const callbacks = /* @__PURE__ */ new Set();
    for (const [pattern, entries] of this.channels) {
      if (!patternMatches(pattern, channel)) continue;
      for (const entry of entries) callbacks.add(entry.callback);
    }
    for (const callback of callbacks) guarded(() => callback(publication));
    this.dispatch("publication", publication);
  }
  errorFrame(link, frame) {
    const reason = typeof frame["error"] === "string" ? frame["error"] : "error";
    const message = typeof frame["message"] === "string" ? frame["message"] : reason;
    const channel = typeof frame["channel"] === "string" ? frame["channel"] : void 0;
    if (channel !== void 0) {
      if (link.settle(channel)) {
        if (link === this.primary || link === this.candidate) this.channels.delete(channel);
        this.dispatch("error", { code: "subscribe_failed", message, reason, channel, frame });
        this.promoteIfReady(link);
        return;
      }
      this.dispatch("error", { code: "emit_failed", message, reason, channel, frame });
      return;
    }
    if ((reason === "invalid_request" || reason === "presence_unavailable") && link.presenceWaiting.length > 0) {
      const request = link.presenceWaiting.shift();
      settlePresence(request, Object.assign(new Error(`presence: ${message}`), { reason, frame }));
      return;
    }
    this.dispatch("error", { code: "server_error", message, reason, frame });
  }
  /** Resolves the oldest presence request on `link` that `frame` answers; false if none. */
  presenceAnswer(link, frame) {
    const users = frame["users"];
    if (!Array.isArray(users) || !users.every(isRecord)) return false;
    const asked = users.map((user) => user["user_id"]);
    const index = link.presenceWaiting.findIndex((request2) => request2.users.length === asked.length && request2.users.every((user, i) => user === asked[i]));
    if (index < 0) return false;
    const [request] = link.presenceWaiting.splice(index, 1);
    const answer = frame;
    if (request) settlePresence(request, answer);
    this.dispatch("presence", answer);
    return true;
  }
  // ---- frames out -----------------------------------------------------------------------------
  submit(frame, message) {
    return this.offer({ kind: "frame", text: JSON.stringify(frame), message }, message);
  }
  /** Sends now when open, else queues (bounded); false when dropped. */
  offer(item, message) {
    if (this.primary?.live && this.queue.length === 0) {
      this.transmitItem(this.primary, item);
      return true;
    }
    if (this.queue.length >= this.settings.queueLimit) {
      this.dispatch("error", {
        code: "queue_overflow",
        message: `not connected and ${this.queue.length} messages are already queued (queueLimit): dropped`,
        dropped: message
      });
      return false;
    }
    this.queue.push(item);
    this.flush();
    return true;
  }
  /** Sends what was queued, in order, while the primary is open. */
  flush() {
    while (this.queue.length > 0 && this.primary?.live) {
      this.transmitItem(this.primary, this.queue.shift());
    }
  }
  transmitItem(link, item) {
    if (item.kind === "frame") {
      transmit(link, item.text);
    } else {
      link.presenceWaiting.push(item.request);
      transmit(link, item.request.text);
    }
  }
  sendSubscribe(link, channel) {
    link.pendingSubscribes.set(channel, (link.pendingSubscribes.get(channel) ?? 0) + 1);
    transmit(link, JSON.stringify({ action: "subscribe", channel }));
  }
  /** The open links that carry subscriptions: the primary and an opened candidate. */
  subscribedLinks() {
    return [this.primary, this.candidate].filter((link) => link !== null && link.live);
  }
  /** A proactive reconnect is under way: a candidate is connecting or a former primary drains. */
  overlapping() {
    return this.candidate !== null && this.primary !== null || this.draining.size > 0;
  }
  liveLinks() {
    return [this.primary, this.candidate, ...this.draining].filter((link) => link?.live).length;
  }
  forgetPresence(request) {
    this.queue = this.queue.filter((item) => item.kind !== "presence" || item.request !== request);
    for (const link of [this.primary, this.candidate, ...this.draining]) {
      if (link) link.presenceWaiting = link.presenceWaiting.filter((waiting) => waiting !== request);
    }
  }
  // ---- events ---------------------------------------------------------------------------------
  setState(state) {
    if (this.current === state) return;
    this.current = state;
    this.dispatch("state", state);
  }
  dispatch(event, value) {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) guarded(() => handler(value));
  }
};
function transmit(link, text) {
  if (link.socket.readyState !== OPEN) return;
  link.socket.send(text);
}
function closeQuietly(socket, code, reason) {
  try {
    socket.close(code, reason);
  } catch {
  }
}
function settlePresence(request, outcome) {
  cancel(request.timer);
  if (outcome instanceof Error) request.reject(outcome);
  else request.resolve(outcome);
}
function guarded(callback) {
  try {
    callback();
  } catch (error) {
    after(0, () => {
      throw error;
    });
  }
}
function withToken(url, token) {
  return `${url}${url.includes("?") ? "&" : "?"}authorization=${encodeURIComponent(token)}`;
}
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function isGatewayError(frame) {
  return typeof frame["message"] === "string" && typeof frame["requestId"] === "string";
}
function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
function positive(name, value, fallback) {
  if (value === void 0) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`SumuClient: \`${name}\` must be a number > 0`);
  }
  return value;
}
function atLeast(name, value, fallback, min) {
  if (value === void 0) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new TypeError(`SumuClient: \`${name}\` must be a number ≥ ${min}`);
  }
  return value;
}
export {
  DEFAULTS,
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  SumuClient,
  backoffCeiling,
  backoffDelay,
  patternMatches
};
