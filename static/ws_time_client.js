// @ts-check
/**
 * The reconnecting ws-time client, one plain ES module for browsers and Deno
 * (the page, the tests and the bench share it). It speaks `ws-time.v1`,
 * keeps the newest session token and presents it on every reconnect, and
 * retries with exponential backoff and full jitter so that the clients of a
 * dead instance spread out instead of stampeding the survivors.
 *
 * What a client can and cannot learn from the server:
 * - A `drain` message's `reconnectAfterMs` arrives before the 1001 close, so
 *   it is always honoured. When it also carries `moveWithinMs`, the server
 *   keeps the old connection ticking that long: the client opens its new
 *   connection after the hint and drops the old one only once the new
 *   welcome has arrived (make before break), so a move costs no tick.
 * - Close codes that mean "reconnecting will not help" (see
 *   {@link FINAL_CLOSE_CODES}) end the client instead of retrying.
 * - 4001 (a newer connection took the session) and 4002 (this handshake was
 *   older than the session's live connection) mean another copy holds the
 *   session. The server fences takeovers by epoch, so retrying cannot evict
 *   a newer copy: the client retries slowly ({@link DEFAULTS}.supersededMs)
 *   and takes the session back only once the other copy is gone. Giving up
 *   for good would strand a user whose "other copy" was a dead socket.
 * - Silence is a signal: the server ticks every second, so a connection
 *   with no message for `silenceMs` is dead (a frozen or vanished host, a
 *   partition; no FIN or RST arrives through a balancer). The client drops
 *   it and reconnects with its usual backoff.
 * - When the welcome asks for heartbeats (`heartbeatMs`, a server with
 *   `--peer-timeout`), the client answers a tick with one at most that
 *   often, from the message handler (not a timer, which browsers throttle
 *   in background tabs), so the server can tell a vanished client from a
 *   quiet one.
 * - A refused handshake (503 with `Retry-After`) is invisible: the WebSocket
 *   API of browsers hides the HTTP status of a failed handshake on purpose,
 *   and Deno's only names the status in an error text, never the headers.
 *   The `probe` option fills the gap where an HTTP request can: after a
 *   handshake fails it may ask the server how long to wait
 *   ({@link healthcheckProbe} reads `/healthcheck`'s `Retry-After`).
 *
 * Randomness, the clock, timers and the WebSocket constructor are options,
 * so tests drive every delay deterministically.
 *
 * @module
 */

/** The JSON subprotocol this client speaks. */
export const PROTOCOL = "ws-time.v1";

/**
 * Close codes after which the client stops instead of reconnecting: protocol
 * errors and refusals that a retry would only repeat.
 */
export const FINAL_CLOSE_CODES = Object.freeze([
  1002,
  1003,
  1007,
  1008,
  1009,
  1010,
]);

/**
 * Close codes that say another connection holds the session: 4001 (a newer
 * one took it over) and 4002 (this handshake was the older one). The client
 * keeps trying, slowly, in case that other connection is gone.
 */
export const SUPERSEDED_CLOSE_CODES = Object.freeze([4001, 4002]);

/**
 * The close code of a moving client's new connection that the instance
 * handed on: a better one has room, so the client tries the balancer
 * again at once (its old connection still ticks).
 */
export const HANDED_ON_CLOSE_CODE = 4004;

/** Most tries of one move; the server keeps a mover after far fewer. */
export const MAX_MOVE_HOPS = 32;

/** Pause before trying a move again after a failed (not handed-on) try. */
const MOVE_RETRY_MS = 250;

/** The code this client closes a connection with that went silent. */
export const SILENT_CLOSE_CODE = 4000;

/** How late a silence watchdog may fire before it distrusts itself, ms. */
const LATE_WATCHDOG_MS = 500;
/** The extra turn a late watchdog gives waiting messages, ms. */
const WATCHDOG_GRACE_MS = 1000;

/** The message a client sends so the server knows it is still there. */
export const HEARTBEAT = '{"type":"heartbeat"}';

