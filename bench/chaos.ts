/**
 * `deno task chaos`: the fault bed's faults at a larger scale (3,000 clients
 * by default) with the figures an operator asks about: per fault, how many
 * clients lost their connection, how many resumed their session and how
 * fast (p50, p99, max from the fault), whether any count broke, duplicate
 * live connections, failed handshakes, stale handshakes (4002), live
 * connections taken over (4001) and clients that ended. Prints a table and
 * the targets, writes bench/results/chaos-<time>.json and a chart of the
 * share resumed over time. Needs root for network namespaces.
 *
 *     deno task chaos --clients 3000 --hold 30
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FaultBed } from "../dev/fault_bed.ts";
import { type FaultFigures, figuresTable } from "../dev/fault_report.ts";
import {
  CLUSTER_FAULTS,
  type FaultKind,
  FAULTS,
  runFault,
  runStoreFault,
  STORE_FAULTS,
  type StoreFaultFigures,
  type StoreFaultKind,
} from "../dev/fault_scenarios.ts";
import {
  FLEET_SCENARIOS,
  type FleetFigures,
  fleetLine,
  type FleetScenario,
  fleetVerdict,
  runFleetScenario,
  SPARES,
} from "../dev/fleet_scenarios.ts";
import { netnsUnavailable } from "../dev/netns.ts";
import { ROOT } from "../dev/paths.ts";
import { machine } from "./machine.ts";
import { lineChart } from "./svg_chart.ts";

const HELP = `Usage: deno task chaos [options]
  --clients <n>     clients through HAProxy over three instances [3000]
  --faults <list>   ${FAULTS.join(", ")} [all, in that order]
  --hold <s>        how long a freeze, partition or Redis cut lasts [30]
  --lossy <s>       how long the link stays slow (150 ms) and lossy (3%) [20]
  --store <kind>    redis: the instance faults above, on one Redis;
                    sentinel: a primary, a replica and three sentinels, and
                    the store faults ${STORE_FAULTS.join(", ")};
                    cluster: a Redis Cluster of three shards (a primary and
                    a replica each), and ${CLUSTER_FAULTS.join(", ")} [redis]
  --window <s>      store faults: Redis commands per connection per minute
                    are counted over this long before and after [60]
  --fleet <list>    instead of faults, the fleet's changes, each on a bed
                    of its own: ${FLEET_SCENARIOS.join(", ")}
                    (or "all")
  --balance <list>  HAProxy algorithms for --fleet: the shipped config's
                    leastconn and/or roundrobin [leastconn,roundrobin]
  --balanced <s>    how long the balanced fleet is watched [600]
  --tag <word>      label in the result file name
Targets: 100% resumed; p99 <= 5 s after kill, freeze or partition;
0 duplicates, 0 failed handshakes, 0 stale takeovers, 0 clients ended.
Fleet targets: scale-out even within 2 min, nobody moved twice; a balanced
fleet moves nobody; a deploy costs <= 1.05 moves per client that moved,
at most 2; a moved client's longest tick gap <= 1.5 s (p99); no count
breaks, no client ends.`;

/** Whether a fault's figures meet the targets, and what misses. */
export function verdict(f: FaultFigures): string[] {
  const misses: string[] = [];
  if (f.resumed < f.affected) {
    misses.push(`${f.affected - f.resumed} not resumed`);
  }
  if (
    ["kill", "freeze", "partition"].includes(f.fault) && f.resumeMs.p99 > 5000
  ) {
    misses.push(`p99 ${(f.resumeMs.p99 / 1000).toFixed(2)} s > 5 s`);
  }
  if (f.continuityViolations > 0) misses.push("counts broke");
  if (f.duplicates !== 0) misses.push(`${f.duplicates} duplicates`);
  if (f.failedHandshakes > 0) {
    misses.push(`${f.failedHandshakes} failed handshakes`);
  }
  if (f.takenOver > 0) misses.push(`${f.takenOver} stale takeovers`);
  if (f.ended > 0) misses.push(`${f.ended} clients ended`);
  return misses;
}

/** Share of affected clients resumed against seconds since the fault. */
function chart(rows: readonly FaultFigures[]): string {
  return lineChart({
    title: "Clients resumed after each fault",
    xLabel: "seconds since the fault",
    yLabel: "% of affected clients",
    yMax: 100,
    marks: [{ y: 99, label: "99%" }],
    series: rows.filter((r) => r.affected > 0).map((r) => ({
      name: r.fault,
      points: [
        [0, 0] as const,
        ...r.resumeTimesMs.map((ms, i) =>
          [ms / 1000, 100 * (i + 1) / r.affected] as const
        ),
      ],
    })),
  });
}

/**
 * Writes `bench/results/<scenario>-<time>[-tag].json` with the command and
 * the machine beside `fields`; returns the path without ".json".
 */
