/**
 * Picks the session store: Redis when a URL is given, else the in-memory
 * store of one process. With Redis it waits for one bounded connection
 * attempt, so the startup log says whether Redis answered; the instance
 * serves either way and the store keeps retrying.
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
  readonly prefix: string;
  readonly ttlMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Opens the store `choice` names. */
export async function openStore(choice: StoreChoice): Promise<SessionStore> {
  if (choice.redisUrl === "") {
    return new MemoryStore(choice.clock, choice.ttlMs);
  }
  const store = new RedisStore({
    url: choice.redisUrl,
    prefix: choice.prefix,
    ttlMs: choice.ttlMs,
    timeoutMs: choice.timeoutMs,
    clock: choice.clock,
    logger: choice.logger,
  });
  await store.firstAttempt;
  return store;
}
