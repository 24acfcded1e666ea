/**
 * Keeps the store's records of live sessions alive: one batched refresh
 * every half grace period (at least every second), never a write per tick.
 * Each round also learns which held sessions a newer connection took while
 * this instance could not hear of it (frozen, or cut off from the store);
 * a round runs at once when the store comes back. The next round is
 * scheduled only after the previous one settled, so a slow store never has
 * two batches in flight.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { HeldSession, LostSession, SessionStore } from "./store.ts";

/** What the refresh loop needs. */
export interface RefresherOptions {
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The grace period of a closed session, in ms. */
  readonly ttlMs: number;
  /** The sessions held by live connections now. */
  readonly heldSessions: () => HeldSession[];
  /** Told of held sessions that a newer connection took meanwhile. */
  readonly onLost: (lost: LostSession[]) => void;
}

/** A running refresh loop. */
export interface Refresher {
  /** Runs a round at once (after a store outage), then on schedule. */
  now(): void;
  stop(): void;
}

/** Starts the loop. */
export function startRefresher(options: RefresherOptions): Refresher {
  const { store, clock, logger } = options;
  let handle: TimerHandle | undefined;
  let stopped = false;
  let running = false;
  let again = false;
  const every = Math.max(1000, Math.floor(options.ttlMs / 2));
  const schedule = (ms: number) => {
    if (handle !== undefined) clock.clearTimeout(handle);
    handle = stopped ? undefined : clock.setTimeout(round, ms);
  };
  const round = () => {
    handle = undefined;
    if (running) {
      again = true;
      return;
    }
    const held = options.heldSessions();
    if (held.length === 0) return schedule(every);
    running = true;
    store.refresh(held).then(
      (lost) => lost.length > 0 && options.onLost(lost),
      (error) => logger.warn("store refresh failed", { error: String(error) }),
    ).finally(() => {
      running = false;
      schedule(again ? 0 : every);
      again = false;
    });
  };
  schedule(every);
  return {
    now: () => schedule(0),
    stop() {
      stopped = true;
      if (handle !== undefined) clock.clearTimeout(handle);
      handle = undefined;
    },
  };
}
