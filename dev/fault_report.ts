/**
 * What a fault did to the clients, from the fault bed's client events: how
 * many lost their connection, how many came back with their session and how
 * fast, whether any count went back or started over, how many handshakes
 * failed, and whether any client was left with nothing. The suite asserts
 * on these figures; `deno task chaos` prints them.
 *
 * @module
 */

import type { DriverEvent } from "./fault_clients.ts";

/** Figures of one fault. */
export interface FaultFigures {
  readonly fault: string;
  readonly clients: number;
  /** Clients whose connection ended during the fault window. */
  readonly affected: number;
  /** Of those, clients welcomed again with their session. */
  readonly resumed: number;
  /** From the fault to each affected client's next welcome, ms. */
  readonly resumeMs: { p50: number; p99: number; max: number };
  /** Every such time, sorted (ms), for charts. */
  readonly resumeTimesMs: readonly number[];
  /** Counts that went back, started over or strayed from the clock. */
  readonly continuityViolations: number;
  /** Handshakes that failed (refused, or no answer in time). */
  readonly failedHandshakes: number;
  /** Stale handshakes closed with 4002. */
  readonly superseded: number;
  /** Live connections closed with 4001 by a takeover. */
  readonly takenOver: number;
  /** Clients that ended (closed for good, or gave up). */
  readonly ended: number;
  /** Server connections beyond one per connected client, after the fault. */
  readonly duplicates: number;
}

/** A percentile of sorted values (nearest rank). */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/**
 * The figures of a fault that began at `from` (ms since the epoch); events
 * up to `until` count. `duplicates` comes from the instances' own counts.
 */
export function analyse(
  fault: string,
  clients: number,
  events: readonly DriverEvent[],
  from: number,
  until: number,
  duplicates: number,
): FaultFigures {
  const window = events.filter((e) =>
    "at" in e && e.at >= from && e.at <= until
  );
  const lostAt = new Map<number, number>();
  const backAt = new Map<number, number>();
  let failed = 0, superseded = 0, takenOver = 0, violations = 0, ended = 0;
  for (const event of window) {
    switch (event.type) {
      case "close":
        if (!event.opened) failed++;
        if (event.code === 4002) superseded++;
        if (event.code === 4001) takenOver++;
        if (event.opened && !lostAt.has(event.i)) lostAt.set(event.i, event.at);
        break;
      case "welcome":
        if (lostAt.has(event.i) && !backAt.has(event.i) && event.resumed) {
          backAt.set(event.i, event.at);
        }
        break;
      case "violation":
        violations++;
        break;
      case "ended":
        ended++;
        break;
    }
  }
  const times = [...backAt.values()].map((at) => at - from).sort((a, b) =>
    a - b
  );
  return {
    fault,
    clients,
    affected: lostAt.size,
    resumed: backAt.size,
    resumeMs: {
      p50: percentile(times, 0.5),
      p99: percentile(times, 0.99),
      max: times.at(-1) ?? 0,
    },
    resumeTimesMs: times,
    continuityViolations: violations,
    failedHandshakes: failed,
    superseded,
    takenOver,
    ended,
    duplicates,
  };
}

/** The figures as one table row per fault, for the console. */
export function figuresTable(rows: readonly FaultFigures[]): string {
  const head = [
    "fault",
    "clients",
    "affected",
    "resumed %",
    "p50 s",
    "p99 s",
    "max s",
    "continuity",
    "dup",
    "failed hs",
    "4002",
    "4001",
    "ended",
  ];
  const body = rows.map((r) => [
    r.fault,
    String(r.clients),
    String(r.affected),
    r.affected === 0 ? "-" : (100 * r.resumed / r.affected).toFixed(1),
    (r.resumeMs.p50 / 1000).toFixed(2),
    (r.resumeMs.p99 / 1000).toFixed(2),
    (r.resumeMs.max / 1000).toFixed(2),
    r.continuityViolations === 0 ? "ok" : `${r.continuityViolations} bad`,
    String(r.duplicates),
    String(r.failedHandshakes),
    String(r.superseded),
    String(r.takenOver),
    String(r.ended),
  ]);
  const widths = head.map((h, i) =>
    Math.max(h.length, ...body.map((row) => row[i]!.length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...body.map(line),
  ].join("\n");
}
