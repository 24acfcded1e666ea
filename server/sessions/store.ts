/**
 * The session store: where a session's start time lives so that any
 * instance can resume it. {@link SessionStore} is the seam; this file holds
 * the in-memory implementation (the embedded default). The Redis one lives
 * in `redis_store.ts` and drops in without touching the handler.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";

/** What the store keeps of one session. */
export interface SessionRecord {
  /** Session start, ms since the epoch. */
  readonly start: number;
}

/** Health of the store as shown in /healthcheck details and /metrics. */
export interface StoreStatus {
  readonly kind: string;
  /** "up", "down" or "connecting". */
  readonly state: string;
  /** Extra numeric figures (buffered writes, round-trip time). */
  readonly figures: Readonly<Record<string, number>>;
  /** Failed store calls by kind (offline, timeout, connection, reply). */
  readonly errors?: Readonly<Record<string, number>>;
}

/** Called when another connection (anywhere) took over a session. */
export type TakeoverListener = (sessionId: string) => void;

/** Shared session state. Every call is bounded in time and never throws. */
export interface SessionStore {
  /** "memory" or "redis". */
  readonly kind: string;
  /** Records a new session: the one write a session costs. */
  create(id: string, record: SessionRecord): Promise<void>;
  /** A live or recently closed session, or null when unknown or expired. */
  get(id: string): Promise<SessionRecord | null>;
  /** Keeps the records of live sessions alive, in one batch. */
  refresh(ids: readonly string[]): Promise<void>;
  /** Starts the grace period of a session whose connection closed. */
  release(id: string): Promise<void>;
  /** Tells every instance that this one now serves the session. */
  announce(id: string): Promise<void>;
  /** Registers the listener told of takeovers by other instances. */
  onTakeover(listener: TakeoverListener): void;
  /** Current state and figures. */
  status(): StoreStatus;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

/**
 * Sessions in this process's memory. A record lives for the grace period
 * after its last refresh or release; expired records are swept in batches.
 */
export class MemoryStore implements SessionStore {
  readonly kind = "memory";
  readonly #records = new Map<string, { start: number; expires: number }>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  #sweepTimer: TimerHandle | undefined;

  /** A store whose records expire `ttlMs` after their last refresh. */
  constructor(clock: Clock, ttlMs: number) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  /** Records a new session. */
  create(id: string, record: SessionRecord): Promise<void> {
    this.#records.set(id, {
      start: record.start,
      expires: this.#clock.now() + this.#ttlMs,
    });
    this.#scheduleSweep();
    return Promise.resolve();
  }

  /** The session, unless unknown or past its grace period. */
  get(id: string): Promise<SessionRecord | null> {
    const entry = this.#records.get(id);
    if (!entry || entry.expires <= this.#clock.now()) {
      return Promise.resolve(null);
    }
    return Promise.resolve({ start: entry.start });
  }

  /** Pushes the expiry of each live session out by the grace period. */
  refresh(ids: readonly string[]): Promise<void> {
    const expires = this.#clock.now() + this.#ttlMs;
    for (const id of ids) {
      const entry = this.#records.get(id);
      if (entry) entry.expires = expires;
    }
    return Promise.resolve();
  }

  /** The grace period starts now. */
  release(id: string): Promise<void> {
    return this.refresh([id]);
  }

  /** Within one process the handler itself closes the older connection. */
  announce(_id: string): Promise<void> {
    return Promise.resolve();
  }

  /** No other instance can take a memory session over. */
  onTakeover(_listener: TakeoverListener): void {}

  /** Always up. */
  status(): StoreStatus {
    return {
      kind: this.kind,
      state: "up",
      figures: { records: this.#records.size },
    };
  }

  /** Stops the sweep timer. */
  close(): Promise<void> {
    if (this.#sweepTimer !== undefined) {
      this.#clock.clearTimeout(this.#sweepTimer);
    }
    this.#sweepTimer = undefined;
    return Promise.resolve();
  }

  #scheduleSweep(): void {
    if (this.#sweepTimer !== undefined) return;
    this.#sweepTimer = this.#clock.setTimeout(() => {
      this.#sweepTimer = undefined;
      const now = this.#clock.now();
      for (const [id, entry] of this.#records) {
        if (entry.expires <= now) this.#records.delete(id);
      }
      if (this.#records.size > 0) this.#scheduleSweep();
    }, Math.min(this.#ttlMs, 60_000));
  }
}
