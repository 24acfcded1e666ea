/**
 * A WebSocket's life after the upgrade: accepted into the live set (closing
 * an older local connection of the same session), welcomed on open, ticked
 * by the one shared {@link Ticker}, held to the message limits, closed.
 *
 * Every socket gets the same three listener functions, never a closure of
 * its own, and finds its record through the {@link ConnectionSet}: at 20k
 * connections a closure per socket is measurable memory. The session store
 * is not known here; what a session needs when a connection ends is the
 * caller's `onEnded`.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { Histogram, latencyBuckets, type Metrics } from "../metrics.ts";
import { Connection, ConnectionSet } from "./connections.ts";
import {
  CLOSE,
  CLOSE_REASON,
  closeCodeLabel,
  drainMessage,
  type MoveReason,
  tickTexts,
  welcomeMessage,
} from "./protocol.ts";
import { Ticker } from "./ticker.ts";

/** What the lifecycle needs. */
export interface LifecycleOptions {
  /** The server name in ticks and welcomes. */
  readonly name: string;
  readonly clock: Clock;
  /**
   * The ticker's clock; default `clock`. `--precise-ticks` passes a
   * `PreciseClock`, disposed by {@link SocketLifecycle.stop}.
   */
  readonly tickClock?: Clock & Partial<Disposable>;
  /** Bytes queued for a client before it counts as not reading. */
  readonly maxBufferedBytes: number;
  /** Largest client message, in UTF-8 bytes. */
  readonly maxMessageBytes: number;
  /** Client messages allowed per second (burst: one second's worth). */
  readonly maxMessagesPerSecond: number;
  /**
   * Silence after which a client that has sent anything counts as gone
   * (ms); 0 = never. When set, welcomes ask for a heartbeat every third of
   * it. Checked on the client's ticks, so it costs no timer.
   */
  readonly peerTimeoutMs: number;
  /**
   * How long a JSON client asked to move keeps its old connection after
   * its hint, ms (make before break); 0 closes it at once.
   */
  readonly moveWindowMs: number;
  /** A JSON tick carries a refreshed token every this many seconds. */
  readonly tokenEverySeconds: number;
  /** A fresh token for the session `conn` serves. */
  readonly refreshToken: (conn: Connection) => string;
  /** A label of a session id that is safe to log. */
  readonly sessionLabel: (sessionId: string) => string;
  /** Where slow readers, takeovers and disconnects are counted. */
  readonly metrics: Metrics;
  /** For lines about single connections (gated: see logger.ts). */
  readonly logger: Logger;
  /**
   * Told when a client asked to move reconnected to this same instance
   * (the balancer sent it back); optional.
   */
  readonly onMoveReturned?: () => void;
  /**
   * Told once per connection when it leaves the live set; `heldSession`
   * is false when a newer connection had already taken its session over.
   */
  readonly onEnded: (conn: Connection, heldSession: boolean) => void;
}

/** A session as the lifecycle serves it. */
export interface ServedSession {
  readonly id: string;
  /** Session start, ms since the epoch. */
  readonly start: number;
  /** The connection's epoch; a higher one is a newer connection. */
  readonly epoch: number;
  /** The token handed out in the welcome. */
  readonly token: string;
  readonly resumed: boolean;
}

/** Who is on the other end of an accepted socket. */
export interface Peer {
  readonly json: boolean;
  readonly address: string;
  readonly label: string;
  /** The connection id for log lines (X-Request-Id, or ours). */
  readonly id: string;
}

/** Cumulative WebSocket payload bytes and messages, both directions. */
export interface TrafficCounts {
  readonly ticks: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
}

