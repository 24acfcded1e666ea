/**
 * The fleet's everyday changes on the fault bed, each on a bed of its own:
 * a scale-out 3 -> 4, a balanced fleet left alone, rolling deploys (the
 * replacement started as the old instance stops, with surge, and on the
 * same slot after the old one exited) and an HAProxy reload. What each
 * measures is what a user would notice: how often each client moved, the
 * longest wait for its count, whether any count broke, any client ended.
 *
 * @module
 */

import { sleep, waitFor } from "./timing.ts";
import type { FaultBed } from "./fault_bed.ts";
import type { DriverEvent } from "./fault_clients.ts";
import { analyse, type FaultFigures } from "./fault_report.ts";

/** The fleet scenarios, in the order `deno task chaos --fleet` runs them. */
export const FLEET_SCENARIOS = [
  "scale-out",
  "balanced",
  "deploy-in-place",
  "deploy-surge",
  "deploy-same-slot",
  "reload",
] as const;

/** One fleet scenario. */
export type FleetScenario = typeof FLEET_SCENARIOS[number];

/** Spare hosts each scenario needs. */
export const SPARES: Record<FleetScenario, number> = {
  "scale-out": 1,
  "balanced": 0,
  "deploy-in-place": 3,
  "deploy-surge": 3,
  "deploy-same-slot": 0,
  "reload": 0,
};

/** What a fleet scenario measured. */
export interface FleetFigures {
  readonly scenario: FleetScenario;
  readonly balance: string;
  readonly clients: number;
  /** How long the scenario ran, from its first action, ms. */
  readonly durationMs: number;
  /** Clients welcomed by another server at least once. */
  readonly moved: number;
  /** Moves per client that moved: average and most. */
  readonly movesPerMoved: { readonly average: number; readonly max: number };
  readonly movedTwice: number;
  /** Longest wait for a count update, p99 over the moved clients, ms. */
  readonly gapP99: number;
  readonly gapMax: number;
  /** Scale-out: from the new instance's start until every instance is within ±10% of the mean, ms. */
  readonly evenedMs: number | null;
  /** Clients per instance at the end. */
  readonly spread: Record<string, number>;
  /** Connections lost (closed without a move) during the scenario. */
  readonly lost: number;
  readonly continuityViolations: number;
  /** The first few violations, in words (kind, detail). */
  readonly violations: readonly string[];
  readonly ended: number;
  /** Reload: the clients the old balancer process closed, and their resume. */
  readonly reload?: FaultFigures;
}

/**
 * The clients' view, or null when the driver is too busy to answer in
 * time (3,000 clients connecting at once): a poll then simply tries again.
 */
async function tryStatus(bed: FaultBed) {
  try {
    return await bed.status();
  } catch {
    return null;
  }
}

/** Whether all `clients` are connected (false when the driver is busy). */
async function allConnected(bed: FaultBed, clients: number) {
  return (await tryStatus(bed))?.connected === clients;
}

/** Longest a scenario waits for the fleet to even out or settle, ms. */
const SETTLE_MS = 5 * 60_000;

/** The shipped `hard-stop-after` (deploy/haproxy.cfg), ms. */
const HARD_STOP_AFTER_MS = 30_000;

