/**
 * The live-connection set: one small record per WebSocket, found by socket
 * (for the shared event handlers) and by session (for takeovers). Sockets
 * get shared handler functions, never a closure each, to keep the
 * per-connection cost low.
 *
 * @module
 */

import type { Tickable } from "./ticker.ts";

/** One open (or opening) WebSocket connection. */
export class Connection implements Tickable {
  lastTick: number;
  /** Set when this connection lost its session to a newer one. */
  evicted = false;
  /**
   * Message-rate bucket, kept as a debt: messages not yet paid off by the
   * allowed rate, as of `messageAt` (ms).
   */
  messageDebt = 0;
  messageAt = 0;
  /** The token to hand out in the welcome; cleared once sent. */
  token = "";
  /** Whether the session was resumed rather than started. */
  resumed = false;

  /**
   * A connection record for `socket` serving session `sessionId` as the
   * connection of `epoch` (higher is newer; see sessions/store.ts).
   */
  constructor(
    readonly socket: WebSocket,
    readonly sessionId: string,
    readonly start: number,
    readonly epoch: number,
    readonly json: boolean,
    readonly address: string,
    readonly label: string,
    seconds: number,
    /** The connection id of every log line about it. */
    readonly id: string,
    /** When it was accepted, ms since the epoch. */
    readonly acceptedAt: number,
  ) {
    this.lastTick = seconds;
  }
}

/** Connections by socket and by session. */
export class ConnectionSet {
  readonly #bySocket = new Map<WebSocket, Connection>();
  readonly #bySession = new Map<string, Connection>();

  /** Number of connections (open or opening). */
  get size(): number {
    return this.#bySocket.size;
  }

  /** Adds `conn`; returns the connection it took the session from, if any. */
  add(conn: Connection): Connection | undefined {
    this.#bySocket.set(conn.socket, conn);
    const previous = this.#bySession.get(conn.sessionId);
    this.#bySession.set(conn.sessionId, conn);
    if (previous && previous !== conn) {
      previous.evicted = true;
      return previous;
    }
    return undefined;
  }

  /** The connection of `socket`. */
  bySocket(socket: WebSocket): Connection | undefined {
    return this.#bySocket.get(socket);
  }

  /** The connection currently holding session `id`. */
  bySession(id: string): Connection | undefined {
    return this.#bySession.get(id);
  }

  /** Forgets `conn`; true when it still held its session. */
  delete(conn: Connection): boolean {
    this.#bySocket.delete(conn.socket);
    if (this.#bySession.get(conn.sessionId) === conn) {
      this.#bySession.delete(conn.sessionId);
      return true;
    }
    return false;
  }

  /** The sessions held by live connections, with their epochs. */
  held(): Array<{ id: string; epoch: number; start: number }> {
    return [...this.#bySession.values()].map((conn) => ({
      id: conn.sessionId,
      epoch: conn.epoch,
      start: conn.start,
    }));
  }

  /** Every connection. */
  values(): IterableIterator<Connection> {
    return this.#bySocket.values();
  }
}
