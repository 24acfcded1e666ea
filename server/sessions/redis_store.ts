/**
 * Sessions in Redis, shared by every instance. A session costs one SET (with
 * the grace period as its expiry) when it starts; a resume is one claim
 * script (read, fence by epoch, write, announce the takeover), shared by
 * every claim that arrived in the same turn of the event loop (in a
 * storm, rounds go at most one every 10 ms, each with every claim since the
 * last); live sessions are kept alive by one pipelined batch of GETEXs per
 * refresh, which also shows the sessions a newer connection took meanwhile;
 * a closed session's record lives on for the grace period. Takeovers travel
 * over pub/sub as `<instance> <id> <epoch>`, to the instance the record
 * names as its holder once every instance sharing the store reads holders
 * (see {@link RedisStore.writeHolders}), else to every instance.
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
import type { Histogram } from "../metrics.ts";
import { randomBytes } from "node:crypto";
import { ErrorReply } from "@redis/client";
import type { RedisCommander, RedisTarget } from "./redis_backends.ts";
import { RedisLink } from "./redis_link.ts";
import {
  CLAIM_SCRIPT,
  decodeRecord,
  encodeRecord,
  HOLDER_PATTERN,
  RELEASE_SCRIPT,
  runScript,
} from "./redis_scripts.ts";
import {
  type Claim,
  claimRecord,
  type HeldSession,
  type LostSession,
  type SessionRecord,
  type SessionStore,
  type StoreStatus,
  type TakeoverListener,
} from "./store.ts";

/** Options of {@link RedisStore}; durations in ms. */
export interface RedisStoreOptions {
  /** A redis:// or rediss:// URL, or a Sentinel deployment. */
  readonly target: RedisTarget;
  /** Prefix of every key and of the takeover channel. */
  readonly prefix: string;
  /** Grace period of a session record. */
  readonly ttlMs: number;
  /** Bound of one store call. */
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /**
   * Identifies this instance in records and takeover messages: letters,
   * digits, `-` and `_`, at most 64. Default: 12 random characters.
   */
  readonly instanceId?: string;
  /** Most writes kept while Redis is away. Default 100000. */
  readonly bufferLimit?: number;
  /** Most commands in one pipeline. Default 1000. */
  readonly batchSize?: number;
  /** Least time between two rounds of claims. Default 10 ms. */
  readonly claimPaceMs?: number;
  /** Time between PINGs (round trip, hung-server detection). Default 5 s. */
  readonly pingEveryMs?: number;
  /** Largest reconnect delay. Default 3 s. */
  readonly backoffMaxMs?: number;
}