/** Runs `scenario` on a bed started for it; `balancedMs` for "balanced". */
export async function runFleetScenario(
  bed: FaultBed,
  scenario: FleetScenario,
  options: { balance: string; clients: number; balancedMs: number },
): Promise<FleetFigures> {
  const { clients } = options;
  await waitFor(
    () => allConnected(bed, clients),
    180_000,
    `all ${clients} clients connected before ${scenario}`,
  );
  // Let the first connections' rebalancing (if any) finish first.
  await untilEven(bed, 60_000).catch(() => {});
  await bed.mark();
  const from = Date.now();
  let evenedMs: number | null = null;
  let reload: FaultFigures | undefined;
  switch (scenario) {
    case "scale-out": {
      await bed.addInstance();
      await untilEven(bed, SETTLE_MS);
      evenedMs = Date.now() - from;
      // Then nobody more should move.
      await sleep(20_000);
      break;
    }
    case "balanced":
      await sleep(options.balancedMs);
      break;
    case "deploy-in-place":
      for (let i = 0; i < 3; i++) {
        // The replacement starts elsewhere as the old one is told to stop
        // (Kubernetes' maxUnavailable: 1, maxSurge: 0).
        await Promise.all([bed.stop(i), bed.addInstance()]);
      }
      break;
    case "deploy-surge":
      for (let i = 0; i < 3; i++) {
        const j = await bed.addInstance();
        await waitFor(
          () => bed.isUp(j),
          60_000,
          `${bed.instances[j]!.name} UP`,
        );
        await bed.stop(i);
      }
      break;
    case "deploy-same-slot":
      for (let i = 0; i < 3; i++) {
        // systemctl restart: the replacement only once the old one exited.
        await bed.stop(i);
        await bed.restart(i);
        bed.instances[i]!.stopped = false;
        await waitFor(
          () => bed.isUp(i),
          60_000,
          `${bed.instances[i]!.name} UP`,
        );
      }
      break;
    case "reload": {
      bed.reloadBalancer();
      // The old process holds its tunnels until hard-stop-after (30 s as
      // shipped), then closes them; the clients reconnect through the new
      // one. Resume times run from that moment.
      await sleep(35_000);
      await waitFor(
        () => allConnected(bed, clients),
        SETTLE_MS,
        "every client back after the reload",
      ).catch(() => {});
      reload = analyse(
        "reload",
        clients,
        bed.events(),
        from + HARD_STOP_AFTER_MS - 500,
        Date.now(),
        0,
      );
      break;
    }
  }
  await waitFor(
    () => allConnected(bed, clients),
    SETTLE_MS,
    `every client connected after ${scenario}`,
  ).catch(() => {});
  const until = Date.now();
  const gaps = await bed.gaps();
  const servers = (await waitFor(() => tryStatus(bed), 60_000, "a status"))
    .servers;
  return {
    scenario,
    balance: options.balance,
    clients,
    durationMs: until - from,
    ...moves(bed.events(), from, until, gaps),
    evenedMs,
    spread: servers,
    ...(reload ? { reload } : {}),
  };
}

/** Waits until every instance serving clients is within ±10% of the mean. */
async function untilEven(bed: FaultBed, ms: number): Promise<void> {
  await waitFor(
    async () => {
      const status = await tryStatus(bed);
      if (!status) return false;
      const { servers, connected } = status;
      const live = bed.instances.filter((i) => !i.stopped);
      const mean = connected / live.length;
      return live.every((i) =>
        Math.abs((servers[i.name] ?? 0) - mean) <= 0.1 * mean
      );
    },
    ms,
    "every instance within 10% of the mean",
  );
}

/** Moves per client, lost connections and gaps from the clients' events. */
function moves(
  events: readonly DriverEvent[],
  from: number,
  until: number,
  gaps: readonly number[],
): Omit<
  FleetFigures,
  | "scenario"
  | "balance"
  | "clients"
  | "durationMs"
  | "evenedMs"
  | "spread"
  | "reload"
