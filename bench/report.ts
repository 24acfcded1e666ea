/**
 * How results are shown: one terminal table per scenario and the SVG
 * charts (RSS and CPU against N; share resumed over time in a storm).
 *
 * @module
 */

import type { SteadyResult } from "./steady.ts";
import type { StoreResult } from "./store_traffic.ts";
import type { StormResult } from "./storm.ts";
import { DEFAULTS } from "../static/ws_time_client.js";
import { lineChart } from "./svg_chart.ts";
import { Table } from "./table.ts";

/** Per run with heap snapshots: the heap per connection by kind of object. */
export function heapTables(results: SteadyResult[]): string[] {
  return results.filter((r) => r.heapByKind).map((r) => {
    const table = new Table(["kind of object", "objects/conn", "bytes/conn"]);
    for (const share of r.heapByKind!) {
      table.row([share.kind, share.objectsPerConn, share.bytesPerConn]);
    }
    return `V8 heap per connection, ${r.profile} N=${r.connections} ` +
      `(slack ${r.heapSlackPerConnKb ?? "-"} KB, native ${
        r.nativePerConnKb ?? "-"
      } KB):\n${table.render()}`;
  });
}

/** Native memory per connection by jemalloc's account (--allocator-stats). */
export function allocatorTables(results: SteadyResult[]): string[] {
  const measured = results.filter((r) => r.allocatorPerConnKb);
  if (measured.length === 0) return [];
  const table = new Table([
    "profile",
    "N",
    "RSS KB/conn",
    "held blocks",
    "free in pages",
    "metadata",
    "not returned",
    "held, not in RAM",
  ]);
  for (const r of measured) {
    const a = r.allocatorPerConnKb!;
    // jemalloc counts a page as resident once it hands it out; the kernel
    // maps it only when written. RSS (less the heap, when split) bounds
    // what of jemalloc's pages can be in RAM.
    const inRam = r.nativePerConnKb ?? r.rssPerConnKb;
    const absent = Math.round((a.residentKb - inRam) * 100) / 100;
    table.row([
      r.profile,
      r.connections,
      r.rssPerConnKb,
      a.allocatedKb,
      a.pageSlackKb,
      a.metadataKb,
      a.unreturnedKb,
      absent > 0 ? `>= ${absent}` : "-",
    ]);
  }
  return [
    `Native memory per connection by jemalloc's account, KB ("held, not in ` +
    `RAM": blocks handed out but never written, so never mapped):\n` +
    table.render(),
  ];
}

/** The steady table (or the connect table when `connect`). */
export function steadyTable(results: SteadyResult[], connect: boolean): string {
  if (connect) {
    const table = new Table([
      "profile",
      "N",
      "open",
      "failed",
      "ramp s",
      "conn/s",
      "hs p50 ms",
      "hs p99 ms",
    ]);
    for (const r of results) {
      table.row([
        r.profile,
        r.connections,
        r.held,
        r.failed,
        r.rampS,
        r.connectPerSecond,
        r.handshakeMs.p50,
        r.handshakeMs.p99,
      ]);
    }
    return table.render();
  }
  const table = new Table([
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
    "sys %",
    "gen CPU %",
    "msg/s",
    "late p50",
    "p99",
    "max",
    "gen lag p99",
    "health p99",
  ]);
  for (const r of results) {
    table.row([
      r.serverProcesses > 1 ? `${r.profile} x${r.serverProcesses}` : r.profile,
      r.connections,
      r.held,
      r.failed,
      r.dropped,
      r.rssMb,
      r.rssPerConnKb,
      r.heapPerConnKb ?? "-",
      r.nativePerConnKb ?? "-",
      r.serverCpuPct,
      // Results written before the split have no system share.
      r.serverSysCpuPct ?? "-",
      r.generatorCpuPct,
      r.messagesPerSecond,
      r.latenessMs.p50,
      r.latenessMs.p99,
      r.latenessMs.max,
      r.generatorLoopDelayMs.p99,
      r.healthcheckMs?.samples ? r.healthcheckMs.p99 : "-",
    ]);
  }
  return table.render();
}

/** The storm/drain table. */
export function stormTable(results: StormResult[]): string {
  const table = new Table([
    "scenario",
    "profile",
    "mode",
    "store",
    "N",
    "resumed",
    "50% ms",
    "99% ms",
    "100% ms",
    "failed att.",
    "discontinuous",
    "peak accept/s",
    "listen overflows",
    "first close ms",
    "closed early",
    "after notice 50/99% ms",
    "survivor CPU ms/session",
    "vs floor",
    "CPU s: survivors/clients/redis",
  ]);
  for (const r of results) {
    table.row([
      r.kind,
      r.profile,
      r.baseMs > 0 ? `${r.mode} ${r.baseMs}ms` : r.mode,
      r.store,
      r.connections,
      r.resumed,
      r.resumedMs.p50 ?? "never",
      r.resumedMs.p99 ?? "never",
      r.resumedMs.all ?? "never",
      r.failedAttempts,
      r.discontinuous,
      r.peakAcceptPerSecond,
      r.listenOverflows,
      r.firstCloseMs ?? "-",
      r.kind === "drain" ? r.closedBeforeDelay : "-",
      r.afterNoticeMs
        ? `${r.afterNoticeMs.p50 ?? "-"}/${r.afterNoticeMs.p99 ?? "-"}`
        : "-",
      r.survivorCpuMsPerSession === null
        ? "-"
        : `${r.survivorCpuMsPerSession} (${r.survivors} proc.)`,
      floorRatio(r, results),
      r.cpuSeconds
        ? `${r.cpuSeconds.survivors}/${r.cpuSeconds.clients}/${r.cpuSeconds.redis}`
        : "-",
    ]);
  }
  return table.render();
}

