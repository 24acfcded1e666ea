/**
 * A resilient link to Redis: one command connection and one subscriber
 * connection, (re)connected together with exponential backoff and full
 * jitter, with every command bounded by a timeout and a periodic PING that
 * measures the round trip and notices a hung server.
 *
 * node-redis's own reconnect loop is switched off: its waits cannot be
 * cancelled (a store must close promptly), and its offline queue would grow
 * without bound while Redis is away. Here a command fails fast when the link
 * is down, and the store decides what to keep.
 *
 * @module
 */

import { createClient, ErrorReply, type RedisClientType } from "@redis/client";
import type { Clock, TimerHandle } from "../clock.ts";
import { redact } from "../redact.ts";
import type { Logger } from "../logger.ts";

/** A node-redis client as created here. */
export type RedisClient = RedisClientType;

/** Why a store call failed, as counted in the metrics. */
export type FailureKind =
  | "offline"
  | "timeout"
  | "connection"
  | "reply"
  | "overload";

/** A failed Redis call, with the kind it is counted under. */
export class RedisCallError extends Error {
  override name = "RedisCallError";

  /** An error of `kind` with a message for the log. */
  constructor(readonly kind: FailureKind, message: string) {
    super(message);
  }
}

/** Options of {@link RedisLink}; durations in ms. */
export interface RedisLinkOptions {
  /** redis:// or rediss:// URL with optional user, password and db index. */
  readonly url: string;
  /** The pub/sub channel the subscriber connection listens on. */
  readonly channel: string;
  /** Called with every message on `channel`. */
  readonly onMessage: (message: string) => void;
  /** Called each time the link comes up (first time and after outages). */
  readonly onUp: () => void;
  /** Bound of one command. */
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Random numbers in [0, 1) for the jitter. Default Math.random. */
  readonly random?: () => number;
  /** First reconnect delay ceiling. Default 200. */
  readonly backoffBaseMs?: number;
  /** Largest reconnect delay. Default 3000. */
  readonly backoffMaxMs?: number;
  /** Time between PINGs. Default 5000. */
  readonly pingEveryMs?: number;
  /** Bound of one connection attempt (TCP, TLS, AUTH, SUBSCRIBE). */
  readonly connectTimeoutMs?: number;
}

/** "connecting" before the first answer, then "up", "slow" or "down". */
export type LinkState = "connecting" | "up" | "slow" | "down" | "closed";

interface Generation {
  readonly cmd: RedisClient;
  readonly sub: RedisClient;
  /** Both connect() calls settled (so destroying them cannot leak). */
  readonly settled: Promise<unknown>;
  dead: boolean;
}

/** PINGs in a row without an answer before the link is torn down. */
const MISSED_PINGS = 3;

/** Two connections to one Redis that heal themselves. */
export class RedisLink {
  /** Settles after the first connection attempt, whatever its outcome. */
  readonly firstAttempt: Promise<void>;
  readonly #options: RedisLinkOptions;
  readonly #errors = new Map<string, number>();
  #gen: Generation | undefined;
  #up = false;
  #slow = false;
  #closed = false;
  #everUp = false;
  #attempt = 0;
  #downSince = 0;
  #missedPings = 0;
  #rttMs = -1;
  #reconnects = 0;
  #retryTimer: TimerHandle | undefined;
  #pingTimer: TimerHandle | undefined;

  /** Starts connecting at once; never throws. */
  constructor(options: RedisLinkOptions) {
    this.#options = options;
    this.#downSince = options.clock.now();
    this.firstAttempt = this.#connect();
  }

