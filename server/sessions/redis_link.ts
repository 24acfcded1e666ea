/**
 * A resilient link to Redis: one generation of connections at a time (see
 * redis_backends.ts: a single Redis, or a Sentinel-managed primary),
 * rebuilt with exponential backoff and full jitter when it fails, with
 * every command bounded by a timeout and a periodic PING that measures the
 * round trip and notices a hung server.
 *
 * A reply of READONLY, LOADING or MASTERDOWN means the link points at a
 * node that cannot take writes now (a demoted primary, a replica still
 * loading, a replica that lost its primary): not one failed command but a
 * wrong link. The generation is torn down and rebuilt, which re-resolves a
 * DNS name and asks the sentinels again, and the store is "down" until
 * then, so health and metrics say the store is not writable.
 *
 * node-redis's own reconnect loop is switched off: its waits cannot be
 * cancelled (a store must close promptly), and its offline queue would grow
 * without bound while Redis is away. Here a command fails fast when the link
 * is down, and the store decides what to keep.
 *
 * @module
 */

import { ErrorReply } from "@redis/client";
import type { Clock, TimerHandle } from "../clock.ts";
import { redact, redactText } from "../redact.ts";
import type { Logger } from "../logger.ts";
import { Histogram, latencyBuckets } from "../metrics.ts";
import {
  type Backend,
  type BackendOptions,
  createBackend,
  type RedisCommander,
  type RedisTarget,
} from "./redis_backends.ts";

/** Why a store call failed, as counted in the metrics. */
export type FailureKind =
  | "offline"
  | "timeout"
  | "connection"
  | "reply"
  | "readonly"
  | "cluster"
  | "overload";

/** Replies that mean the node cannot take writes: rebuild the link. */
const NOT_WRITABLE = /^(READONLY|LOADING|MASTERDOWN)\b/;

/**
 * Replies of a cluster in motion: a slot being moved (TRYAGAIN, or MOVED
 * and ASK beyond the client's redirections) or a shard without a primary
 * (CLUSTERDOWN). Only that shard's calls fail; the link stays.
 */
const CLUSTER_MOVING = /^(TRYAGAIN|CLUSTERDOWN|MOVED|ASK)\b/;

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
  /** A redis:// or rediss:// URL, or a Sentinel deployment. */
  readonly target: RedisTarget;
  /** The takeover channels the subscriber connection listens on. */
  readonly channels: readonly string[];
  /** Those addressed to this instance (see {@link BackendOptions}). */
  readonly addressed?: readonly string[];
  /** Called with every message on them. */
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
  /** Names of the calls timed, so each has a histogram before its first. */
  readonly calls?: readonly string[];
  /** Makes one generation of connections. Default: createBackend. */
  readonly backend?: (target: RedisTarget, options: BackendOptions) => Backend;
}

/**
 * Where the link is, one value moved at each transition:
 *
 * ```text
 * connecting ──▶ up ◀──▶ slow      (a call timed out / a call answered)
 *     │          │ ▲       │
 *     ▼          ▼ │       ▼
 *   down ◀───────┴─┴───── down     (a generation lost / a new one up)
 * any ──close()──▶ closed
 * ```
 *
 * Only "up" takes writes; "slow" is up but timing out (a frozen or cut-off
 * primary), which health and metrics count as not writable.
 */
export type LinkState = "connecting" | "up" | "slow" | "down" | "closed";

interface Generation {
  readonly backend: Backend;
  /** Its connect settled (so destroying it cannot leak a socket). */
  readonly settled: Promise<unknown>;
  dead: boolean;
}

/** Store call time buckets, s: a LAN round trip up to the timeout. */
const CALL_BUCKETS = latencyBuckets(0.0005);

/** A call waiting for its answer or its deadline, whichever is first. */
interface Deadline {
  readonly deadline: number;
  done: boolean;
  /** Fails the call with `error`, unless it is already settled. */
  expire(error: RedisCallError): void;
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
  #state: LinkState = "connecting";
  /** Times the link came up: history for logs and counts, not state. */
  #ups = 0;
  /** Failed connection attempts in a row, for the backoff. */
  #attempt = 0;
  #downSince = 0;
  #missedPings = 0;
  #rttMs = -1;
  #failovers = 0;
  readonly #durations = new Map<string, Histogram>();
  /** Time without a writable link in finished spells, ms. */
  #unwritableTotalMs = 0;
  /** Since when the link is not writable (down or slow), or null. */
  #unwritableSince: number | null = null;
  /** The primary the last generation wrote to (host:port). */
  #lastTarget = "";
  #warnedNotWritable = false;
  #retryTimer: TimerHandle | undefined;
  #pingTimer: TimerHandle | undefined;
  /** Unanswered calls, oldest first (see {@link RedisLink.#awaitDeadline}). */
  readonly #deadlines: Deadline[] = [];
  #deadlineTimer: TimerHandle | undefined;
  #addressed = false;

