/**
 * The steady and connect scenarios. steady: open N connections at a
 * controlled rate, let them settle, then hold them for a window and measure
 * the server (RSS, heap after GC, native memory, CPU) and the fleet (held,
 * dropped, messages per second, tick lateness, its own CPU and event-loop
 * delay). connect: open N as fast as the server accepts them and report the
 * rate.
 *
 * @module
 */

import { freePort } from "../dev/ports.ts";
import { sleep } from "../dev/timing.ts";
import { Fleet } from "./fleet.ts";
import { Histogram, type LatencySummary } from "./histogram.ts";
import { CpuMeter, kbPer, rssBytes } from "../dev/proc.ts";
import {
  allocatorPerConnection,
  type AllocatorShare,
  nextAllocatorTotals,
  parseAllocatorTotals,
  withAllocatorStats,
} from "./allocator_stats.ts";
import {
  heapAfterGc,
  heapPerConnection,
  type HeapShare,
  heapSnapshot,
} from "./inspector.ts";
import {
  type BenchServer,
  launchServer,
  type Settings,
} from "./server_launcher.ts";

/** A held load: settings, N, ramp rate, window, generators. */
export interface LoadOptions {
  readonly settings: Settings;
  readonly connections: number;
  /** Connections per second; 0 = as fast as the server accepts. */
  readonly rate: number;
  /** Measured window in seconds (0 for connect). */
  readonly holdS: number;
  readonly generators: number;
  readonly sources: number;
  /** Clients' heartbeat period in ms; 0 = none. */
  readonly heartbeatMs: number;
  readonly onProgress?: (line: string) => void;
}

/** How to run one steady or connect measurement. */
export interface SteadyOptions extends LoadOptions {
  /** Server processes sharing one port with --reuse-port. */
  readonly serverProcesses: number;
  /** Also run a second pass with an inspector to split heap and native. */
  readonly heapSplit: boolean;
  /** In that pass, also take heap snapshots at idle and at N. */
  readonly heapSnapshot?: boolean;
  /** Read jemalloc's totals at idle and at N (one process, jemalloc). */
  readonly allocatorStats?: boolean;
}

/** One steady (or connect) result, as stored in bench/results/. */
export interface SteadyResult {
  readonly profile: string;
  readonly denoFlags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly serverArgs: readonly string[];
  readonly connections: number;
  /** Server processes sharing the port (figures are their sums). */
  readonly serverProcesses: number;
  readonly generators: number;
  readonly sources: number;
  readonly held: number;
  readonly failed: number;
  readonly dropped: number;
  readonly rampS: number;
  readonly connectPerSecond: number;
  readonly handshakeMs: LatencySummary;
  readonly errors: Record<string, number>;
  readonly holdS: number;
  readonly rssIdleMb: number;
  readonly rssMb: number;
  /** (RSS held - RSS idle) / connections. */
  readonly rssPerConnKb: number;
  /** V8 heap used after a forced GC, per connection. */
  readonly heapPerConnKb: number | null;
  /** RSS beyond V8's committed heap, after GC, per connection. */
  readonly nativePerConnKb: number | null;
  /** V8's committed but unused heap after GC, per connection. */
  readonly heapSlackPerConnKb?: number | null;
  /** The heap per connection by kind of object (--heap-snapshot). */
  readonly heapByKind?: HeapShare[] | null;
  /** Native memory per connection by jemalloc's account. */
  readonly allocatorPerConnKb?: AllocatorShare | null;
  /** Server CPU during the window, % of one core. */
  readonly serverCpuPct: number;
  /** The kernel's part of it (system time), % of one core. */
  readonly serverSysCpuPct: number;
  readonly generatorCpuPct: number;
  readonly messagesPerSecond: number;
  readonly tickGaps: number;
  readonly latenessMs: LatencySummary;
  readonly generatorLoopDelayMs: LatencySummary;
  /** /healthcheck answer time under this load, 5 requests a second. */
  readonly healthcheckMs: LatencySummary;
}

const mb = (bytes: number) => Math.round(bytes / 1048576 * 10) / 10;

