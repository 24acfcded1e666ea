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

/** Store faults, for a bed with `store: "sentinel"`. */
export const STORE_FAULTS = [
  "primary-kill",
  "primary-freeze",
  "primary-partition",
] as const;

/**
 * Faults of a Redis Cluster (a bed with `store: "cluster"`): the primary of
 * one shard killed, frozen past the node timeout, or cut from one instance,
 * and slots moved to another shard while an instance's clients resume
 * elsewhere and new ones arrive.
 */
export const CLUSTER_FAULTS = [
  "primary-kill",
  "primary-freeze",
  "primary-partition",
  "reshard",
] as const;

/** One of {@link STORE_FAULTS} or {@link CLUSTER_FAULTS}. */
export type StoreFaultKind =
  | typeof STORE_FAULTS[number]
  | typeof CLUSTER_FAULTS[number];

/** What a store fault did, beside what the clients saw. */
export interface StoreFaultFigures extends FaultFigures {
  readonly primaryBefore: string;
  readonly primaryAfter: string;
  /** From the fault until the sentinels named a new primary, ms. */
  readonly promotedAfterMs: number | null;
  /** Longest time an instance had no writable store, ms. */
  readonly notWritableMs: number;
  /** Writes that waited in an instance's buffer, and were replayed. */
  readonly buffered: number;
  readonly replayed: number;
  /** Primary changes each instance saw (the least of them). */
  readonly failoversSeen: number;
  /** Resumes that needed the token's start (the store had no record). */
  readonly tokenResumes: number;
  /** Sessions the primary holds after, against clients started. */
  readonly recordsOnPrimary: number;
  readonly clientsStarted: number;
  /** Every instance's store up with nothing buffered, after. */
  readonly storesSettled: boolean;
}

async function tokenResumes(bed: FaultBed): Promise<number> {
  let total = 0;
  for (const instance of bed.instances) {
    const { body } = await bed.fetch(
      `http://${instance.host.address}:8000/metrics`,
    );
    const match = /^wstime_sessions_total\{kind="resumed",from="token"\} (\d+)/m
      .exec(body);
    total += Number(match?.[1] ?? 0);
  }
  return total;
}

/** Applies a store fault and returns what it did. */
export async function runStoreFault(
  bed: FaultBed,
  kind: StoreFaultKind,
  timing: FaultTiming,
): Promise<StoreFaultFigures & { instance: string }> {
  await waitFor(
    async () => (await bed.status()).connected === bed.clients,
    60_000,
    `all clients connected before ${kind}`,
  ).catch(() => {});
  const before = await bed.stores();
  const tokensBefore = await tokenResumes(bed);
  const primary = await bed.primary();
  let instance = "-";
  let promotedAfterMs: number | null = null;
  const from = Date.now();
  const promoted = async () => {
    await waitFor(
      async () => (await bed.primary().catch(() => primary)) !== primary,
      60_000,
      "the sentinels to promote another primary",
    ).catch(async (error) => {
      // Which replica should have stood, and what the nodes think.
      throw new Error(`${error.message}\n${await bed.clusterReport()}`);
    });
    promotedAfterMs = Date.now() - from;
  };
  switch (kind) {
    case "primary-kill":
      primary.child.kill("SIGKILL");
      await primary.child.finished();
      await promoted();
      // New sessions while the old primary is gone.
      await bed.addClients(10);
      await sleep(2000);
      await bed.restartRedis(primary);
      break;
    case "primary-freeze":
      primary.child.kill("SIGSTOP");
      await promoted();
      await bed.addClients(10);
      await sleep(2000);
      primary.child.kill("SIGCONT");
      break;
    case "reshard": {
      // The slots move key by key (MIGRATE) while the killed instance's
      // clients resume on the others and new clients arrive: claims meet
      // ASK and TRYAGAIN.
      const i = await target(bed);
      instance = bed.instances[i]!.name;
      const moving = bed.reshard(2000);
      await bed.kill(i);
      await bed.addClients(30);
      await moving;
      await bed.restart(i);
      break;
    }
    case "primary-partition": {
      const i = await target(bed);
      instance = bed.instances[i]!.name;
      // In a cluster, the shard every instance writes to each second.
      const node = await bed.primaryFor("ws-time:fleet");
      await bed.cutRedis(i, true, node.host);
      await bed.addClients(30);
      await sleep(timing.holdMs);
      await bed.cutRedis(i, false, node.host);
      break;
    }
  }
  // Settled: every store writable with nothing waiting, every client back.
  let after = await bed.stores();
  const deadline = Date.now() + timing.settleMs;
  // After a promotion, also until every instance has found the new primary:
  // Sentinel tells at once, a cluster's layout is asked at the next PING
  // (5 s) by an instance that had no command waiting on the old primary.
  const promotion = kind === "primary-kill" || kind === "primary-freeze";
  // What each instance's figure grew by since the fault, never below zero:
  // an instance restarted by the fault (the resharding's) counts afresh.
  const gains = (figure: string) =>
    after.map((s, i) =>
      Math.max(
        0,
        (s.figures[figure] ?? 0) - (before[i]?.figures[figure] ?? 0),
      )
    );
  const settledNow = () => {
    const failovers = gains("failovers");
    return after.every((s, i) =>
      s.state === "up" && s.figures.buffered === 0 &&
      (!promotion || failovers[i]! > 0)
    );
  };
  while (Date.now() < deadline && !settledNow()) {
    await sleep(500);
    after = await bed.stores();
  }
  const storesSettled = after.every((s) =>
    s.state === "up" && s.figures.buffered === 0
  );
  const duplicates = await settled(bed, bed.clients, timing.settleMs);
  const now = await bed.primary();
  // A refresh after the failover writes back what replication had not yet
  // carried; give the scheduled one a moment.
  let records = 0;
  const recordsDeadline = Date.now() + 10_000;
  while (Date.now() < recordsDeadline) {
    // In a cluster, every shard's primary holds its share.
    records = (await bed.sessionRecords()).reduce((a, b) => a + b, 0);
    if (records >= bed.clients) break;
    await sleep(500);
  }
  const figures = analyse(
    kind,
    bed.clients,
    bed.events(),
    from,
    Date.now(),
    duplicates,
  );
  const sum = (figure: string) => gains(figure).reduce((a, b) => a + b, 0);
  return {
    ...figures,
    instance,
    primaryBefore: primary.name,
    primaryAfter: now.name,
    promotedAfterMs,
    notWritableMs: Math.max(...gains("not_writable_ms")),
    buffered: sum("buffered_total"),
    replayed: sum("flushed"),
    failoversSeen: Math.min(...gains("failovers")),
    tokenResumes: await tokenResumes(bed) - tokensBefore,
    recordsOnPrimary: records,
    clientsStarted: bed.clients,
    storesSettled,
  };
}
