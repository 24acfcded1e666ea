/**
 * `deno task bench`: runs a scenario against real ws-time processes, prints
 * a table (with a progress line during ramps), writes one JSON file per run
 * and SVG charts under bench/results/. See bench/README.md.
 *
 *     deno task bench --scenario steady --n 1000,10000 --hold 30
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ROOT } from "../dev/paths.ts";
import { machine } from "./machine.ts";
import { settingsFor } from "./server_launcher.ts";
import { runSteady, type SteadyResult } from "./steady.ts";
import {
  allocatorTables,
  heapTables,
  steadyCharts,
  steadyTable,
  storeTable,
  stormChart,
  stormTable,
  windowChart,
} from "./report.ts";
import { runStorm, type StormResult } from "./storm.ts";
import { runStore, type StoreResult } from "./store_traffic.ts";
import { runSoak, type SoakResult, soakTable } from "./soak.ts";
import { lineChart } from "./svg_chart.ts";

const SCENARIOS = [
  "steady",
  "connect",
  "storm",
  "drain",
  "store",
  "soak",
] as const;
type Scenario = typeof SCENARIOS[number];

const HELP = `Usage: deno task bench [options]
  --scenario <name>    steady, connect, storm, drain, store or soak [steady]
  --n <list>           connections, comma-separated for a sweep [1000]
  --profile <list>     server settings: start, production; or a reference
                       server: original (Node, ws), bun, floor,
                       floor-burst (bench/README.md); storm takes
                       floor too, and prints ws-time's CPU per session
                       against it [start]
  --hold <s>           measured window of steady/store [30]
  --rate <n>           connections opened per second; 0 = unthrottled [2000]
  --processes <n>      steady/connect/storm/drain: server processes on one
                       port (storm, drain: of the survivor) [1]
  --generators <n>     generator processes [one per 5000 connections]
  --sources <n>        source addresses 127.0.0.2... [one per 5000, min 2]
  --v8-flags <flags>   replace the profile's V8 flags ("" = none)
  --jemalloc <bool>    force the allocator preload on or off
  --server-args <s>    extra ws-time flags, e.g. "--idle-timeout=60"
  --server-env <s>     extra server environment, e.g. "MALLOC_CONF=narenas:1"
  --mode <list>        storm/drain clients: jitter, immediate [jitter,immediate]
  --store <name>       storm/drain/store: redis, cluster (three shards of a
                       primary and a replica on loopback) or memory (not for
                       store) [redis]
  --base-ms <list>     storm/drain: the client's backoff base, ms (its first
                       retry window); several draw 99% resumed against the
                       window beside a model [its default]
  --churn <n>          soak: connects and disconnects per second (20% of the
                       new ones resume a closed session; 5 bad handshakes/s)
                       [50]
  --heartbeat-ms <ms>  steady/store: clients answer a tick with a heartbeat
                       at most this often, as the page's client does [0]
  --drain-delay <ms>   drain: delay before the first close [3000]
  --drain-period <ms>  drain: window of the closes [5000]
  --pin                storm/drain: the survivor alone on CPU 0, everything
                       else (the bench, its clients, Redis, the first
                       instance) on the other CPUs, as on a host of its own
                       (needs taskset and two CPUs or more)
  --pin-store          storm/drain: Redis alone on the last CPU, everything
                       else on the others, as where the store has hosts of
                       its own (needs taskset and two CPUs or more)
  --heap-split         second pass with an inspector: heap vs native memory
  --heap-snapshot      in that pass, heap snapshots at idle and at N: the
                       heap per connection by kind of object
  --allocator-stats    steady, one process, jemalloc (production or
                       --jemalloc true): jemalloc's totals at idle and at
                       N: per connection, blocks held, free space in its
                       pages, and held but not in RAM (prints add a little
                       CPU)
  --out <dir>          where results go, a folder under bench/results
                       (the task may write only there) [bench/results]
  --tag <word>         label in result file names`;

/** Parsed command line. */
export interface BenchOptions {
  readonly scenario: Scenario;
  readonly counts: number[];
  readonly profiles: string[];
  readonly holdS: number;
  readonly rate: number;
  readonly generators: number;
  readonly processes: number;
  readonly sources: number;
  readonly v8Flags: string | undefined;
  readonly jemalloc: boolean | undefined;
  readonly serverArgs: string[];
  readonly serverEnv: Record<string, string>;
  readonly out: string;
  readonly tag: string;
  readonly heapSplit: boolean;
  readonly heapSnapshot: boolean;
  readonly allocatorStats: boolean;
  readonly modes: Array<"jitter" | "immediate">;
  readonly store: "redis" | "cluster" | "memory";
  readonly drainDelayMs: number;
  readonly drainPeriodMs: number;
  readonly pin: boolean;
  readonly pinStore: boolean;
  readonly baseMs: number[];
  readonly heartbeatMs: number;
  readonly churn: number;
}

