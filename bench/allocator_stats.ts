/**
 * jemalloc's own account of native memory, for `--allocator-stats`: the
 * server's jemalloc prints its totals (JSON, no newline) every 2 MB of
 * allocation, and the bench reads the newest print at idle and at N. The
 * difference says how much of a connection's native memory is blocks the
 * program holds, how much is free space in the allocator's pages, its
 * bookkeeping and freed pages not yet returned; beside RSS, how much of
 * what jemalloc counts as resident the kernel never mapped.
 *
 * @module
 */

import { kbPer } from "../dev/proc.ts";
import type { Settings } from "./server_launcher.ts";

/** jemalloc's totals at one moment, bytes. */
export interface AllocatorTotals {
  /** Bytes in blocks the program holds (rounded up to size classes). */
  readonly allocated: number;
  /** Bytes in pages that hold at least one such block. */
  readonly active: number;
  /** jemalloc's own bookkeeping. */
  readonly metadata: number;
  /** Bytes of jemalloc's pages in RAM (active, metadata, unreturned). */
  readonly resident: number;
}

/** Per connection, KB: where native memory sits by jemalloc's account. */
export interface AllocatorShare {
  /** Blocks held (Deno's Rust side, V8's malloc'd backing stores). */
  readonly allocatedKb: number;
  /** Free slots inside pages in use (active - allocated). */
  readonly pageSlackKb: number;
  readonly metadataKb: number;
  /** Resident but neither active nor metadata: pages not yet returned. */
  readonly unreturnedKb: number;
  /** jemalloc's resident bytes in all. */
  readonly residentKb: number;
}

/** Allocation between prints: often enough for a print a second at idle. */
const INTERVAL_BYTES = 2 * 1024 * 1024;

/** `settings` with jemalloc's periodic totals turned on. */
export function withAllocatorStats(settings: Settings): Settings {
  const env = settings.env;
  if (!env.LD_PRELOAD?.includes("jemalloc")) {
    throw new Error(
      `--allocator-stats reads jemalloc's statistics: use --profile ` +
        `production, or --jemalloc true (profile ${settings.name} runs ` +
        `the system allocator)`,
    );
  }
  // g, m, d, a, b, l, x, e, h: everything but the totals.
  const stats =
    `stats_interval:${INTERVAL_BYTES},stats_interval_opts:Jgmdablxeh`;
  return {
    ...settings,
    env: {
      ...env,
      MALLOC_CONF: env.MALLOC_CONF ? `${env.MALLOC_CONF},${stats}` : stats,
    },
  };
}

const TOTALS =
  /"stats":\{"allocated":(\d+),"active":(\d+),"metadata":(\d+),"metadata_thp":\d+,"resident":(\d+)/g;

/** Every set of totals jemalloc printed in `output`, oldest first. */
export function parseAllocatorTotals(output: string): AllocatorTotals[] {
  return [...output.matchAll(TOTALS)].map((m) => ({
    allocated: Number(m[1]),
    active: Number(m[2]),
    metadata: Number(m[3]),
    resident: Number(m[4]),
  }));
}

/** The change from `idle` to `held`, per connection, in KB. */
export function allocatorPerConnection(
  idle: AllocatorTotals,
  held: AllocatorTotals,
  connections: number,
): AllocatorShare {
  const per = (bytes: number) => kbPer(bytes, connections);
  const unreturned = (t: AllocatorTotals) => t.resident - t.active - t.metadata;
  return {
    allocatedKb: per(held.allocated - idle.allocated),
    pageSlackKb: per(
      (held.active - held.allocated) - (idle.active - idle.allocated),
    ),
    metadataKb: per(held.metadata - idle.metadata),
    unreturnedKb: per(unreturned(held) - unreturned(idle)),
    residentKb: per(held.resident - idle.resident),
  };
}

/**
 * Waits for a print newer than the `seen` ones, calling `nudge` (which
 * should allocate, e.g. answer a request) while none comes; null after
 * `timeoutMs`.
 */
export async function nextAllocatorTotals(
  output: () => string,
  seen: number,
  nudge: () => Promise<void>,
  timeoutMs = 20_000,
): Promise<{ totals: AllocatorTotals; count: number } | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const all = parseAllocatorTotals(output());
    if (all.length > seen) return { totals: all.at(-1)!, count: all.length };
    await nudge();
  }
  return null;
}
