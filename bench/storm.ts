/**
 * The storm and drain scenarios: N real clients (the reconnecting client
 * module) on instance A of a pair sharing a session secret and the store;
 * then A is killed (storm: SIGKILL) or stopped (drain: SIGTERM) and every
 * client must resume on B with its count intact. Reports time to 50/99/100%
 * resumed, failed attempts, the peak accept rate on B, count continuity,
 * listen-queue overflows and, for drain, closes before the drain delay.
 *
 * @module
 */

import { Child } from "../dev/child.ts";
import { ROOT } from "../dev/paths.ts";
import { startRedis } from "../dev/redis.ts";
import { startRedisCluster } from "../dev/redis_cluster.ts";
import { sleep, waitFor } from "../dev/timing.ts";
import { ChildEvents } from "./child_events.ts";
import { freePort } from "../dev/ports.ts";
import { CpuMeter, listenCounters } from "../dev/proc.ts";
import {
  type BenchServer,
  launchServer,
  requireRedisStore,
  type Settings,
} from "./server_launcher.ts";
import type { StormEvent, StormPlan } from "./storm_clients.ts";

/** How to run one storm or drain. */
export interface StormOptions {
  readonly kind: "storm" | "drain";
  readonly settings: Settings;
  readonly connections: number;
  readonly mode: "jitter" | "immediate";
  /**
   * "redis" (the product's shared store, one node), "cluster" (a Redis
   * Cluster of three shards) or "memory" (token resume only).
   */
  readonly store: "redis" | "cluster" | "memory";
  readonly processes: number;
  /** Survivor processes sharing one port (--reuse-port), as deployed. */
  readonly survivors: number;
  /** Connections per second while the clients first connect. */
  readonly rate: number;
  /** The client module's backoff base (jitter mode); 0 = its default. */
  readonly baseMs: number;
  /** Drain settings given to both servers. */
  readonly drainDelayMs: number;
  readonly drainPeriodMs: number;
  /**
   * The survivor alone on CPU 0, everything else on the others: its CPU
   * figure then counts its own work, not its share of a crowded machine.
   */
  readonly pin?: boolean;
  /**
   * The store's processes alone on the last CPU, everything else on the
   * others: as deployed, where the store has hosts of its own, so a store
   * of several processes does not wait on the clients for a core.
   */
  readonly pinStore?: boolean;
  readonly onProgress?: (line: string) => void;
}

/** One storm or drain result, as stored in bench/results/. */
export interface StormResult {
  readonly kind: "storm" | "drain";
  readonly mode: "jitter" | "immediate";
  /** The client's backoff base in ms (0: the module's default). */
  readonly baseMs: number;
  readonly profile: string;
  readonly store: string;
  readonly connections: number;
  readonly resumed: number;
  /** ms from the signal to 50%, 99%, 100% resumed (null: never). */
  readonly resumedMs: {
    p50: number | null;
    p99: number | null;
    all: number | null;
  };
  readonly failedAttempts: number;
  readonly discontinuous: number;
  /** Highest welcomes per second on the survivor (1 s sliding window). */
  readonly peakAcceptPerSecond: number;
  readonly listenOverflows: number;
  readonly listenDrops: number;
  /** Drain only: ms from SIGTERM to the first and last close by A. */
  readonly firstCloseMs: number | null;
  readonly lastCloseMs: number | null;
  readonly closedBeforeDelay: number;
  readonly drainDelayMs: number;
  /** Share resumed (%) against seconds since the signal, every 100 ms. */
  readonly curve: Array<[number, number]>;
  /** Closes the clients saw after the signal, by kind, code and reason. */
  readonly closes: Record<string, number>;
  /** Retries after the signal, by cause and delay. */
  readonly retries: Record<string, number>;
  /**
   * ms from each client's own notice of the loss (the close event of its
   * connection, or its silence watchdog) to its welcome on the survivor:
   * the survivor's and the reconnect's share, without the detection.
   */
  readonly afterNoticeMs: { p50: number | null; p99: number | null };
  /** Survivor processes on the port. */
  readonly survivors: number;
  /**
   * With --pin or --pin-store, the CPUs the survivor, the store's first
   * process and this process (so the clients) were allowed, as Linux said
   * during the run; else null.
   */
  readonly pinned: { survivor: string; store: string; rest: string } | null;
  /**
   * CPU from the signal until every client resumed (or the limit), in
   * core-seconds: the survivors, the client processes, Redis.
   */
  readonly cpuSeconds: { survivors: number; clients: number; redis: number };
  /** Survivor CPU per resumed session, ms. */
  readonly survivorCpuMsPerSession: number | null;
}

