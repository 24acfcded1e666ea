/**
 * Keeps the store's records of live sessions alive: one batched refresh
 * every half grace period (at least every second), never a write per tick.
 * The next round is scheduled only after the previous one settled, so a
 * slow store never has two batches in flight.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { SessionStore } from "./store.ts";

/** What the refresh loop needs. */
export interface RefresherOptions {
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The grace period of a closed session, in ms. */
  readonly ttlMs: number;
  /** The session ids held by live connections now. */
  readonly liveSessions: () => string[];
}

/** Starts the loop; `stop()` cancels it. */
export function startRefresher(options: RefresherOptions): { stop(): void } {
  const { store, clock, logger } = options;
  let handle: TimerHandle | undefined;
  let stopped = false;
  const every = Math.max(1000, Math.floor(options.ttlMs / 2));
  const next = () => {
    if (!stopped) handle = clock.setTimeout(loop, every);
  };
  const loop = () => {
    handle = undefined;
    const ids = options.liveSessions();
    if (ids.length === 0) return next();
    store.refresh(ids).catch((error) =>
      logger.warn("store refresh failed", { error: String(error) })
    ).finally(next);
  };
  handle = clock.setTimeout(loop, every);
  return {
    stop() {
      stopped = true;
      if (handle !== undefined) clock.clearTimeout(handle);
    },
  };
}
