/**
 * Samples the capacity signals that are not simple counts: network
 * throughput against the link, event-loop lag and memory against a limit.
 * One timer (on the injected {@link Clock}) takes a sample per interval and
 * keeps a sliding window; the probes it hands to the
 * {@link CapacityMonitor} only read the cached figures, so `/healthcheck`
 * costs the same at ten connections and at the cap.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Probe } from "./monitor.ts";

/** Cumulative bytes received and sent since some fixed point. */
export interface Traffic {
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** Reads cumulative traffic; null when it cannot be read this time. */
export type TrafficReader = () => Traffic | null;

/** Options of a {@link CapacitySampler}. */
export interface SamplerOptions {
  readonly clock: Clock;
  /** Cumulative traffic, from the host's interfaces or this process. */
  readonly traffic: TrafficReader;
  /** Link capacity in bytes per second per direction; 0 = unknown. */
  readonly linkBytesPerSecond: number;
  /** Resident memory of this process in bytes. */
  readonly memory: () => number;
  /** Memory that counts as full, in bytes. */
  readonly memoryLimitBytes: number;
  /** Time between samples in ms. Default 1000. */
  readonly intervalMs?: number;
  /** Length of the sliding window in ms. Default 5000. */
  readonly windowMs?: number;
  /** Mean event-loop lag that counts as full, in ms. Default 500. */
  readonly lagLimitMs?: number;
}

/** The latest figures behind the ratios, for /healthcheck details. */
export interface SamplerFigures {
  /** Bytes per second received over the window, or null if unknown. */
  readonly bytesInPerSecond: number | null;
  /** Bytes per second sent over the window, or null if unknown. */
  readonly bytesOutPerSecond: number | null;
  /** Link capacity per direction in bytes per second (0 = unknown). */
  readonly linkBytesPerSecond: number;
  /** Mean event-loop lag over the window, in ms. */
  readonly lagMs: number;
  /** Resident memory in bytes at the last sample. */
  readonly memoryBytes: number;
  /** Memory limit in bytes. */
  readonly memoryLimitBytes: number;
}

interface Sample {
  readonly at: number;
  readonly traffic: Traffic | null;
  readonly lagMs: number;
}

/** Periodic sampler of network, event-loop lag and memory use. */
export class CapacitySampler {
  readonly #options: SamplerOptions;
  readonly #intervalMs: number;
  readonly #windowMs: number;
  readonly #lagLimitMs: number;
  #samples: Sample[] = [];
  #figures: SamplerFigures;
  #timer: TimerHandle | undefined;
  #expectedAt = 0;

  /** Probes for the capacity monitor, reading the cached figures. */
  readonly probes: Readonly<Record<string, Probe>>;

  /** A stopped sampler; call {@link start} to begin. */
  constructor(options: SamplerOptions) {
    this.#options = options;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#windowMs = options.windowMs ?? 5000;
    this.#lagLimitMs = options.lagLimitMs ?? 500;
    this.#figures = {
      bytesInPerSecond: null,
      bytesOutPerSecond: null,
      linkBytesPerSecond: options.linkBytesPerSecond,
      lagMs: 0,
      memoryBytes: 0,
      memoryLimitBytes: options.memoryLimitBytes,
    };
    this.probes = {
      network: () => this.#networkRatio(),
      eventLoop: () => this.#figures.lagMs / this.#lagLimitMs,
      memory: () =>
        options.memoryLimitBytes > 0
          ? this.#figures.memoryBytes / options.memoryLimitBytes
          : 0,
    };
  }

  /** Takes a first sample now and one per interval from then on. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#take(0);
    this.#schedule();
  }

  /** Cancels the timer. */
  stop(): void {
    if (this.#timer !== undefined) {
      this.#options.clock.clearTimeout(this.#timer);
    }
    this.#timer = undefined;
  }

  /** The figures of the latest sample. */
  get figures(): SamplerFigures {
    return this.#figures;
  }

  #schedule(): void {
    const { clock } = this.#options;
    this.#expectedAt = clock.now() + this.#intervalMs;
    this.#timer = clock.setTimeout(() => {
      // A timer that fires late measures how busy the event loop was.
      this.#take(Math.max(0, clock.now() - this.#expectedAt));
      this.#schedule();
    }, this.#intervalMs);
  }

  #take(lagMs: number): void {
    const { clock, traffic, memory } = this.#options;
    const at = clock.now();
    this.#samples.push({ at, traffic: safeTraffic(traffic), lagMs });
    // Keep one sample at or before the window start as the rate baseline.
    while (
      this.#samples.length > 2 && this.#samples[1]!.at <= at - this.#windowMs
    ) {
      this.#samples.shift();
    }
    this.#figures = {
      ...this.#rates(),
      linkBytesPerSecond: this.#options.linkBytesPerSecond,
      lagMs: this.#meanLag(),
      memoryBytes: safeNumber(memory),
      memoryLimitBytes: this.#options.memoryLimitBytes,
    };
  }

  #rates(): Pick<SamplerFigures, "bytesInPerSecond" | "bytesOutPerSecond"> {
    const last = this.#samples.at(-1)!;
    const first = this.#samples.find((s) => s.traffic !== null);
    if (!first || !last.traffic || first === last) {
      return { bytesInPerSecond: null, bytesOutPerSecond: null };
    }
    const seconds = (last.at - first.at) / 1000;
    // Counters that went backwards (interface reset) read as no traffic.
    const rate = (a: number, b: number) => Math.max(0, b - a) / seconds;
    return {
      bytesInPerSecond: rate(first.traffic!.bytesIn, last.traffic.bytesIn),
      bytesOutPerSecond: rate(first.traffic!.bytesOut, last.traffic.bytesOut),
    };
  }

  #meanLag(): number {
    const since = this.#samples.at(-1)!.at - this.#windowMs;
    const inWindow = this.#samples.filter((s) => s.at > since);
    const total = inWindow.reduce((sum, s) => sum + s.lagMs, 0);
    return total / Math.max(1, inWindow.length);
  }

  #networkRatio(): number {
    const { bytesInPerSecond, bytesOutPerSecond, linkBytesPerSecond } =
      this.#figures;
    if (linkBytesPerSecond <= 0 || bytesInPerSecond === null) return 0;
    // Links are full duplex: the busier direction is the one that fills.
    return Math.max(bytesInPerSecond, bytesOutPerSecond ?? 0) /
      linkBytesPerSecond;
  }
}

function safeTraffic(read: TrafficReader): Traffic | null {
  try {
    return read();
  } catch {
    // A reader that fails once must not stop the sampler.
    return null;
  }
}

function safeNumber(read: () => number): number {
  try {
    const value = read();
    return Number.isFinite(value) ? value : 0;
  } catch {
    return 0;
  }
}
