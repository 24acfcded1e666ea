/**
 * The request handler: routes WebSocket upgrades, health, metrics and the
 * static client. It is a function of (config, store, clock, logger) and
 * needs no network to build, so tests call it with plain `Request`s.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import type { Logger } from "./logger.ts";
import type { SessionRecord, SessionStore } from "./sessions.ts";
import { Connection, ConnectionSet } from "./connections.ts";
import { CapacityMonitor, type Probe } from "./health.ts";
import type { ProcessCounts } from "./host_readers.ts";
import { Metrics } from "./metrics.ts";
import { createStaticHandler, securityHeaders } from "./static.ts";
import { Ticker } from "./ticker.ts";
import { logLabel, TokenSigner } from "./token.ts";

/** The JSON subprotocol. */
export const PROTOCOL = "ws-time.v1";

/** Close codes of ours (RFC 6455 leaves 4000-4999 to applications). */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  unsupported: 1003,
  takenOver: 4001,
} as const;

/** Where a request came from, as far as the handler is concerned. */
export interface ClientInfo {
  /** The client's address (the socket peer unless a trusted proxy said). */
  readonly address: string;
  /** The scheme the client used, when a trusted proxy said so. */
  readonly proto?: "http" | "https";
}

/**
 * An admission check run before an upgrade: returns a refusal response, or
 * null to let the upgrade continue. Later concerns (origins, per-address
 * limits) plug in here.
 */
export type Admission = (request: Request, client: ClientInfo) =>
  | Response
  | null;

/**
 * Per-address bookkeeping around an upgrade: `admit` reserves a slot or
 * returns the refusal, `release` frees it when that connection ends.
 */
export interface AddressGate {
  admit(address: string): Response | null;
  release(address: string): void;
}

/** Everything the app needs, passed in. */
export interface AppDeps {
  readonly config: Config;
  readonly store: SessionStore;
  readonly clock: Clock;
  /**
   * The ticker's clock; default `clock`. `--precise-ticks` passes a
   * `PreciseClock` (server/precise_clock.ts); the app disposes it on close.
   */
  readonly tickClock?: Clock & Partial<Disposable>;
  readonly logger: Logger;
  /** Signs tokens; default: one from `config.sessionSecret`. */
  readonly tokens?: TokenSigner;
  /** Extra capacity probes beside connections (network, lag, memory). */
  readonly probes?: Readonly<Record<string, Probe>>;
  /** Figures behind the probes, shown in the JSON health details. */
  readonly capacityFigures?: () => object;
  /** Extra checks before an upgrade. */
  readonly admissions?: readonly Admission[];
  /** Per-address limits; a slot is held for each open connection. */
  readonly addressGate?: AddressGate;
  /** Maps a request to its client; default: the socket peer. */
  readonly clientInfo?: (
    request: Request,
    info: Deno.ServeHandlerInfo | undefined,
  ) => ClientInfo;
  /** Random numbers in [0, 1), for jitter. Default Math.random. */
  readonly random?: () => number;
}

/** A built app: the handler and the handles main and tests need. */
export interface App {
  /** The Deno.serve handler. */
  readonly handler: (
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ) => Response | Promise<Response>;
  readonly connections: ConnectionSet;
  readonly monitor: CapacityMonitor;
  readonly metrics: Metrics;
  readonly tokens: TokenSigner;
  /** Cumulative WebSocket payload bytes and messages, both directions. */
  traffic(): ProcessCounts;
  /** Sends a JSON message to a connection if it speaks JSON and is open. */
  sendJson(conn: Connection, message: Record<string, unknown>): void;
  /** Closes one connection with `code` and `reason`. */
  closeConnection(conn: Connection, code: number, reason: string): void;
  /** Closes every connection with `code` and `reason`. */
  closeAll(code: number, reason: string): void;
  /** Stops timers and the ticker; closes every connection with 1001. */
  close(): void;
}