  /** Current state of the link. */
  get state(): LinkState {
    if (this.#closed) return "closed";
    if (this.#up) return this.#slow ? "slow" : "up";
    return this.#everUp || this.#attempt > 0 ? "down" : "connecting";
  }

  /** True while commands can be sent. */
  get up(): boolean {
    return this.#up;
  }

  /** Last PING round trip in ms, -1 before the first. */
  get rttMs(): number {
    return this.#rttMs;
  }

  /** Times the link came back after being down. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Failed calls and connection attempts by kind. */
  errors(): Record<string, number> {
    return Object.fromEntries(this.#errors);
  }

  /**
   * Runs `op` on the command connection, bounded by the timeout. Rejects
   * with a {@link RedisCallError} (already counted) on any failure.
   */
  run<T>(op: (client: RedisClient) => Promise<T>): Promise<T> {
    const gen = this.#gen;
    if (!this.#up || !gen) {
      return Promise.reject(this.#count("offline", "Redis is not connected"));
    }
    const { clock, timeoutMs } = this.#options;
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(
        () =>
          reject(
            new RedisCallError(
              "timeout",
              `Redis did not answer within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
    });
    let call: Promise<T>;
    try {
      call = op(gen.cmd);
    } catch (error) {
      clock.clearTimeout(timer);
      return Promise.reject(this.#classify(error));
    }
    // A late failure after the timeout was already counted as a timeout.
    call.catch(() => {});
    return Promise.race([call, timeout]).then(
      (value) => {
        this.#slow = false;
        return value;
      },
      (error) => {
        throw this.#classify(error);
      },
    ).finally(() => clock.clearTimeout(timer));
  }

  /** Stops reconnecting and closes both connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#up = false;
    const { clock } = this.#options;
    if (this.#retryTimer !== undefined) clock.clearTimeout(this.#retryTimer);
    if (this.#pingTimer !== undefined) clock.clearTimeout(this.#pingTimer);
    this.#retryTimer = this.#pingTimer = undefined;
    const gen = this.#gen;
    if (!gen) return;
    // Waiting for both connects to settle (bounded by the attempt timer)
    // means no socket can open after the destroy below.
    await gen.settled;
    gen.dead = true;
    // Lets in-flight writes (releases at shutdown) finish, within bounds.
    await bounded(gen.cmd.close(), this.#options.timeoutMs, clock);
    destroy(gen);
    // Let the destroyed sockets finish closing before the caller moves on.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const { url, clock, timeoutMs } = this.#options;
    const attemptMs = this.#options.connectTimeoutMs ??
      Math.max(2000, 4 * timeoutMs);
    const cmd = createClient(clientOptions(url, attemptMs));
    const sub = createClient(clientOptions(url, attemptMs));
    const connected = Promise.all([
      cmd.connect(),
      sub.connect().then(() =>
        sub.subscribe(this.#options.channel, (message) => {
          this.#options.onMessage(message);
        })
      ),
    ]);
    const gen: Generation = {
      cmd,
      sub,
      settled: connected.catch(() => {}),
      dead: false,
    };
    this.#gen = gen;
    const lost = (error: unknown) => this.#lost(gen, error);
    cmd.on("error", lost);
    sub.on("error", lost);
    // node-redis bounds the TCP connect; this also bounds a server that
    // accepts connections but never answers (AUTH, SUBSCRIBE).
    const timer = clock.setTimeout(() => {
      this.#lost(
        gen,
        new Error(`no answer within ${attemptMs} ms of connecting`),
      );
      destroy(gen);
    }, attemptMs + 250);
    try {
      await connected;
    } catch (error) {
      this.#lost(gen, error);
      return;
    } finally {
      clock.clearTimeout(timer);
    }
    if (gen.dead || this.#closed) return;
    this.#onUp();
  }

  #onUp(): void {
    const { clock, logger, url } = this.#options;
    const downMs = clock.now() - this.#downSince;
    if (this.#everUp) this.#reconnects++;
    logger.info(this.#everUp ? "redis reconnected" : "redis connected", {
      url: redact(url),
      ...(this.#attempt > 0 ? { attempts: this.#attempt, downMs } : {}),
    });
    this.#up = true;
    this.#everUp = true;
    this.#slow = false;
    this.#attempt = 0;
    this.#missedPings = 0;
    // The first PING at once, so the round trip is known from the start.
    this.#schedulePing(0);
    this.#options.onUp();
  }

  /** Tears a generation down (once) and schedules the next attempt. */
  #lost(gen: Generation, error: unknown): void {
    if (gen.dead) return;
    gen.dead = true;
    const wasUp = this.#up && this.#gen === gen;
    if (this.#gen === gen) this.#up = false;
    gen.settled.then(() => destroy(gen));
    if (this.#closed) return;
    const { clock, logger, url } = this.#options;
    this.#count("connection", message(error));
    if (this.#pingTimer !== undefined) clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    const delay = this.#backoff();
    const fields = {
      url: redact(url),
      error: message(error),
      retryInMs: delay,
    };
    if (wasUp) {
      this.#downSince = clock.now();
      logger.warn(
        "redis connection lost; serving on, new sessions buffered",
        fields,
      );
    } else if (this.#attempt === 0) {
      logger.warn(
        "redis unreachable; serving on, new sessions buffered",
        fields,
      );
    } else {
      logger.debug("redis still unreachable", fields);
    }
    this.#attempt++;
    this.#retryTimer = clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
  }

  /** Full jitter over an exponentially growing ceiling. */
  #backoff(): number {
    const base = this.#options.backoffBaseMs ?? 200;
    const max = this.#options.backoffMaxMs ?? 3000;
    const ceiling = Math.min(max, base * 2 ** Math.min(this.#attempt, 20));
    const random = this.#options.random ?? Math.random;
    return Math.max(20, Math.floor(random() * ceiling));
  }

  #schedulePing(delay = this.#options.pingEveryMs ?? 5000): void {
    const { clock } = this.#options;
    this.#pingTimer = clock.setTimeout(() => {
      this.#pingTimer = undefined;
      const gen = this.#gen;
      const started = clock.now();
      this.run((client) => client.ping()).then(() => {
        this.#rttMs = clock.now() - started;
        this.#missedPings = 0;
      }, (error: RedisCallError) => {
        if (error.kind !== "timeout" || !gen) return;
        if (++this.#missedPings >= MISSED_PINGS) {
          this.#lost(gen, new Error(`${MISSED_PINGS} PINGs unanswered`));
          destroy(gen);
        }
      }).finally(() => {
        if (this.#up && this.#pingTimer === undefined) this.#schedulePing();
      });
    }, delay);
  }

  #classify(error: unknown): RedisCallError {
    if (error instanceof RedisCallError) {
      if (error.kind === "timeout") this.#slow = true;
      return this.#count(error.kind, error.message);
    }
    const text = message(error);
    if (error instanceof ErrorReply) return this.#count("reply", text);
    if (/queue is full/i.test(text)) return this.#count("overload", text);
    return this.#count("connection", text);
  }

  #count(kind: FailureKind, text: string): RedisCallError {
    this.#errors.set(kind, (this.#errors.get(kind) ?? 0) + 1);
    return new RedisCallError(kind, text);
  }
}

function clientOptions(url: string, connectTimeout: number) {
  return {
    url,
    socket: { connectTimeout, reconnectStrategy: false as const },
    disableOfflineQueue: true,
    // Bounds memory if Redis accepts commands but stops answering.
    commandsQueueMaxLength: 100_000,
    disableClientInfo: true,
    maintNotifications: "disabled" as const,
  };
}

/** Waits for `promise` at most `ms`; never rejects. */
async function bounded(
  promise: Promise<unknown>,
  ms: number,
  clock: Clock,
): Promise<void> {
  let timer: TimerHandle | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => timer = clock.setTimeout(() => resolve(0), ms)),
  ]);
  clock.clearTimeout(timer);
}

function destroy(gen: Generation): void {
  for (const client of [gen.cmd, gen.sub]) {
    try {
      client.destroy();
    } catch {
      // Already closed.
    }
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
