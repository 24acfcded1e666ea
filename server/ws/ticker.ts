/**
 * One scheduler for every connection's ticks. Connections sit in 1000
 * buckets by the millisecond phase of their session start; a single timer
 * wakes for the next non-empty bucket. Tick k of a session is due at
 * start + k s, computed from the clock, so ticks never drift and the load
 * spreads across the second as sessions start. Wakes are at least
 * `minGapMs` apart: each costs the process about 0.1 ms of CPU here, so a
 * gap of 2 ms halves them at 1000 sessions and more, at the price of up to
 * 1 ms of lateness for half the buckets.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";

/** What the ticker needs of a scheduled item. */
export interface Tickable {
  /** Session start, ms since the epoch. */
  readonly start: number;
  /** Last tick number delivered; the ticker never sends it twice. */
  lastTick: number;
}

/** Delivers tick `seconds` to `item`; `now` is the wake's time (ms). */
export type TickSink<T> = (item: T, seconds: number, now: number) => void;

const PERIOD = 1000;

/** The shared tick scheduler. */
export class Ticker<T extends Tickable> {
  readonly #clock: Clock;
  readonly #sink: TickSink<T>;
  readonly #buckets: Array<Set<T>> = Array.from(
    { length: PERIOD },
    () => new Set<T>(),
  );
  #size = 0;
  #timer: TimerHandle | undefined;
  #timerAt = Infinity;
  /** Every instant up to this one (whole ms) has been served. */
  #servedUntil: number;
  readonly #minGap: number;

  /** A ticker that calls `sink` for each due tick. */
  constructor(
    clock: Clock,
    sink: TickSink<T>,
    options: { minGapMs?: number } = {},
  ) {
    this.#clock = clock;
    this.#sink = sink;
    this.#servedUntil = Math.floor(clock.now());
    this.#minGap = Math.max(1, Math.floor(options.minGapMs ?? 1));
  }

  /** Number of scheduled items. */
  get size(): number {
    return this.#size;
  }

  /**
   * Schedules `item` from its next due tick on; a tick already due (its
   * instant passed between the caller counting `lastTick` and now) goes
   * out at once.
   */
  add(item: T): void {
    const bucket = this.#buckets[phase(item.start)]!;
    if (bucket.has(item)) return;
    bucket.add(item);
    this.#size++;
    this.#arm();
    // The bucket's instant this second may be served already: without
    // this, the tick would wait for the next round and the client would
    // see one count skipped after a 2 s wait (a handshake that crossed a
    // second boundary, common on a busy or freshly started instance).
    const now = Math.floor(this.#clock.now());
    const seconds = Math.floor((now - item.start) / PERIOD);
    if (seconds > item.lastTick) {
      item.lastTick = seconds;
      this.#sink(item, seconds, now);
    }
  }

  /** Stops ticking `item`. */
  remove(item: T): void {
    if (this.#buckets[phase(item.start)]!.delete(item)) this.#size--;
    if (this.#size === 0) this.#disarm();
  }

  /** Removes every item and cancels the timer. */
  stop(): void {
    for (const bucket of this.#buckets) bucket.clear();
    this.#size = 0;
    this.#disarm();
  }

  #run = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Math.floor(this.#clock.now());
    // After a stall longer than a period, each bucket is served once.
    const from = Math.max(this.#servedUntil + 1, now - PERIOD + 1);
    for (let t = from; t <= now; t++) {
      const bucket = this.#buckets[phase(t)]!;
      if (bucket.size === 0) continue;
      for (const item of bucket) {
        const seconds = Math.floor((now - item.start) / PERIOD);
        if (seconds > item.lastTick) {
          item.lastTick = seconds;
          this.#sink(item, seconds, now);
        }
      }
    }
    this.#servedUntil = now;
    this.#arm();
  };

  #arm(): void {
    if (this.#size === 0) return;
    const now = this.#clock.now();
    // From the first instant not served, even if it has passed already
    // (a run that took a few ms): starting at now would skip those
    // buckets until their next round, a second late.
    let at = this.#servedUntil + 1;
    for (let i = 0; i < PERIOD; i++, at++) {
      if (this.#buckets[phase(at)]!.size > 0) break;
    }
    at = Math.max(at, this.#servedUntil + this.#minGap);
    if (at >= this.#timerAt) return;
    this.#disarm();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(this.#run, at - now);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}

function phase(ms: number): number {
  return ((Math.floor(ms) % PERIOD) + PERIOD) % PERIOD;
}