/** The live connections and what can be done to them. */
export interface SocketLifecycle {
  readonly connections: ConnectionSet;
  /**
   * Takes a freshly upgraded socket into the live set; null when a newer
   * local connection holds the session (the socket is then superseded).
   */
  accept(
    socket: WebSocket,
    session: ServedSession,
    peer: Peer,
  ): Connection | null;
  /**
   * Closes a freshly upgraded socket as soon as it opens, with 4002: its
   * handshake is older than the session's live connection.
   */
  supersede(socket: WebSocket): void;
  /**
   * Closes the local connection of a session that a connection of `epoch`
   * took over elsewhere; a local connection as new or newer stays.
   */
  evict(sessionId: string, epoch: number): void;
  /**
   * Whether the local connection of `epoch` holding `sessionId` never gave
   * its client the token of that epoch: not yet welcomed, or closing.
   */
  undelivered(sessionId: string, epoch: number): boolean;
  /** Closes one connection with `code` and `reason`. */
  close(conn: Connection, code: number, reason: string): void;
  /**
   * Asks a client to move: a JSON client is told when to come back and, with
   * a move window, keeps ticking until it has (its new connection takes the
   * session over) or the window ends (1001); any other is closed with 1001.
   */
  drain(
    conn: Connection,
    reconnectAfterMs: number,
    reason?: MoveReason,
    overlap?: boolean,
  ): void;
  /** Connections asked to move that are still here. */
  readonly moving: () => number;
  /** Whether `conn` was asked to move and is still here. */
  readonly isMoving: (conn: Connection) => boolean;
  /** Closes every connection with `code` and `reason`. */
  closeAll(code: number, reason: string): void;
  /** Counts so far. */
  traffic(): TrafficCounts;
  /** How late ticks left, against their due time (seconds). */
  readonly tickLateness: Histogram;
  /** Closes everyone with 1001 and stops the ticker. */
  stop(): void;
}

const OPEN = 1;
const utf8 = new TextEncoder();
/** Tick lateness buckets, s: around Deno's 1-2 ms timers and beyond. */
const LATENESS_BUCKETS = latencyBuckets(0.0005);