type Report = Extract<StormEvent, { type: "report" }>;

/** Runs one storm or drain; returns its figures. */
export async function runStorm(options: StormOptions): Promise<StormResult> {
  const n = options.connections;
  // The Deno floor resumes from the token alone (bench/reference/floor.ts):
  // no store, no secret, no drain, one survivor process.
  const reference = options.settings.reference;
  if (reference && !reference.startsWith("floor")) {
    throw new Error(
      `--profile ${reference} cannot resume a session: storm and drain ` +
        `take start, production, floor or floor-burst`,
    );
  }
  if (reference && (options.kind === "drain" || options.survivors > 1)) {
    throw new Error(
      `--profile ${reference} runs the storm with one survivor process only`,
    );
  }
  const cpus = navigator.hardwareConcurrency;
  if (options.pin && options.pinStore) {
    throw new Error("--pin and --pin-store are two layouts: take one");
  }
  if (options.pin) {
    if (reference || options.survivors > 1 || cpus < 2) {
      throw new Error(
        "--pin needs ws-time's profile, one survivor process and two CPUs",
      );
    }
    // Every child started from now on inherits CPUs 1-N.
    await pinSelf(cpuList(1, cpus - 1), "--pin");
  }
  if (options.pinStore) {
    if (reference || options.store === "memory" || cpus < 2) {
      throw new Error(
        "--pin-store needs ws-time's profile, Redis and two CPUs",
      );
    }
    await pinSelf(cpuList(cpus - 1, cpus - 1), "--pin-store");
  }
  await using redis = options.store === "redis" && !reference
    ? await startRedis()
    : null;
  await using cluster = options.store === "cluster" && !reference
    ? await startRedisCluster()
    : null;
  // The store started on the last CPU; what follows gets the others.
  if (options.pinStore) {
    await pinSelf(cpuList(0, cpus - 2), "--pin-store");
  }
  const storePid = redis?.child.process.pid ??
    cluster?.nodes[0]?.child.process.pid;
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const args = [
    "--session-secret",
    secret,
    "--drain-delay",
    `${options.drainDelayMs}ms`,
    "--drain-period",
    `${options.drainPeriodMs}ms`,
    ...(redis ? ["--redis", redis.url] : []),
    ...(cluster
      ? ["--redis-cluster", cluster.seeds, "--redis", cluster.credentials]
      : []),
  ];
  const launch = (name: string) =>
    launchServer({
      settings: options.settings,
      connections: n,
      args: reference ? [] : [...args, "--name", name],
    });
  await using a = await launch("storm-a");
  // The survivor as deployed: one process, or one per core on one port.
  const survivorCount = Math.max(1, options.survivors);
  const survivorPort = freePort();
  const survivors: BenchServer[] = [];
  await using _survivors = {
    async [Symbol.asyncDispose]() {
      await Promise.all(survivors.map((s) => s[Symbol.asyncDispose]()));
    },
  };
  for (let i = 0; i < survivorCount; i++) {
    survivors.push(
      await launchServer({
        settings: options.settings,
        connections: n,
        port: survivorPort,
        ...(options.pin ? { cpus: "0" } : {}),
        args: reference ? [] : [
          ...args,
          "--name",
          `storm-b${i}`,
          ...(survivorCount > 1 ? ["--reuse-port", "true"] : []),
        ],
      }),
    );
  }
  if (redis || cluster) await requireRedisStore(a);
  const pinned = options.pin || options.pinStore
    ? {
      survivor: await allowedCpus(survivors[0]!.pid),
      store: storePid === undefined ? "" : await allowedCpus(storePid),
      rest: await allowedCpus(Deno.pid),
    }
    : null;

  const p = Math.max(1, options.processes);
  const children = Array.from({ length: p }, (_, i) => {
    const plan: StormPlan = {
      first: `ws://127.0.0.1:${a.port}`,
      survivor: `ws://127.0.0.1:${survivorPort}`,
      count: Math.floor(n / p) + (i < n % p ? 1 : 0),
      mode: options.mode,
      rate: options.rate / p,
      baseMs: options.baseMs,
      label: `s${i}`,
    };
    return new Child(Deno.execPath(), [
      "run",
      "--allow-net=127.0.0.1",
      `${ROOT}bench/storm_clients.ts`,
      JSON.stringify(plan),
    ], { cwd: ROOT, stdin: "piped" });
  });
  const writers = children.map((c) => c.process.stdin.getWriter());
  await using _children = {
    async [Symbol.asyncDispose]() {
      await Promise.all(writers.map((w) => w.close().catch(() => {})));
      const timer = setTimeout(() => children.forEach((c) => c.kill()), 20_000);
      await Promise.all(children.map((c) => c.finished()));
      clearTimeout(timer);
    },
  };
  const logs = children.map((c) => new ChildEvents<StormEvent>(c));
  const send = (command: string) =>
    Promise.all(
      writers.map((w) => w.write(new TextEncoder().encode(command + "\n"))),
    );
  const count = (field: "welcomed" | "resumed") =>
    logs.reduce((sum, l) => sum + (l.latest("progress")?.[field] ?? 0), 0);

  await waitFor(
    () => {
      logs.forEach((l) => l.check("storm clients"));
      options.onProgress?.(`connecting ${count("welcomed")}/${n} to A`);
      return logs.every((l) => l.latest("ready"));
    },
    // A client whose first connect fails waits its backoff: long windows
    // take longer to get everyone onto A.
    Math.max(60_000, (n / options.rate) * 3000) + 20 * options.baseMs,
    "storm clients on A",
  );
  await sleep(2000);

  const before = listenCounters();
  const meters = {
    survivors: new CpuMeter(survivors.map((s) => s.pid)),
    clients: new CpuMeter(children.map((c) => c.process.pid)),
    redis: new CpuMeter(
      redis
        ? [redis.child.process.pid]
        : cluster
        ? cluster.nodes.map((node) => node.child.process.pid)
        : [],
    ),
  };
  const began = performance.now();
  await send("failover");
  const signalAt = Date.now();
  a.child.kill(options.kind === "storm" ? "SIGKILL" : "SIGTERM");
  const limitMs = options.kind === "storm"
    ? 30_000
    : options.drainDelayMs + options.drainPeriodMs + 30_000;
  try {
    await waitFor(
      () => {
        logs.forEach((l) => l.check("storm clients"));
        const resumed = count("resumed");
        options.onProgress?.(
          `${options.kind} (${options.mode}): ${resumed}/${n} resumed on B after ${
            ((Date.now() - signalAt) / 1000).toFixed(1)
          } s`,
        );
        return resumed >= n;
      },
      limitMs,
      "every client to resume",
    );
  } catch {
    // Reported as missing below.
  }
  const after = listenCounters();
  const seconds = (performance.now() - began) / 1000;
  const cpuSeconds = {
    survivors: round2(meters.survivors.share() * seconds),
    clients: round2(meters.clients.share() * seconds),
    redis: round2(meters.redis.share() * seconds),
  };
  const marks = logs.map((l) => l.all().length);
  await send("report");
  const reports = await waitFor(
    () => {
      const got = logs.map((l, i) => l.latest("report", marks[i]));
      return got.every((r) => r) ? got as Report[] : null;
    },
    30_000,
    "storm reports",
  );
  await send("close");
  return {
    ...summarize(
      options,
      reports,
      signalAt,
      before,
      after,
      redis ? "redis" : cluster ? "redis cluster (3 shards)" : null,
    ),
    survivors: survivorCount,
    pinned,
    cpuSeconds,
    survivorCpuMsPerSession: count("resumed") > 0
      ? round2((cpuSeconds.survivors * 1000) / count("resumed"))
      : null,
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The CPUs process `pid` may run on, as taskset says (`0`, `1-3`...). */
async function allowedCpus(pid: number): Promise<string> {
  // Deno reads /proc/<pid>/ only with every permission; taskset needs none.
  const { stdout } = await new Deno.Command("taskset", {
    args: ["-c", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  return /list:\s*(\S+)/.exec(new TextDecoder().decode(stdout))?.[1] ?? "";
}

/** CPUs `first` to `last` in taskset's list syntax. */
function cpuList(first: number, last: number): string {
  return first === last ? String(first) : `${first}-${last}`;
}

/**
 * Moves this process (every thread, so every child it starts from now on)
 * to `cpus`.
 */
async function pinSelf(cpus: string, flag: string): Promise<void> {
  const { success, stderr } = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", cpus, String(Deno.pid)],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error) => {
    throw new Error(`${flag} needs taskset (util-linux): ${error.message}`);
  });
  if (!success) {
    throw new Error(
      `${flag}: taskset failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
}

function summarize(
  options: StormOptions,
  reports: Report[],
  signalAt: number,
  before: { overflows: number; drops: number },
  after: { overflows: number; drops: number },
  store: string | null,
): Omit<
  StormResult,
  "survivors" | "pinned" | "cpuSeconds" | "survivorCpuMsPerSession"
> {
  const clients = reports.flatMap((r) => r.clients);
  const n = options.connections;
  const times = clients.filter((c) => c.resumedAt > 0)
    .map((c) => c.resumedAt - signalAt).sort((x, y) => x - y);
  const at = (q: number) => {
    const need = Math.ceil(q * n);
    return times.length >= need ? times[need - 1]! : null;
  };
  const closes = clients.filter((c) => c.closedAt > 0)
    .map((c) => c.closedAt - signalAt).sort((x, y) => x - y);
  const welcomes = reports.flatMap((r) => r.welcomes).sort((x, y) => x - y);
  let peak = 0;
  for (let i = 0, j = 0; i < welcomes.length; i++) {
    while (welcomes[i]! - welcomes[j]! >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  const curve: Array<[number, number]> = [];
  const end = Math.max(1000, (times.at(-1) ?? 0) + 500);
  for (let t = 0, k = 0; t <= end; t += 100) {
    while (k < times.length && times[k]! <= t) k++;
    curve.push([t / 1000, Math.round((k / n) * 1000) / 10]);
  }
  return {
    kind: options.kind,
    mode: options.mode,
    baseMs: options.mode === "jitter" ? options.baseMs : 0,
    profile: options.settings.name,
    store: options.settings.reference
      ? "none (token)"
      : store ?? "memory (token resume)",
    connections: n,
    resumed: times.length,
    resumedMs: { p50: at(0.5), p99: at(0.99), all: at(1) },
    failedAttempts: clients.reduce((s, c) => s + c.failedAttempts, 0),
    discontinuous: clients.filter((c) => c.resumedAt > 0 && !c.continuous)
      .length,
    peakAcceptPerSecond: peak,
    listenOverflows: after.overflows - before.overflows,
    listenDrops: after.drops - before.drops,
    firstCloseMs: closes[0] ?? null,
    lastCloseMs: closes.at(-1) ?? null,
    closedBeforeDelay: closes.filter((t) => t < options.drainDelayMs).length,
    drainDelayMs: options.drainDelayMs,
    curve,
    closes: sumCounts(reports.map((r) => r.closes)),
    afterNoticeMs: (() => {
      const waits = clients.filter((c) => c.closedAt > 0 && c.resumedAt > 0)
        .map((c) => c.resumedAt - c.closedAt).sort((x, y) => x - y);
      const q = (p: number) =>
        waits.length === 0
          ? null
          : waits[Math.min(waits.length - 1, Math.ceil(p * waits.length) - 1)]!;
      return { p50: q(0.5), p99: q(0.99) };
    })(),
    retries: sumCounts(reports.map((r) => r.retries)),
  };
}

/** Adds up count maps. */
function sumCounts(
  maps: ReadonlyArray<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const map of maps) {
    for (const [key, n] of Object.entries(map)) out[key] = (out[key] ?? 0) + n;
  }
  return out;
}
