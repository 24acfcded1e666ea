/**
 * The session store: where a session's start time lives so that any
 * instance can resume it, and which connection of the session is the
 * newest (its epoch), so that only the newest one ever holds it. {@link SessionStore} is the seam; this file holds
 * the in-memory implementation (the embedded default). The Redis one lives
 * in `redis_store.ts` and drops in without touching the handler.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Histogram } from "../metrics.ts";

/** What the store keeps of one session. */
export interface SessionRecord {
  /** Session start, ms since the epoch. */
  readonly start: number;
  /** The epoch of the newest connection that took the session. */
  readonly epoch: number;
  /** Whether that connection is still open (until it releases). */
  readonly live: boolean;
}

/** A session held by a connection of this instance. */
export interface HeldSession {
  readonly id: string;
  /** The epoch of the holding connection. */
  readonly epoch: number;
  /** Session start, ms since the epoch (to write a lost record back). */
  readonly start: number;
}

/** A held session that a newer connection took: its epoch there. */
export interface LostSession {
  readonly id: string;
  readonly epoch: number;
}

/** The answer to a claim of a known session. */
export interface Claim {
  readonly start: number;
  /**
   * The epoch the claiming connection now holds; when superseded, the
   * epoch of the newer connection that holds the session.
   */
  readonly epoch: number;
  /** A newer connection holds the session live: this one must yield. */
  readonly superseded: boolean;
}

/**
 * The fencing rule every store applies atomically. A connection presenting
 * epoch `presented` takes the session (with an epoch above both) unless a
 * newer connection holds it live: a handshake that waited in a queue while
 * its client moved on must not evict the connection the client moved to.
 * A client that never received its newest token (the connection broke
 * before the welcome) still takes the session once that connection is gone.
 */
export function claimRecord(
  record: SessionRecord,
  presented: number,
): { claim: Claim; next: SessionRecord } {
  if (record.epoch > presented && record.live) {
    return {
      claim: { start: record.start, epoch: record.epoch, superseded: true },
      next: record,
    };
  }
  const epoch = Math.max(record.epoch, presented) + 1;
  return {
    claim: { start: record.start, epoch, superseded: false },
    next: { start: record.start, epoch, live: true },
  };
}

/** Health of the store as shown in /healthcheck details and /metrics. */
export interface StoreStatus {
  readonly kind: string;
  /** "up", "down" or "connecting". */
  readonly state: string;
  /** Where writes go (host:port), when the store is remote. */
  readonly target?: string;
  /** Extra numeric figures (buffered writes, round-trip time). */
  readonly figures: Readonly<Record<string, number>>;
  /** Failed store calls by kind (offline, timeout, connection, reply). */
  readonly errors?: Readonly<Record<string, number>>;
}

/** Told that a connection of `epoch` (anywhere) took over a session. */
export type TakeoverListener = (sessionId: string, epoch: number) => void;

/** Shared session state. Every call is bounded in time and never throws. */
export interface SessionStore {
  /** "memory" or "redis". */
  readonly kind: string;
  /**
   * Records a session held live by a connection of `epoch`: the one write
   * a new session costs (also used to write back a forgotten one).
   */
  create(id: string, start: number, epoch: number): Promise<void>;
  /**
   * Claims a known session for a connection that presented `epoch` (see
   * {@link claimRecord}); null when the session is unknown, expired or the
   * store cannot say. A claim that takes the session also tells every
   * instance, as {@link SessionStore.announce} does.
   */
  claim(id: string, epoch: number): Promise<Claim | null>;
  /**
   * Keeps the records of live sessions alive, in one batch, and writes back
   * any the store lost (a restart, a failover before replication caught
   * up); returns those a newer connection took over meanwhile (with its
   * epoch), which this instance missed (an outage, a freeze).
   */
  refresh(sessions: readonly HeldSession[]): Promise<LostSession[]>;
  /**
   * Starts the grace period of a session whose connection of `epoch`
   * closed; a no-op when a newer connection took the session meanwhile.
   */
  release(id: string, epoch: number): Promise<void>;
  /**
   * Tells every instance that a connection of `epoch` took the session
   * without a claim (written back from its token).
   */
  announce(id: string, epoch: number): Promise<void>;
  /** Registers the listener told of takeovers by other instances. */
  onTakeover(listener: TakeoverListener): void;
  /**
   * Registers a listener told when the store is reachable again after an
   * outage, when takeovers may have been missed.
   */
  onResync(listener: () => void): void;
  /**
   * Whether records may name their holder, told after each presence
   * exchange (true when every instance on the board reads them); absent
   * for a store whose takeovers need no addressing.
   */
  writeHolders?(on: boolean): void;
  /**
   * Where the fleet's presence records meet, for a store the fleet shares
   * (see server/fleet/presence.ts); absent for a store of one process.
   */
  exchangePresence?(
    name: string,
    record: string,
    stale: readonly string[],
  ): Promise<Record<string, string>>;
  /** Current state and figures. */
  status(): StoreStatus;
  /** How long each kind of call took (seconds), for the metrics. */
  callDurations(): ReadonlyArray<readonly [string, Histogram]>;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

/**
 * Sessions in this process's memory. A record lives for the grace period
 * after its last refresh or release; expired records are swept in batches.
 */
export class MemoryStore implements SessionStore {
  readonly kind = "memory";
  readonly #records = new Map<string, SessionRecord & { expires: number }>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  #sweepTimer: TimerHandle | undefined;

  /** A store whose records expire `ttlMs` after their last refresh. */
  constructor(clock: Clock, ttlMs: number) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  /** Records a session held live by a connection of `epoch`. */
  create(id: string, start: number, epoch: number): Promise<void> {
    this.#records.set(id, {
      start,
      epoch,
      live: true,
      expires: this.#clock.now() + this.#ttlMs,
    });
    this.#scheduleSweep();
    return Promise.resolve();
  }

  /** Claims the session unless a newer connection holds it live. */
  claim(id: string, epoch: number): Promise<Claim | null> {
    const entry = this.#records.get(id);
    if (!entry || entry.expires <= this.#clock.now()) {
      return Promise.resolve(null);
    }
    const { claim, next } = claimRecord(entry, epoch);
    this.#records.set(id, { ...next, expires: entry.expires });
    return Promise.resolve(claim);
  }

  /** Pushes the expiry of each live session out by the grace period. */
  refresh(sessions: readonly HeldSession[]): Promise<LostSession[]> {
    const expires = this.#clock.now() + this.#ttlMs;
    const lost: LostSession[] = [];
    for (const { id, epoch } of sessions) {
      const entry = this.#records.get(id);
      if (!entry) continue;
      entry.expires = expires;
      if (entry.epoch > epoch) lost.push({ id, epoch: entry.epoch });
    }
    return Promise.resolve(lost);
  }

  /** The grace period starts now, unless a newer connection holds it. */
  release(id: string, epoch: number): Promise<void> {
    const entry = this.#records.get(id);
    if (entry && entry.epoch === epoch) {
      this.#records.set(id, {
        ...entry,
        live: false,
        expires: this.#clock.now() + this.#ttlMs,
      });
    }
    return Promise.resolve();
  }

  /** Within one process the handler itself closes the older connection. */
  announce(_id: string, _epoch: number): Promise<void> {
    return Promise.resolve();
  }

  /** No other instance can take a memory session over. */
  onTakeover(_listener: TakeoverListener): void {}

  /** A memory store is never away. */
  onResync(_listener: () => void): void {}

  /** Calls are in memory: nothing to time. */
  callDurations(): ReadonlyArray<readonly [string, Histogram]> {
    return [];
  }

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