/** Builds the lifecycle and its ticker. */
export function createSocketLifecycle(
  options: LifecycleOptions,
): SocketLifecycle {
  const { clock, metrics, logger } = options;
  const connections = new ConnectionSet();
  const texts = tickTexts(options.name);
  const counts = {
    ticks: 0,
    bytesOut: 0,
    bytesIn: 0,
    messagesIn: 0,
    messagesOut: 0,
  };
  const tickClock: Clock & Partial<Disposable> = options.tickClock ?? clock;
  // A precise wake costs more than one of Deno's timers, whose 1 ms timer
  // waits about 2 ms anyway: with a precise clock, one wake per 2 ms at most.
  const tickGapMs = options.tickClock ? 2 : 1;
  const tickLateness = new Histogram(LATENESS_BUCKETS);
  const ticker = new Ticker<Connection>(tickClock, tick, {
    minGapMs: tickGapMs,
  });
  // Connections asked to move, by when they must be gone. Empty but during
  // a drain, so the steady state pays one size check per tick.
  const moving = new Map<Connection, number>();
  // Moving connections whose session a new connection already took: they
  // hold nothing, but tick on until their client, welcomed elsewhere,
  // closes them (or the move window ends), so a slow welcome on the new
  // instance costs no tick.
  const lingering = new Map<WebSocket, Connection>();
  const peerTimeoutMs = options.peerTimeoutMs > 0
    ? options.peerTimeoutMs
    : Infinity;
  // Three heartbeats per timeout: one lost or late one is not fatal.
  const heartbeatAsk = options.peerTimeoutMs > 0
    ? { heartbeatMs: Math.max(1000, Math.floor(options.peerTimeoutMs / 3)) }
    : {};

  /**
   * Ends a vanished client's connection now: its close handshake may never
   * complete (nobody answers), so its session is released at once instead
   * of when the close event comes. The descriptor stays until the kernel
   * gives up on the TCP connection.
   */
  function dropSilent(conn: Connection): void {
    metrics.inc("wstime_silent_peers_closed_total");
    if (lingering.has(conn.socket)) {
      close(conn, CLOSE.peerSilent, CLOSE_REASON.peerSilent);
      return;
    }
    ticker.remove(conn);
    const held = connections.delete(conn);
    options.onEnded(conn, held && !conn.evicted);
    logger.info("peer silent", {
      cid: conn.id,
      session: () => options.sessionLabel(conn.sessionId),
    });
    close(conn, CLOSE.peerSilent, CLOSE_REASON.peerSilent);
  }

  function tick(conn: Connection, seconds: number, now: number): void {
    const socket = conn.socket;
    if (socket.readyState !== OPEN) return;
    const due = conn.start + seconds * 1000;
    if (moving.size > 0) {
      const by = moving.get(conn);
      if (by !== undefined && due >= by) {
        // The client did not move in time (no support, or its new
        // connection failed): the plain way, a close it reconnects after.
        metrics.inc("wstime_move_window_expired_total");
        close(conn, CLOSE.goingAway, CLOSE_REASON.draining);
        return;
      }
    }
    // A client that sends heartbeats and then stops has vanished (no FIN
    // or RST arrives from a host that lost power or its network). The
    // tick's due time stands in for the clock: it is now, within a wake.
    if (conn.messageAt > 0 && due - conn.messageAt > peerTimeoutMs) {
      dropSilent(conn);
      return;
    }
    // With Deno's ping off, a peer that stops reading is noticed here: once
    // the kernel's buffers are full, Deno queues our ticks in memory.
    if (socket.bufferedAmount > options.maxBufferedBytes) {
      metrics.inc("wstime_slow_readers_closed_total");
      close(conn, CLOSE.policy, CLOSE_REASON.notReading);
      return;
    }
    const text = !conn.json
      ? texts.text(seconds)
      : seconds % options.tokenEverySeconds === 0
      ? texts.json(seconds, options.refreshToken(conn))
      : texts.json(seconds);
    socket.send(text);
    tickLateness.observe(Math.max(0, now - due) / 1000);
    counts.ticks++;
    counts.messagesOut++;
    counts.bytesOut += text.length;
  }

  function accept(
    socket: WebSocket,
    session: ServedSession,
    peer: Peer,
  ): Connection | null {
    const seconds = Math.max(
      0,
      Math.floor((clock.now() - session.start) / 1000),
    );
    const holder = connections.bySession(session.id);
    if (holder && holder.epoch > session.epoch) {
      supersede(socket);
      return null;
    }
    const conn = new Connection(
      socket,
      session.id,
      session.start,
      session.epoch,
      peer.json,
      peer.address,
      peer.label,
      seconds,
      peer.id,
      clock.now(),
    );
    const previous = connections.add(conn);
    if (previous && moving.has(previous)) {
      metrics.inc("wstime_moves_returned_total");
      options.onMoveReturned?.();
    }
    if (previous) {
      metrics.inc("wstime_takeovers_total", { where: "local" });
      close(previous, CLOSE.takenOver, CLOSE_REASON.takenOver);
    }
    // Shared listeners through addEventListener: an `onX = fn` property
    // costs every socket a wrapper closure and a handler map besides. No
    // error listener: an error event without one is dropped silently, and
    // the close event that follows does the cleanup.
    socket.addEventListener("open", onOpen);
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", onClose);
    conn.token = session.token;
    conn.resumed = session.resumed;
    return conn;
  }

  function supersede(socket: WebSocket): void {
    metrics.inc("wstime_superseded_total");
    socket.addEventListener("open", onOpenSuperseded);
  }

  function onOpenSuperseded(this: WebSocket): void {
    this.close(CLOSE.superseded, CLOSE_REASON.superseded);
  }

  function evict(sessionId: string, epoch: number): void {
    const conn = connections.bySession(sessionId);
    if (!conn || conn.epoch >= epoch) return;
    metrics.inc("wstime_takeovers_total", { where: "remote" });
    connections.delete(conn);
    // Eagerly: a half-dead peer may never send the close frame that would
    // otherwise end it.
    options.onEnded(conn, false);
    conn.evicted = true;
    if (moving.has(conn) && conn.socket.readyState === OPEN) {
      lingering.set(conn.socket, conn);
      return;
    }
    close(conn, CLOSE.takenOver, CLOSE_REASON.takenOver);
  }

  function onOpen(this: WebSocket): void {
    const conn = connections.bySocket(this);
    if (!conn) return;
    if (conn.evicted) {
      this.close(CLOSE.takenOver, CLOSE_REASON.takenOver);
      return;
    }
    // Counted now, not when the upgrade was accepted: a second may have
    // passed since, and a moving client's old connection may already have
    // shown it; a welcome with the older count would set it back by one.
    conn.lastTick = Math.max(
      conn.lastTick,
      Math.floor((clock.now() - conn.start) / 1000),
    );
    if (conn.json) {
      sendJson(
        conn,
        welcomeMessage({
          server: options.name,
          session: conn.token,
          resumed: conn.resumed,
          seconds: conn.lastTick,
          ...heartbeatAsk,
        }),
      );
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
      refuseMessages(conn, CLOSE.unsupported, CLOSE_REASON.binary);
      return;
    }
    // A UTF-16 unit is at least one UTF-8 byte, so only short strings need
    // encoding to learn their size in bytes (the limit is in bytes).
    const limit = options.maxMessageBytes;
    const size = data.length > limit ? data.length : utf8.encode(data).length;
    counts.bytesIn += size;
    if (size > limit) {
      refuseMessages(
        conn,
        CLOSE.tooBig,
        `message too big (limit ${limit} bytes)`,
      );
      return;
    }
    // A token bucket of one second's worth: the debt drains at the allowed
    // rate; a message that pushes it past the burst closes the connection.
    const now = clock.now();
    const rate = options.maxMessagesPerSecond;
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
    clock.setTimeout(() => close(conn, code, reason), 0);
  }

  function onClose(this: WebSocket, event: CloseEvent): void {
    const conn = connections.bySocket(this) ?? lingering.get(this);
    if (!conn) return;
    ticker.remove(conn);
    moving.delete(conn);
    if (lingering.delete(this)) {
      // Its session and address slot went with the takeover.
      metrics.inc("wstime_disconnects_total", {
        code: closeCodeLabel(event.code),
      });
      return;
    }
    const heldSession = connections.delete(conn);
    options.onEnded(conn, heldSession && !conn.evicted);
    metrics.inc("wstime_disconnects_total", {
      code: closeCodeLabel(event.code),
    });
    logger.info("disconnect", {
      cid: conn.id,
      session: () => options.sessionLabel(conn.sessionId),
      code: event.code,
    });
  }

  /** Sends a JSON message if the connection speaks JSON and is open. */
  function sendJson(conn: Connection, text: string): void {
    if (!conn.json || conn.socket.readyState !== OPEN) return;
    conn.socket.send(text);
    counts.messagesOut++;
    counts.bytesOut += text.length;
  }

  function close(conn: Connection, code: number, reason: string): void {
    ticker.remove(conn);
    moving.delete(conn);
    try {
      conn.socket.close(code, reason);
    } catch {
      // Already closing, or not yet open: onOpen sees `evicted` and closes.
    }
  }

  function closeAll(code: number, reason: string): void {
    for (const conn of [...connections.values(), ...lingering.values()]) {
      close(conn, code, reason);
    }
  }

  return {
    connections,
    accept,
    supersede,
    evict,
    undelivered(sessionId, epoch) {
      const holder = connections.bySession(sessionId);
      if (!holder || holder.epoch !== epoch) return false;
      // The welcome clears the token; only a JSON client receives one.
      const welcomed = holder.json && holder.token === "";
      return !welcomed || holder.socket.readyState !== OPEN;
    },
    close,
    drain(conn, reconnectAfterMs, reason = "drain", allowOverlap = true) {
      const overlap = allowOverlap && conn.json && options.moveWindowMs > 0 &&
        conn.socket.readyState === OPEN && !conn.evicted;
      metrics.inc("wstime_moves_total", {
        reason,
        how: overlap ? "overlap" : "close",
      });
      if (!overlap) {
        sendJson(conn, drainMessage(reconnectAfterMs, reason));
        close(conn, CLOSE.goingAway, CLOSE_REASON.draining);
        return;
      }
      sendJson(
        conn,
        drainMessage(reconnectAfterMs, reason, options.moveWindowMs),
      );
      moving.set(conn, clock.now() + reconnectAfterMs + options.moveWindowMs);
    },
    moving: () => moving.size,
    isMoving: (conn) => moving.has(conn),
    closeAll,
    traffic: () => ({ ...counts }),
    tickLateness,
    stop() {
      closeAll(CLOSE.goingAway, CLOSE_REASON.shuttingDown);
      ticker.stop();
      tickClock[Symbol.dispose]?.();
    },
  };
}

function byteLength(data: unknown): number {
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}