/** Default option values, in one place. */
export const DEFAULTS = Object.freeze({
  baseMs: 500,
  capMs: 30_000,
  maxAttempts: 50,
  stableMs: 10_000,
  connectTimeoutMs: 15_000,
  maxHintMs: 300_000,
  silenceMs: 3_500,
  supersededMs: 5_000,
  hedgeMs: 2_000,
});

/**
 * @typedef {"idle" | "connecting" | "connected" | "retrying" | "stopped" | "gave-up" | "closed"} ClientState
 * `closed` means the server ended the session with a final close code (or
 * is not a ws-time.v1 server); `gave-up` that every attempt failed.
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} [id] Label sent as `?id=` (1-64 of `A-Z a-z 0-9 _ . : -`). Default none.
 * @property {string} [session] Token to resume from the start. Default none.
 * @property {number} [baseMs] Backoff base. Default 500.
 * @property {number} [capMs] Backoff cap. Default 30000.
 * @property {number} [maxAttempts] Reconnect attempts before giving up. Default 50.
 * @property {number} [stableMs] Uptime after which the attempt counter resets. Default 10000.
 * @property {number} [connectTimeoutMs] A handshake not done by then counts as failed. Default 15000.
 * @property {number} [maxHintMs] Server hints above this are clamped to it. Default 300000.
 * @property {number} [silenceMs] A connection with no message for this long is dead; 0 = never. Default 3500 (about three ticks).
 * @property {number} [supersededMs] Least wait after a 4001 or 4002 close (jittered up to twice that). Default 5000.
 * @property {number} [hedgeMs] A handshake not done by then gets a second one beside it through the balancer; the first to be welcomed wins; 0 = never. Default 2000.
 * @property {readonly number[]} [finalCloseCodes] Default {@link FINAL_CLOSE_CODES}.
 * @property {Probe} [probe] Asked for a delay after a failed handshake. Default none.
 * @property {() => number} [random] Uniform in [0, 1). Default Math.random.
 * @property {() => number} [now] Milliseconds. Default Date.now.
 * @property {(callback: () => void, ms: number) => unknown} [setTimeout] Default globalThis.setTimeout.
 * @property {(handle: any) => void} [clearTimeout] Default globalThis.clearTimeout.
 * @property {SocketConstructor} [WebSocket] Default globalThis.WebSocket.
 */

/**
 * Asked after a handshake failed: resolves to the delay in ms the server
 * asked for, or undefined when it did not say.
 * @typedef {(url: string) => Promise<number | undefined>} Probe
 */

/**
 * The part of the WebSocket API the client uses.
 * @typedef {object} SocketLike
 * @property {number} readyState
 * @property {string} protocol
 * @property {((event: any) => void) | null} onopen
 * @property {((event: { data: unknown }) => void) | null} onmessage
 * @property {((event: any) => void) | null} onerror
 * @property {((event: { code: number, reason: string, wasClean: boolean }) => void) | null} onclose
 * @property {(code?: number, reason?: string) => void} close
 * @property {(data: string) => void} send
 */

/** @typedef {new (url: string, protocols?: string | string[]) => SocketLike} SocketConstructor */

/**
 * @typedef {object} StateDetail
 * @property {ClientState} state
 * @property {ClientState} previous
 * @property {number} attempt Reconnect attempt under way or scheduled (0 on the first connection).
 * @property {number} maxAttempts
 * @property {string} reason Why, in words (empty when obvious); "silent" when the connection went quiet, "superseded" when another connection holds the session.
 * @property {number} [code] The close code that ended the client.
 */

/**
 * @typedef {object} RetryDetail
 * @property {number} attempt 1-based number of the reconnect attempt.
 * @property {number} maxAttempts
 * @property {number} delayMs
 * @property {number} at When it fires (the `now` clock).
 * @property {number | undefined} hintMs The server's hint, if any.
 */

/**
 * @typedef {object} CloseDetail
 * @property {number} code
 * @property {string} reason
 * @property {boolean} opened Whether the handshake had succeeded.
 */

/**
 * A ws-time.v1 message: always a `type`; welcome and tick carry `server`
 * and `seconds`, welcome and some ticks `session`, drain `reconnectAfterMs`.
 * @typedef {{ type: string, [field: string]: unknown }} Message
 */