const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;
const LABEL_PATTERN = /^[\w.:-]{1,64}$/;
const OPEN = 1;

/** Builds the request handler and its connection machinery. */
export function createApp(deps: AppDeps): App {
  const { config, store, clock, logger } = deps;
  const random = deps.random ?? Math.random;
  const tokens = deps.tokens ?? new TokenSigner(config.sessionSecret);
  const connections = new ConnectionSet();
  const metrics = new Metrics();
  const serveStatic = createStaticHandler();
  const counts = {
    ticks: 0,
    bytesOut: 0,
    bytesIn: 0,
    messagesIn: 0,
    messagesOut: 0,
  };
  let pending = 0;

  const monitor = new CapacityMonitor({
    threshold: config.healthThreshold,
    recover: config.healthRecover,
    probes: {
      connections: () => (connections.size + pending) / config.maxConnections,
      ...deps.probes,
    },
  });

  declareMetrics(metrics, () => connections.size, counts, monitor, store);

  const nameJson = JSON.stringify(config.name);
  const textPrefix = `${config.name}: you have been connected for `;
  // Refreshed tokens ride on ticks, so a token stays valid for a session
  // that lasts longer than the grace period even if the store loses it.
  const tokenEvery = Math.max(1, Math.floor(config.sessionTtlMs / 2000));

  const tickClock: Clock & Partial<Disposable> = deps.tickClock ?? clock;
  // A precise wake costs more than one of Deno's timers, whose 1 ms timer
  // waits about 2 ms anyway: with a precise clock, one wake per 2 ms at most.
  const tickGapMs = deps.tickClock ? 2 : 1;
  const ticker = new Ticker<Connection>(tickClock, (conn, seconds) => {
    const socket = conn.socket;
    if (socket.readyState !== OPEN) return;
    // With Deno's ping off, a peer that stops reading is noticed here: once
    // the kernel's buffers are full, Deno queues our ticks in memory.
    if (socket.bufferedAmount > config.maxBufferedBytes) {
      metrics.inc("wstime_slow_readers_closed_total");
      closeConnection(conn, CLOSE.policy, "client is not reading");
      return;
    }
    let text: string;
    if (!conn.json) {
      text = `${textPrefix}${seconds} second${seconds === 1 ? "" : "s"}`;
    } else if (seconds % tokenEvery === 0) {
      const { token } = tokens.issue(conn.start, clock.now(), conn.sessionId);
      text = `{"type":"tick","server":${nameJson},"seconds":${seconds},` +
        `"session":"${token}"}`;
    } else {
      text = `{"type":"tick","server":${nameJson},"seconds":${seconds}}`;
    }
    socket.send(text);
    counts.ticks++;
    counts.messagesOut++;
    counts.bytesOut += text.length;
  }, { minGapMs: tickGapMs });

  store.onTakeover((sessionId) => {
    const conn = connections.bySession(sessionId);
    if (!conn) return;
    metrics.inc("wstime_takeovers_total", { where: "remote" });
    connections.delete(conn);
    deps.addressGate?.release(conn.address);
    conn.evicted = true;
    closeConnection(conn, CLOSE.takenOver, "session resumed elsewhere");
  });

  const refreshTimer = startRefreshLoop();

  function startRefreshLoop(): { stop(): void } {
    let handle: TimerHandle | undefined;
    let stopped = false;
    const every = Math.max(1000, Math.floor(config.sessionTtlMs / 2));
    const loop = () => {
      handle = undefined;
      const ids = connections.sessionIds();
      const next = () => {
        if (!stopped) handle = clock.setTimeout(loop, every);
      };
      if (ids.length === 0) return next();
      store.refresh(ids).catch((error) =>
        logger.warn("store refresh failed", { error: String(error) })
      ).finally(next);
    };
    handle = clock.setTimeout(loop, every);
    return {
      stop() {
        stopped = true;
        if (handle !== undefined) clock.clearTimeout(handle);
      },
    };
  }

  function refuse(reason: string, status: number, text: string, extra = {}) {
    metrics.inc("wstime_upgrades_refused_total", { reason });
    return plain(status, text, extra);
  }

  function retryAfter(): Record<string, string> {
    // Spread the retries of refused clients over 5-15 s.
    return { "retry-after": String(5 + Math.floor(random() * 11)) };
  }

  async function upgrade(
    request: Request,
    info: Deno.ServeHandlerInfo | undefined,
  ): Promise<Response> {
    if (request.method !== "GET") {
      return refuse("method", 405, "WebSocket upgrades use GET", {
        allow: "GET, HEAD",
      });
    }
    if (!/\bupgrade\b/i.test(request.headers.get("connection") ?? "")) {
      return refuse("handshake", 400, "Connection header must include Upgrade");
    }
    if (request.headers.get("sec-websocket-version") !== "13") {
      return refuse("version", 426, "Sec-WebSocket-Version must be 13", {
        "sec-websocket-version": "13",
      });
    }
    if (!KEY_PATTERN.test(request.headers.get("sec-websocket-key") ?? "")) {
      return refuse(
        "handshake",
        400,
        "Sec-WebSocket-Key must be 16 bytes in base64",
      );
    }
    const url = new URL(request.url);
    const label = url.searchParams.get("id") ?? "";
    if (label !== "" && !LABEL_PATTERN.test(label)) {
      return refuse(
        "query",
        400,
        "id must be 1-64 letters, digits, '.', ':', '_' or '-'",
      );
    }
    const client = deps.clientInfo?.(request, info) ??
      { address: peerAddress(info) };
    if (monitor.draining) {
      return refuse("draining", 503, "server is draining", retryAfter());
    }
    if (connections.size + pending >= config.maxConnections) {
      return refuse("capacity", 503, "server is at capacity", retryAfter());
    }
    const refusal = admit(request, client);
    if (refusal) {
      metrics.inc("wstime_upgrades_refused_total", {
        reason: refusal.headers.get("x-refusal") ?? "admission",
      });
      return refusal;
    }
    const offered = (request.headers.get("sec-websocket-protocol") ?? "")
      .split(",").map((p) => p.trim());
    const json = offered.includes(PROTOCOL);
    pending++;
    let session;
    let upgraded;
    try {
      session = await resolveSession(url.searchParams.get("session") ?? "");
      upgraded = Deno.upgradeWebSocket(request, {
        ...(json ? { protocol: PROTOCOL } : {}),
        idleTimeout: config.idleTimeoutS,
      });
    } catch (error) {
      deps.addressGate?.release(client.address);
      throw error;
    } finally {
      pending--;
    }
    const { socket, response } = upgraded;
    const seconds = Math.max(
      0,
      Math.floor((clock.now() - session.start) / 1000),
    );
    const conn = new Connection(
      socket,
      session.id,
      session.start,
      json,
      client.address,
      label,
      seconds,
    );
    const previous = connections.add(conn);
    if (previous) {
      metrics.inc("wstime_takeovers_total", { where: "local" });
      closeConnection(previous, CLOSE.takenOver, "session resumed elsewhere");
    }
    if (session.resumed !== "") {
      store.announce(session.id).catch(() => {});
    }
    // Shared listeners through addEventListener: an `onX = fn` property
    // costs every socket a wrapper closure and a handler map besides. No
    // error listener: an error event without one is dropped silently, and
    // the close event that follows does the cleanup.
    socket.addEventListener("open", onOpen);
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", onClose);
    metrics.inc("wstime_sessions_total", {
      kind: session.resumed === "" ? "started" : "resumed",
      from: session.resumed === "" ? "new" : session.resumed,
    });
    logger.info("connect", {
      id: label || undefined,
      session: () => logLabel(session.id),
      resumed: session.resumed || "no",
      seconds,
      protocol: json ? PROTOCOL : "text",
      address: client.address,
    });
    conn.token = session.token;
    conn.resumed = session.resumed !== "";
    return response;
  }

  /** Runs the admissions, then reserves the address's slot. */
  function admit(request: Request, client: ClientInfo): Response | null {
    for (const check of deps.admissions ?? []) {
      const refusal = check(request, client);
      if (refusal) return refusal;
    }
    return deps.addressGate?.admit(client.address) ?? null;
  }

  async function resolveSession(presented: string): Promise<{
    id: string;
    start: number;
    token: string;
    resumed: "" | "store" | "token";
  }> {
    const now = clock.now();
    let claims = presented === "" ? null : tokens.verify(presented);
    if (presented !== "" && !claims) {
      metrics.inc("wstime_tokens_rejected_total", { reason: "invalid" });
    }
    // A client always holds a token at most half a grace period older than
    // its disconnect and must return within the grace period, so an older
    // token cannot name a resumable session: refuse it without a store trip.
    if (claims && claims.issued + 2 * config.sessionTtlMs <= now) {
      metrics.inc("wstime_tokens_rejected_total", { reason: "expired" });
      claims = null;
    }
    if (claims) {
      let record: SessionRecord | null = null;
      try {
        record = await store.get(claims.id);
      } catch (error) {
        logger.warn("store get failed", { error: String(error) });
      }
      if (record) {
        const { token } = tokens.issue(record.start, now, claims.id);
        return { id: claims.id, start: record.start, token, resumed: "store" };
      }
      if (claims.issued + config.sessionTtlMs > now && claims.start <= now) {
        // The store forgot (flushed, or down) but the token is authentic and
        // fresh: its signed start time is the truth. Write it back.
        store.create(claims.id, { start: claims.start }).catch(() => {});
        const { token } = tokens.issue(claims.start, now, claims.id);
        return { id: claims.id, start: claims.start, token, resumed: "token" };
      }
    }
    const { token, id } = tokens.issue(now, now);
    store.create(id, { start: now }).catch((error) =>
      logger.warn("store create failed", { error: String(error) })
    );
    return { id, start: now, token, resumed: "" };
  }

  function onOpen(this: WebSocket): void {
    const conn = connections.bySocket(this);
    if (!conn) return;
    if (conn.evicted) {
      this.close(CLOSE.takenOver, "session resumed elsewhere");
      return;
    }
    if (conn.json) {
      sendJson(conn, {
        type: "welcome",
        server: config.name,
        session: conn.token,
        resumed: conn.resumed,
        seconds: conn.lastTick,
      });
    }
    conn.token = "";
    ticker.add(conn);
  }

  function onMessage(this: WebSocket, event: MessageEvent): void {
    const conn = connections.bySocket(this);
    if (!conn || conn.messageDebt === Infinity) return;
    const data: unknown = event.data;
    counts.messagesIn++;
    if (typeof data !== "string") {
      counts.bytesIn += byteLength(data);
      refuseMessages(conn, CLOSE.unsupported, "binary messages not accepted");
      return;
    }
    // A UTF-16 unit is at least one UTF-8 byte, so only short strings need
    // encoding to learn their size in bytes (the limit is in bytes).
    const size = data.length > config.maxMessageBytes
      ? data.length
      : utf8.encode(data).length;
    counts.bytesIn += size;
    if (size > config.maxMessageBytes) {
      refuseMessages(
        conn,
        CLOSE.tooBig,
        `message too big (limit ${config.maxMessageBytes} bytes)`,
      );
      return;
    }
    // A token bucket of one second's worth: the debt drains at the allowed
    // rate; a message that pushes it past the burst closes the connection.
    const now = clock.now();
    const rate = config.maxMessagesPerSecond;
    const paid = Math.max(0, now - conn.messageAt) / 1000 * rate;
    conn.messageAt = now;
    conn.messageDebt = Math.max(0, conn.messageDebt - paid) + 1;
    if (conn.messageDebt > Math.max(1, rate)) {
      refuseMessages(
        conn,
        CLOSE.policy,
        `too many messages (limit ${rate} per second)`,
      );
    }
  }

  /**
   * Closes a connection for what it sent. Deno drops the connection without
   * a close frame when close() runs inside a message handler while more
   * frames are already buffered (measured: a burst of 20 frames), so the
   * close waits for the next turn of the event loop; until then further
   * messages are ignored (an infinite debt marks the connection).
   */
  function refuseMessages(conn: Connection, code: number, reason: string) {
    conn.messageDebt = Infinity;
    ticker.remove(conn);
    clock.setTimeout(() => closeConnection(conn, code, reason), 0);
  }

  function onClose(this: WebSocket, event: CloseEvent): void {
    const conn = connections.bySocket(this);
    if (!conn) return;
    ticker.remove(conn);
    const heldSession = connections.delete(conn);
    deps.addressGate?.release(conn.address);
    if (heldSession && !conn.evicted) {
      store.release(conn.sessionId).catch(() => {});
    }
    metrics.inc("wstime_disconnects_total", { code: String(event.code) });
    logger.debug("disconnect", {
      session: () => logLabel(conn.sessionId),
      code: event.code,
    });
  }

  function sendJson(conn: Connection, message: Record<string, unknown>): void {
    if (!conn.json || conn.socket.readyState !== OPEN) return;
    const text = JSON.stringify(message);
    conn.socket.send(text);
    counts.messagesOut++;
    counts.bytesOut += text.length;
  }

  function closeConnection(conn: Connection, code: number, reason: string) {
    ticker.remove(conn);
    try {
      conn.socket.close(code, reason);
    } catch {
      // Already closing, or not yet open: onOpen sees `evicted` and closes.
    }
  }

  function handler(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Response | Promise<Response> {
    if (request.url.length > MAX_URL) return plain(414, "URL too long");
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return plain(400, "bad request URL");
    }
    if (request.headers.get("upgrade") !== null) {
      if (url.pathname !== "/") return plain(404, "no WebSocket endpoint here");
      if (!/^websocket$/i.test(request.headers.get("upgrade") ?? "")) {
        return refuse("handshake", 400, "only WebSocket upgrades are served");
      }
      return upgrade(request, info);
    }
    switch (url.pathname) {
      case "/healthcheck":
        return healthcheck(request);
      case "/healthz":
        return onlyGet(request) ?? plain(200, "alive", noStore);
      case "/metrics":
        return onlyGet(request) ??
          plain(200, metrics.render(), {
            ...noStore,
            "content-type": "text/plain; version=0.0.4; charset=utf-8",
          });
    }
    if (url.pathname.includes("\0") || url.pathname.includes("\\")) {
      return plain(400, "bad path");
    }
    return serveStatic(request, url) ?? plain(404, "not found");
  }

  function healthcheck(request: Request): Response {
    const refusal = onlyGet(request);
    if (refusal) return refusal;
    const report = monitor.report();
    const status = report.healthy ? 200 : 503;
    const wantsJson = (request.headers.get("accept") ?? "").includes(
      "application/json",
    );
    const body = wantsJson
      ? JSON.stringify({
        ...report,
        threshold: config.healthThreshold,
        recover: config.healthRecover,
        server: config.name,
        connections: connections.size,
        maxConnections: config.maxConnections,
        figures: deps.capacityFigures?.() ?? {},
        store: store.status(),
      })
      : report.reason;
    const response = plain(status, body, {
      ...noStore,
      // WebSocket clients cannot read the Retry-After of a refused upgrade;
      // this one they can fetch (see healthcheckProbe in the client).
      ...(report.healthy ? {} : retryAfter()),
      "content-type": wantsJson ? "application/json" : "text/plain",
    });
    return request.method === "HEAD"
      ? new Response(null, { status, headers: response.headers })
      : response;
  }

  function closeAll(code: number, reason: string): void {
    for (const conn of [...connections.values()]) {
      closeConnection(conn, code, reason);
    }
  }

  return {
    handler,
    connections,
    monitor,
    metrics,
    tokens,
    traffic: () => ({
      bytesIn: counts.bytesIn,
      bytesOut: counts.bytesOut,
      messagesIn: counts.messagesIn,
      messagesOut: counts.messagesOut,
    }),
    sendJson,
    closeConnection,
    closeAll,
    close() {
      refreshTimer.stop();
      closeAll(CLOSE.goingAway, "server shutting down");
      ticker.stop();
      tickClock[Symbol.dispose]?.();
    },
  };
}

