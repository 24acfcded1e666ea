/**
 * The soak: N sessions held for a long time under churn (connects and
 * disconnects every second, some of the new ones resuming a closed
 * session, some malformed handshakes), with the server's resident memory,
 * V8 heap and open descriptors sampled every minute. What a leak would
 * show: RSS or heap that keeps growing after the warm-up, or descriptors
 * that do not come back once every client has gone.
 *
 * @module
 */

import { sleep, waitFor } from "../dev/timing.ts";
import { anonBytes, fdCount, rssBytes } from "../dev/proc.ts";
import { launchServer } from "./server_launcher.ts";
import { type LoadOptions, startFleet } from "./steady.ts";

/** How to run the soak. */
export interface SoakOptions extends LoadOptions {
  /** Connects (and as many disconnects) per second over the fleet. */
  readonly churnPerSecond: number;
  /** Share of the new connections that resume a closed session. */
  readonly resumeShare: number;
  /** Malformed handshakes per second over the fleet. */
  readonly badPerSecond: number;
  /** Time between samples, s. */
  readonly sampleEveryS: number;
  /** Samples before this are the warm-up, s. */
  readonly warmupS: number;
}

/** One sample of the server. */
export interface SoakSample {
  readonly atS: number;
  readonly rssMb: number;
  /** Anonymous resident memory: RSS without the shared binary's pages. */
  readonly anonMb: number;
  readonly heapMb: number;
  /** V8 heap reserved: above heapMb by what fragmentation holds. */
  readonly heapTotalMb: number;
  readonly fds: number;
  readonly connections: number;
}

/** A soak's result, as stored in bench/results/. */
export interface SoakResult {
  readonly profile: string;
  readonly connections: number;
  readonly holdS: number;
  readonly churnPerSecond: number;
  readonly samples: readonly SoakSample[];
  /** RSS at the end against RSS at the end of the warm-up, %. */
  readonly rssGrowthPct: number;
  /** Least-squares slope of RSS after the warm-up, MB per hour. */
  readonly rssSlopeMbPerHour: number;
  /** Anonymous memory at the end against the end of the warm-up, %. */
  readonly anonGrowthPct: number;
  /** Least-squares slope of anonymous memory after the warm-up, MB/h. */
  readonly anonSlopeMbPerHour: number;
  /** The same for the V8 heap. */
  readonly heapSlopeMbPerHour: number;
  /** The same for the V8 heap reserved. */
  readonly heapTotalSlopeMbPerHour: number;
  /** Descriptors before any client, and after all of them left. */
  readonly fdsBaseline: number;
  readonly fdsAfter: number;
  readonly churn: Readonly<Record<string, number>>;
}

const mb = (bytes: number) => Math.round(bytes / 1048576 * 10) / 10;

/** Least-squares slope of y over x. */
export function slope(
  points: ReadonlyArray<readonly [number, number]>,
): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

/** The server's metrics page (empty for a reference server, which has none). */
async function scrape(port: number, reference: boolean): Promise<string> {
  if (reference) return "";
  return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** One unlabelled gauge of a metrics page, or NaN. */
function gauge(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? NaN);
}

/** Runs the soak. */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  await using server = await launchServer({
    settings: options.settings,
    connections: options.connections,
  });
  await sleep(1000);
  const fdsBaseline = fdCount(server.pid);
  const samples: SoakSample[] = [];
  const began = performance.now();
  // A reference server (the floor: Deno upgrading and ticking, nothing
  // else) has no /metrics: its samples are what /proc tells.
  const reference = options.settings.reference !== undefined;
  const sample = async () => {
    const metrics = await scrape(server.port, reference);
    samples.push({
      atS: Math.round((performance.now() - began) / 1000),
      rssMb: mb(rssBytes(server.pid)),
      anonMb: mb(anonBytes(server.pid)),
      heapMb: mb(gauge(metrics, "deno_heap_used_bytes")),
      heapTotalMb: mb(gauge(metrics, "deno_heap_total_bytes")),
      fds: fdCount(server.pid),
      connections: gauge(metrics, "wstime_connections"),
    });
    const last = samples.at(-1)!;
    options.onProgress?.(
      `soak ${last.atS}/${options.holdS} s: RSS ${last.rssMb} MB, anon ${last.anonMb} MB, heap ${last.heapMb}/${last.heapTotalMb} MB, ${last.fds} fds, ${last.connections} connections`,
    );
  };
  let churn: Record<string, number> = {};
  {
    await using fleet = startFleet(options, server.port);
    await fleet.ramp(Math.max(60_000, options.connections * 20));
    const g = fleet.children.length;
    await fleet.send(
      `churn ${options.churnPerSecond / g} ${options.resumeShare} ${
        options.badPerSecond / g
      }`,
    );
    await sample();
    while ((performance.now() - began) / 1000 < options.holdS) {
      await sleep(options.sampleEveryS * 1000);
      await sample();
    }
    await fleet.send("churn 0 0 0");
    churn = await fleet.churnReport();
  }
  // Every client has gone: the server's descriptors must come back.
  await waitFor(
    async () =>
      reference ||
      gauge(await scrape(server.port, false), "wstime_connections") === 0,
    60_000,
    "every connection to close",
  ).catch(() => {});
  await sleep(5000);
  const fdsAfter = fdCount(server.pid);
  const after = samples.filter((s) => s.atS >= options.warmupS);
  const atWarmup = after[0] ?? samples[0]!;
  const last = samples.at(-1)!;
  const perHour = (key: "rssMb" | "anonMb" | "heapMb" | "heapTotalMb") =>
    Math.round(
      slope(after.map((s) => [s.atS / 3600, s[key]] as const)) * 10,
    ) / 10;
  const growth = (key: "rssMb" | "anonMb") =>
    Math.round((last[key] / atWarmup[key] - 1) * 1000) / 10;
  return {
    profile: options.settings.name,
    connections: options.connections,
    holdS: options.holdS,
    churnPerSecond: options.churnPerSecond,
    samples,
    rssGrowthPct: growth("rssMb"),
    rssSlopeMbPerHour: perHour("rssMb"),
    anonGrowthPct: growth("anonMb"),
    anonSlopeMbPerHour: perHour("anonMb"),
    heapSlopeMbPerHour: perHour("heapMb"),
    heapTotalSlopeMbPerHour: perHour("heapTotalMb"),
    fdsBaseline,
    fdsAfter,
    churn,
  };
}

/** The soak as a table: one row per sample, then the verdict. */
export function soakTable(result: SoakResult): string {
  const rows = result.samples.map((s) =>
    `${String(s.atS).padStart(6)}  ${String(s.rssMb).padStart(7)}  ${
      String(s.anonMb).padStart(7)
    }  ${String(s.heapMb).padStart(7)}  ${String(s.heapTotalMb).padStart(8)}  ${
      String(s.fds).padStart(6)
    }  ${String(s.connections).padStart(6)}`
  );
  return [
    "   t s   RSS MB  anon MB  heap MB  reserved     fds   conns",
    ...rows,
    `RSS growth after warm-up: ${result.rssGrowthPct}% ` +
    `(slope ${result.rssSlopeMbPerHour} MB/h; heap ${result.heapSlopeMbPerHour} MB/h, ` +
    `reserved ${result.heapTotalSlopeMbPerHour} MB/h)`,
    `anonymous memory growth after warm-up: ${result.anonGrowthPct}% ` +
    `(slope ${result.anonSlopeMbPerHour} MB/h)`,
    `descriptors: ${result.fdsBaseline} before clients, ${result.fdsAfter} after all left`,
    `churn: ${JSON.stringify(result.churn)}`,
  ].join("\n");
}
