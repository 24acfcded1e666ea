/**
 * Time as a dependency: the wall clock and timers every module uses, so
 * tests can replace them with a {@link ManualClock} and control time.
 *
 * @module
 */

/** Current time and one-shot timers. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(id: TimerHandle): void;
}

/** Opaque timer handle; only the clock that made it understands it. */
export type TimerHandle = unknown;

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  // A deadline already past means "now". Deno would clamp it too, but
  // prints a TimeoutNegativeWarning to stderr for each one (the ticker's
  // next wake-up can be a few ms late once its last client has left).
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (id) => clearTimeout(id as number),
};

/** A clock that moves only when told to; timers fire during `advance`. */
export class ManualClock implements Clock {
  #now: number;
  #next = 1;
  #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  /** Current manual time in ms. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at now + ms. */
  setTimeout(fn: () => void, ms: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  /** Cancels a timer. */
  clearTimeout(id: TimerHandle): void {
    this.#timers.delete(id as number);
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!first || entry[1].at < first[1].at)) {
          first = entry;
        }
      }
      if (!first) break;
      this.#timers.delete(first[0]);
      this.#now = Math.max(this.#now, first[1].at);
      first[1].fn();
    }
    this.#now = end;
  }

  /** Moves time forward without firing timers, like a blocked event loop. */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.#timers.size;
  }
}