async function writeResult(
  scenario: string,
  args: readonly string[],
  tag: string,
  fields: Record<string, unknown>,
  // Read when the run began: the commit may move on during a long run.
  machineInfo: ReturnType<typeof machine> = machine(),
): Promise<string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const base = `${ROOT}bench/results/${scenario}-${stamp}${
    tag ? "-" + tag : ""
  }`;
  await Deno.writeTextFile(
    `${base}.json`,
    JSON.stringify(
      {
        scenario,
        command: `deno task chaos ${args.join(" ")}`,
        machine: machineInfo,
        ...fields,
      },
      null,
      2,
    ) + "\n",
  );
  return base;
}

/** Runs the chaos scenarios; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      clients: { type: "string", default: "3000" },
      faults: { type: "string", default: FAULTS.join(",") },
      hold: { type: "string", default: "30" },
      lossy: { type: "string", default: "20" },
      tag: { type: "string", default: "" },
      store: { type: "string", default: "redis" },
      window: { type: "string", default: "60" },
      fleet: { type: "string" },
      balance: { type: "string", default: "leastconn,roundrobin" },
      balanced: { type: "string", default: "600" },
      help: { type: "boolean" },
    },
  });
  // deno-lint-ignore no-console
  const say = (text: string) => console.log(text);
  if (values.help) {
    say(HELP);
    return 0;
  }
  const clients = Number(values.clients);
  const faults = values.faults.split(",").map((f) => f.trim());
  const bad = faults.find((f) => !(FAULTS as readonly string[]).includes(f));
  if (!Number.isInteger(clients) || clients < 1 || clients > 10_000) {
    say(`chaos: Invalid --clients "${values.clients}": expected 1-10000`);
    return 2;
  }
  if (bad !== undefined) {
    say(`chaos: Invalid --faults "${bad}": expected ${FAULTS.join(", ")}`);
    return 2;
  }
  if (!["redis", "sentinel", "cluster"].includes(values.store)) {
    say(
      `chaos: Invalid --store "${values.store}": expected redis, sentinel or cluster`,
    );
    return 2;
  }
  const sentinel = values.store !== "redis";
  const fleet = !sentinel && values.fleet !== undefined;
  const plan = fleet ? fleetPlan(values) : null;
  if (typeof plan === "string") {
    say(plan);
    return 2;
  }
  // Every scenario builds hosts of its own.
  const unavailable = netnsUnavailable();
  if (unavailable !== null) {
    say(`chaos: cannot create network namespaces here: ${unavailable}`);
    return 2;
  }
  if (sentinel) {
    return await storeChaos(
      args,
      values.store as "sentinel" | "cluster",
      clients,
      Number(values.window),
      values.tag,
    );
  }
  if (plan) {
    return await fleetChaos(args, { clients, ...plan, tag: values.tag });
  }
  const timing = {
    holdMs: Number(values.hold) * 1000,
    lossyMs: Number(values.lossy) * 1000,
    settleMs: 60_000,
  };
  const rows: Array<FaultFigures & { instance: string; evidence: string }> = [];
  {
    say(`chaos: starting the bed with ${clients} clients`);
    await using bed = await FaultBed.start({
      clients,
      rampMs: Math.max(2000, clients),
    });
    for (const fault of faults as FaultKind[]) {
      say(`chaos: ${fault}...`);
      try {
        rows.push(await runFault(bed, fault, clients, timing));
        const status = await bed.status();
        if (status.connected < clients) {
          say(`chaos: after ${fault}: ${JSON.stringify(status)}`);
        }
      } catch (error) {
        say(`chaos: ${fault} failed: ${(error as Error).message}`);
        break;
      }
    }
  }
  say(figuresTable(rows));
  let met = true;
  for (const row of rows) {
    const misses = verdict(row);
    if (misses.length > 0) met = false;
    say(
      `${row.fault} on ${row.instance}: ${
        misses.length === 0 ? "targets met" : `missed: ${misses.join(", ")}`
      }${row.evidence ? ` (${row.evidence})` : ""}`,
    );
  }
  const base = await writeResult("chaos", args, values.tag, {
    timing,
    results: rows,
  });
  await Deno.writeTextFile(`${base}-resumed.svg`, chart(rows));
  say(`results: ${base}.json`);
  return met ? 0 : 1;
}

/** The fleet scenarios' plan from the flags, or the error to print. */
function fleetPlan(
  values: { fleet?: string; balance: string; balanced: string },
): {
  scenarios: FleetScenario[];
  balances: string[];
  balancedMs: number;
} | string {
  const scenarios = values.fleet === "all"
    ? [...FLEET_SCENARIOS]
    : (values.fleet ?? "").split(",").map((f) => f.trim());
  const wrong = scenarios.find((f) =>
    !(FLEET_SCENARIOS as readonly string[]).includes(f)
  );
  if (wrong !== undefined) {
    return `chaos: Invalid --fleet "${wrong}": expected all or ${
      FLEET_SCENARIOS.join(", ")
    }`;
  }
  const balances = values.balance.split(",").map((b) => b.trim());
  const odd = balances.find((b) => b !== "leastconn" && b !== "roundrobin");
  if (odd !== undefined) {
    return `chaos: Invalid --balance "${odd}": expected leastconn, roundrobin`;
  }
  const balancedS = Number(values.balanced);
  if (!Number.isFinite(balancedS) || balancedS < 1) {
    return `chaos: Invalid --balanced "${values.balanced}": expected seconds`;
  }
  return {
    scenarios: scenarios as FleetScenario[],
    balances,
    balancedMs: balancedS * 1000,
  };
}

