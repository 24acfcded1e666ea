/**
 * One scheduler for every connection's ticks. Connections sit in 1000
 * buckets by the millisecond phase of their session start; a single timer
 * wakes for the next non-empty bucket. Tick k of a session is due at
 * start + k s, computed from the clock, so ticks never drift and the load
 * spreads across the second as sessions start.
 *
 * @module
 */

import type { Clock, TimerHandle } from "./clock.ts";

/** What the ticker needs of a scheduled item. */
export interface Tickable {
  /** Session start, ms since the epoch. */
  readonly start: number;
  /** Last tick number delivered; the ticker never sends it twice. */
  lastTick: number;
}

/** Delivers tick `seconds` to `item`. */
export type TickSink<T> = (item: T, seconds: number) => void;

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
  /** Every instant up to this one (ms) has been served. */
  #servedUntil: number;

  /** A ticker that calls `sink` for each due tick. */
  constructor(clock: Clock, sink: TickSink<T>) {
    this.#clock = clock;
    this.#sink = sink;
    this.#servedUntil = clock.now();
  }

  /** Number of scheduled items. */
  get size(): number {
    return this.#size;
  }

  /** Schedules `item` from its next due tick on. */
  add(item: T): void {
    const bucket = this.#buckets[phase(item.start)]!;
    if (bucket.has(item)) return;
    bucket.add(item);
    this.#size++;
    this.#arm();
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
    const now = this.#clock.now();
    // After a stall longer than a period, each bucket is served once.
    const from = Math.max(this.#servedUntil + 1, now - PERIOD + 1);
    for (let t = from; t <= now; t++) {
      const bucket = this.#buckets[phase(t)]!;
      if (bucket.size === 0) continue;
      for (const item of bucket) {
        const seconds = Math.floor((now - item.start) / PERIOD);
        if (seconds > item.lastTick) {
          item.lastTick = seconds;
          this.#sink(item, seconds);
        }
      }
    }
    this.#servedUntil = now;
    this.#arm();
  };

  #arm(): void {
    if (this.#size === 0) return;
    const now = this.#clock.now();
    let at = Math.max(this.#servedUntil, now) + 1;
    for (let i = 0; i < PERIOD; i++, at++) {
      if (this.#buckets[phase(at)]!.size > 0) break;
    }
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
