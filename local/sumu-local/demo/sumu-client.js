// @sumu/client, bundled for the demo page by clients/js/scripts/bundle.js. Do not edit:
// change clients/js/src/ and run `npm run bundle` in clients/js (a test checks this file).

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
    this.limit = limit;
    this.ids = /* @__PURE__ */ new Set();
  }
  has(id) {
    return this.ids.has(id);
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

// src/emitter.ts
var Emitter = class {
  constructor() {
    this.handlers = /* @__PURE__ */ new Map();
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
  /** Calls every handler of `event`; one that throws does not stop the others (nor the client). */
  dispatch(event, value) {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) guarded(() => handler(value));
  }
};
function guarded(callback) {
  try {
    callback();
  } catch (error) {
    after(0, () => {
      throw error;
    });
  }
}

// src/errors.ts
var SumuRequestError = class extends Error {
  constructor(code, message, reason, frame) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.frame = frame;
    this.name = "SumuRequestError";
  }
};

// src/frames.ts
var FRAME_LIMIT = 32768;
function parseFrame(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: "invalid", frame: text };
  }
  if (!isRecord(value)) return { type: "invalid", frame: value };
  const frame = value;
  const channel = str(frame["channel"]);
  const ref = str(frame["ref"]);
  const id = str(frame["id"]);
  const withRef = (incoming) => ref === void 0 ? incoming : { ...incoming, ref };
  switch (frame["type"]) {
    case "pong": {
      const connectionId = str(frame["connection_id"]);
      return connectionId === void 0 ? { type: "pong" } : { type: "pong", connectionId };
    }
    case "subscribed":
    case "unsubscribed":
      if (channel !== void 0) return withRef({ type: frame["type"], channel, frame });
      break;
    case "publication":
      if (channel !== void 0 && id !== void 0 && "data" in frame) return { type: "publication", frame, channel, id };
      break;
    case "message":
      if (id !== void 0 && "data" in frame) return { type: "message", id, data: frame["data"] };
      break;
    case "presence":
      return withRef({ type: "presence", frame });
    case "ack":
      if (ref !== void 0 && channel !== void 0 && id !== void 0) return { type: "ack", ref, channel, id, frame };
      break;
    case "error": {
      const error = str(frame["error"]) ?? "error";
      const incoming = { type: "error", error, message: str(frame["message"]) ?? error, frame };
      return withRef(channel === void 0 ? incoming : { ...incoming, channel });
    }
    case "join":
    case "leave": {
      const userId = str(frame["user_id"]);
      if (channel !== void 0 && userId !== void 0) return { type: frame["type"], channel, userId };
      break;
    }
    case "history":
      if (channel !== void 0 && Array.isArray(frame["publications"])) return withRef({ type: "history", frame });
      break;
    case void 0:
      if (typeof frame["message"] === "string" && typeof frame["requestId"] === "string") {
        return { type: "gateway_error", message: frame["message"], frame };
      }
      break;
    default:
  }
  return { type: "invalid", frame };
}
function encode(frame) {
  const text = JSON.stringify(frame);
  return utf8Length(text) <= FRAME_LIMIT ? text : void 0;
}
function utf8Length(text) {
  let bytes = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 55296 && code <= 56319) {
      const next = text.charCodeAt(i + 1);
      if (next >= 56320 && next <= 57343) {
        bytes += 2;
        i += 1;
        continue;
      }
      bytes += 2;
    } else if (code >= 2048) {
      bytes += 2;
    } else if (code >= 128) {
      bytes += 1;
    }
  }
  return bytes;
}
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function str(value) {
  return typeof value === "string" ? value : void 0;
}

// src/link.ts
var OPEN = 1;
var Link = class {
  constructor(socket) {
    this.socket = socket;
    this.opened = false;
    /** The `pong` to the opening `ping` came (or the ping failed): channels may be subscribed here. */
    this.ready = false;
    this.closed = false;
    /** Frames received so far: the keep-alive check's sign of life. */
    this.framesReceived = 0;
    /** Channels the gateway confirmed on this connection. */
    this.subscribed = /* @__PURE__ */ new Set();
    /** channel → the one subscribe/unsubscribe waiting for its answer (never two at once per channel). */
    this.inFlight = /* @__PURE__ */ new Map();
    /** channel → unsubscribe refusals in a row (the retry's backoff exponent). */
    this.unsubscribeRetries = /* @__PURE__ */ new Map();
  }
  get live() {
    return this.opened && !this.closed && this.socket.readyState === OPEN;
  }
  /** The channel request `ref` waiting here, if any. */
  request(ref) {
    if (ref === void 0) return void 0;
    for (const request of this.inFlight.values()) if (request.ref === ref) return request;
    return void 0;
  }
  end() {
    this.closed = true;
    for (const timer of [this.openTimer, this.drainTimer, this.pongTimer, this.healthyTimer]) cancel(timer);
    for (const request of this.inFlight.values()) cancel(request.timer);
    this.inFlight.clear();
  }
  /** Writes `text` if the socket is OPEN (CONNECTING would throw, CLOSING drops silently). */
  send(text) {
    if (this.socket.readyState === OPEN) this.socket.send(text);
  }
  close(code, reason) {
    try {
      this.socket.close(code, reason);
    } catch {
    }
  }
};