/**
 * @typedef {object} ClientEvents
 * @property {StateDetail} state
 * @property {Message} message
 * @property {RetryDetail} retry
 * @property {CloseDetail} close
 * @property {string} session The newest token.
 * @property {MoveDetail} move A move the server asked for is done.
 */

/**
 * @typedef {object} MoveDetail
 * @property {string} reason Why the server asked ("drain").
 * @property {string} from The server left.
 * @property {string} to The server the new connection reached.
 */

/**
 * The delay before reconnect attempt `n` (0-based): uniform in
 * [0, min(cap, base * 2^n)], the spread kept all the way up to the cap.
 * @param {number} n
 * @param {number} baseMs
 * @param {number} capMs
 * @param {() => number} random
 * @returns {number}
 */
export function backoffDelay(n, baseMs, capMs, random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(n, 60));
  return Math.floor(random() * ceiling);
}

/**
 * Parses a `Retry-After` value (seconds or an HTTP date) into ms from
 * `now`; undefined when absent or unparsable.
 * @param {string | null} value
 * @param {number} now
 * @returns {number | undefined}
 */
export function parseRetryAfter(value, now) {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * A {@link Probe} that asks the server's `/healthcheck` over HTTP: a 503
 * with `Retry-After` gives the delay. This is the one place a browser can
 * read the server's wait hint, since a failed WebSocket handshake hides its
 * status. Works only where `fetch` may reach the server (same origin in a
 * browser; anywhere from Deno); any failure means "no hint".
 * @param {typeof fetch} [fetchFn] Default globalThis.fetch.
 * @param {number} [timeoutMs] Default 3000.
 * @returns {Probe}
 */
export function healthcheckProbe(fetchFn = globalThis.fetch, timeoutMs = 3000) {
  return async (url) => {
    // Beside the WebSocket's path (a proxy may mount it under a prefix);
    // resolving drops the query, so the session token stays out of it.
    const target = new URL("healthcheck", url);
    target.protocol = target.protocol === "wss:" ? "https:" : "http:";
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const response = await fetchFn(target, { signal, cache: "no-store" });
      await response.body?.cancel();
      if (response.status !== 503) return undefined;
      return parseRetryAfter(response.headers.get("retry-after"), Date.now());
    } catch {
      return undefined;
    }
  };
}

const CONNECTING = 0;
const OPEN = 1;

/** A ws-time.v1 connection that reconnects by itself until stopped. */
export class WsTimeClient {
  /** @type {URL} */
  #url;
  /** @type {Required<Omit<ClientOptions, "id" | "session" | "probe">> & ClientOptions} */
  #options;
  /** @type {Map<string, Set<(detail: any) => void>>} */
  #listeners = new Map();
  /** @type {ClientState} */
  #state = "idle";
  /** @type {SocketLike | null} */
  #socket = null;
  /** @type {unknown} The pending retry's timer handle. */
  #timer = undefined;
  /** Bumped whenever a socket or retry is abandoned; stale events check it. */
  #generation = 0;
  #attempt = 0;
  #session = "";
  #server = "";
  /** @type {number | undefined} */
  #drainHint = undefined;
  /** @type {SocketLike | null} The new connection of a move, until welcomed. */
  #candidate = null;
  /** @type {unknown} Timer of a move or hedge not yet begun. */
  #moveTimer = undefined;
  /** @type {"move" | "hedge"} What the candidate is for. */
  #candidateKind = "move";
  /** Why the server asked the client to move ("" when it did not). */
  #moveReason = "";
  /** Which try of the current move the candidate is. */
  #moveHop = 0;
  /** The highest count of this session shown so far (-1 before any). */
  #seconds = -1;
  /** The old connection ended while its replacement was under way. */
  #orphaned = false;
  /** @type {Promise<void>} */
  #closed = Promise.resolve();
  /** @type {unknown} The silence watchdog's timer handle. */
  #watchdog = undefined;
  /** The `#heardAt` a late watchdog last granted a grace turn for. */
  #graceFor = NaN;
  /** When the open connection last heard from the server (`now` clock). */
  #heardAt = 0;
  /** When the open connection last sent a heartbeat. */
  #heartbeatAt = -Infinity;
  /** Heartbeat period the server asked for in its welcome; 0 = none. */
  #heartbeatMs = 0;

