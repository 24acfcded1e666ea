/**
 * Picks the session store: Redis (a single one, Sentinel-managed, or a
 * Redis Cluster) when one is configured, else the in-memory store of one
 * process. With Redis it waits for one bounded connection attempt, so the
 * startup log says whether Redis answered; the instance serves either way
 * and the store keeps retrying.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { RedisStore } from "./redis_store.ts";
import { MemoryStore, type SessionStore } from "./store.ts";

/** Where sessions live; durations in ms. */
export interface StoreChoice {
  /** redis:// or rediss:// URL; "" for the in-memory store. */
  readonly redisUrl: string;
  /** Sentinels of a Redis that fails over; none for a single Redis. */
  readonly sentinels: ReadonlyArray<{ host: string; port: number }>;
  /** Seed nodes of a Redis Cluster; none otherwise. */
  readonly cluster?: ReadonlyArray<{ host: string; port: number }>;
  /** The primary's name in Sentinel. */
  readonly masterName: string;
  /** The sentinels' own password ("" for none) and whether they speak TLS. */
  readonly sentinelPassword?: string;
  readonly sentinelTls?: boolean;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Opens the store `choice` names. */
export async function openStore(choice: StoreChoice): Promise<SessionStore> {
  const cluster = choice.cluster ?? [];
  if (
    choice.redisUrl === "" && choice.sentinels.length === 0 &&
    cluster.length === 0
  ) {
    return new MemoryStore(choice.clock, choice.ttlMs);
  }
  const store = new RedisStore({
    target: cluster.length > 0
      ? { kind: "cluster", nodes: cluster, url: choice.redisUrl }
      : choice.sentinels.length > 0
      ? {
        kind: "sentinel",
        sentinels: choice.sentinels,
        masterName: choice.masterName,
        url: choice.redisUrl,
        sentinelPassword: choice.sentinelPassword ?? "",
        sentinelTls: choice.sentinelTls ?? false,
      }
      : { kind: "url", url: choice.redisUrl },
    prefix: choice.prefix,
    ttlMs: choice.ttlMs,
    timeoutMs: choice.timeoutMs,
    clock: choice.clock,
    logger: choice.logger,
  });
  await store.firstAttempt;
  return store;
}