// src/requests.ts
var Requests = class {
  constructor() {
    this.pending = /* @__PURE__ */ new Map();
    this.next = 0;
  }
  /** A fresh `ref` (1–64 of A-Z a-z 0-9 _ - . : as the gateway requires). */
  ref() {
    this.next += 1;
    return `r${this.next.toString(36)}`;
  }
  add(request) {
    this.pending.set(request.ref, request);
  }
  has(ref) {
    return this.pending.has(ref);
  }
  /** Ends the request `ref` with an answer or an error; false when no such request waits. */
  settle(ref, outcome) {
    const request = this.pending.get(ref);
    if (!request) return false;
    this.pending.delete(ref);
    cancel(request.timer);
    if (outcome instanceof SumuRequestError) request.reject(outcome);
    else request.resolve(outcome);
    return true;
  }
  /**
   * `link` ended: its presence and history questions are returned, to be asked again on the
   * next connection; its emits are rejected (the gateway may or may not have published them).
   */
  linkLost(link) {
    const again = [];
    for (const request of [...this.pending.values()]) {
      if (request.link !== link) continue;
      if (request.kind === "presence" || request.kind === "history") {
        delete request.link;
        again.push(request);
      } else {
        this.settle(request.ref, new SumuRequestError("connection_lost", "the connection ended before the ack: the emit may or may not have been published"));
      }
    }
    return again;
  }
  rejectAll(error) {
    for (const ref of [...this.pending.keys()]) this.settle(ref, error);
  }
};

// src/subscription.ts
var ChannelEntry = class {
  constructor(channel) {
    this.channel = channel;
    this.state = "subscribing";
    this.handles = /* @__PURE__ */ new Set();
    /** Refusals that may pass (or timeouts) in a row: the retry's backoff exponent. */
    this.retries = 0;
  }
  tell(context) {
    for (const handle of this.handles) handle.deliver("subscribed", context);
  }
  setState(state) {
    if (state === this.state) return;
    this.state = state;
    if (state === "subscribed") this.retries = 0;
    for (const handle of this.handles) handle.changed(state);
  }
};
var Subscription = class extends Emitter {
  constructor(channel, owner, state) {
    super();
    this.channel = channel;
    this.owner = owner;
    this.current = state;
    this.ready = new Promise((resolve, reject) => {
      this.settle = (error) => error ? reject(error) : resolve();
    });
    this.ready.catch(() => {
    });
    if (state === "subscribed") this.finish();
  }
  get state() {
    return this.current;
  }
  /**
   * The channel's kept publications, oldest first: the latest `limit` (1–100, default 100), or
   * with `since` those after it. Asked once connected; rejects (SumuRequestError) when refused
   * (`forbidden`, `invalid_channel` for a pattern) or not answered in time.
   */
  history(options = {}) {
    return this.owner.history(this.channel, options);
  }
  /**
   * Who is in the channel: every user with a connection subscribed to it, sorted by `userId`
   * (asked page after page until the gateway says there is no more). Asked once connected;
   * rejects (SumuRequestError) when refused (`forbidden`, `invalid_channel` for a pattern,
   * `channels_unavailable`) or not answered in time. Keep the list with `join` / `leave`.
   */
  presence() {
    return this.owner.members(this.channel);
  }
  /** Stops this handle; the last handle of a channel sends `unsubscribe`. Idempotent. */
  unsubscribe() {
    if (this.current === "unsubscribed" || this.current === "failed") return;
    this.owner.release(this);
    this.finish(new SumuRequestError("unsubscribed", `unsubscribed from ${this.channel} before the gateway answered`));
    this.set("unsubscribed");
  }
  /** @internal The channel's state changed. */
  changed(state) {
    if (this.current === "unsubscribed" || this.current === "failed") return;
    if (state === "subscribed") this.finish();
    this.set(state);
  }
  /** @internal Refused for good (`error.reason`: forbidden, invalid_channel, too_many_subscriptions). */
  failed(error) {
    if (this.current === "unsubscribed" || this.current === "failed") return;
    this.finish(new SumuRequestError("refused", error.message, error.reason, error.frame));
    this.set("failed");
    this.dispatch("error", error);
  }
  /** @internal */
  deliver(event, value) {
    if (this.current === "unsubscribed" || this.current === "failed") return;
    this.dispatch(event, value);
  }
  set(state) {
    if (state === this.current) return;
    this.current = state;
    this.dispatch("state", state);
  }
  finish(error) {
    const settle = this.settle;
    this.settle = void 0;
    settle?.(error);
  }
};

