/**
 * Sessions in Redis, shared by every instance. A session costs one SET (with
 * the grace period as its expiry) when it starts; live sessions are kept
 * alive by one pipelined batch of EXPIREs per refresh; a closed session's
 * record lives on for the grace period. Takeovers travel over pub/sub.
 *
 * Redis trouble never reaches the clients: every call is bounded by the
 * store timeout and never throws; writes that cannot be made wait in a
 * bounded buffer (oldest dropped first, counted) and are flushed when Redis
 * answers again; reads that fail return null, and the handler falls back to
 * the signed token.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { RedisLink } from "./redis_link.ts";
import type {
  SessionRecord,
  SessionStore,
  StoreStatus,
  TakeoverListener,
} from "./store.ts";

/** Options of {@link RedisStore}; durations in ms. */
export interface RedisStoreOptions {
  /** redis:// or rediss:// URL with optional user, password and db index. */
  readonly url: string;
  /** Prefix of every key and of the takeover channel. */
  readonly prefix: string;
  /** Grace period of a session record. */
  readonly ttlMs: number;
  /** Bound of one store call. */
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Identifies this instance in takeover messages. Default: random. */
  readonly instanceId?: string;
  /** Most writes kept while Redis is away. Default 100000. */
  readonly bufferLimit?: number;
  /** Most commands in one pipeline. Default 1000. */
  readonly batchSize?: number;
  /** Time between PINGs (round trip, hung-server detection). Default 5 s. */
  readonly pingEveryMs?: number;
  /** Largest reconnect delay. Default 3 s. */
  readonly backoffMaxMs?: number;
}

