/**
 * Steering the clients that move. A balancer places a moving client by its
 * own rule: round robin sends it to whichever instance is next, even one
 * about to be replaced or one already above the mean, and the client moves
 * again later. An instance that a mover reaches therefore checks the fleet
 * first and, when a better place exists, hands the mover on: it closes the
 * new connection at once with 4004 and the client, whose old connection
 * still ticks, tries the balancer again. Better means emptier than the
 * fleet's mean and either younger (in a rolling deploy the instances that
 * started last are the ones that stay) or, when this instance is at or
 * above the mean itself, simply emptier. Each try costs a handshake, not a
 * tick, and the client says how many it made so a stale view cannot bounce
 * it for long.
 *
 * @module
 */

import type { FleetView, PresenceRecord } from "./presence.ts";

/**
 * How much later an instance must have started to count as younger, ms:
 * instances started together (a fleet's first start) prefer none of
 * each other; a replacement starts well after the one it replaces.
 */
export const YOUNGER_MS = 2000;

/** Fewest tries a mover gets handed on for, whatever the fleet's size. */
export const MIN_HOPS = 6;

/** Most tries a mover gets handed on for (the client stops at 32). */
export const MAX_HOPS = 24;

/** This instance as steering sees it. */
export interface SteerSelf {
  readonly name: string;
  readonly startedAt: number;
  /** Live connections now. */
  readonly connections: number;
  readonly draining: boolean;
}

/**
 * How many tries a mover gets before it is kept wherever it lands: enough
 * that a round robin over `instances` reaches a given one with 99%
 * likelihood (three rounds), bounded.
 */
export function hopLimit(instances: number): number {
  return Math.min(MAX_HOPS, Math.max(MIN_HOPS, 3 * instances));
}

/**
 * The mean a mover's destination is judged by: every connection in the
 * fleet over the instances that will keep theirs (a draining one's
 * clients are all on their way to the others).
 */
export function placingMean(
  instances: readonly PresenceRecord[],
  self: SteerSelf,
): number {
  let total = self.connections;
  let staying = self.draining ? 0 : 1;
  for (const r of instances) {
    if (r.name === self.name) continue;
    total += r.connections;
    if (!r.draining) staying++;
  }
  return staying === 0 ? Infinity : total / staying;
}

/**
 * Whether the mover on its `hop`th try should be handed on, and why; null
 * keeps it here.
 */
export function handOn(
  view: FleetView,
  self: SteerSelf,
  hop: number,
): string | null {
  if (self.draining) return "this instance is draining";
  if (!view.reachable) return null;
  const others = view.instances.filter((r) =>
    r.name !== self.name && !r.draining && r.healthy
  );
  if (others.length === 0 || hop >= hopLimit(others.length + 1)) return null;
  const mean = placingMean(view.instances, self);
  const full = self.connections >= mean;
  const better = others.find((r) =>
    r.connections < mean &&
    (full || r.startedAt > self.startedAt + YOUNGER_MS)
  );
  if (!better) return null;
  return full ? "an emptier instance has room" : "a younger instance has room";
}

/**
 * Whether a draining instance can ask its clients to move now: some
 * younger instance holds fewer than the fleet's mean (counted with this
 * one), so the movers have a place that stays. In a deploy that starts
 * the replacement only as the old instance stops, the drain waits for it.
 */
export function replacementReady(
  view: FleetView,
  self: SteerSelf,
): boolean {
  const all = view.instances;
  const total = all.reduce(
    (sum, r) => sum + (r.name === self.name ? self.connections : r.connections),
    0,
  );
  const mean = total / Math.max(1, all.length);
  return all.some((r) =>
    r.name !== self.name && !r.draining && r.healthy &&
    !view.settling.includes(r.name) &&
    r.startedAt > self.startedAt + YOUNGER_MS && r.connections < mean
  );
}
