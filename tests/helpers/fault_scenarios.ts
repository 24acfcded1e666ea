/**
 * The faults the fault bed applies, each the same way in the suite and in
 * `deno task chaos`: wait until every client is connected, apply the fault
 * at a known moment, hold it, undo it, let things settle, and measure what
 * the clients saw (fault_report.ts).
 *
 * @module
 */

import type { FaultBed } from "./fault_bed.ts";
import { analyse, type FaultFigures } from "./fault_report.ts";
import { sleep, waitFor } from "./timing.ts";

/** The faults, in the order a run applies them. */
export const FAULTS = [
  "kill",
  "lossy",
  "freeze",
  "partition",
  "redis-partition",
] as const;

/** One of {@link FAULTS}. */
export type FaultKind = typeof FAULTS[number];

/** How long faults last. */
export interface FaultTiming {
  /** How long a freeze, partition or Redis cut lasts (ms). */
  readonly holdMs: number;
  /** How long the link stays slow and lossy (ms). */
  readonly lossyMs: number;
  /** Longest wait for the clients to come back after a fault (ms). */
  readonly settleMs: number;
}

/** The instance a fault hits: the one with most clients, or a fixed one. */
async function target(bed: FaultBed, fixed?: string): Promise<number> {
  if (fixed) return bed.instances.findIndex((i) => i.name === fixed);
  const { servers } = await bed.status();
  let best = 0;
  bed.instances.forEach((instance, i) => {
    if (
      (servers[instance.name] ?? 0) >
        (servers[bed.instances[best]!.name] ?? 0)
    ) best = i;
  });
  return best;
}

/** Waits until every client is connected and the counts add up. */
async function settled(bed: FaultBed, clients: number, ms: number) {
  const deadline = Date.now() + ms;
  let duplicates = NaN;
  while (Date.now() < deadline) {
    const status = await bed.status();
    if (status.connected === clients) {
      const counts = Object.values(await bed.connections());
      const open = counts.filter(Number.isFinite).reduce((a, b) => a + b, 0);
      duplicates = open - clients;
      if (duplicates === 0) return 0;
    }
    await sleep(500);
  }
  return duplicates;
}

/** Applies `kind` to the bed and returns what the clients saw. */
export async function runFault(
  bed: FaultBed,
  kind: FaultKind,
  clients: number,
  timing: FaultTiming,
): Promise<FaultFigures & { instance: string; evidence: string }> {
  await waitFor(
    async () => (await bed.status()).connected === clients,
    60_000,
    `all ${clients} clients connected before ${kind}`,
  ).catch(() => {
    // Measured anyway: the figures show who was missing.
  });
  const fixed = kind === "kill"
    ? "ws1"
    : kind === "lossy" || kind === "partition"
    ? "ws3"
    : kind === "freeze"
    ? "ws2"
    : undefined;
  const i = await target(bed, fixed);
  const instance = bed.instances[i]!.name;
  // What shows the fault was real where no client may notice it.
  let evidence = "";
  const from = Date.now();
  switch (kind) {
    case "kill":
      await bed.kill(i);
      await waitFor(
        async () => (await bed.status()).connected === clients,
        timing.settleMs,
        "every client back after the kill",
      ).catch(() => {});
      await bed.restart(i);
      break;
    case "freeze":
      bed.freeze(i, true);
      await sleep(timing.holdMs);
      bed.freeze(i, false);
      break;
    case "partition":
      await bed.partition(i, true);
      await sleep(timing.holdMs);
      await bed.partition(i, false);
      break;
    case "lossy":
      await bed.degrade(150, 3);
      await sleep(timing.lossyMs / 2);
      evidence = `HTTP round trip ${await roundTrip(bed, i)} ms`;
      await sleep(timing.lossyMs / 2);
      await bed.degrade(0, 0);
      break;
    case "redis-partition":
      await bed.cutRedis(i, true);
      await sleep(timing.holdMs);
      evidence = `store ${await storeState(bed, i)}`;
      await bed.cutRedis(i, false);
      break;
  }
  const duplicates = await settled(bed, clients, timing.settleMs);
  const figures = analyse(
    kind,
    clients,
    bed.events(),
    from,
    Date.now(),
    duplicates,
  );
  return { ...figures, instance, evidence };
}

/** Median time of five GETs of instance `i`'s /healthz from the clients. */
async function roundTrip(bed: FaultBed, i: number): Promise<number> {
  const url = `http://${bed.instances[i]!.host.address}:8000/healthz`;
  const times: number[] = [];
  for (let n = 0; n < 5; n++) {
    const began = Date.now();
    await bed.fetch(url);
    times.push(Date.now() - began);
  }
  return times.sort((a, b) => a - b)[2]!;
}

/** Instance `i`'s view of its store, from its health details. */
async function storeState(bed: FaultBed, i: number): Promise<string> {
  const { body } = await bed.fetch(
    `http://${bed.instances[i]!.host.address}:8000/healthcheck`,
  );
  return /"store":\{[^}]*"state":"(\w+)"/.exec(body)?.[1] ?? "unknown";
}