  /** Starts connecting at once; never throws. */
  constructor(options: RedisLinkOptions) {
    for (const name of ["ping", ...(options.calls ?? [])]) {
      this.#durationsOf(name);
    }
    this.#options = options;
    this.#downSince = options.clock.now();
    this.firstAttempt = this.#connect();
  }

  /**
   * Whether the last generation that came up subscribed to the addressed
   * channels (false before any did).
   */
  get addressed(): boolean {
    return this.#addressed;
  }

  /** Current state of the link. */
  get state(): LinkState {
    return this.#state;
  }

  /** A getter, so a check after an await is not narrowed away by tsc. */
  get #isClosed(): boolean {
    return this.#state === "closed";
  }

  /** True while commands can be sent ("up" or "slow"). */
  get up(): boolean {
    return this.#state === "up" || this.#state === "slow";
  }

  /** Last PING round trip in ms, -1 before the first. */
  get rttMs(): number {
    return this.#rttMs;
  }

  /** Times the link came back after being down. */
  get reconnects(): number {
    return Math.max(0, this.#ups - 1);
  }

  /**
   * Primary changes seen: promotions Sentinel announced, and replies that
   * showed the node behind the link no longer takes writes.
   */
  get failovers(): number {
    return this.#failovers;
  }

  /**
   * Time the store could not take writes since it first could (the link
   * down, or up but timing out: a frozen or cut-off primary), ms.
   */
  get notWritableMs(): number {
    const since = this.#unwritableSince;
    const current = since === null ? 0 : this.#options.clock.now() - since;
    return this.#unwritableTotalMs + current;
  }

  /**
   * The one place the state changes; it also starts or ends a spell
   * without a writable link (counted only once the link was ever up).
   */
  #moveTo(next: LinkState): void {
    if (this.#isClosed) return;
    this.#state = next;
    const writable = next === "up";
    const now = this.#options.clock.now();
    if (writable && this.#unwritableSince !== null) {
      this.#unwritableTotalMs += now - this.#unwritableSince;
      this.#unwritableSince = null;
    } else if (!writable && this.#unwritableSince === null && this.#ups > 0) {
      this.#unwritableSince = now;
    }
  }

  /** Where writes go now (host:port), "" while unknown. */
  get target(): string {
    return this.#gen && !this.#gen.dead ? this.#gen.backend.target() : "";
  }

  /**
   * The node that serves `key` now (see {@link RedisCommander.shardOf}),
   * "" while the link is down.
   */
  shardOf(key: string): string {
    return this.#gen && !this.#gen.dead ? this.#gen.backend.shardOf(key) : "";
  }

  /** Failed calls and connection attempts by kind. */
  errors(): Record<string, number> {
    return Object.fromEntries(this.#errors);
  }

  /**
   * Runs `op` on the command connection, bounded by the timeout. Rejects
   * with a {@link RedisCallError} (already counted) on any failure.
   */
  run<T>(
    name: string,
    op: (redis: RedisCommander) => Promise<T>,
  ): Promise<T> {
    const gen = this.#gen;
    if (!this.up || !gen) {
      return Promise.reject(this.#count("offline", "Redis is not connected"));
    }
    let call: Promise<T>;
    try {
      call = op(gen.backend);
    } catch (error) {
      return Promise.reject(this.#classify(error, gen));
    }
    const { clock, timeoutMs } = this.#options;
    const began = performance.now();
    const timed = this.#durationsOf(name);
    return new Promise<T>((resolve, reject) => {
      // Whichever comes first, the answer or the deadline, settles the
      // call; a late failure after the timeout was counted as a timeout.
      const settled = (): boolean => {
        if (pending.done) return true;
        pending.done = true;
        timed.observe((performance.now() - began) / 1000);
        return false;
      };
      const fail = (error: unknown) => {
        if (!settled()) reject(this.#classify(error, gen));
      };
      const pending: Deadline = {
        deadline: clock.now() + timeoutMs,
        done: false,
        expire: fail,
      };
      this.#awaitDeadline(pending);
      call.then((value) => {
        if (settled()) return;
        if (this.#state === "slow" && this.#gen === gen) this.#moveTo("up");
        resolve(value);
      }, fail);
    });
  }

  /**
   * Queues a call's deadline. Every call has the same timeout, so the
   * deadlines come in order and one timer, armed for the oldest unanswered
   * call, bounds them all. A timer per call was most of the link's own CPU
   * per call (4-6 us of it, against under 1 us now), paid once per hash tag
   * when a storm's claims go to a cluster.
   */
  #awaitDeadline(call: Deadline): void {
    const queue = this.#deadlines;
    while (queue.length > 0 && queue[0]!.done) queue.shift();
    queue.push(call);
    if (this.#deadlineTimer === undefined) this.#armDeadline();
  }

  #armDeadline(): void {
    const queue = this.#deadlines;
    while (queue.length > 0 && queue[0]!.done) queue.shift();
    const first = queue[0];
    if (!first) return;
    const { clock } = this.#options;
    this.#deadlineTimer = clock.setTimeout(() => {
      this.#deadlineTimer = undefined;
      const now = clock.now();
      while (queue.length > 0 && queue[0]!.deadline <= now) {
        queue.shift()!.expire(
          new RedisCallError(
            "timeout",
            `Redis did not answer within ${this.#options.timeoutMs} ms`,
          ),
        );
      }
      this.#armDeadline();
    }, Math.max(1, first.deadline - clock.now()));
  }

  /** How long each kind of call took (seconds), timeouts included. */
  callDurations(): ReadonlyArray<readonly [string, Histogram]> {
    return [...this.#durations];
  }

  #durationsOf(name: string): Histogram {
    let histogram = this.#durations.get(name);
    if (!histogram) {
      histogram = new Histogram(CALL_BUCKETS);
      this.#durations.set(name, histogram);
    }
    return histogram;
  }

  /** Stops reconnecting and closes both connections. */
  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#moveTo("closed");
    const { clock } = this.#options;
    if (this.#retryTimer !== undefined) clock.clearTimeout(this.#retryTimer);
    if (this.#pingTimer !== undefined) clock.clearTimeout(this.#pingTimer);
    this.#retryTimer = this.#pingTimer = undefined;
    const gen = this.#gen;
    if (!gen) return;
    // Waiting for the connect to settle (bounded by the attempt timer)
    // means no socket can open after the destroy below.
    await gen.settled;
    gen.dead = true;
    // Lets in-flight writes (releases at shutdown) finish, within bounds.
    await bounded(gen.backend.close(), this.#options.timeoutMs, clock);
    gen.backend.destroy();
    // A call the destroyed connections did not fail must not hang its
    // caller, nor keep a timer alive after close.
    if (this.#deadlineTimer !== undefined) {
      clock.clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
    for (const call of this.#deadlines.splice(0)) {
      call.expire(new RedisCallError("offline", "the store closed"));
    }
    // Let the destroyed sockets finish closing before the caller moves on.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }

  async #connect(): Promise<void> {
    if (this.#isClosed) return;
    const { clock, timeoutMs } = this.#options;
    const attemptMs = this.#options.connectTimeoutMs ??
      Math.max(2000, 4 * timeoutMs);
    // Filled before any hook can run: hooks are called asynchronously.
    const self: { gen?: Generation } = {};
    const makeBackend = this.#options.backend ?? createBackend;
    const backend = makeBackend(this.#options.target, {
      channels: this.#options.channels,
      ...(this.#options.addressed
        ? { addressed: this.#options.addressed }
        : {}),
      connectTimeoutMs: attemptMs,
      hooks: {
        onError: (error) => self.gen && this.#lost(self.gen, error),
        onMessage: (message) => this.#options.onMessage(message),
        onFailover: (to) => {
          this.#failovers++;
          this.#lastTarget = to;
          this.#options.logger.warn("redis primary changed", { to });
          // Once the new primary's connection is up: write what waited,
          // and check which sessions are still ours.
          clock.setTimeout(() => {
            if (this.up && this.#gen === self.gen) this.#options.onUp();
          }, 1000);
        },
      },
    });
    const connected = backend.connected;
    const current: Generation = {
      backend,
      settled: connected.catch(() => {}),
      dead: false,
    };
    self.gen = current;
    this.#gen = current;
    // node-redis bounds the TCP connect; this also bounds a server that
    // accepts connections but never answers (AUTH, SUBSCRIBE).
    const timer = clock.setTimeout(() => {
      this.#lost(
        current,
        new Error(`no answer within ${attemptMs} ms of connecting`),
      );
      current.backend.destroy();
    }, attemptMs + 250);
    try {
      await connected;
      await requirePrimary(backend);
    } catch (error) {
      this.#lost(current, error);
      return;
    } finally {
      clock.clearTimeout(timer);
    }
    if (current.dead || this.#isClosed) return;
    this.#addressed = backend.addressed;
    this.#onUp();
  }

  #onUp(): void {
    const { clock, logger } = this.#options;
    const downMs = clock.now() - this.#downSince;
    logger.info(this.#ups > 0 ? "redis reconnected" : "redis connected", {
      redis: this.#describe(),
      ...(this.#attempt > 0 ? { attempts: this.#attempt, downMs } : {}),
    });
    this.#ups++;
    this.#warnedNotWritable = false;
    // A new generation that writes elsewhere than the last one did: the
    // primary moved while the link was down (Sentinel, or a name that now
    // points to another node).
    const target = this.#gen?.backend.target() ?? "";
    if (
      this.#lastTarget !== "" && target !== "" && target !== this.#lastTarget
    ) {
      this.#failovers++;
      logger.warn("redis primary changed", { to: target });
    }
    if (target !== "") this.#lastTarget = target;
    this.#moveTo("up");
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
    const wasUp = this.up && this.#gen === gen;
    if (this.#gen === gen) this.#moveTo("down");
    gen.settled.then(() => gen.backend.destroy());
    if (this.#isClosed) return;
    const { clock, logger } = this.#options;
    this.#count("connection", message(error));
    if (this.#pingTimer !== undefined) clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    const delay = this.#backoff();
    const fields = {
      redis: this.#describe(),
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
      this.run("ping", (redis) => redis.send(["PING"])).then(() => {
        this.#rttMs = clock.now() - started;
        this.#missedPings = 0;
      }, (error: RedisCallError) => {
        if (error.kind !== "timeout" || !gen) return;
        if (++this.#missedPings >= MISSED_PINGS) {
          this.#lost(gen, new Error(`${MISSED_PINGS} PINGs unanswered`));
          gen.backend.destroy();
        }
      }).finally(() => {
        if (this.up && this.#pingTimer === undefined) this.#schedulePing();
      });
    }, delay);
  }

  #classify(error: unknown, gen?: Generation): RedisCallError {
    if (error instanceof RedisCallError) {
      if (error.kind === "timeout" && this.#state === "up") {
        this.#moveTo("slow");
      }
      return this.#count(error.kind, error.message);
    }
    const text = message(error);
    const replies = replyTexts(error);
    if (replies.some((r) => NOT_WRITABLE.test(r))) {
      const reply = replies.find((r) => NOT_WRITABLE.test(r))!;
      if (gen && !gen.dead) this.#notWritable(gen, reply);
      return this.#count("readonly", reply);
    }
    if (replies.some((r) => CLUSTER_MOVING.test(r))) {
      return this.#count("cluster", text);
    }
    if (error instanceof ErrorReply) return this.#count("reply", text);
    if (/queue is full/i.test(text)) return this.#count("overload", text);
    return this.#count("connection", text);
  }

  /** The node behind `gen` takes no writes: rebuild, say so once. */
  #notWritable(gen: Generation, reply: string): void {
    this.#failovers++;
    if (!this.#warnedNotWritable) {
      this.#warnedNotWritable = true;
      this.#options.logger.warn(
        "redis node takes no writes (failover?); reconnecting to find the primary",
        { redis: this.#describe(), reply: reply.slice(0, 120) },
      );
    }
    this.#lost(gen, new Error(reply));
    gen.backend.destroy();
  }

  /** The link's target for logs, with passwords hidden. */
  #describe(): string {
    const target = this.#options.target;
    if (target.kind === "url") return redact(target.url);
    if (target.kind === "cluster") {
      const where = this.target ||
        target.nodes.map((n) => `${n.host}:${n.port}`)
          .join(",");
      return `cluster ${where}`;
    }
    const where = this.target;
    return `sentinel ${target.masterName}${where ? ` at ${where}` : ""}`;
  }

  #count(kind: FailureKind, text: string): RedisCallError {
    const seen = this.#errors.get(kind) ?? 0;
    // The first of each kind tells an operator what went wrong; the rest
    // are counted in the metrics.
    if (seen === 0 && kind !== "offline") {
      this.#options.logger.warn("first redis error of its kind", {
        kind,
        error: redactText(text).slice(0, 200),
      });
    }
    this.#errors.set(kind, seen + 1);
    return new RedisCallError(kind, text);
  }
}

/**
 * Fails unless the node takes writes: a replica (a demoted primary behind
 * the same name, or one Sentinel has not yet moved away from) would answer
 * every write with READONLY. Where ROLE is not allowed (some managed
 * services rename it), the first write will tell instead.
 */
async function requirePrimary(backend: Backend): Promise<void> {
  let role: unknown;
  try {
    role = await backend.send(["ROLE"]);
  } catch (error) {
    if (error instanceof ErrorReply) return;
    throw error;
  }
  const kind = Array.isArray(role) ? String(role[0]) : "";
  if (kind !== "master") {
    throw new Error(`READONLY the node is a ${kind || "non-primary"}`);
  }
}

/** The error texts of a reply, or of each reply of a failed pipeline. */
function replyTexts(error: unknown): string[] {
  if (error instanceof ErrorReply) return [error.message];
  const replies = (error as { replies?: unknown[] })?.replies;
  if (Array.isArray(replies)) {
    return replies.filter((r) => r instanceof ErrorReply).map((r) =>
      (r as ErrorReply).message
    );
  }
  return [];
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

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