const noStore = { "cache-control": "no-store" };
const utf8 = new TextEncoder();
/** Longest request URL served; ours are short, a resume token is 58 chars. */
const MAX_URL = 8192;

function byteLength(data: unknown): number {
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

function onlyGet(request: Request): Response | null {
  if (request.method === "GET" || request.method === "HEAD") return null;
  return plain(405, "method not allowed", { allow: "GET, HEAD" });
}

/** A text/plain response with our security headers. */
export function plain(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(body.endsWith("\n") ? body : body + "\n", {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      ...securityHeaders(),
      ...headers,
    },
  });
}

function peerAddress(info: Deno.ServeHandlerInfo | undefined): string {
  const addr = info?.remoteAddr as Deno.NetAddr | undefined;
  return addr?.hostname ?? "unknown";
}

function declareMetrics(
  metrics: Metrics,
  open: () => number,
  counts: { ticks: number; bytesOut: number; bytesIn: number },
  monitor: CapacityMonitor,
  store: SessionStore,
): void {
  metrics.gauge("wstime_connections", "Open WebSocket connections", open);
  metrics.counter("wstime_sessions_total", "Sessions served, by kind");
  metrics.counter("wstime_upgrades_refused_total", "Refused upgrades");
  metrics.counter("wstime_takeovers_total", "Sessions taken over");
  metrics.counter(
    "wstime_slow_readers_closed_total",
    "Connections closed because the client stopped reading",
  );
  metrics.counter("wstime_disconnects_total", "Closed connections, by code");
  metrics.counter("wstime_tokens_rejected_total", "Invalid session tokens");
  metrics.gauge(
    "wstime_ticks_sent_total",
    "Tick messages sent",
    () => counts.ticks,
    "counter",
  );
  metrics.gauge(
    "wstime_bytes_total",
    "WebSocket payload bytes",
    () => [[{ direction: "out" }, counts.bytesOut], [
      { direction: "in" },
      counts.bytesIn,
    ]],
    "counter",
  );
  metrics.gauge("wstime_capacity_ratio", "Capacity use by probe", () => {
    const report = monitor.report();
    return Object.entries(report.ratios).map(([probe, value]) =>
      [{ probe }, value] as const
    );
  });
  metrics.gauge(
    "wstime_healthy",
    "1 while /healthcheck answers 200",
    () => monitor.report().healthy ? 1 : 0,
  );
  metrics.gauge(
    "wstime_store_up",
    "1 while the session store is reachable",
    () => store.status().state === "up" ? 1 : 0,
  );
  metrics.gauge(
    "wstime_store_errors_total",
    "Failed session store calls, by kind",
    () =>
      Object.entries(store.status().errors ?? {}).map(([kind, value]) =>
        [{ kind }, value] as const
      ),
    "counter",
  );
  metrics.gauge(
    "wstime_store_figure",
    "Session store figures",
    () =>
      Object.entries(store.status().figures).map(([figure, value]) =>
        [{ figure }, value] as const
      ),
  );
}