// src/stream.ts
var TRIES = 2;
var ChannelStream = class {
  constructor(channel, owner, gapMs) {
    this.channel = channel;
    this.owner = owner;
    this.gapMs = gapMs;
    /** Arrived past a gap: waiting for their turn, by offset. */
    this.held = /* @__PURE__ */ new Map();
    /** offset → epoch of what was handled before its turn (handed out early, or an own emit). */
    this.done = /* @__PURE__ */ new Map();
    this.filling = false;
    /** Fills in a row that did not get the next offset. */
    this.misses = 0;
    /** A recovery not yet told: the `subscribed` context waits for the fill that decides it. */
    this.untold = false;
  }
  /** The gateway answered `subscribed` for this channel (`since` as sent, if any). */
  subscribed(frame, since) {
    const offset = frame["offset"];
    const epoch = frame["epoch"];
    const wasRecovering = since !== void 0;
    if (typeof offset !== "number" || typeof epoch !== "string") {
      this.tell(false, wasRecovering);
      return;
    }
    const position = this.position;
    if (!position || !since) {
      if (position?.epoch !== epoch) this.reset({ offset, epoch });
      this.tell(false, false);
      return;
    }
    if (frame["recovered"] === true) {
      this.untold = false;
      this.misses = 0;
      this.tell(true, true);
      this.replay(frame["publications"], offset, epoch, frame["more"] === true);
    } else if (epoch !== position.epoch || since.offset > offset) {
      this.lost(offset, epoch);
    } else {
      this.untold = true;
      this.wait(true);
    }
  }
  /** A publication of this channel, live or replayed. */
  take(publication) {
    const position = this.position;
    if (!position) {
      this.done.set(publication.offset, publication.epoch);
      this.owner.out(publication);
      return;
    }
    if (publication.epoch !== position.epoch) {
      this.lost(publication.offset - 1, publication.epoch);
    } else if (publication.offset <= position.offset || this.done.get(publication.offset) === position.epoch) {
      return;
    }
    this.held.set(publication.offset, publication);
    this.advance();
  }
  /** An offset the client handled itself (its own emit, from the ack): never handed to it. */
  own(offset, epoch) {
    if (this.position && (epoch !== this.position.epoch || offset <= this.position.offset)) return;
    this.done.set(offset, epoch);
    if (this.position) this.advance();
  }
  /** The answer to a fill's `history`. */
  fillReply(frame) {
    this.filling = false;
    const position = this.position;
    if (!position) return;
    const offset = typeof frame["offset"] === "number" ? frame["offset"] : position.offset;
    const epoch = typeof frame["epoch"] === "string" ? frame["epoch"] : position.epoch;
    if (frame["recovered"] === false) {
      if (epoch !== position.epoch || (this.misses += 1) >= TRIES) this.lost(offset, epoch);
      else this.wait(this.untold);
      return;
    }
    if (this.untold) {
      this.untold = false;
      this.tell(true, true);
    }
    this.replay(frame["publications"], offset, epoch, frame["more"] === true);
  }
  /** A fill got no answer in time (or was refused): hand out what is held, in order, and move on. */
  fillFailed() {
    this.filling = false;
    const position = this.position;
    if (!position) return;
    if (this.untold) {
      this.lost(position.offset, position.epoch);
      return;
    }
    this.reset({ offset: Math.max(position.offset, this.flush()), epoch: position.epoch });
  }
  /** A fill's connection ended: the next connection's `subscribe` with `since` recovers. */
  fillLost() {
    this.filling = false;
  }
  stop() {
    cancel(this.timer);
    this.timer = void 0;
    this.held.clear();
  }
  replay(publications, top, epoch, more) {
    for (const frame of Array.isArray(publications) ? publications : []) {
      const publication = readPublication(frame);
      if (publication?.offset !== void 0 && publication.epoch === epoch) this.take(publication);
    }
    const position = this.position;
    if (!position) return;
    if (more) {
      this.fill();
      return;
    }
    if (this.held.size > 0 && position.offset < top && !this.held.has(position.offset + 1)) {
      if ((this.misses += 1) < TRIES) {
        this.wait(false);
        return;
      }
      while (position.offset < top && this.held.size > 0) {
        position.offset += 1;
        this.advance();
      }
    }
    this.misses = 0;
    this.reset(position);
  }
  /** Hands out what is next in order; a gap left behind is filled after `gapMs`. */
  advance() {
    const position = this.position;
    for (; ; ) {
      const next = position.offset + 1;
      const publication = this.held.get(next);
      if (publication) {
        this.held.delete(next);
        position.offset = next;
        this.owner.out(publication);
      } else if (this.done.get(next) === position.epoch) {
        this.done.delete(next);
        position.offset = next;
      } else {
        break;
      }
    }
    if (this.held.size === 0) {
      this.misses = 0;
      if (!this.untold) {
        cancel(this.timer);
        this.timer = void 0;
      }
    } else {
      this.wait(false);
    }
  }
  /** Fills after `gapMs` (a publication past a gap is often just overtaken by a few ms). */
  wait(force) {
    if (this.timer !== void 0 || this.filling) return;
    this.timer = after(this.gapMs, () => {
      this.timer = void 0;
      if (force || this.untold || this.held.size > 0) this.fill();
    });
  }
  fill() {
    if (this.filling || !this.position) return;
    cancel(this.timer);
    this.timer = void 0;
    this.filling = this.owner.ask(this, { ...this.position });
  }
  /** Cannot be recovered: hand out what is held, in order, and continue from the gateway's position. */
  lost(offset, epoch) {
    this.untold = false;
    this.flush();
    this.reset({ offset, epoch });
    this.tell(false, true);
  }
  /**
   * Hands out everything held, in offset order, each remembered as done (so it is skipped
   * when the position passes it); returns the highest offset handed out (0: none).
   */
  flush() {
    let highest = 0;
    for (const offset of [...this.held.keys()].sort((a, b) => a - b)) {
      const publication = this.held.get(offset);
      this.held.delete(offset);
      this.done.set(offset, publication.epoch);
      highest = offset;
      this.owner.out(publication);
    }
    this.misses = 0;
    cancel(this.timer);
    this.timer = void 0;
    return highest;
  }
  reset(position) {
    this.position = position;
    for (const [offset, epoch] of this.done) if (epoch !== position.epoch || offset <= position.offset) this.done.delete(offset);
    this.advance();
  }
  tell(recovered, wasRecovering) {
    const context = { channel: this.channel, recovered, wasRecovering };
    if (this.position) context.position = { ...this.position };
    this.owner.tell(context);
  }
};
function readPublication(frame) {
  if (typeof frame !== "object" || frame === null) return void 0;
  const f = frame;
  if (typeof f["channel"] !== "string" || typeof f["id"] !== "string" || !("data" in f)) return void 0;
  const publication = { channel: f["channel"], id: f["id"], data: f["data"] };
  if (typeof f["from"] === "string") publication.from = f["from"];
  if (typeof f["offset"] === "number") publication.offset = f["offset"];
  if (typeof f["epoch"] === "string") publication.epoch = f["epoch"];
  return publication;
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
  requestTimeoutMs: 1e4,
  presenceTimeoutMs: 3e4,
  pongTimeoutMs: 3e4,
  gapMs: 1e3
};
var MAY_BE_MIN = ["queueLimit", "errorAfterFailures", "overlapMs", "gapMs"];
var RECENT_IDS = 1e4;
var HEALTHY_MS = 1e4;
var RETRYABLE = /* @__PURE__ */ new Set(["channels_unavailable", "connection_gone", "timeout"]);
var MAX_EXCLUDED = 10;
var SumuClient = class extends Emitter {
  constructor(options) {
    super();
    this.current = "closed";
    this.running = false;
    /** Bumped by every attempt and by close(): only the latest attempt may act on its outcome. */
    this.attemptSeq = 0;
    this.primary = null;
    this.candidate = null;
    this.draining = /* @__PURE__ */ new Set();
    /** Retries since the last healthy connection: the reconnect backoff exponent. */
    this.failures = 0;
    /** Attempts in a row that did not open: `connect_failed` after `errorAfterFailures`. */
    this.refusals = 0;
    this.queue = [];
    /** channel or pattern → its state and handles. */
    this.channels = /* @__PURE__ */ new Map();
    this.recentIds = new RecentIds(RECENT_IDS);
    this.requests = new Requests();
    this.online = () => this.retryNow();
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
    const settings = {};
    for (const name of Object.keys(DEFAULTS)) {
      const value = options[name] ?? DEFAULTS[name];
      const min = name === "errorAfterFailures" ? 1 : 0;
      const strict = !MAY_BE_MIN.includes(name);
      if (typeof value !== "number" || !Number.isFinite(value) || value < min || strict && value <= min) {
        throw new TypeError(`SumuClient: \`${name}\` must be a number ${strict ? ">" : "≥"} ${min}`);
      }
      settings[name] = value;
    }
    this.settings = settings;
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
    this.failures = this.refusals = 0;
    host2().addEventListener?.("online", this.online);
    this.setState("connecting");
    void this.attempt();
  }
  /**
   * Stops for good: closes every connection (code 1000), stops reconnecting and keep-alive,
   * drops what was queued and rejects pending `presence()` and acked `emit()` calls.
   * Subscriptions are kept (`subscribing`): `connect()` starts anew and subscribes them again.
   */
  close() {
    this.attemptSeq += 1;
    this.running = false;
    host2().removeEventListener?.("online", this.online);
    for (const timer of [this.retryTimer, this.keepAliveTimer, this.rotateTimer, this.promoteTimer]) cancel(timer);
    this.retryTimer = this.keepAliveTimer = this.rotateTimer = this.promoteTimer = void 0;
    for (const link of this.links()) {
      link.end();
      link.close(1e3, "client closed");
    }
    this.primary = this.candidate = null;
    this.draining.clear();
    this.queue = [];
    this.requests.rejectAll(new SumuRequestError("closed", "SumuClient closed"));
    for (const entry of this.channels.values()) {
      cancel(entry.retryTimer);
      entry.retryTimer = void 0;
      entry.setState("subscribing");
    }
    this.setState("closed");
  }
  /** `{"action":"send","message":…}` (to the messages queue). False when refused: too large or queue full (an `error` event says which). */
  send(message) {
    return this.submit({ action: "send", message }, message);
  }
  /** `{"action":"publish","message":…}` (to the messages topic). False when refused, as `send`. */
  publish(message) {
    return this.submit({ action: "publish", message }, message);
  }
  emit(channel, data, options) {
    const frame = { action: "emit", channel, data };
    if (options?.ack) return this.ask("ack", frame, data, this.settings.requestTimeoutMs, "no ack");
    const text = JSON.stringify(frame);
    if (!this.channels.get(channel)?.stream?.position || text === void 0 || utf8Length(text) > FRAME_LIMIT - 32) return this.submit(frame, data);
    const [acked, accepted] = this.track("ack", frame, data, this.settings.requestTimeoutMs, "no ack");
    acked.catch((error) => {
      if (error.code === "refused") this.dispatch("error", { code: "emit_failed", message: error.message, reason: error.reason, channel, frame: error.frame });
    });
    return accepted;
  }
  /**
   * `{"action":"history","channel":…}` for `subscription.history()`: the kept publications,
   * oldest first (asked again on the next connection when the connection ends first).
   */
  history(channel, options) {
    const frame = { action: "history", channel };
    if (options.limit !== void 0) frame["limit"] = options.limit;
    if (options.since !== void 0) frame["since"] = { offset: options.since.offset, epoch: options.since.epoch };
    return this.ask("history", frame, options, this.settings.requestTimeoutMs, "no history answer").then((reply) => {
      const result = {
        publications: reply["publications"].map(readPublication).filter((p) => p !== void 0),
        more: reply["more"] === true
      };
      if (typeof reply["offset"] === "number") result.offset = reply["offset"];
      if (typeof reply["epoch"] === "string") result.epoch = reply["epoch"];
      if (typeof reply["recovered"] === "boolean") result.recovered = reply["recovered"];
      return result;
    });
  }
  /** Asks who of `users` is online; resolves with the gateway's answer (asked once connected). */
  presence(users) {
    return this.ask("presence", { action: "presence", users: [...users] }, users, this.settings.presenceTimeoutMs, "no presence answer");
  }
  /**
   * `{"action":"presence","channel":…}` for `subscription.presence()`: the channel's members,
   * following `more` with `after` = the last user id received until the gateway has no more.
   */
  async members(channel) {
    const members = [];
    for (let after2; ; ) {
      const frame = { action: "presence", channel };
      if (after2 !== void 0) frame["after"] = after2;
      const reply = await this.ask("presence", frame, channel, this.settings.presenceTimeoutMs, "no presence answer");
      const page = Array.isArray(reply["members"]) ? reply["members"] : [];
      for (const member of page) {
        if (isRecord(member) && typeof member["user_id"] === "string") members.push({ userId: member["user_id"], connections: Number(member["connections"]) || 0 });
      }
      const last = page[page.length - 1]?.user_id;
      if (reply["more"] !== true || typeof last !== "string" || last === after2) return { members };
      after2 = last;
    }
  }
  /**
   * Subscribes to `channel` (a channel, `prefix/*` or `*`): a handle with a state, events and a
   * `ready` promise; `onPublication`, if given, is its `publication` handler. Handles on the same
   * channel share one gateway subscription: the last `unsubscribe()` ends it. Subscribed again
   * after every reconnect.
   */
  subscribe(channel, onPublication) {
    if (typeof channel !== "string" || channel === "" || onPublication !== void 0 && typeof onPublication !== "function") {
      throw new TypeError("subscribe(channel, onPublication?): a channel name and, optionally, a function");
    }
    let entry = this.channels.get(channel);
    const fresh = !entry;
    if (!entry) {
      const created = new ChannelEntry(channel);
      if (channel !== "*" && !channel.endsWith("/*")) {
        created.stream = new ChannelStream(channel, {
          out: (publication) => this.handOut(publication),
          ask: (stream, since) => this.fill(stream, since),
          tell: (context) => created.tell(context)
        }, this.settings.gapMs);
      }
      entry = created;
      this.channels.set(channel, entry);
    }
    const handle = new Subscription(channel, this, entry.state);
    if (onPublication) handle.on("publication", onPublication);
    entry.handles.add(handle);
    if (fresh) this.reconcileAll(channel);
    return handle;
  }
  /** @internal A handle unsubscribed: the channel's last one ends the gateway's subscription. */
  release(handle) {
    const entry = this.channels.get(handle.channel);
    if (!entry?.handles.delete(handle) || entry.handles.size > 0) return;
    cancel(entry.retryTimer);
    entry.stream?.stop();
    this.channels.delete(handle.channel);
    this.reconcileAll(handle.channel);
  }
  // ---- connection attempts ------------------------------------------------------------------
  async attempt() {
    cancel(this.retryTimer);
    this.retryTimer = void 0;
    if (!this.running || this.candidate) return;
    const seq = ++this.attemptSeq;
    let token;
    try {
      token = await this.tokenSource();
    } catch (cause) {
      if (seq !== this.attemptSeq) return;
      this.dispatch("error", { code: "token_failed", message: `the token function failed: ${describe(cause)}`, cause });
      this.attemptFailed();
      return;
    }
    if (seq !== this.attemptSeq || !this.running || this.candidate) return;
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
      if (link.ready) return;
      link.close(1e3, "connect timeout");
      this.linkClosed(link);
    });
  }
  /** An attempt did not open (or closed before taking over): back off; a primary keeps serving. */
  attemptFailed(opened = false) {
    this.candidate = null;
    cancel(this.promoteTimer);
    this.promoteTimer = void 0;
    if (!this.running) return;
    if (!opened) {
      this.refusals += 1;
      if (this.refusals === this.settings.errorAfterFailures) {
        this.dispatch("error", {
          code: "connect_failed",
          message: `${this.refusals} connection attempts in a row failed (refused, unreachable or timed out); still retrying with a fresh token each time`,
          attempts: this.refusals
        });
      }
    }
    if (!this.primary) this.setState("reconnecting");
    this.retryLater();
  }
  retryLater() {
    const delay = backoffDelay(this.failures, this.backoff);
    this.failures += 1;
    cancel(this.retryTimer);
    this.retryTimer = after(delay, () => void this.attempt());
  }
  /** The browser is back online: a client waiting to reconnect tries at once. */
  retryNow() {
    if (this.running && this.retryTimer !== void 0 && !this.candidate) void this.attempt();
  }
  linkOpened(link) {
    if (link.closed || link !== this.candidate || !this.running) {
      link.end();
      link.close(1e3, "not needed");
      return;
    }
    link.opened = true;
    this.refusals = 0;
    link.healthyTimer = after(HEALTHY_MS, () => {
      this.failures = 0;
    });
    link.send('{"action":"ping"}');
    this.expectReply(link, () => this.linkReady(link));
  }
  linkReady(link) {
    if (link.ready || link.closed) return;
    link.ready = true;
    cancel(link.openTimer);
    if (link !== this.candidate) return;
    for (const channel of this.channels.keys()) this.reconcile(link, channel);
    if (this.primary?.live) {
      cancel(this.promoteTimer);
      this.promoteTimer = after(this.settings.subscribeTimeoutMs, () => this.promote(link));
      this.promoteIfReady(link);
    } else {
      this.promote(link);
    }
  }
  promoteIfReady(link) {
    if (link !== this.candidate || !link.ready || !this.primary) return;
    for (const entry of this.channels.values()) {
      if (entry.retryTimer === void 0 && !link.subscribed.has(entry.channel)) return;
    }
    this.promote(link);
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
        old.close(1e3, "reconnected");
        this.linkClosed(old);
      });
    }
    cancel(this.keepAliveTimer);
    this.keepAliveTimer = every(this.settings.keepAliveMs, () => this.keepAlive());
    cancel(this.rotateTimer);
    this.rotateTimer = after(this.settings.maxConnectionMs, () => void this.attempt());
    this.updateChannels();
    this.setState("open");
    this.flush();
  }
  /** Sends `ping` on the primary and checks that something comes back. */
  keepAlive() {
    const link = this.primary;
    if (!link?.live) return;
    link.send('{"action":"ping"}');
    this.expectReply(link);
  }
  /**
   * A link that sends back nothing within `pongTimeoutMs` is taken for dead; one that sent
   * something but no pong (an older gateway, a failing ping route) is ready without an id.
   */
  expectReply(link, orElse) {
    if (link.pongTimer !== void 0) return;
    const seen = link.framesReceived;
    link.pongTimer = after(this.settings.pongTimeoutMs, () => {
      link.pongTimer = void 0;
      if (link.closed) return;
      if (link.framesReceived === seen) {
        link.close(4e3, "keep-alive unanswered");
        this.linkClosed(link);
      } else {
        orElse?.();
      }
    });
  }
  linkClosed(link) {
    if (link.closed) return;
    const opened = link.opened;
    link.end();
    const again = this.requests.linkLost(link);
    if (again.length > 0) this.queue.unshift(...again.map((request) => ({ frame: {}, text: request.text, dropped: void 0, request })));
    if (this.draining.delete(link)) {
      this.flush();
      return;
    }
    if (link === this.candidate) {
      this.attemptFailed(opened);
      return;
    }
    if (link !== this.primary) return;
    this.primary = null;
    cancel(this.keepAliveTimer);
    cancel(this.rotateTimer);
    this.keepAliveTimer = this.rotateTimer = void 0;
    this.updateChannels();
    if (!this.running) return;
    if (this.candidate?.ready) {
      this.promote(this.candidate);
      return;
    }
    this.setState("reconnecting");
    if (!this.candidate) this.retryLater();
  }
  // ---- channels -------------------------------------------------------------------------------
  /** Brings `channel` on every link that carries subscriptions to what the application wants. */
  reconcileAll(channel) {
    for (const link of [this.primary, this.candidate]) if (link) this.reconcile(link, channel);
  }
  /**
   * One request per channel and link at a time: the gateway runs routes concurrently, so an
   * `unsubscribe` and a `subscribe` in flight together could be applied in either order. The
   * next one goes when the answer (or the timeout) is in, and only if still needed.
   */
  reconcile(link, channel) {
    if (!link.ready || link.closed || link.inFlight.has(channel)) return;
    const entry = this.channels.get(channel);
    const has = link.subscribed.has(channel);
    if (entry && !has && entry.retryTimer === void 0) this.channelRequest(link, "subscribe", channel);
    else if (!entry && has) this.channelRequest(link, "unsubscribe", channel);
  }
  channelRequest(link, action, channel) {
    const ref = this.requests.ref();
    const since = action === "subscribe" ? this.channels.get(channel)?.stream?.position : void 0;
    const frame = { action, channel, ref };
    if (since) frame["since"] = { ...since };
    const text = encode(frame);
    if (text === void 0) {
      const entry = this.channels.get(channel);
      if (entry) this.subscribeRefused(entry, "invalid_channel", `the channel name is too long for one frame (${FRAME_LIMIT} bytes)`);
      return;
    }
    const timer = after(this.settings.requestTimeoutMs, () => {
      const request = link.inFlight.get(channel);
      if (request?.ref !== ref) return;
      link.inFlight.delete(channel);
      this.channelRefused(link, action, channel, "timeout", `no answer to ${action} within ${this.settings.requestTimeoutMs} ms`);
    });
    link.inFlight.set(channel, { ref, action, channel, timer, since: since && { ...since } });
    link.send(text);
  }
  channelAnswer(link, type, channel, ref, frame) {
    const request = link.request(ref);
    if (!request || request.channel !== channel) return;
    cancel(request.timer);
    link.inFlight.delete(channel);
    if (type === "subscribed") link.subscribed.add(channel);
    else {
      link.subscribed.delete(channel);
      link.unsubscribeRetries.delete(channel);
    }
    this.updateChannels();
    const entry = this.channels.get(channel);
    if (type === "subscribed" && entry) {
      if (entry.stream) entry.stream.subscribed(frame, request.since);
      else entry.tell({ channel, recovered: false, wasRecovering: false });
    }
    this.reconcile(link, channel);
    this.promoteIfReady(link);
  }
  channelRefused(link, action, channel, reason, message, frame) {
    if (action === "unsubscribe") {
      if (!RETRYABLE.has(reason)) {
        link.subscribed.delete(channel);
        return;
      }
      const retries = link.unsubscribeRetries.get(channel) ?? 0;
      link.unsubscribeRetries.set(channel, retries + 1);
      after(backoffDelay(retries, this.backoff), () => this.reconcile(link, channel));
      return;
    }
    const entry = this.channels.get(channel);
    if (!entry) {
      this.reconcile(link, channel);
      return;
    }
    if (!RETRYABLE.has(reason)) {
      this.subscribeRefused(entry, reason, message, frame);
      this.promoteIfReady(link);
      return;
    }
    const error = { code: "subscribe_failed", message, reason, channel, retrying: true };
    if (frame) error.frame = frame;
    for (const handle of entry.handles) handle.deliver("error", error);
    const delay = backoffDelay(entry.retries, this.backoff);
    entry.retries += 1;
    entry.retryTimer = after(delay, () => {
      entry.retryTimer = void 0;
      if (this.channels.get(channel) === entry) this.reconcileAll(channel);
    });
    this.promoteIfReady(link);
  }
  /** Refused for good: every handle of the channel fails, and the channel is forgotten (not re-sent on reconnect). */
  subscribeRefused(entry, reason, message, frame) {
    const error = { code: "subscribe_failed", message, reason, channel: entry.channel, retrying: false };
    if (frame) error.frame = frame;
    this.channels.delete(entry.channel);
    cancel(entry.retryTimer);
    entry.stream?.stop();
    for (const handle of entry.handles) handle.failed(error);
    this.dispatch("error", error);
    this.reconcileAll(entry.channel);
  }
  /** A channel is `subscribed` while the primary has the gateway's confirmation for it. */
  updateChannels() {
    for (const entry of this.channels.values()) {
      entry.setState(this.primary?.subscribed.has(entry.channel) ? "subscribed" : "subscribing");
    }
  }
  // ---- frames in ------------------------------------------------------------------------------
  linkFrame(link, data) {
    if (link.closed) return;
    link.framesReceived += 1;
    const incoming = typeof data === "string" ? parseFrame(data) : { type: "invalid", frame: data };
    switch (incoming.type) {
      case "pong":
        cancel(link.pongTimer);
        link.pongTimer = void 0;
        if (incoming.connectionId !== void 0) link.connectionId = incoming.connectionId;
        this.linkReady(link);
        return;
      case "subscribed":
      case "unsubscribed":
        this.channelAnswer(link, incoming.type, incoming.channel, incoming.ref, incoming.frame);
        return;
      case "publication":
        this.publication(readPublication(incoming.frame));
        return;
      case "message":
        if (this.recentIds.add(`m:${incoming.id}`)) this.dispatch("message", { id: incoming.id, data: incoming.data });
        return;
      case "presence":
        if (incoming.ref !== void 0 && this.requests.has(incoming.ref)) {
          const { ref: _ref, ...answer } = incoming.frame;
          this.requests.settle(incoming.ref, answer);
          if (answer["channel"] === void 0) this.dispatch("presence", answer);
        }
        return;
      case "ack": {
        const ack = readPublication({ ...incoming.frame, data: null });
        if (ack.offset !== void 0 && ack.epoch !== void 0) this.channels.get(ack.channel)?.stream?.own(ack.offset, ack.epoch);
        delete ack.data;
        this.requests.settle(incoming.ref, ack);
        return;
      }
      case "error":
        this.errorFrame(link, incoming);
        return;
      case "join":
      case "leave":
        for (const handle of this.handlesFor(incoming.channel)) handle.deliver(incoming.type, { channel: incoming.channel, userId: incoming.userId });
        return;
      case "history":
        if (incoming.ref !== void 0) this.requests.settle(incoming.ref, incoming.frame);
        return;
      case "gateway_error":
        this.dispatch("error", { code: "server_error", message: incoming.message, frame: incoming.frame });
        return;
      default:
        this.dispatch("error", { code: "server_error", reason: "invalid_frame", message: "a frame that is not one of sumu's: ignored", frame: incoming.frame });
    }
  }
  /** A publication as it arrived: in offset order through its channel's stream, where it has one. */
  publication(publication) {
    if (this.recentIds.has(`p:${publication.id}`)) return;
    const stream = this.channels.get(publication.channel)?.stream;
    if (stream && publication.offset !== void 0 && publication.epoch !== void 0) stream.take(publication);
    else this.handOut(publication);
  }
  /** Hands a publication to every handle that covers its channel and to the `publication` event, once per id. */
  handOut(publication) {
    if (!this.recentIds.add(`p:${publication.id}`)) return;
    for (const handle of this.handlesFor(publication.channel)) handle.deliver("publication", publication);
    this.dispatch("publication", publication);
  }
  /** A gap-filling `history` since `since`, on the primary; false when not connected (a reconnect recovers). */
  fill(stream, since) {
    if (!this.primary?.live) return false;
    const current = () => this.channels.get(stream.channel)?.stream === stream;
    this.ask("fill", { action: "history", channel: stream.channel, since }, void 0, this.settings.requestTimeoutMs, "no history answer").then(
      (reply) => {
        if (current()) stream.fillReply(reply);
      },
      (error) => {
        if (error.code === "connection_lost" || error.code === "closed") stream.fillLost();
        else if (current()) stream.fillFailed();
      }
    );
    return true;
  }
  /** Every handle whose channel or pattern covers `channel`. */
  handlesFor(channel) {
    const handles = [];
    for (const [pattern, entry] of this.channels) if (patternMatches(pattern, channel)) handles.push(...entry.handles);
    return handles;
  }
  errorFrame(link, incoming) {
    const { error: reason, message, channel, ref, frame } = incoming;
    const request = link.request(ref);
    if (request) {
      cancel(request.timer);
      link.inFlight.delete(request.channel);
      this.channelRefused(link, request.action, request.channel, reason, message, frame);
      return;
    }
    if (ref !== void 0 && this.requests.settle(ref, new SumuRequestError("refused", message, reason, frame))) return;
    if (reason === "ping_failed") this.linkReady(link);
    const error = { code: channel !== void 0 && ref === void 0 ? "emit_failed" : "server_error", message, reason, frame };
    if (channel !== void 0) error.channel = channel;
    this.dispatch("error", error);
  }
  // ---- frames out -----------------------------------------------------------------------------
  submit(frame, dropped) {
    const text = encode(frame);
    if (text === void 0) {
      this.dispatch("error", { code: "too_large", message: tooLarge(frame), dropped });
      return false;
    }
    return this.offer({ frame, text, dropped });
  }
  /** A request answered by `ref`: sent now or queued, rejected when refused before sending or not answered in time. */
  ask(kind, frame, dropped, timeoutMs, what) {
    return this.track(kind, frame, dropped, timeoutMs, what)[0];
  }
  /** As `ask`, and whether it was sent or queued (false: too large, or the queue is full). */
  track(kind, frame, dropped, timeoutMs, what) {
    let accepted = true;
    const promise = new Promise((resolve, reject) => {
      const ref = this.requests.ref();
      const text = encode({ ...frame, ref });
      if (text === void 0) {
        accepted = false;
        reject(new SumuRequestError("too_large", tooLarge(frame)));
        return;
      }
      const request = { ref, kind, text, resolve, reject, timer: void 0 };
      const item = { frame: { ...frame, ref }, text, dropped, request };
      request.timer = after(timeoutMs, () => {
        this.queue = this.queue.filter((queued) => queued !== item);
        this.requests.settle(ref, new SumuRequestError("timeout", `${what} within ${timeoutMs} ms`));
      });
      this.requests.add(request);
      if (!this.offer(item)) {
        accepted = false;
        this.requests.settle(ref, new SumuRequestError("queue_overflow", "not connected and the queue is full: not sent"));
      }
    });
    return [promise, accepted];
  }
  /** Sends now when open, else queues (bounded); false when dropped. */
  offer(item) {
    if (this.primary?.live && this.queue.length === 0) {
      this.transmit(this.primary, item);
      return true;
    }
    if (this.queue.length >= this.settings.queueLimit) {
      this.dispatch("error", {
        code: "queue_overflow",
        message: `not connected and ${this.queue.length} messages are already queued (queueLimit): dropped`,
        dropped: item.dropped
      });
      return false;
    }
    this.queue.push(item);
    this.flush();
    return true;
  }
  /** Sends what was queued, in order, while the primary is open. */
  flush() {
    while (this.queue.length > 0 && this.primary?.live) this.transmit(this.primary, this.queue.shift());
  }
  transmit(link, item) {
    let text = item.text;
    if (item.frame["action"] === "emit") {
      let others = this.links().filter((other) => other !== link && other.live && other.connectionId !== void 0).slice(0, MAX_EXCLUDED);
      if (others.length > 0) {
        const withExclusions = JSON.stringify({ ...item.frame, exclude_connections: others.map((other) => other.connectionId) });
        if (utf8Length(withExclusions) <= FRAME_LIMIT) text = withExclusions;
        else others = [];
      }
    }
    if (item.request) item.request.link = link;
    link.send(text);
  }
  links() {
    return [this.primary, this.candidate, ...this.draining].filter((link) => link !== null);
  }
  setState(state) {
    if (this.current === state) return;
    this.current = state;
    this.dispatch("state", state);
  }
};
function host2() {
  return globalThis;
}
function tooLarge(frame) {
  return `the ${String(frame["action"])} frame would be over ${FRAME_LIMIT} bytes (API Gateway's limit): not sent`;
}
function withToken(url, token) {
  return `${url}${url.includes("?") ? "&" : "?"}authorization=${encodeURIComponent(token)}`;
}
function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
export {
  DEFAULTS,
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  FRAME_LIMIT,
  Subscription,
  SumuClient,
  SumuRequestError,
  backoffCeiling,
  backoffDelay,
  patternMatches
};
