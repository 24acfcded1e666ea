/**
 * Rebalancing after a scale-out. A balancer never moves a live connection,
 * so a new instance stays empty while the others stay full. Each instance
 * compares itself with the fleet's mean and, when it holds more than the
 * mean by more than a tolerance (or is over its capacity threshold while
 * others have room), asks a few of its clients a second to move (make
 * before break, so a move costs no tick); the balancer places them. It
 * never moves below the mean, never moves a client that arrived lately
 * (so nobody is moved twice in a row), and pauses while the fleet is
 * unsettled: an instance draining or lost, the store unreachable, a storm
 * of handshakes under way.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { FleetView, PresenceRecord } from "./presence.ts";

/** How eagerly to rebalance. */
export interface RebalanceOptions {
  /** Share above the mean tolerated before moving anyone (0.1 = 10%). */
  readonly tolerance: number;
  /** Clients asked to move per decision (one a second). */
  readonly rate: number;
  /** Load (capacity ratio) above which an instance is over its threshold. */
  readonly threshold: number;
}

/** This instance as the decision needs it. */
export interface SelfState {
  readonly name: string;
  /** Live connections, not counting those already asked to move. */
  readonly connections: number;
  readonly load: number;
  /** Handshakes admitted or waiting: a storm when many. */
  readonly handshakes: number;
}

/** A decision: how many clients to ask to move now, and why (or why not). */
export interface Decision {
  readonly move: number;
  readonly why: string;
}

/**
 * From asking clients to move until their new connections show in the
 * other instances' counts: the hint (up to 1 s) and the handshake, ms.
 */
export const LANDING_MS = 1500;

/** How long a move that came back pauses rebalancing, ms. */
export const RETURN_PAUSE_MS = 5000;

/** Handshakes in flight above which a storm is under way. */
export const STORM_HANDSHAKES = 32;

/** How many of this instance's clients to move now, and why. */
export function decide(
  view: FleetView,
  self: SelfState,
  options: RebalanceOptions,
): Decision {
  if (!view.reachable) return { move: 0, why: "paused: store unreachable" };
  if (view.lost.length > 0) {
    return { move: 0, why: `paused: ${view.lost.length} instance(s) lost` };
  }
  if (view.instances.some((r) => r.draining)) {
    return { move: 0, why: "paused: an instance is draining" };
  }
  if (view.settling.length > 0) {
    return { move: 0, why: "paused: a new instance is settling" };
  }
  if (self.handshakes >= STORM_HANDSHAKES) {
    return { move: 0, why: "paused: a storm of handshakes" };
  }
  const others = view.instances.filter((r) => r.name !== self.name);
  if (others.length === 0) return { move: 0, why: "alone" };
  const total = others.reduce((sum, r) => sum + r.connections, 0) +
    self.connections;
  const mean = total / (others.length + 1);
  const above = self.connections - Math.ceil(mean);
  if (above <= 0) return { move: 0, why: "at or below the mean" };
  const roomElsewhere = others.some((r: PresenceRecord) =>
    r.load < options.threshold && r.healthy
  );
  const overThreshold = self.load >= options.threshold && roomElsewhere;
  // Within the tolerance an instance moves nobody, unless another is
  // short of the mean by more than it: after a scale-out 3 -> 4 each old
  // instance stops 10% above the mean and the new one would stay 30%
  // short. Then the excess over the mean goes too (never below it).
  const short = others.some((r) =>
    !r.draining && r.healthy && r.connections < mean * (1 - options.tolerance)
  );
  if (
    !overThreshold && !short &&
    self.connections <= mean * (1 + options.tolerance)
  ) {
    return { move: 0, why: "within tolerance" };
  }
  return {
    move: Math.min(above, options.rate),
    why: overThreshold
      ? "over capacity threshold"
      : self.connections > mean * (1 + options.tolerance)
      ? "above the mean"
      : "another instance is short",
  };
}

/** What a {@link Rebalancer} needs. */
export interface RebalancerOptions extends RebalanceOptions {
  readonly fleet: { readonly view: FleetView };
  readonly clock: Clock;
  readonly logger: Logger;
  /** This instance now. */
  readonly self: () => SelfState;
  /** Asks up to `count` clients that arrived long enough ago to move. */
  readonly move: (count: number) => number;
  /** Time between decisions. Default 1000. */
  readonly everyMs?: number;
}

/** Decides once a second and moves what the decision says. */
export class Rebalancer {
  readonly #options: RebalancerOptions;
  #timer: TimerHandle | undefined;
  #last = "";
  #pausedUntil = -Infinity;
  #lastMoveAt = -Infinity;
  /** Clients asked to move by rebalancing so far. */
  moved = 0;

  /** A rebalancer that has not started. */
  constructor(options: RebalancerOptions) {
    this.#options = options;
  }

  /** The last decision's reason, for health details and logs. */
  get state(): string {
    return this.#last;
  }

  /** Decides every `everyMs` until stopped. */
  start(): void {
    const { clock } = this.#options;
    this.#timer = clock.setTimeout(() => {
      this.step();
      this.start();
    }, this.#options.everyMs ?? 1000);
  }

  /** Stops deciding. */
  stop(): void {
    this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * A client asked to move came back to this instance: the balancer does
   * not send to the others (yet), so moving more now would only churn.
   */
  returned(): void {
    this.#pausedUntil = this.#options.clock.now() + RETURN_PAUSE_MS;
  }

  /** One decision, acted on; returns how many were asked to move. */
  step(): number {
    const { fleet, logger, clock } = this.#options;
    const self = this.#options.self();
    const now = clock.now();
    // The others' counts must show the last batch before the next one:
    // a record written before those clients landed would count them nowhere
    // and the mean would look lower than it is (records carry their
    // writer's clock, so this assumes hosts keep time, as NTP does).
    const landed = this.#lastMoveAt + LANDING_MS;
    const behind = fleet.view.instances.some((r) =>
      r.name !== self.name && r.at < landed
    );
    const decision = now < this.#pausedUntil
      ? { move: 0, why: "paused: moved clients came back" }
      : behind
      ? { move: 0, why: "waiting for the last moves to show" }
      : decide(fleet.view, self, {
        ...this.#options,
        // A batch waits for the last one to show in the others' records
        // (a second or two): the next one makes up for the wait, so the
        // rate holds per second, up to three seconds' worth.
        rate: this.#options.rate *
          Math.min(3, Math.max(1, Math.round((now - this.#lastMoveAt) / 1000))),
      });
    const moved = decision.move > 0 ? this.#options.move(decision.move) : 0;
    if (moved > 0) this.#lastMoveAt = now;
    this.moved += moved;
    if (moved > 0 || decision.why !== this.#last) {
      // A line per move batch, and one whenever the reason changes (a
      // pause begins or ends), so an operator can follow every decision.
      logger.info(moved > 0 ? "rebalancing" : "rebalance", {
        why: decision.why,
        moved,
        connections: self.connections,
        instances: fleet.view.instances.length,
      });
    }
    this.#last = decision.why;
    return moved;
  }
}