/** A {@link SessionStore} backed by Redis. */
export class RedisStore implements SessionStore {
  readonly kind = "redis";
  /** Settles after the first connection attempt, whatever its outcome. */
  readonly firstAttempt: Promise<void>;
  readonly #link: RedisLink;
  readonly #prefix: string;
  readonly #ttlS: number;
  readonly #instanceId: string;
  readonly #channel: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #bufferLimit: number;
  readonly #batchSize: number;
  readonly #listeners: TakeoverListener[] = [];
  /** Session starts not yet written, oldest first. */
  readonly #buffer = new Map<string, number>();
  readonly #counts = {
    dropped: 0,
    flushed: 0,
    missing: 0,
    takeoversSent: 0,
    takeoversReceived: 0,
  };
  #flushing = false;
  #flushTimer: TimerHandle | undefined;

  /** Starts connecting at once; the store serves before Redis answers. */
  constructor(options: RedisStoreOptions) {
    this.#prefix = options.prefix;
    // EX takes whole seconds; round up so a record never dies early.
    this.#ttlS = Math.max(1, Math.ceil(options.ttlMs / 1000));
    this.#instanceId = options.instanceId ?? crypto.randomUUID();
    this.#channel = `${options.prefix}takeover`;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#bufferLimit = options.bufferLimit ?? 100_000;
    this.#batchSize = options.batchSize ?? 1000;
    this.#link = new RedisLink({
      url: options.url,
      channel: this.#channel,
      timeoutMs: options.timeoutMs,
      clock: options.clock,
      logger: options.logger,
      onMessage: (message) => this.#onMessage(message),
      onUp: () => this.#flush(),
      ...(options.pingEveryMs ? { pingEveryMs: options.pingEveryMs } : {}),
      ...(options.backoffMaxMs ? { backoffMaxMs: options.backoffMaxMs } : {}),
    });
    this.firstAttempt = this.#link.firstAttempt;
  }

  /** Writes the session's record, or buffers it while Redis is away. */
  async create(id: string, record: SessionRecord): Promise<void> {
    if (!this.#link.up) return this.#keep(id, record.start);
    try {
      await this.#link.run((client) =>
        client.set(this.#key(id), String(record.start), {
          expiration: { type: "EX", value: this.#ttlS },
        })
      );
    } catch {
      // SET is idempotent: whether or not it landed, writing it again later
      // is right.
      this.#keep(id, record.start);
      this.#scheduleFlush();
    }
  }

  /** The record, from the write buffer or Redis; null when unknown. */
  async get(id: string): Promise<SessionRecord | null> {
    const buffered = this.#buffer.get(id);
    if (buffered !== undefined) return { start: buffered };
    try {
      const value = await this.#link.run((client) => client.get(this.#key(id)));
      if (value === null) return null;
      const start = Number(value);
      return Number.isSafeInteger(start) && start >= 0 ? { start } : null;
    } catch {
      return null;
    }
  }

  /** Pushes every live session's expiry out: one pipeline per batch. */
  async refresh(ids: readonly string[]): Promise<void> {
    const batches: Promise<void>[] = [];
    for (let i = 0; i < ids.length; i += this.#batchSize) {
      batches.push(this.#expireBatch(ids.slice(i, i + this.#batchSize)));
    }
    await Promise.all(batches);
  }

  /** Starts the grace period of a closed session. */
  async release(id: string): Promise<void> {
    // A buffered record gets its full grace period when it is written.
    if (this.#buffer.has(id)) return;
    try {
      await this.#link.run((client) =>
        client.expire(this.#key(id), this.#ttlS)
      );
    } catch {
      // Counted by the link; the record still expires one grace period
      // after its last refresh at the latest.
    }
  }

  /** Tells the other instances to close their connection of `id`. */
  async announce(id: string): Promise<void> {
    try {
      await this.#link.run((client) =>
        client.publish(this.#channel, `${this.#instanceId} ${id}`)
      );
      this.#counts.takeoversSent++;
    } catch {
      // Counted by the link; the older connection stays until it closes.
    }
  }

  /** Registers a listener for takeovers announced by other instances. */
  onTakeover(listener: TakeoverListener): void {
    this.#listeners.push(listener);
  }

  /** Link state, round trip, buffer and error figures. */
  status(): StoreStatus {
    return {
      kind: this.kind,
      state: this.#link.state,
      figures: {
        rtt_ms: this.#link.rttMs,
        buffered: this.#buffer.size,
        dropped: this.#counts.dropped,
        flushed: this.#counts.flushed,
        missing: this.#counts.missing,
        reconnects: this.#link.reconnects,
        takeovers_sent: this.#counts.takeoversSent,
        takeovers_received: this.#counts.takeoversReceived,
      },
      errors: this.#link.errors(),
    };
  }

  /** Tries a last flush, then closes both connections. */
  async close(): Promise<void> {
    if (this.#flushTimer !== undefined) {
      this.#clock.clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    if (this.#buffer.size > 0 && this.#link.up) await this.#flush();
    if (this.#buffer.size > 0) {
      this.#logger.warn("unwritten sessions lost at shutdown", {
        count: this.#buffer.size,
      });
    }
    await this.#link.close();
  }

  #key(id: string): string {
    return `${this.#prefix}session:${id}`;
  }

  async #expireBatch(ids: readonly string[]): Promise<void> {
    try {
      const replies = await this.#link.run((client) => {
        const pipeline = client.multi();
        for (const id of ids) pipeline.expire(this.#key(id), this.#ttlS);
        return pipeline.execAsPipeline();
      });
      // 0 means the record is gone (Redis restarted or was flushed): the
      // client's signed token still resumes it and writes it back.
      for (const reply of replies) {
        if (Number(reply) === 0) this.#counts.missing++;
      }
    } catch {
      // Counted by the link; the next refresh comes within half a grace.
    }
  }

  /** Buffers a write, dropping the oldest when full. */
  #keep(id: string, start: number): void {
    this.#buffer.delete(id);
    this.#buffer.set(id, start);
    while (this.#buffer.size > this.#bufferLimit) {
      const oldest = this.#buffer.keys().next().value as string;
      this.#buffer.delete(oldest);
      this.#counts.dropped++;
    }
  }

  /** Retries the buffer soon while Redis is up but a write failed. */
  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined) return;
    this.#flushTimer = this.#clock.setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flush();
    }, 1000);
  }

  /** Writes buffered records in pipelined batches until empty or failing. */
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    const before = this.#counts.flushed;
    try {
      while (this.#buffer.size > 0 && this.#link.up) {
        const batch = [...take(this.#buffer, this.#batchSize)];
        try {
          await this.#link.run((client) => {
            const pipeline = client.multi();
            for (const [id, start] of batch) {
              pipeline.set(this.#key(id), String(start), {
                expiration: { type: "EX", value: this.#ttlS },
              });
            }
            return pipeline.execAsPipeline();
          });
        } catch {
          if (this.#link.up) this.#scheduleFlush();
          return;
        }
        for (const [id, start] of batch) {
          // Unless it was buffered again meanwhile with another start.
          if (this.#buffer.get(id) === start) this.#buffer.delete(id);
          this.#counts.flushed++;
        }
      }
    } finally {
      this.#flushing = false;
      const written = this.#counts.flushed - before;
      if (written > 0) {
        this.#logger.info("buffered sessions written to redis", {
          count: written,
          left: this.#buffer.size,
        });
      }
    }
  }

  #onMessage(message: string): void {
    const space = message.indexOf(" ");
    if (space < 0) return;
    // Our own announcements come back to us too: the handler already closed
    // any older local connection itself.
    if (message.slice(0, space) === this.#instanceId) return;
    const id = message.slice(space + 1);
    this.#counts.takeoversReceived++;
    for (const listener of this.#listeners) {
      try {
        listener(id);
      } catch (error) {
        this.#logger.error("takeover listener failed", {
          error: String(error),
        });
      }
    }
  }
}

function* take<K, V>(map: Map<K, V>, n: number): Generator<[K, V]> {
  let i = 0;
  for (const entry of map) {
    if (i++ >= n) return;
    yield entry;
  }
}
