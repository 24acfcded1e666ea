/**
 * How results are shown: one terminal table per scenario and the SVG
 * charts (RSS and CPU against N; share resumed over time in a storm).
 *
 * @module
 */

import type { SteadyResult } from "./steady.ts";
import type { StoreResult } from "./store_traffic.ts";
import type { StormResult } from "./storm.ts";
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