/** Runs one steady (holdS > 0) or connect (holdS = 0) measurement. */
export async function runSteady(
  given: SteadyOptions,
): Promise<SteadyResult> {
  if (given.allocatorStats && given.serverProcesses > 1) {
    throw new Error("--allocator-stats reads one server process");
  }
  const options = given.allocatorStats
    ? { ...given, settings: withAllocatorStats(given.settings) }
    : given;
  const n = options.connections;
  const servers = await launchServers(options);
  await using _servers = {
    async [Symbol.asyncDispose]() {
      await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
    },
  };
  const pids = servers.map((s) => s.pid);
  const rss = () => pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
  await sleep(1000);
  const rssIdle = rss();
  const output = () =>
    servers[0]!.child.lines.join("\n") + servers[0]!.child.unfinished;
  // The idle server allocates little: requests make it print.
  const idleTotals = options.allocatorStats
    ? await nextAllocatorTotals(
      output,
      parseAllocatorTotals(output()).length,
      () => healthz(servers[0]!.port),
    )
    : null;

  await using fleet = startFleet(options, servers[0]!.port);
  const ramp = await fleet.ramp(Math.max(60_000, n * 20));
  let window = null;
  let serverCpu = 0, serverSys = 0, generatorCpu = 0, rssHeld = rss();
  const healthcheck = new Histogram();
  if (options.holdS > 0) {
    // Let the ramp's garbage and timers settle before measuring.
    await sleep(3000);
    await fleet.mark();
    const serverMeter = new CpuMeter(pids);
    const fleetMeter = new CpuMeter(fleet.pids);
    const samples: number[] = [];
    for (let s = 0; s < options.holdS; s++) {
      const second = sleep(1000);
      // The load balancer's view: how fast /healthcheck answers under load.
      for (let i = 0; i < 5; i++) {
        healthcheck.add(await timeHealthcheck(servers[0]!.port));
      }
      await second;
      samples.push(rss());
      options.onProgress?.(
        `hold ${s + 1}/${options.holdS} s, server RSS ${
          mb(samples.at(-1)!)
        } MB, CPU ${Math.round(serverMeter.share() * 100)}%`,
      );
    }
    const times = serverMeter.split();
    serverCpu = times.user + times.system;
    serverSys = times.system;
    generatorCpu = fleetMeter.share();
    window = await fleet.report();
    rssHeld = Math.max(...samples);
  }
  // Ticks to N clients allocate several MB a second: a print comes soon.
  const heldTotals = idleTotals
    ? await nextAllocatorTotals(output, idleTotals.count, () => sleep(50))
    : null;
  await fleet[Symbol.asyncDispose]();
  await Promise.all(servers.map((s) => s.stop()));
  const held = window?.open ?? ramp.open;
  // The inspector pass is ws-time's: reference servers report RSS only.
  const split = options.heapSplit && options.holdS > 0 &&
      options.serverProcesses === 1 && !options.settings.reference
    ? await memorySplit(options)
    : null;
  return {
    profile: options.settings.name,
    denoFlags: options.settings.denoFlags,
    env: options.settings.env,
    serverArgs: options.settings.serverArgs,
    connections: n,
    serverProcesses: servers.length,
    generators: fleet.children.length,
    sources: options.sources,
    held,
    failed: ramp.failed,
    dropped: window?.dropped ?? 0,
    rampS: ramp.rampMs / 1000,
    connectPerSecond: Math.round(ramp.open / (ramp.rampMs / 1000)),
    handshakeMs: ramp.handshake,
    errors: ramp.errors,
    holdS: options.holdS,
    rssIdleMb: mb(rssIdle),
    rssMb: mb(rssHeld),
    rssPerConnKb: kbPer(rssHeld - rssIdle, held),
    heapPerConnKb: split?.heapPerConnKb ?? null,
    nativePerConnKb: split?.nativePerConnKb ?? null,
    heapSlackPerConnKb: split?.heapSlackPerConnKb ?? null,
    heapByKind: split?.heapByKind ?? null,
    allocatorPerConnKb: idleTotals && heldTotals
      ? allocatorPerConnection(
        idleTotals.totals,
        heldTotals.totals,
        window?.open ?? ramp.open,
      )
      : null,
    serverCpuPct: Math.round(serverCpu * 1000) / 10,
    serverSysCpuPct: Math.round(serverSys * 1000) / 10,
    generatorCpuPct: Math.round(generatorCpu * 1000) / 10,
    messagesPerSecond: window?.messagesPerSecond ?? 0,
    tickGaps: window?.gaps ?? 0,
    latenessMs: window?.lateness ?? { p50: 0, p99: 0, max: 0, samples: 0 },
    generatorLoopDelayMs: window?.loopDelay ??
      { p50: 0, p99: 0, max: 0, samples: 0 },
    healthcheckMs: healthcheck.summary(),
  };
}