/** A claim waiting for its batch. */
interface PendingClaim {
  readonly id: string;
  readonly epoch: number;
  readonly resolve: (claim: Claim | null) => void;
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
  readonly #claimPaceMs: number;
  readonly #listeners: TakeoverListener[] = [];
  readonly #resyncListeners: Array<() => void> = [];
  /** Records not yet written, oldest first. */
  readonly #buffer = new Map<string, SessionRecord>();
  readonly #counts = {
    dropped: 0,
    flushed: 0,
    missing: 0,
    takeoversSent: 0,
    takeoversReceived: 0,
    bufferedTotal: 0,
  };
  #flushing = false;
  #flushTimer: TimerHandle | undefined;
  /** In a cluster, keys carry a hash tag (see {@link RedisStore.#key}). */
  readonly #cluster: boolean;
  /** Claims for the next round: at the end of this turn, or at the pace. */
  #claims: PendingClaim[] = [];
  #claimTimer: TimerHandle | undefined;
  /** When the last round of claims went. */
  #claimsSentAt = -Infinity;
  /** Until then, a cluster's claims go one call per slot. */
  #splitUntil = -Infinity;
  /** The holder records name: this instance's id, or "" (see writeHolders). */
  #holder = "";
  /** Whether every instance sharing the store reads holders. */
  #fleetReadsHolders = false;
  #warnedUnaddressed = false;

  /** Starts connecting at once; the store serves before Redis answers. */
  constructor(options: RedisStoreOptions) {
    this.#prefix = options.prefix;
    this.#cluster = options.target.kind === "cluster";
    // EX takes whole seconds; round up so a record never dies early.
    this.#ttlS = Math.max(1, Math.ceil(options.ttlMs / 1000));
    this.#instanceId = options.instanceId ?? randomInstanceId();
    if (!HOLDER_PATTERN.test(this.#instanceId)) {
      throw new TypeError(
        "instanceId: letters, digits, '-' and '_' only, at most 64",
      );
    }
    this.#channel = `${options.prefix}takeover`;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#bufferLimit = options.bufferLimit ?? 100_000;
    this.#batchSize = options.batchSize ?? 1000;
    this.#claimPaceMs = options.claimPaceMs ?? 10;
    this.#link = new RedisLink({
      calls: [
        "create",
        "claim",
        "refresh",
        "release",
        "announce",
        "flush",
        "presence",
      ],
      target: options.target,
      // Takeovers for every instance (from versions before holders, and
      // for records that name none), and those addressed to this one.
      channels: this.#tags().map((tag) => this.#channelOf(tag)),
      addressed: this.#tags().map((tag) =>
        `${this.#channelOf(tag)}@${this.#instanceId}`
      ),
      timeoutMs: options.timeoutMs,
      clock: options.clock,
      logger: options.logger,
      onMessage: (message) => this.#onMessage(message),
      onUp: () => {
        this.#updateHolder();
        this.#flush();
        // Takeovers announced while this link was down never reached us.
        this.#resync();
      },
      ...(options.pingEveryMs ? { pingEveryMs: options.pingEveryMs } : {}),
      ...(options.backoffMaxMs ? { backoffMaxMs: options.backoffMaxMs } : {}),
    });
    this.firstAttempt = this.#link.firstAttempt;
  }

  /** Writes the session's record, or buffers it while Redis is away. */
  async create(id: string, start: number, epoch: number): Promise<void> {
    const record = { start, epoch, live: true };
    if (!this.#link.up) return this.#keep(id, record);
    try {
      await this.#link.run("create", (redis) =>
        redis.send([
          "SET",
          this.#key(id),
          encodeRecord(record, this.#holder),
          "EX",
          String(this.#ttlS),
        ]));
    } catch {
      // SET is idempotent: whether or not it landed, writing it again later
      // is right.
      this.#keep(id, record);
      this.#scheduleFlush();
    }
  }

  /**
   * Claims from the write buffer or Redis; null when unknown or away. A
   * takeover is announced to the other instances by the same script.
   */
  claim(id: string, epoch: number): Promise<Claim | null> {
    const buffered = this.#buffer.get(id);
    if (buffered !== undefined) {
      const { claim, next } = claimRecord(buffered, epoch);
      this.#keep(id, next);
      if (!claim.superseded) this.announce(id, claim.epoch);
      return Promise.resolve(claim);
    }
    return new Promise((resolve) => {
      this.#claims.push({ id, epoch, resolve });
      // A lone claim goes at the end of this turn, so every handshake ready
      // in it shares the trip. Under a storm, rounds go at most one per
      // pace: each round costs a write and a read per node (three in a
      // cluster) whatever its size, so fewer, fuller rounds cost less.
      this.#claimTimer ??= this.#clock.setTimeout(
        () => {
          this.#claimTimer = undefined;
          this.#claimsSentAt = this.#clock.now();
          this.#sendClaims();
        },
        Math.max(0, this.#claimsSentAt + this.#claimPaceMs - this.#clock.now()),
      );
    });
  }

  /**
   * Sends the waiting claims, at most one batch size per script call; in a
   * cluster one call per node, since a script may only touch the slots of
   * the node it runs on (one per slot for a while after a node refused a
   * call that spanned slots).
   */
  #sendClaims(): void {
    const bySlot = this.#clock.now() < this.#splitUntil;
    const groups = groupClaims(
      this.#claims,
      ({ id }) =>
        !this.#cluster
          ? ""
          : bySlot
          ? hashTag(id)
          : this.#link.shardOf(this.#key(id)),
    );
    this.#claims = [];
    for (const waiting of groups) {
      for (let i = 0; i < waiting.length; i += this.#batchSize) {
        this.#claimBatch(waiting.slice(i, i + this.#batchSize));
      }
    }
  }

  async #claimBatch(batch: readonly PendingClaim[]): Promise<void> {
    let reply: unknown = null;
    try {
      reply = await this.#link.run("claim", async (redis) => {
        const spansSlots = this.#cluster &&
          batch.some(({ id }) => hashTag(id) !== hashTag(batch[0]!.id));
        if (!spansSlots) return await this.#claimScript(redis, batch, true);
        try {
          return await this.#claimScript(redis, batch, false);
        } catch (error) {
          if (
            !(error instanceof ErrorReply) || NOT_A_REFUSAL.test(error.message)
          ) throw error;
          // The node refused a call that spans slots: one of them moved
          // (a resharding), or something in front of the cluster wants
          // every key declared (ElastiCache). The script reads every key
          // before it writes any, and Redis refuses a key it does not
          // serve at its first touch, so nothing was written: send one
          // call per slot, now and for a while.
          this.#splitUntil = this.#clock.now() + SPLIT_AFTER_REFUSAL_MS;
          const replies = new Map<PendingClaim, unknown[]>();
          const slots = groupClaims(batch, ({ id }) => hashTag(id));
          await Promise.all(slots.map(async (part) => {
            const fields = await this.#claimScript(redis, part, true);
            part.forEach((claim, i) => {
              replies.set(
                claim,
                Array.isArray(fields) ? fields.slice(3 * i, 3 * i + 3) : [],
              );
            });
          }));
          return batch.flatMap((claim) => replies.get(claim) ?? []);
        }
      });
    } catch {
      // Counted by the link; every claim of the batch says "cannot say".
    }
    const fields = Array.isArray(reply) && reply.length === 3 * batch.length
      ? reply.map(String)
      : null;
    batch.forEach(({ resolve }, i) => {
      const claim = fields && parseClaim(fields, 3 * i);
      if (claim && !claim.superseded) this.#counts.takeoversSent++;
      resolve(claim);
    });
  }

  /**
   * One call of the claim script for `batch`. Its keys are declared when
   * they share a slot; a batch that spans one node's slots declares only
   * its first, since Redis refuses declared keys of several slots but not
   * undeclared ones the node serves.
   */
  #claimScript(
    redis: RedisCommander,
    batch: readonly PendingClaim[],
    oneSlot: boolean,
  ): Promise<unknown> {
    const keys = batch.map(({ id }) => this.#key(id));
    const args = [
      String(this.#ttlS),
      redis.publishCommand,
      this.#instanceId,
      this.#holder,
    ];
    batch.forEach(({ id, epoch }, i) => {
      args.push(keys[i]!, id, String(epoch), this.#channelOf(id));
    });
    return runScript(redis, CLAIM_SCRIPT, oneSlot ? keys : [keys[0]!], args);
  }

  /**
   * Pushes every live session's expiry out, one pipeline per batch, and
   * returns those a newer connection holds now.
   */
  async refresh(sessions: readonly HeldSession[]): Promise<LostSession[]> {
    const batches: Promise<LostSession[]>[] = [];
    for (let i = 0; i < sessions.length; i += this.#batchSize) {
      batches.push(
        this.#refreshBatch(sessions.slice(i, i + this.#batchSize)),
      );
    }
    return (await Promise.all(batches)).flat();
  }

  /** Starts the grace period of a closed session still held by `epoch`. */
  async release(id: string, epoch: number): Promise<void> {
    const buffered = this.#buffer.get(id);
    if (buffered !== undefined) {
      // Written with its full grace period when the buffer is flushed.
      if (buffered.epoch === epoch) {
        this.#keep(id, { ...buffered, live: false });
      }
      return;
    }
    try {
      await this.#link.run(
        "release",
        (redis) =>
          runScript(redis, RELEASE_SCRIPT, [this.#key(id)], [
            String(epoch),
            String(this.#ttlS),
            this.#holder,
          ]),
      );
    } catch {
      // Counted by the link; the record still expires one grace period
      // after its last refresh at the latest.
    }
  }

  /** Tells the other instances to close their older connection of `id`. */
  async announce(id: string, epoch: number): Promise<void> {
    try {
      await this.#link.run("announce", (redis) =>
        redis.send([
          redis.publishCommand,
          this.#channelOf(id),
          `${this.#instanceId} ${id} ${epoch}`,
        ]));
      this.#counts.takeoversSent++;
    } catch {
      // Counted by the link; the older connection stays until it closes.
    }
  }

  /**
   * Writes this instance's presence record into the fleet's hash, forgets
   * `stale` names, and reads every record, in one round trip. One hash for
   * the fleet: O(instances) bytes a second, one key (one slot in a cluster).
   */
  async exchangePresence(
    name: string,
    record: string,
    stale: readonly string[],
  ): Promise<Record<string, string>> {
    const key = `${this.#prefix}fleet`;
    const replies = await this.#link.run("presence", (redis) =>
      redis.pipeline([
        ["HSET", key, name, record],
        ...(stale.length > 0 ? [["HDEL", key, ...stale]] : []),
        ["HGETALL", key],
      ]));
    return hashReply(replies.at(-1));
  }

  /**
   * Whether records name this instance as their holder, so that takeovers
   * of its sessions go to it alone. Only while every instance sharing the
   * store reads such records (the fleet's presence says so): one of an
   * older version reads them as unknown sessions, and would neither fence
   * them nor tell their holder.
   */
  writeHolders(on: boolean): void {
    this.#fleetReadsHolders = on;
    this.#updateHolder();
  }

  /**
   * Names this instance in records only while the fleet reads holders and
   * it hears its addressed channels: a takeover sent there must arrive.
   */
  #updateHolder(): void {
    const addressed = this.#link.addressed;
    if (
      this.#fleetReadsHolders && !addressed && this.#link.up &&
      !this.#warnedUnaddressed
    ) {
      this.#warnedUnaddressed = true;
      this.#logger.warn(
        "redis refused the takeover channels addressed to this instance; every instance hears its takeovers (docs/sessions.md)",
        { allow: `&${this.#channel}*` },
      );
    }
    const holder = this.#fleetReadsHolders && addressed ? this.#instanceId : "";
    if (holder === this.#holder) return;
    this.#holder = holder;
    this.#logger.info(
      holder !== ""
        ? "session records name their holder: takeovers go to it alone"
        : "session records name no holder: takeovers go to every instance",
    );
  }

  /** Registers a listener for takeovers announced by other instances. */
  onTakeover(listener: TakeoverListener): void {
    this.#listeners.push(listener);
  }

  /** Registers a listener told when Redis answers again after an outage. */
  onResync(listener: () => void): void {
    this.#resyncListeners.push(listener);
  }

  /** How long each kind of Redis call took, seconds. */
  callDurations(): ReadonlyArray<readonly [string, Histogram]> {
    return this.#link.callDurations();
  }

  /** Link state, round trip, buffer and error figures. */
  status(): StoreStatus {
    return {
      kind: this.kind,
      state: this.#link.state,
      target: this.#link.target,
      figures: {
        rtt_ms: this.#link.rttMs,
        buffered: this.#buffer.size,
        dropped: this.#counts.dropped,
        flushed: this.#counts.flushed,
        missing: this.#counts.missing,
        reconnects: this.#link.reconnects,
        failovers: this.#link.failovers,
        not_writable_ms: this.#link.notWritableMs,
        buffered_total: this.#counts.bufferedTotal,
        takeovers_sent: this.#counts.takeoversSent,
        takeovers_received: this.#counts.takeoversReceived,
      },
      errors: this.#link.errors(),
    };
  }

  /** Tries a last flush, then closes both connections. */
  async close(): Promise<void> {
    if (this.#claimTimer !== undefined) {
      this.#clock.clearTimeout(this.#claimTimer);
      this.#claimTimer = undefined;
      for (const { resolve } of this.#claims) resolve(null);
      this.#claims = [];
    }
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

  /** The hash tags takeover channels are kept for; one "" outside a cluster. */
  #tags(): string[] {
    return this.#cluster ? [...HASH_TAGS] : [""];
  }

  /**
   * The takeover channel of a session (or of a hash tag: the tag is its
   * id's first character). In a cluster there is one per hash tag, in the
   * tag's slot: a claim script may only publish to a sharded channel of
   * its own slot.
   */
  #channelOf(id: string): string {
    return this.#cluster ? `${this.#channel}{${hashTag(id)}}` : this.#channel;
  }

  /**
   * A session's key. In a cluster it carries a hash tag of the id's first
   * character: 64 slots, spread over the shards, so one slot never holds
   * more than 1/64 of the sessions, and a takeover channel per tag shares
   * its sessions' slot.
   */
  #key(id: string): string {
    return this.#cluster
      ? `${this.#prefix}session:{${hashTag(id)}}${id}`
      : `${this.#prefix}session:${id}`;
  }

  async #refreshBatch(
    sessions: readonly HeldSession[],
  ): Promise<LostSession[]> {
    const lost: LostSession[] = [];
    const gone: HeldSession[] = [];
    try {
      const ttl = String(this.#ttlS);
      const replies = await this.#link.run("refresh", (redis) =>
        redis.pipeline(
          sessions.map(({ id }) => ["GETEX", this.#key(id), "EX", ttl]),
        ));
      replies.forEach((reply, i) => {
        const record = decodeRecord(reply === null ? null : String(reply));
        // Gone (Redis restarted or was flushed, or a failover lost writes
        // not yet replicated): this connection still holds it.
        if (record === null) {
          this.#counts.missing++;
          gone.push(sessions[i]!);
        } else if (record.epoch > sessions[i]!.epoch) {
          lost.push({ id: sessions[i]!.id, epoch: record.epoch });
        }
      });
    } catch {
      // Counted by the link; the next refresh comes within half a grace.
    }
    // Written back, so that fencing and resumes keep working from the store.
    for (const { id, start, epoch } of gone) {
      this.#keep(id, { start, epoch, live: true });
    }
    if (gone.length > 0) this.#flush();
    return lost;
  }

  /** Buffers a write, dropping the oldest when full. */
  #keep(id: string, record: SessionRecord): void {
    if (!this.#buffer.delete(id)) this.#counts.bufferedTotal++;
    this.#buffer.set(id, record);
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
          const ttl = String(this.#ttlS);
          await this.#link.run("flush", (redis) =>
            redis.pipeline(
              batch.map(([id, record]) => [
                "SET",
                this.#key(id),
                encodeRecord(record, this.#holder),
                "EX",
                ttl,
              ]),
            ));
        } catch {
          if (this.#link.up) this.#scheduleFlush();
          return;
        }
        for (const [id, record] of batch) {
          // Unless it changed meanwhile (claimed or released again).
          if (this.#buffer.get(id) === record) this.#buffer.delete(id);
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
    const [instance, id, epochText] = message.split(" ");
    if (id === undefined) return;
    // Our own announcements come back to us too: the handler already closed
    // any older local connection itself.
    if (instance === this.#instanceId) return;
    // Without an epoch (an instance of an older version) the announcement
    // is newer than anything held here, as before epochs existed.
    const epoch = epochText === undefined
      ? Number.MAX_SAFE_INTEGER
      : Number(epochText);
    if (!Number.isFinite(epoch)) return;
    this.#counts.takeoversReceived++;
    for (const listener of this.#listeners) {
      try {
        listener(id, epoch);
      } catch (error) {
        this.#logger.error("takeover listener failed", {
          error: String(error),
        });
      }
    }
  }

  /** After an outage: the handler re-checks which sessions it still holds. */
  #resync(): void {
    for (const listener of this.#resyncListeners) {
      try {
        listener();
      } catch (error) {
        this.#logger.error("resync listener failed", { error: String(error) });
      }
    }
  }
}

/** Every hash tag: the first characters a base64url session id can have. */
const HASH_TAGS =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * How long claims go one call per slot after a node refused a call that
 * spanned slots: a resharding is over in seconds to minutes, and where the
 * refusal is for good (a proxy that wants every key declared) it costs one
 * refused call a node a minute.
 */
const SPLIT_AFTER_REFUSAL_MS = 60_000;

/**
 * Error replies that a call per slot would meet as well: the node takes no
 * writes or has no memory, the shard has no primary, or Redis is busy.
 */
const NOT_A_REFUSAL =
  /^(READONLY|OOM|CLUSTERDOWN|TRYAGAIN|LOADING|BUSY|MASTERDOWN|NOREPLICAS)\b/;

/** `claims` in groups of equal `groupOf`, each in arrival order. */
function groupClaims(
  claims: readonly PendingClaim[],
  groupOf: (claim: PendingClaim) => string,
): PendingClaim[][] {
  const groups = new Map<string, PendingClaim[]>();
  for (const claim of claims) {
    const name = groupOf(claim);
    const group = groups.get(name);
    if (group) group.push(claim);
    else groups.set(name, [claim]);
  }
  return [...groups.values()];
}

/** 12 random base64url characters: 72 bits, 13 bytes a record. */
function randomInstanceId(): string {
  return randomBytes(9).toString("base64url");
}

/** The hash tag of a session id in a cluster: its first character. */
function hashTag(id: string): string {
  return id.slice(0, 1);
}

/** The claim in `fields` from `at` (start, epoch, superseded), or null. */
function parseClaim(fields: readonly string[], at: number): Claim | null {
  if (fields[at] === "") return null;
  const start = Number(fields[at]);
  const epoch = Number(fields[at + 1]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(epoch)) {
    return null;
  }
  return { start, epoch, superseded: fields[at + 2] === "1" };
}

function* take<K, V>(map: Map<K, V>, n: number): Generator<[K, V]> {
  let i = 0;
  for (const entry of map) {
    if (i++ >= n) return;
    yield entry;
  }
}

/** An HGETALL reply (RESP2 pairs or RESP3 map) as a plain record. */
function hashReply(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) {
      out[String(reply[i])] = String(reply[i + 1]);
    }
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) out[String(k)] = String(v);
  } else if (reply !== null && typeof reply === "object") {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}