/**
 * 99% resumed against the clients' first retry window, one line per profile
 * and N, beside the model the window is chosen by: arrivals spread evenly
 * over the window W meet a survivor that resumes R sessions a second (one
 * core over its CPU per session), so 99% are back after max(0.99 W,
 * 0.99 N / R): a window shorter than N / R only queues the herd, a longer
 * one only waits. Null unless the run swept at least two windows.
 */
export function windowChart(results: StormResult[]): string | null {
  const groups = new Map<string, StormResult[]>();
  for (const r of results) {
    if (r.mode !== "jitter" || r.kind !== "storm") continue;
    const key = `${r.profile} (N=${r.connections})`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const swept = [...groups].filter(([, runs]) =>
    new Set(runs.map(windowMs)).size >= 2
  );
  if (swept.length === 0) return null;
  const series = swept.flatMap(([name, runs]) => {
    const measured = runs.filter((r) => r.resumedMs.p99 !== null)
      .map((r) => [windowMs(r) / 1000, r.resumedMs.p99! / 1000] as const)
      .sort((a, b) => a[0] - b[0]);
    const costs = runs.map((r) => r.survivorCpuMsPerSession ?? 0)
      .filter((c) => c > 0).sort((a, b) => a - b);
    if (costs.length === 0) return [{ name, points: measured }];
    const cost = costs[Math.floor(costs.length / 2)]!;
    const n = runs[0]!.connections;
    // Far enough to show the bend at W = N / R.
    const span = 1.5 * Math.max(
      Math.max(...runs.map(windowMs)) / 1000,
      (n * cost) / 1000,
    );
    const model = Array.from({ length: 41 }, (_, i) => {
      const w = (span * i) / 40;
      return [w, modelledP99S(n, cost, w)] as const;
    });
    return [
      { name: `${name}, measured`, points: measured },
      {
        name: `${name}, model (R = ${Math.round(1000 / cost)}/s)`,
        points: model,
      },
    ];
  });
  return lineChart({
    title: "99% resumed against the clients' first retry window",
    xLabel: "first retry window W, s (full jitter: delay uniform in 0..W)",
    yLabel: "99% resumed, s after the kill",
    series,
  });
}

/**
 * Seconds until 99% of `n` clients are back, by the model: arrivals spread
 * over `windowS`, a survivor spending `costMs` of one core on each.
 */
export function modelledP99S(
  n: number,
  costMs: number,
  windowS: number,
): number {
  return Math.max(0.99 * windowS, (0.99 * n * costMs) / 1000);
}

/** The first retry window of a run's clients, ms. */
function windowMs(r: StormResult): number {
  return r.baseMs > 0 ? r.baseMs : DEFAULTS.baseMs;
}

/**
 * Survivor CPU per session against the Deno floor's storm of the same size
 * and mode in the same run ("-" without one): the figure that holds across
 * machines of different speed.
 */
export function floorRatio(r: StormResult, all: StormResult[]): string {
  const floor = all.find((f) =>
    f.profile.startsWith("floor") && f.connections === r.connections &&
    f.mode === r.mode && f.kind === r.kind
  );
  const own = r.survivorCpuMsPerSession;
  const base = floor?.survivorCpuMsPerSession;
  if (!floor || floor === r || !own || !base) return "-";
  return `${(own / base).toFixed(2)}x`;
}

/** The store table. */
export function storeTable(results: StoreResult[]): string {
  const table = new Table([
    "profile",
    "N",
    "held",
    "hold s",
    "cmd/conn/min",
    "commands",
  ]);
  for (const r of results) {
    table.row([
      r.profile,
      r.connections,
      r.held,
      r.holdS,
      r.commandsPerConnPerMinute,
      Object.entries(r.commands).map(([k, v]) => `${k}=${v}`).join(" "),
    ]);
  }
  return table.render();
}

/** RSS and CPU against N, one line per profile. */
export function steadyCharts(results: SteadyResult[]): Record<string, string> {
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
      marks: [{ y: 35, label: "target at 19.5k: 35%" }],
    }),
  };
}

/** Share of clients resumed against time since the signal. */
export function stormChart(results: StormResult[]): string {
  return lineChart({
    title: `Clients resumed on the survivor after ${
      results[0]?.kind === "drain" ? "SIGTERM" : "SIGKILL"
    }`,
    xLabel: "seconds since the signal",
    yLabel: "resumed (%)",
    yMax: 100,
    series: results.map((r) => ({
      name: `${r.mode}${
        r.baseMs > 0 ? ` base ${r.baseMs} ms` : ""
      } (N=${r.connections})`,
      points: r.curve,
    })),
    marks: [{ y: 99, label: "99%" }],
  });
}