/** The fleet scenarios, each on a bed of its own; returns the exit code. */
async function fleetChaos(
  args: string[],
  options: {
    clients: number;
    scenarios: readonly FleetScenario[];
    balances: readonly string[];
    balancedMs: number;
    tag: string;
  },
): Promise<number> {
  // deno-lint-ignore no-console
  const say = (text: string) => console.log(text);
  const { clients } = options;
  const began = machine();
  const rows: FleetFigures[] = [];
  let met = true;
  for (const balance of options.balances) {
    for (const scenario of options.scenarios) {
      say(`chaos: ${scenario} behind ${balance}, ${clients} clients...`);
      try {
        await using bed = await FaultBed.start({
          clients,
          rampMs: Math.max(2000, clients),
          spares: SPARES[scenario],
          ...(balance === "leastconn" ? {} : { balance }),
        });
        const row = await runFleetScenario(bed, scenario, {
          balance,
          clients,
          balancedMs: options.balancedMs,
        });
        rows.push(row);
        const misses = fleetVerdict(row);
        if (misses.length > 0) met = false;
        say(fleetLine(row));
        say(
          misses.length === 0
            ? "  targets met"
            : `  missed: ${misses.join(", ")}`,
        );
      } catch (error) {
        met = false;
        say(
          `chaos: ${scenario} behind ${balance} failed: ${
            (error as Error).message
          }`,
        );
      }
    }
  }
  const base = await writeResult("chaos-fleet", args, options.tag, {
    results: rows,
  }, began);
  say(`results: ${base}.json`);
  return met ? 0 : 1;
}

/**
 * Redis commands the primaries processed per connection per minute (one
 * primary, or every shard's of a cluster, summed).
 */
async function commandRate(
  bed: FaultBed,
  windowS: number,
): Promise<number> {
  const total = async () => {
    let sum = 0;
    for (const primary of await bed.primaries()) {
      const info = await bed.redisCli(primary.host, 6379, "INFO", "stats");
      sum += Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
    }
    return sum;
  };
  const before = await total();
  await new Promise((resolve) => setTimeout(resolve, windowS * 1000));
  const after = await total();
  return Math.round((after - before) / bed.clients / (windowS / 60) * 100) /
    100;
}

/** The store faults of a Sentinel-managed Redis or a cluster, with figures. */
async function storeChaos(
  args: string[],
  store: "sentinel" | "cluster",
  clients: number,
  windowS: number,
  tag: string,
): Promise<number> {
  // deno-lint-ignore no-console
  const say = (text: string) => console.log(text);
  const rows: Array<StoreFaultFigures & { instance: string }> = [];
  let before = NaN, after = NaN;
  {
    say(`chaos: starting the ${store} bed with ${clients} clients`);
    await using bed = await FaultBed.start({
      clients,
      rampMs: Math.max(2000, clients),
      store,
    });
    say(`chaos: counting Redis commands for ${windowS} s`);
    before = await commandRate(bed, windowS);
    const faults: readonly StoreFaultKind[] = store === "cluster"
      ? CLUSTER_FAULTS
      : STORE_FAULTS;
    for (const fault of faults) {
      say(`chaos: ${fault}...`);
      rows.push(
        await runStoreFault(bed, fault, {
          holdMs: 30_000,
          lossyMs: 0,
          settleMs: 60_000,
        }),
      );
    }
    say(`chaos: counting Redis commands for ${windowS} s`);
    after = await commandRate(bed, windowS);
  }
  say(figuresTable(rows));
  let met = true;
  for (const r of rows) {
    // A resharding kills an instance on purpose: its clients must resume.
    const ok =
      (r.fault === "reshard" ? r.resumed === r.affected : r.affected === 0) &&
      r.continuityViolations === 0 &&
      r.duplicates === 0 && r.ended === 0 && r.storesSettled &&
      r.recordsOnPrimary >= r.clientsStarted;
    if (!ok) met = false;
    say(
      `${r.fault}: ${r.primaryBefore} -> ${r.primaryAfter}, promoted after ${
        r.promotedAfterMs === null ? "-" : `${r.promotedAfterMs} ms`
      }, not writable ${r.notWritableMs} ms, buffered ${r.buffered}, replayed ${r.replayed}, token resumes ${r.tokenResumes}, failovers seen ${r.failoversSeen}, records ${r.recordsOnPrimary}/${r.clientsStarted}: ${
        ok ? "0 dropped, targets met" : "MISSED"
      }`,
    );
  }
  say(
    `Redis commands per connection per minute: ${before} before, ${after} after`,
  );
  const base = await writeResult(
    `chaos-${store === "cluster" ? "cluster" : "store"}`,
    args,
    tag,
    {
      commandsPerConnectionMinute: { before, after },
      results: rows,
    },
  );
  say(`results: ${base}.json`);
  return met ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