> {
  const count = new Map<number, number>();
  const server = new Map<number, string>();
  let lost = 0, continuityViolations = 0, ended = 0;
  const violations: string[] = [];
  for (const e of events) {
    if (!("at" in e)) continue;
    if (e.type === "welcome" && e.at < from) server.set(e.i, e.server);
    if (e.at < from || e.at > until) continue;
    if (e.type === "close" && e.opened && e.code !== 1000) lost++;
    if (e.type === "violation") {
      continuityViolations++;
      if (violations.length < 5) {
        violations.push(`client ${e.i} ${e.kind} ${e.detail}`);
      }
    }
    if (e.type === "ended") ended++;
    if (e.type === "welcome") {
      // A welcome from another server is a move: a seamless one (the
      // move's new connection) or a reconnect after a lost connection.
      const before = server.get(e.i);
      server.set(e.i, e.server);
      if (before !== undefined && before !== e.server) {
        count.set(e.i, (count.get(e.i) ?? 0) + 1);
      }
    }
  }
  const perClient = [...count.values()].filter((n) => n > 0);
  const movedGaps = [...count].filter(([, n]) => n > 0)
    .map(([i]) => gaps[i] ?? 0).sort((a, b) => a - b);
  const total = perClient.reduce((s, n) => s + n, 0);
  return {
    moved: perClient.length,
    movesPerMoved: {
      average: perClient.length === 0 ? 0 : total / perClient.length,
      max: Math.max(0, ...perClient),
    },
    movedTwice: perClient.filter((n) => n >= 2).length,
    gapP99: movedGaps.length === 0
      ? 0
      : movedGaps[Math.ceil(0.99 * movedGaps.length) - 1]!,
    gapMax: Math.max(0, ...gaps),
    lost,
    continuityViolations,
    violations,
    ended,
  };
}

/** The targets a row misses, in words (none: it meets them). */
export function fleetVerdict(f: FleetFigures): string[] {
  const misses: string[] = [];
  if (f.continuityViolations > 0) misses.push("counts broke");
  if (f.ended > 0) misses.push(`${f.ended} clients ended`);
  if (f.scenario === "balanced" && f.moved > 0) {
    misses.push(`${f.moved} moved in a balanced fleet`);
  }
  if (f.scenario === "scale-out") {
    if (f.evenedMs === null || f.evenedMs > 120_000) {
      misses.push("not even within 2 minutes");
    }
    if (f.movedTwice > 0) misses.push(`${f.movedTwice} moved twice`);
  }
  if (f.scenario.startsWith("deploy")) {
    if (f.movesPerMoved.average > 1.05) {
      misses.push(`${f.movesPerMoved.average.toFixed(2)} moves per client`);
    }
    if (f.movesPerMoved.max > 2) {
      misses.push(`a client moved ${f.movesPerMoved.max} times`);
    }
  }
  if (f.scenario !== "reload" && f.scenario !== "balanced") {
    if (f.gapP99 > 1500) misses.push(`tick gap p99 ${f.gapP99} ms`);
    if (f.lost > 0) misses.push(`${f.lost} connections lost`);
  }
  if (f.reload && f.reload.resumed < f.reload.affected) {
    misses.push(`${f.reload.affected - f.reload.resumed} not resumed`);
  }
  return misses;
}

/** One line per scenario: the figures the issue asks for. */
export function fleetLine(f: FleetFigures): string {
  const spread = Object.entries(f.spread).sort().map(([k, v]) => `${k} ${v}`)
    .join("/");
  const head = `${f.scenario} (${f.balance}, ${f.clients} clients)`;
  const movers = `${f.moved} moved, ${
    f.movesPerMoved.average.toFixed(2)
  } moves per moved client (max ${f.movesPerMoved.max}), ${f.movedTwice} moved twice, tick gap p99 ${f.gapP99} ms (max over all ${f.gapMax} ms), ${f.lost} connections lost, ${f.continuityViolations} counts broke, ${f.ended} ended`;
  const even = f.evenedMs === null
    ? ""
    : `even within ±10% after ${(f.evenedMs / 1000).toFixed(1)} s; `;
  const reload = f.reload
    ? `; reload: ${f.reload.resumed} of ${f.reload.affected} resumed, p50 ${f.reload.resumeMs.p50} ms, p99 ${f.reload.resumeMs.p99} ms after hard-stop-after`
    : "";
  const broke = f.violations.length > 0 ? ` (${f.violations.join("; ")})` : "";
  return `${head}: ${even}${movers}${broke}; ends ${spread}${reload}`;
}