/** Milliseconds one GET /healthcheck takes, on a fresh connection. */
async function timeHealthcheck(port: number): Promise<number> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${port}/healthcheck`, {
    headers: { connection: "close" },
  });
  await response.body?.cancel();
  return performance.now() - started;
}

/** One server, or several sharing one port (--reuse-port). */
async function launchServers(options: SteadyOptions): Promise<BenchServer[]> {
  const count = Math.max(1, options.serverProcesses);
  if (count === 1) {
    return [
      await launchServer({
        settings: options.settings,
        connections: options.connections,
      }),
    ];
  }
  const port = freePort();
  // Siblings on one port must read each other's resume tokens.
  const secret = crypto.randomUUID();
  const servers: BenchServer[] = [];
  for (let i = 0; i < count; i++) {
    servers.push(
      await launchServer({
        settings: options.settings,
        // The kernel spreads connections unevenly: room for a fair margin.
        connections: Math.ceil((options.connections / count) * 1.5),
        port,
        args: [
          "--reuse-port",
          "true",
          "--session-secret",
          secret,
          "--name",
          `bench-${i}`,
        ],
      }),
    );
  }
  return servers;
}

/** One GET /healthz, which every server under test answers. */
async function healthz(port: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  await response.body?.cancel();
}

/** Starts the generators of `options` against `port`. */
export function startFleet(options: LoadOptions, port: number): Fleet {
  return new Fleet({
    port,
    connections: options.connections,
    rate: options.rate,
    generators: options.generators,
    sources: options.sources,
    heartbeatMs: options.heartbeatMs,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** What the inspector pass measures, per connection. */
interface MemorySplit {
  readonly heapPerConnKb: number;
  readonly nativePerConnKb: number;
  readonly heapSlackPerConnKb: number;
  readonly heapByKind: HeapShare[] | null;
}

/**
 * The second pass: the same ramp against a server with an inspector, then
 * a forced GC at idle and at N. Per connection: V8 heap used, V8 heap
 * committed but unused, and RSS beyond V8's committed heap (native:
 * sockets, buffers, allocator); with heapSnapshot, the heap by kind.
 */
async function memorySplit(
  options: SteadyOptions,
): Promise<MemorySplit | null> {
  options.onProgress?.("memory split: second pass with an inspector");
  await using server = await launchServer({
    settings: options.settings,
    connections: options.connections,
    inspect: true,
  });
  await sleep(1000);
  const snapshot = async () =>
    options.heapSnapshot
      ? await safe(() => heapSnapshot(server.inspectPort))
      : null;
  const idleKinds = await snapshot();
  const idle = await safe(() => heapAfterGc(server.inspectPort));
  const rssIdle = rssBytes(server.pid);
  await using fleet = startFleet(options, server.port);
  const ramp = await fleet.ramp(Math.max(60_000, options.connections * 20));
  await sleep(3000);
  const held = await safe(() => heapAfterGc(server.inspectPort));
  const rssHeld = rssBytes(server.pid);
  options.onProgress?.("memory split: heap snapshot at N");
  const heldKinds = idleKinds ? await snapshot() : null;
  await fleet[Symbol.asyncDispose]();
  await server.stop();
  if (!idle || !held) return null;
  return {
    heapPerConnKb: kbPer(held.used - idle.used, ramp.open),
    nativePerConnKb: kbPer(
      (rssHeld - held.total) - (rssIdle - idle.total),
      ramp.open,
    ),
    heapSlackPerConnKb: kbPer(
      (held.total - held.used) - (idle.total - idle.used),
      ramp.open,
    ),
    heapByKind: idleKinds && heldKinds
      ? heapPerConnection(idleKinds, heldKinds, ramp.open)
      : null,
  };
}

/** `read()`, or null when it fails (the inspector is best effort). */
async function safe<T>(read: () => Promise<T | null>): Promise<T | null> {
  try {
    return await read();
  } catch {
    return null;
  }
}
