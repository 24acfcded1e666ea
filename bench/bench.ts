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
import { ROOT } from "../tests/support.ts";
import { readProc } from "./proc.ts";
import { settingsFor } from "./server_launcher.ts";
import { runSteady, type SteadyResult } from "./steady.ts";
import { lineChart } from "./svg_chart.ts";
import { Table } from "./table.ts";

const SCENARIOS = ["steady", "connect", "storm", "drain", "store"] as const;
type Scenario = typeof SCENARIOS[number];

const HELP = `Usage: deno task bench [options]
  --scenario <name>    steady, connect, storm, drain or store [steady]
  --n <list>           connections, comma-separated for a sweep [1000]
  --profile <list>     server settings: start, production [start]
  --hold <s>           measured window of steady/store [30]
  --rate <n>           connections opened per second; 0 = unthrottled [2000]
  --generators <n>     generator processes [one per 5000 connections]
  --sources <n>        source addresses 127.0.0.2... [one per 5000, min 2]
  --v8-flags <flags>   replace the profile's V8 flags ("" = none)
  --jemalloc <bool>    force the allocator preload on or off
  --server-args <s>    extra ws-time flags, e.g. "--idle-timeout=60"
  --heap-split         second pass with an inspector: heap vs native memory
  --out <dir>          where results go [bench/results]
  --tag <word>         label in result file names`;

/** Parsed command line. */
export interface BenchOptions {
  readonly scenario: Scenario;
  readonly counts: number[];
  readonly profiles: string[];
  readonly holdS: number;
  readonly rate: number;
  readonly generators: number;
  readonly sources: number;
  readonly v8Flags: string | undefined;
  readonly jemalloc: boolean | undefined;
  readonly serverArgs: string[];
  readonly out: string;
  readonly tag: string;
  readonly heapSplit: boolean;
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
      sources: { type: "string", default: "0" },
      "v8-flags": { type: "string" },
      jemalloc: { type: "string" },
      "server-args": { type: "string", default: "" },
      out: { type: "string", default: `${ROOT}bench/results` },
      tag: { type: "string", default: "" },
      "heap-split": { type: "boolean", default: false },
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
    sources: int("sources", values.sources, 0),
    v8Flags: values["v8-flags"],
    jemalloc,
    serverArgs: values["server-args"].split(/\s+/).filter((s) => s !== ""),
    out: values.out,
    tag: values.tag,
    heapSplit: values["heap-split"],
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

/** Runs steady/connect for every (profile, N); returns the results. */
async function steadySweep(options: BenchOptions): Promise<SteadyResult[]> {
  const results: SteadyResult[] = [];
  for (const profile of options.profiles) {
    const settings = settingsFor(profile, {
      ...(options.v8Flags !== undefined ? { v8Flags: options.v8Flags } : {}),
      ...(options.jemalloc !== undefined ? { jemalloc: options.jemalloc } : {}),
      serverArgs: options.serverArgs,
    });
    for (const n of options.counts) {
      const connect = options.scenario === "connect";
      progress(`${settings.name}: ${options.scenario} N=${n}`);
      const result = await runSteady({
        settings,
        connections: n,
        rate: connect ? 0 : options.rate,
        holdS: connect ? 0 : options.holdS,
        generators: options.generators || Math.ceil(n / 5000),
        sources: options.sources || Math.max(2, Math.ceil(n / 5000)),
        heapSplit: options.heapSplit,
        onProgress: progress,
      });
      endProgress();
      results.push(result);
    }
  }
  return results;
}

function steadyTable(results: SteadyResult[], connect: boolean): string {
  const table = new Table(
    connect
      ? [
        "profile",
        "N",
        "open",
        "failed",
        "ramp s",
        "conn/s",
        "hs p50",
        "hs p99",
      ]
      : [
        "profile",
        "N",
        "held",
        "fail",
        "drop",
        "RSS MB",
        "KB/conn",
        "heap KB",
        "native KB",
        "CPU %",
        "gen CPU %",
        "msg/s",
        "late p50",
        "p99",
        "max",
        "gen lag p99",
      ],
  );
  for (const r of results) {
    table.row(
      connect
        ? [
          r.profile,
          r.connections,
          r.held,
          r.failed,
          r.rampS,
          r.connectPerSecond,
          r.handshakeMs.p50,
          r.handshakeMs.p99,
        ]
        : [
          r.profile,
          r.connections,
          r.held,
          r.failed,
          r.dropped,
          r.rssMb,
          r.rssPerConnKb,
          r.heapPerConnKb ?? "-",
          r.nativePerConnKb ?? "-",
          r.serverCpuPct,
          r.generatorCpuPct,
          r.messagesPerSecond,
          r.latenessMs.p50,
          r.latenessMs.p99,
          r.latenessMs.max,
          r.generatorLoopDelayMs.p99,
        ],
    );
  }
  return table.render();
}

function steadyCharts(results: SteadyResult[]): Record<string, string> {
  const byProfile = Map.groupBy(results, (r) => r.profile);
  const series = (pick: (r: SteadyResult) => number) =>
    [...byProfile].map(([name, rs]) => ({
      name,
      points: rs.map((r) => [r.connections, pick(r)] as const),
    }));
  return {
    rss: lineChart({
      title: "Server RSS against connections",
      xLabel: "connections",
      yLabel: "RSS (MB)",
      series: series((r) => r.rssMb),
    }),
    cpu: lineChart({
      title: "Server CPU against connections (1 tick/s each)",
      xLabel: "connections",
      yLabel: "CPU (% of one core)",
      series: series((r) => r.serverCpuPct),
      marks: [{ y: 39, label: "original Node server at 19.5k: 39%" }],
    }),
  };
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
  if (options.scenario !== "steady" && options.scenario !== "connect") {
    // deno-lint-ignore no-console
    console.error(`bench: scenario ${options.scenario} is not built yet`);
    return 2;
  }
  const results = await steadySweep(options);
  // deno-lint-ignore no-console
  console.log(steadyTable(results, options.scenario === "connect"));
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const base = `${options.out}/${options.scenario}-${stamp}${
    options.tag ? "-" + options.tag : ""
  }`;
  await Deno.mkdir(options.out, { recursive: true });
  await Deno.writeTextFile(
    `${base}.json`,
    JSON.stringify(
      { scenario: options.scenario, machine: machine(), results },
      null,
      2,
    ) + "\n",
  );
  if (options.scenario === "steady" && results.length > 1) {
    for (const [name, svg] of Object.entries(steadyCharts(results))) {
      await Deno.writeTextFile(`${base}-${name}.svg`, svg);
    }
  }
  // deno-lint-ignore no-console
  console.log(`results: ${base}.json`);
  return 0;
}

function machine(): Record<string, unknown> {
  const cpu = readProc("/proc/cpuinfo") ?? "";
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpu)?.[1] ?? "unknown",
    cores: (cpu.match(/^processor\s*:/gm) ?? []).length,
    memoryMb: Math.round(Deno.systemMemoryInfo().total / 1048576),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    date: new Date().toISOString(),
  };
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