/** Parses bench flags; throws an Error naming the bad flag. */
export function parseBenchArgs(args: string[]): BenchOptions | null {
  const { values } = parseArgs({
    args,
    options: {
      scenario: { type: "string", default: "steady" },
      n: { type: "string", default: "1000" },
      profile: { type: "string", default: "start" },
      hold: { type: "string", default: "30" },
      rate: { type: "string", default: "2000" },
      generators: { type: "string", default: "0" },
      processes: { type: "string", default: "1" },
      sources: { type: "string", default: "0" },
      "v8-flags": { type: "string" },
      jemalloc: { type: "string" },
      "server-args": { type: "string", default: "" },
      "server-env": { type: "string", default: "" },
      out: { type: "string", default: `${ROOT}bench/results` },
      tag: { type: "string", default: "" },
      "heap-split": { type: "boolean", default: false },
      "heap-snapshot": { type: "boolean", default: false },
      "allocator-stats": { type: "boolean", default: false },
      mode: { type: "string", default: "jitter,immediate" },
      store: { type: "string", default: "redis" },
      "base-ms": { type: "string", default: "0" },
      "heartbeat-ms": { type: "string", default: "0" },
      churn: { type: "string", default: "50" },
      "drain-delay": { type: "string", default: "3000" },
      "drain-period": { type: "string", default: "5000" },
      pin: { type: "boolean", default: false },
      "pin-store": { type: "boolean", default: false },
      help: { type: "boolean" },
    },
  });
  if (values.help) return null;
  const int = (flag: string, text: string, min: number) => {
    if (!/^\d+$/.test(text) || Number(text) < min) {
      throw new Error(
        `Invalid --${flag} "${text}": expected a whole number >= ${min}`,
      );
    }
    return Number(text);
  };
  if (!SCENARIOS.includes(values.scenario as Scenario)) {
    throw new Error(
      `Invalid --scenario "${values.scenario}": expected ${
        SCENARIOS.join(", ")
      }`,
    );
  }
  if (values.tag !== "" && !/^[\w.-]{1,40}$/.test(values.tag)) {
    throw new Error(
      `Invalid --tag "${values.tag}": expected letters, digits, . _ -`,
    );
  }
  let jemalloc: boolean | undefined;
  if (values.jemalloc !== undefined) {
    if (!/^(true|false)$/.test(values.jemalloc)) {
      throw new Error(
        `Invalid --jemalloc "${values.jemalloc}": expected true or false`,
      );
    }
    jemalloc = values.jemalloc === "true";
  }
  return {
    scenario: values.scenario as Scenario,
    counts: values.n.split(",").map((n) => int("n", n.trim(), 1)),
    profiles: values.profile.split(",").map((p) => p.trim()),
    holdS: int("hold", values.hold, 0),
    rate: int("rate", values.rate, 0),
    generators: int("generators", values.generators, 0),
    processes: int("processes", values.processes, 1),
    sources: int("sources", values.sources, 0),
    v8Flags: values["v8-flags"],
    jemalloc,
    serverArgs: values["server-args"].split(/\s+/).filter((s) => s !== ""),
    serverEnv: Object.fromEntries(
      values["server-env"].split(/\s+/).filter((s) => s !== "").map((pair) => {
        const at = pair.indexOf("=");
        if (at < 1) {
          throw new Error(
            `Invalid --server-env "${pair}": expected NAME=value`,
          );
        }
        return [pair.slice(0, at), pair.slice(at + 1)];
      }),
    ),
    out: values.out,
    tag: values.tag,
    heartbeatMs: int("heartbeat-ms", values["heartbeat-ms"], 0),
    churn: int("churn", values.churn, 0),
    heapSplit: values["heap-split"] || values["heap-snapshot"],
    heapSnapshot: values["heap-snapshot"],
    allocatorStats: values["allocator-stats"],
    modes: values.mode.split(",").map((m) => {
      if (m !== "jitter" && m !== "immediate") {
        throw new Error(`Invalid --mode "${m}": expected jitter or immediate`);
      }
      return m;
    }),
    store: (() => {
      if (!["redis", "cluster", "memory"].includes(values.store)) {
        throw new Error(
          `Invalid --store "${values.store}": expected redis, cluster or memory`,
        );
      }
      return values.store as "redis" | "cluster" | "memory";
    })(),
    drainDelayMs: int("drain-delay", values["drain-delay"], 0),
    baseMs: values["base-ms"].split(",").map((b) =>
      int("base-ms", b.trim(), 0)
    ),
    drainPeriodMs: int("drain-period", values["drain-period"], 0),
    pin: values.pin,
    pinStore: values["pin-store"],
  };
}

