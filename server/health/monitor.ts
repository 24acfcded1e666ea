/**
 * Capacity and readiness. A {@link CapacityMonitor} turns named probes
 * (each a ratio of use against capacity: connections against the cap,
 * network against the link, loop lag, memory) into one verdict with
 * hysteresis: it turns unhealthy above the threshold and healthy again only
 * below the lower recover mark, so an instance near the line does not flap.
 *
 * @module
 */

/** A capacity probe: returns use/capacity (0 = idle, 1 = full). */
export type Probe = () => number;

/** The verdict served by /healthcheck. */
export interface HealthReport {
  readonly healthy: boolean;
  /** "ok", "overloaded" or "draining". */
  readonly state: "ok" | "overloaded" | "draining";
  /** Human-readable reason, the body of a 503. */
  readonly reason: string;
  /** The highest ratio, which decides. */
  readonly usage: number;
  /** Each probe's ratio. */
  readonly ratios: Readonly<Record<string, number>>;
}

/** Options of a {@link CapacityMonitor}. */
export interface CapacityOptions {
  /** Usage at or above which the instance turns unhealthy. Default 0.6. */
  readonly threshold: number;
  /** Usage below which it turns healthy again. Default 0.5. */
  readonly recover: number;
  /** Named probes; usage is the highest of their ratios. */
  readonly probes: Readonly<Record<string, Probe>>;
}

/** Readiness from capacity probes, with hysteresis and a drain latch. */
export class CapacityMonitor {
  readonly #options: CapacityOptions;
  #overloaded = false;
  #draining = false;

  /** A monitor over `options.probes`. */
  constructor(options: CapacityOptions) {
    this.#options = options;
  }

  /** Marks the instance as leaving; it never turns healthy again. */
  startDraining(): void {
    this.#draining = true;
  }

  /** True once draining started. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Evaluates every probe and updates the hysteresis state. */
  report(): HealthReport {
    const ratios: Record<string, number> = {};
    let usage = 0;
    let worst = "";
    for (const [name, probe] of Object.entries(this.#options.probes)) {
      const ratio = safeRatio(probe);
      ratios[name] = Math.round(ratio * 10_000) / 10_000;
      if (ratio > usage || worst === "") [usage, worst] = [ratio, name];
    }
    const { threshold, recover } = this.#options;
    if (this.#overloaded ? usage >= recover : usage >= threshold) {
      this.#overloaded = true;
    } else {
      this.#overloaded = false;
    }
    if (this.#draining) {
      return {
        healthy: false,
        state: "draining",
        reason: "draining",
        usage,
        ratios,
      };
    }
    if (this.#overloaded) {
      const reason = `server is overloaded (${worst} at ${
        Math.round(usage * 100)
      }%, limit ${Math.round(threshold * 100)}%)`;
      return { healthy: false, state: "overloaded", reason, usage, ratios };
    }
    return { healthy: true, state: "ok", reason: "ok", usage, ratios };
  }
}

function safeRatio(probe: Probe): number {
  try {
    const value = probe();
    return Number.isFinite(value) && value > 0 ? value : 0;
  } catch {
    // A broken probe must not take the instance out of rotation.
    return 0;
  }
}
