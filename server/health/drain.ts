/**
 * Graceful drain. When an instance is told to leave, it first fails its
 * health check and refuses new upgrades (the caller latches the monitor),
 * waits `delayMs` for the load balancer to notice, then closes its
 * connections spread evenly over `periodMs`, each with a jittered reconnect
 * hint, so the survivors see a steady trickle instead of a stampede. Plain
 * `server.shutdown()` would close everyone within milliseconds.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";

/** How long after its close a drained client should reconnect, at most. */
export const RECONNECT_SPREAD_MS = 1000;

/** Options of a {@link Drainer}. */
export interface DrainOptions<T> {
  readonly clock: Clock;
  /** Wait between the start and the first close, in ms. */
  readonly delayMs: number;
  /** Window the closes are spread over, in ms. */
  readonly periodMs: number;
  /** The live connections at the moment of asking. */
  readonly connections: () => Iterable<T>;
  /**
   * Closes one connection, telling it to come back after `reconnectMs`;
   * `now` is true when everyone goes at once (no time to move first).
   */
  readonly close: (conn: T, reconnectAfterMs: number, now: boolean) => void;
  /**
   * Awaited after the delay, before the first close: a wait for the
   * movers' destination (a deploy's replacement). Default: none.
   */
  readonly ready?: () => Promise<void>;
  /** Random numbers in [0, 1), for the jitter. Default Math.random. */
  readonly random?: () => number;
  /** Smallest gap between two close batches, in ms. Default 50. */
  readonly minStepMs?: number;
}

/** Drains connections on a schedule; one drain per instance lifetime. */
export class Drainer<T> {
  readonly #options: DrainOptions<T>;
  readonly #done = Promise.withResolvers<void>();
  #timer: TimerHandle | undefined;
  #started = false;
  /** Set once everyone was closed at once. */
  #closing = false;
  #closed = 0;

  /** A drainer that has not started. */
  constructor(options: DrainOptions<T>) {
    this.#options = options;
  }

  /** True once {@link start} was called. */
  get started(): boolean {
    return this.#started;
  }

  /** Connections closed by the drain so far. */
  get closed(): number {
    return this.#closed;
  }

  /** Starts the drain; resolves once every connection was closed. */
  start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      const ready = this.#options.ready;
      this.#timer = this.#options.clock.setTimeout(
        () => ready ? void this.#afterReady(ready) : this.#beginClosing(),
        this.#options.delayMs,
      );
    }
    return this.#done.promise;
  }

  /** Closes every remaining connection at once and ends the drain. */
  closeAllNow(): void {
    this.#started = true;
    this.#closing = true;
    this.#cancel();
    for (const conn of [...this.#options.connections()]) {
      this.#close(conn, true);
    }
    this.#done.resolve();
  }

  async #afterReady(ready: () => Promise<void>): Promise<void> {
    this.#timer = undefined;
    await ready();
    // closeAllNow() may have ended the drain meanwhile.
    if (this.#closing) return;
    this.#beginClosing();
  }

  #beginClosing(): void {
    const { clock, periodMs } = this.#options;
    const queue = [...this.#options.connections()];
    const begin = clock.now();
    const step = Math.max(
      this.#options.minStepMs ?? 50,
      queue.length > 0 ? periodMs / queue.length : periodMs,
    );
    let next = 0;
    const run = () => {
      this.#timer = undefined;
      const elapsed = clock.now() - begin;
      // Connection i is due at i * period / n: a steady rate over the period.
      const due = periodMs <= 0 || elapsed >= periodMs
        ? queue.length
        : Math.min(
          queue.length,
          Math.floor(elapsed * queue.length / periodMs) + 1,
        );
      while (next < due) this.#close(queue[next++]!);
      if (next < queue.length) {
        this.#timer = clock.setTimeout(run, step);
        return;
      }
      // Whatever slipped in meanwhile (an upgrade already past its checks).
      const drained = new Set(queue);
      for (const conn of [...this.#options.connections()]) {
        if (!drained.has(conn)) this.#close(conn);
      }
      this.#done.resolve();
    };
    run();
  }

  #close(conn: T, now = false): void {
    const random = this.#options.random ?? Math.random;
    this.#closed++;
    this.#options.close(conn, Math.round(random() * RECONNECT_SPREAD_MS), now);
  }

  #cancel(): void {
    if (this.#timer !== undefined) {
      this.#options.clock.clearTimeout(this.#timer);
    }
    this.#timer = undefined;
  }
}