  /**
   * A client for `url` (ws:// or wss://); call {@link start} to connect.
   * @param {string | URL} url
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.#url = new URL(url);
    if (this.#url.protocol !== "ws:" && this.#url.protocol !== "wss:") {
      throw new TypeError(
        `Cannot connect to "${url}": the address must start with ws:// or wss://`,
      );
    }
    const merged = {
      ...DEFAULTS,
      finalCloseCodes: FINAL_CLOSE_CODES,
      random: Math.random,
      now: Date.now,
      setTimeout: (/** @type {() => void} */ f, /** @type {number} */ ms) =>
        globalThis.setTimeout(f, ms),
      clearTimeout: (/** @type {any} */ h) => globalThis.clearTimeout(h),
      WebSocket: /** @type {SocketConstructor} */ (globalThis.WebSocket),
      ...withoutUndefined(options),
    };
    for (const key of ["baseMs", "capMs", "stableMs", "connectTimeoutMs"]) {
      const value = /** @type {Record<string, unknown>} */ (merged)[key];
      if (typeof value !== "number" || !(value > 0) || !isFinite(value)) {
        throw new RangeError(`Option ${key} must be a positive number`);
      }
    }
    for (const key of ["silenceMs", "supersededMs", "hedgeMs"]) {
      const value = /** @type {Record<string, unknown>} */ (merged)[key];
      if (typeof value !== "number" || !(value >= 0) || !isFinite(value)) {
        throw new RangeError(`Option ${key} must be a number >= 0`);
      }
    }
    if (!Number.isInteger(merged.maxAttempts) || merged.maxAttempts < 0) {
      throw new RangeError("Option maxAttempts must be a whole number >= 0");
    }
    this.#options = merged;
    this.#session = options.session ?? "";
  }

  /** Current state. */
  get state() {
    return this.#state;
  }

  /** The newest session token ("" before the first welcome). */
  get session() {
    return this.#session;
  }

  /** Name of the server that served the latest message. */
  get server() {
    return this.#server;
  }

  /** Reconnect attempts since the last stable connection. */
  get attempt() {
    return this.#attempt;
  }

  /**
   * Calls `listener` for every event of `type`; returns its remover.
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(detail: ClientEvents[K]) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, set = new Set());
    set.add(listener);
    return () => void set.delete(listener);
  }

  /** Connects (again) with a fresh attempt counter; no-op while active. */
  start() {
    if (this.#active()) return;
    this.#attempt = 0;
    this.#drainHint = undefined;
    this.#open();
  }

  /**
   * Stops at once: cancels a pending retry and closes the socket (a socket
   * still connecting is closed as soon as it opens, which browsers log no
   * error for). Resolves when no socket of ours is left.
   * @returns {Promise<void>}
   */
  stop() {
    if (this.#active()) this.#end("stopped", "stopped by the user");
    return this.#closed;
  }

  #active() {
    return this.#state === "connecting" || this.#state === "connected" ||
      this.#state === "retrying";
  }

  /** @param {number} [hop] Which try of a move this is; 0 for none. */
  #connectUrl(hop = 0) {
    const url = new URL(this.#url);
    if (this.#options.id) url.searchParams.set("id", this.#options.id);
    if (this.#session) url.searchParams.set("session", this.#session);
    if (hop > 0) url.searchParams.set("move", String(hop));
    return url.href;
  }

  #open() {
    const generation = ++this.#generation;
    const url = this.#connectUrl();
    this.#setState("connecting", "");
    // Listeners may stop the client from inside any event: check after each.
    if (generation !== this.#generation) return;
    /** @type {SocketLike} */
    let socket;
    try {
      socket = new this.#options.WebSocket(url, PROTOCOL);
    } catch (error) {
      this.#end(
        "closed",
        `cannot open: ${/** @type {Error} */ (error).message}`,
      );
      return;
    }
    this.#attach(socket, url, generation, false);
    const { hedgeMs, connectTimeoutMs, setTimeout } = this.#options;
    if (hedgeMs > 0 && hedgeMs < connectTimeoutMs) {
      // A handshake routed to a frozen instance hangs until the connect
      // timeout; a second one beside it lets the balancer pick another
      // instance, and a slow link keeps its first attempt meanwhile.
      this.#moveTimer = setTimeout(() => {
        this.#moveTimer = undefined;
        if (generation !== this.#generation) return;
        if (socket.readyState !== CONNECTING) return;
        this.#openCandidate(
          "hedge",
          url,
          this.#options.now() + connectTimeoutMs - hedgeMs,
        );
      }, hedgeMs);
    }
  }

  /**
   * Makes `socket` the client's connection: its events drive the client
   * while `generation` is current. `open` is true for a socket that opened
   * already (a move's new connection).
   * @param {SocketLike} socket
   * @param {string} url
   * @param {number} generation
   * @param {boolean} open
   */
  #attach(socket, url, generation, open) {
    this.#socket = socket;
    const closed = Promise.withResolvers();
    this.#closed = closed.promise.then(() => {});
    let opened = false;
    let openedAt = 0;
    const timeout = open ? undefined : this.#options.setTimeout(() => {
      if (socket.readyState === CONNECTING) socket.close();
    }, this.#options.connectTimeoutMs);
    const clear = () => {
      if (timeout !== undefined) this.#options.clearTimeout(timeout);
    };
    const onOpen = () => {
      clear();
      if (generation !== this.#generation) return;
      // This one made it: any pending or racing second handshake goes.
      this.#cancelMoveTimer();
      if (this.#candidateKind === "hedge") this.#dropCandidate();
      if (socket.protocol !== PROTOCOL) {
        this.#end("closed", `the server does not speak ${PROTOCOL}`);
        return;
      }
      opened = true;
      openedAt = this.#options.now();
      this.#heardAt = openedAt;
      this.#heartbeatAt = -Infinity;
      this.#heartbeatMs = 0;
      this.#watch(url, openedAt, this.#options.silenceMs);
      this.#setState("connected", "");
    };
    socket.onopen = onOpen;
    socket.onmessage = (event) => {
      if (generation !== this.#generation) return;
      this.#heardAt = this.#options.now();
      this.#onMessage(event.data, socket);
    };
    socket.onerror = () => {
      // A close event always follows; it decides what happens next.
    };
    socket.onclose = (event) => {
      clear();
      closed.resolve(undefined);
      if (generation !== this.#generation) return;
      this.#unwatch();
      this.#socket = null;
      const uptime = opened ? this.#options.now() - openedAt : 0;
      this.#onClose(url, event, opened, uptime);
    };
    if (open) onOpen();
  }

  /**
   * Begins the move the server asked for (or its next try): a new
   * connection through the balancer, carrying `move=hop`, while the old one
   * still ticks. The old one is dropped when the new welcome arrives; a
   * new one handed on (4004) or failed is tried again; once the old one
   * ends as well, the usual reconnect follows.
   * @param {number} [hop]
   */
  #beginMove(hop = 1) {
    this.#moveTimer = undefined;
    if (this.#state !== "connected" || this.#candidate !== null) return;
    this.#moveHop = hop;
    this.#openCandidate("move", this.#connectUrl(hop));
  }

  /**
   * Opens a second connection beside the current one: for a move (the
   * current one is open and still ticks) or a hedge (the current one's
   * handshake hangs). The first of them to be welcomed is the connection.
   * A hedge that hangs as well is replaced every `hedgeMs / 2` by a fresh one
   * (the balancer's checks may have taken the frozen instance out by
   * then) until `hedgeUntil`; the first handshake is kept throughout.
   * @param {"move" | "hedge"} kind
   * @param {string} url
   * @param {number} [hedgeUntil]
   */
  #openCandidate(kind, url, hedgeUntil = 0) {
    /** @type {SocketLike} */
    let socket;
    try {
      socket = new this.#options.WebSocket(url, PROTOCOL);
    } catch {
      return;
    }
    this.#candidate = socket;
    this.#candidateKind = kind;
    const { setTimeout, clearTimeout, connectTimeoutMs, hedgeMs, now } =
      this.#options;
    const timeout = setTimeout(() => {
      if (socket.readyState === CONNECTING) socket.close();
    }, connectTimeoutMs);
    // Later hedges come twice as often: by then the first one hung too.
    const every = hedgeMs / 2;
    const replace = kind === "hedge" && now() + every < hedgeUntil
      ? setTimeout(() => {
        if (this.#candidate !== socket) return;
        // Hung too: a fresh handshake instead, which the balancer may
        // send elsewhere now.
        this.#candidate = null;
        closeQuietly(socket, "raced");
        this.#openCandidate("hedge", url, hedgeUntil);
      }, every)
      : undefined;
    const clear = () => {
      clearTimeout(timeout);
      if (replace !== undefined) clearTimeout(replace);
    };
    socket.onopen = () => {
      clear();
      if (socket.protocol !== PROTOCOL) socket.close(1000, "");
    };
    // Only `#candidate` ties these handlers to the client: the old
    // connection may end (and the generation move on) while this one
    // connects, and this one must still take over then.
    socket.onmessage = (event) => {
      if (this.#candidate !== socket) return;
      // The first message is the welcome: the new connection is up.
      this.#promote(socket, url, event.data);
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      clear();
      if (this.#candidate !== socket) return;
      this.#candidate = null;
      if (
        kind === "move" && !this.#orphaned && this.#moveHop < MAX_MOVE_HOPS
      ) {
        // The old connection still ticks: try the balancer again, at once
        // when the instance handed us on, after a pause when it failed.
        const hop = this.#moveHop + 1;
        this.#moveTimer = setTimeout(
          () => this.#beginMove(hop),
          event.code === HANDED_ON_CLOSE_CODE ? 0 : MOVE_RETRY_MS,
        );
        return;
      }
      if (!this.#orphaned) return;
      // The old connection ended meanwhile and the new one failed: what
      // follows any lost connection.
      this.#orphaned = false;
      const hint = this.#drainHint;
      this.#drainHint = undefined;
      this.#scheduleRetry(hint, "");
    };
  }

  /**
   * The move's new connection was welcomed: it becomes the connection,
   * and the old one is closed (if the server has not closed it already).
   * @param {SocketLike} socket
   * @param {string} url
   * @param {unknown} welcome
   */
  #promote(socket, url, welcome) {
    const old = this.#socket;
    const from = this.#server;
    const reason = this.#moveReason;
    const kind = this.#candidateKind;
    this.#candidate = null;
    this.#orphaned = false;
    this.#drainHint = undefined;
    this.#moveReason = "";
    this.#unwatch();
    const generation = ++this.#generation;
    if (old) closeQuietly(old, kind === "move" ? "moved" : "raced");
    this.#attach(socket, url, generation, true);
    this.#onMessage(welcome, socket);
    if (kind === "move" && generation === this.#generation) {
      this.#emit("move", { reason, from, to: this.#server });
    }
  }

  /** Closes the candidate, if any, and forgets it. */
  #dropCandidate() {
    const candidate = this.#candidate;
    this.#candidate = null;
    this.#orphaned = false;
    if (candidate) closeQuietly(candidate, "raced");
  }

  /**
   * Arms the silence watchdog: it fires `delay` ms from now and, unless the
   * connection has heard from the server since, drops it. One timer per
   * silence period, re-armed for the remainder, not one per message.
   * @param {string} url
   * @param {number} openedAt
   * @param {number} delay
   */
  #watch(url, openedAt, delay) {
    const { silenceMs, setTimeout, now } = this.#options;
    if (silenceMs <= 0) return;
    const generation = this.#generation;
    const due = now() + delay;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (generation !== this.#generation) return;
      const silent = now() - this.#heardAt;
      if (silent < silenceMs) {
        this.#watch(url, openedAt, silenceMs - silent);
        return;
      }
      // A watchdog that fires well after its time ran on a starved page
      // (a busy main thread, a machine waking up): messages may be waiting
      // unread behind it. Give them one short turn before calling the
      // connection dead, once per silence.
      if (now() - due > LATE_WATCHDOG_MS && this.#graceFor !== this.#heardAt) {
        this.#graceFor = this.#heardAt;
        this.#watch(url, openedAt, Math.min(silenceMs, WATCHDOG_GRACE_MS));
        return;
      }
      this.#silent(url, openedAt, silent);
    }, delay);
  }

  #unwatch() {
    if (this.#watchdog !== undefined) {
      this.#options.clearTimeout(this.#watchdog);
      this.#watchdog = undefined;
    }
  }

  /**
   * Drops a connection that went silent. Its socket is abandoned, not
   * awaited: over a dead path its closing handshake may take minutes.
   * @param {string} url
   * @param {number} openedAt
   * @param {number} silent
   */
  #silent(url, openedAt, silent) {
    const socket = this.#socket;
    this.#socket = null;
    this.#generation++;
    this.#closed = Promise.resolve();
    try {
      socket?.close(SILENT_CLOSE_CODE, "no message from the server");
    } catch {
      // Already closing.
    }
    const seconds = (silent / 1000).toFixed(1);
    this.#onClose(
      url,
      {
        code: SILENT_CLOSE_CODE,
        reason: `no message for ${seconds} s`,
      },
      true,
      this.#options.now() - openedAt,
    );
  }

  /**
   * @param {unknown} data
   * @param {SocketLike} socket
   */
  #onMessage(data, socket) {
    if (typeof data !== "string") return;
    /** @type {unknown} */
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof parsed !== "object" || parsed === null) return;
    const message = /** @type {Message} */ (parsed);
    if (typeof message.seconds === "number") {
      if (message.type === "welcome" && message.resumed !== true) {
        this.#seconds = message.seconds;
      } else if (message.seconds < this.#seconds) {
        // The same session's count, counted a moment earlier: a move's
        // welcome can be overtaken by the old connection's next tick. The
        // count shown never goes back.
        message.seconds = this.#seconds;
      } else {
        this.#seconds = message.seconds;
      }
    }
    if (typeof message.server === "string") this.#server = message.server;
    if (typeof message.session === "string" && message.session !== "") {
      this.#session = message.session;
      this.#emit("session", message.session);
    }
    const hint = message.reconnectAfterMs;
    if (message.type === "drain" && typeof hint === "number" && hint >= 0) {
      this.#drainHint = Math.min(hint, this.#options.maxHintMs);
      const within = message.moveWithinMs;
      if (
        typeof within === "number" && within > 0 && this.#candidate === null &&
        this.#moveTimer === undefined
      ) {
        this.#moveReason = typeof message.reason === "string"
          ? message.reason
          : "";
        this.#moveTimer = this.#options.setTimeout(
          () => this.#beginMove(),
          this.#drainHint,
        );
      }
    }
    const asked = message.heartbeatMs;
    if (message.type === "welcome" && typeof asked === "number") {
      this.#heartbeatMs = asked >= 1000 && isFinite(asked) ? asked : 0;
    }
    const now = this.#options.now();
    if (
      message.type === "tick" && this.#heartbeatMs > 0 &&
      now - this.#heartbeatAt >= this.#heartbeatMs && socket.readyState === OPEN
    ) {
      this.#heartbeatAt = now;
      socket.send(HEARTBEAT);
    }
    this.#emit("message", message);
  }

  /**
   * @param {string} url
   * @param {{ code: number, reason: string }} event
   * @param {boolean} opened
   * @param {number} uptime
   */
  async #onClose(url, event, opened, uptime) {
    this.#cancelMoveTimer();
    if (this.#candidate !== null) {
      // A move is under way: the old connection ending (the new one took
      // the session over, or the server's window ran out) is part of it,
      // not a lost connection. The new connection's welcome, or its
      // failure, decides what next.
      this.#orphaned = true;
      return;
    }
    const generation = this.#generation;
    this.#emit("close", { code: event.code, reason: event.reason, opened });
    if (generation !== this.#generation) return;
    if (uptime >= this.#options.stableMs) this.#attempt = 0;
    if (this.#options.finalCloseCodes.includes(event.code)) {
      const reason = event.reason || "the server asked not to reconnect";
      this.#end("closed", reason, event.code);
      return;
    }
    let hint = this.#drainHint;
    this.#drainHint = undefined;
    if (SUPERSEDED_CLOSE_CODES.includes(event.code)) {
      const { supersededMs, random } = this.#options;
      hint = Math.max(hint ?? 0, supersededMs * (1 + random()));
      this.#scheduleRetry(hint, "superseded");
      return;
    }
    if (!opened && hint === undefined && this.#options.probe) {
      hint = await this.#options.probe(url).catch(() => undefined);
      if (generation !== this.#generation) return;
      if (hint !== undefined) hint = Math.min(hint, this.#options.maxHintMs);
    }
    this.#scheduleRetry(hint, event.code === SILENT_CLOSE_CODE ? "silent" : "");
  }

  /**
   * @param {number | undefined} hintMs
   * @param {string} why
   */
  #scheduleRetry(hintMs, why) {
    const { baseMs, capMs, maxAttempts, random, now } = this.#options;
    if (this.#attempt >= maxAttempts) {
      this.#end("gave-up", `gave up after ${maxAttempts} attempts`);
      return;
    }
    const jittered = backoffDelay(this.#attempt, baseMs, capMs, random);
    // A server hint is a floor: never earlier than asked, still jittered.
    const delayMs = hintMs === undefined
      ? jittered
      : Math.max(hintMs, jittered);
    this.#attempt++;
    const generation = this.#generation;
    this.#timer = this.#options.setTimeout(() => {
      this.#timer = undefined;
      if (generation === this.#generation) this.#open();
    }, delayMs);
    const retry = {
      attempt: this.#attempt,
      maxAttempts,
      delayMs,
      at: now() + delayMs,
      hintMs,
    };
    this.#setState(
      "retrying",
      why !== "" ? why : hintMs === undefined ? "" : "server hint",
    );
    if (generation === this.#generation) this.#emit("retry", retry);
  }

  /**
   * Ends the client in a terminal state, releasing timer and socket.
   * @param {ClientState} state
   * @param {string} reason
   * @param {number} [code]
   */
  #end(state, reason, code) {
    this.#generation++;
    this.#unwatch();
    this.#cancelMoveTimer();
    this.#dropCandidate();
    if (this.#timer !== undefined) {
      this.#options.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const socket = this.#socket;
    this.#socket = null;
    if (socket?.readyState === OPEN) {
      socket.close(1000, state === "stopped" ? "client stopped" : "");
    } else if (socket?.readyState === CONNECTING) {
      socket.onopen = () => socket.close(1000, "client stopped");
    }
    this.#setState(state, reason, code);
  }

  #cancelMoveTimer() {
    if (this.#moveTimer !== undefined) {
      this.#options.clearTimeout(this.#moveTimer);
      this.#moveTimer = undefined;
    }
  }

  /**
   * @param {ClientState} state
   * @param {string} reason
   * @param {number} [code]
   */
  #setState(state, reason, code) {
    const previous = this.#state;
    this.#state = state;
    this.#emit("state", {
      state,
      previous,
      attempt: this.#attempt,
      maxAttempts: this.#options.maxAttempts,
      reason,
      ...(code === undefined ? {} : { code }),
    });
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {ClientEvents[K]} detail
   */
  #emit(type, detail) {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        listener(detail);
      } catch (error) {
        // A failing listener must not break reconnection: report it apart.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/**
 * Copies `options` without its undefined fields, so they keep defaults.
 * @template {object} T
 * @param {T} options
 * @returns {Partial<T>}
 */
function withoutUndefined(options) {
  return /** @type {Partial<T>} */ (Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ));
}

/**
 * Closes a socket the client no longer wants: at once when open, as soon
 * as it opens when still connecting (its own handlers are stale by then).
 * @param {SocketLike} socket
 * @param {string} reason
 */
function closeQuietly(socket, reason) {
  try {
    if (socket.readyState === OPEN) socket.close(1000, reason);
    else if (socket.readyState === CONNECTING) {
      socket.onopen = () => socket.close(1000, reason);
    }
  } catch {
    // Already closing.
  }
}