function progress(line: string): void {
  const text = Deno.stderr.isTerminal() ? `\r\x1b[2K${line}` : `${line}\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

function endProgress(): void {
  if (Deno.stderr.isTerminal()) {
    Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[2K"));
  }
}

function settings(options: BenchOptions, profile: string) {
  return settingsFor(profile, {
    ...(options.v8Flags !== undefined ? { v8Flags: options.v8Flags } : {}),
    ...(options.jemalloc !== undefined ? { jemalloc: options.jemalloc } : {}),
    serverArgs: options.serverArgs,
    env: options.serverEnv,
  });
}

const generatorsFor = (options: BenchOptions, n: number) =>
  options.generators || Math.ceil(n / 5000);
const sourcesFor = (options: BenchOptions, n: number) =>
  options.sources || Math.max(2, Math.ceil(n / 5000));

/** Runs storm or drain for every (profile, N, mode). */
async function stormSweep(options: BenchOptions): Promise<StormResult[]> {
  const results: StormResult[] = [];
  for (const profile of options.profiles) {
    for (const n of options.counts) {
      for (const mode of options.modes) {
        // The window matters to jittered clients only.
        for (const baseMs of mode === "jitter" ? options.baseMs : [0]) {
          results.push(
            await runStorm({
              kind: options.scenario === "drain" ? "drain" : "storm",
              settings: settings(options, profile),
              connections: n,
              mode,
              store: options.store,
              processes: generatorsFor(options, n),
              survivors: options.processes,
              rate: options.rate,
              baseMs,
              drainDelayMs: options.drainDelayMs,
              drainPeriodMs: options.drainPeriodMs,
              pin: options.pin,
              pinStore: options.pinStore,
              onProgress: progress,
            }),
          );
          endProgress();
        }
      }
    }
  }
  return results;
}

/** The load of (profile, N) as every held-connection scenario takes it. */
function loadFor(options: BenchOptions, profile: string, n: number) {
  return {
    settings: settings(options, profile),
    connections: n,
    rate: options.rate,
    holdS: options.holdS,
    generators: generatorsFor(options, n),
    sources: sourcesFor(options, n),
    heartbeatMs: options.heartbeatMs,
    onProgress: progress,
  };
}

/** Runs `run` for every (profile, N) in turn. */
async function sweep<R>(
  options: BenchOptions,
  run: (load: ReturnType<typeof loadFor>) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  for (const profile of options.profiles) {
    for (const n of options.counts) {
      results.push(await run(loadFor(options, profile, n)));
      endProgress();
    }
  }
  return results;
}

/** Runs the soak for every (profile, N). */
function soakSweep(options: BenchOptions): Promise<SoakResult[]> {
  return sweep(options, (load) =>
    runSoak({
      ...load,
      churnPerSecond: options.churn,
      resumeShare: 0.2,
      badPerSecond: 5,
      sampleEveryS: Math.min(60, Math.max(5, Math.floor(options.holdS / 10))),
      warmupS: Math.min(600, Math.floor(options.holdS / 3)),
    }));
}

/** RSS, anonymous memory and the heap (used, reserved) over the soak. */
function soakChart(results: SoakResult[]): string {
  return lineChart({
    title: "Soak: server memory over time",
    xLabel: "minutes",
    yLabel: "MB",
    series: results.flatMap((r) => [
      {
        name: `RSS ${r.profile} N=${r.connections}`,
        points: r.samples.map((s) => [s.atS / 60, s.rssMb] as const),
      },
      {
        name: `anonymous ${r.profile} N=${r.connections}`,
        points: r.samples.map((s) => [s.atS / 60, s.anonMb] as const),
      },
      {
        name: `heap ${r.profile} N=${r.connections}`,
        points: r.samples.map((s) => [s.atS / 60, s.heapMb] as const),
      },
      {
        name: `heap reserved ${r.profile} N=${r.connections}`,
        points: r.samples.map((s) => [s.atS / 60, s.heapTotalMb] as const),
      },
    ]),
  });
}

/** Runs the store scenario for every (profile, N). */
function storeSweep(options: BenchOptions): Promise<StoreResult[]> {
  if (options.store === "memory") {
    throw new Error(
      "the store scenario counts Redis commands: --store redis or cluster",
    );
  }
  const store = options.store;
  return sweep(options, (load) => runStore(load, store));
}

/** Runs steady/connect for every (profile, N); returns the results. */
async function steadySweep(options: BenchOptions): Promise<SteadyResult[]> {
  const results: SteadyResult[] = [];
  for (const profile of options.profiles) {
    const chosen = settings(options, profile);
    for (const n of options.counts) {
      const connect = options.scenario === "connect";
      progress(`${chosen.name}: ${options.scenario} N=${n}`);
      const result = await runSteady({
        settings: chosen,
        connections: n,
        rate: connect ? 0 : options.rate,
        holdS: connect ? 0 : options.holdS,
        generators: generatorsFor(options, n),
        sources: sourcesFor(options, n),
        heartbeatMs: options.heartbeatMs,
        heapSplit: options.heapSplit,
        heapSnapshot: options.heapSnapshot,
        allocatorStats: options.allocatorStats,
        serverProcesses: options.processes,
        onProgress: progress,
      });
      endProgress();
      results.push(result);
    }
  }
  return results;
}

/** Runs the bench; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let options;
  try {
    options = parseBenchArgs(args);
  } catch (error) {
    // deno-lint-ignore no-console
    console.error(`bench: ${(error as Error).message}`);
    return 2;
  }
  if (!options) {
    // deno-lint-ignore no-console
    console.log(HELP);
    return 0;
  }
  let table: string;
  let results: unknown[];
  const charts: Record<string, string> = {};
  try {
    if (options.scenario === "storm" || options.scenario === "drain") {
      const storms = await stormSweep(options);
      table = stormTable(storms);
      charts.resumed = stormChart(storms);
      const window = windowChart(storms);
      if (window) charts.window = window;
      results = storms;
    } else if (options.scenario === "soak") {
      const soaks = await soakSweep(options);
      table = soaks.map(soakTable).join("\n\n");
      charts.memory = soakChart(soaks);
      results = soaks;
    } else if (options.scenario === "store") {
      const stores = await storeSweep(options);
      table = storeTable(stores);
      results = stores;
    } else {
      const steady = await steadySweep(options);
      table = [
        steadyTable(steady, options.scenario === "connect"),
        ...heapTables(steady),
        ...allocatorTables(steady),
      ].join("\n\n");
      if (options.scenario === "steady" && steady.length > 1) {
        Object.assign(charts, steadyCharts(steady));
      }
      results = steady;
    }
  } catch (error) {
    endProgress();
    // deno-lint-ignore no-console
    console.error(
      `bench: ${options.scenario} failed: ${(error as Error).message}`,
    );
    return 1;
  }
  // deno-lint-ignore no-console
  console.log(table);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const base = `${options.out}/${options.scenario}-${stamp}${
    options.tag ? "-" + options.tag : ""
  }`;
  await Deno.mkdir(options.out, { recursive: true });
  const record = {
    scenario: options.scenario,
    command: `deno task bench ${args.join(" ")}`,
    machine: machine(),
    results,
  };
  await Deno.writeTextFile(
    `${base}.json`,
    JSON.stringify(record, null, 2) + "\n",
  );
  for (const [name, svg] of Object.entries(charts)) {
    await Deno.writeTextFile(`${base}-${name}.svg`, svg);
  }
  // deno-lint-ignore no-console
  console.log(
    `results: ${base}.json (${record.machine.date}, ${record.machine.commit})`,
  );
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
