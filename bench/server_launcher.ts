/**
 * Starts ws-time servers for the bench with a named settings profile:
 * `start` runs exactly the flags and environment of `deno task start` (read
 * from deno.json, so the two cannot drift), `production` adds what deploy/PRODUCTION.md
 * ships (jemalloc preloaded and tuned; the V8 flags are already in the
 * start task).
 * Each setting can be switched on its own to prove its effect. On request
 * the server gets an inspector on a loopback port so the bench can force a
 * GC and read the V8 heap, separating heap from native memory; never while
 * CPU is measured, because `--inspect` alone doubles Deno's user CPU per
 * WebSocket frame (measured: 13.8% against 7.4% at 4000 connections).
 *
 * @module
 */

import { connectionsThatFit } from "../server/http/descriptors.ts";
import { openFileLimit } from "../dev/proc.ts";
import { RESERVE_SIZE } from "../server/instance.ts";
import { Child } from "../dev/child.ts";
import { productionAllocatorEnv } from "../dev/systemd_unit.ts";
import { ROOT } from "../dev/paths.ts";
import { freePort } from "../dev/ports.ts";
import { healthDetail } from "../dev/server_process.ts";
import { sleep } from "../dev/timing.ts";

/**
 * The production allocator environment, read from deploy/ws-time.service
 * (jemalloc and its settings), so "production" figures are the unit's.
 */
export const PRODUCTION_ENV: Readonly<Record<string, string>> =
  productionAllocatorEnv();

/** The server settings under test. */
export interface Settings {
  /** Profile name, for tables and charts. */
  readonly name: string;
  /** Deno flags before main.ts (permissions, --v8-flags). */
  readonly denoFlags: readonly string[];
  /** Environment (LD_PRELOAD for jemalloc). */
  readonly env: Readonly<Record<string, string>>;
  /** Extra ws-time flags, e.g. ["--idle-timeout", "60"]. */
  readonly serverArgs: readonly string[];
  /** Set for a reference server measured in place of ws-time. */
  readonly reference?: Reference;
}

/** The reference servers of bench/reference/, measured beside ws-time. */
export const REFERENCES = {
  /** The architecture ws-time replaces: Node.js, ws, a timer per socket. */
  original: { program: "node", script: "original.mjs", args: [] },
  /** Bun.serve, a timer per socket. */
  bun: { program: "node_modules/.bin/bun", script: "bun.ts", args: [] },
  /** The least a Deno server can do: the sends, on ws-time's schedule. */
  floor: { program: "deno", script: "floor.ts", args: ["ms"] },
  /** The same, every tick of a second sent in one burst. */
  "floor-burst": { program: "deno", script: "floor.ts", args: ["burst"] },
} as const;

/** Name of a reference server. */
export type Reference = keyof typeof REFERENCES;

const REFERENCE_DIR = `${ROOT}bench/reference/`;

/** Environment and Deno flags of `deno task start`, read from deno.json. */
export function startTask(): { env: Record<string, string>; flags: string[] } {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const words = String(config.tasks.start).split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Z_]+=/.test(words[0] ?? "")) {
    const word = words.shift()!;
    env[word.slice(0, word.indexOf("="))] = word.slice(word.indexOf("=") + 1);
  }
  const run = words.indexOf("run");
  const entry = words.indexOf("main.ts");
  if (words[0] !== "deno" || run < 0 || entry < run) {
    throw new Error(`Cannot read the start task: ${config.tasks.start}`);
  }
  return { env, flags: words.slice(run + 1, entry) };
}

/**
 * Settings from a profile name plus overrides: `v8Flags` replaces the
 * --v8-flags of the profile ("" removes them), `jemalloc` forces the
 * allocator on or off, `env` adds variables (e.g. MALLOC_CONF).
 */
export function settingsFor(
  profile: string,
  overrides: {
    v8Flags?: string;
    jemalloc?: boolean;
    serverArgs?: string[];
    env?: Record<string, string>;
  } = {},
): Settings {
  if (profile in REFERENCES) {
    // The Deno floor may take the production allocator, so that its memory
    // compares like for like with --profile production.
    const deno = REFERENCES[profile as Reference].program === "deno";
    if (
      overrides.v8Flags !== undefined ||
      (overrides.jemalloc !== undefined && !deno) ||
      (overrides.serverArgs ?? []).length > 0 ||
      Object.keys(overrides.env ?? {}).length > 0
    ) {
      throw new Error(
        `--profile ${profile} is a reference server: --v8-flags, ` +
          `--server-args and --server-env apply to ws-time only, ` +
          `--jemalloc to ws-time and the Deno floor`,
      );
    }
    return {
      name: profile + (overrides.jemalloc ? "+jemalloc" : ""),
      denoFlags: [],
      env: overrides.jemalloc ? { ...PRODUCTION_ENV } : {},
      serverArgs: [],
      reference: profile as Reference,
    };
  }
  if (profile !== "start" && profile !== "production") {
    throw new Error(
      `Unknown --profile "${profile}": expected start, production, ` +
        Object.keys(REFERENCES).join(" or "),
    );
  }
  const task = startTask();
  let denoFlags = task.flags;
  let jemalloc = profile === "production";
  let name = profile;
  if (overrides.v8Flags !== undefined) {
    denoFlags = denoFlags.filter((f) => !f.startsWith("--v8-flags"));
    if (overrides.v8Flags !== "") {
      denoFlags.push(`--v8-flags=${overrides.v8Flags}`);
    }
    name += `+v8=${overrides.v8Flags || "none"}`;
  }
  if (overrides.jemalloc !== undefined && overrides.jemalloc !== jemalloc) {
    jemalloc = overrides.jemalloc;
    name += jemalloc ? "+jemalloc" : "-jemalloc";
  }
  const extraEnv = overrides.env ?? {};
  for (const [key, value] of Object.entries(extraEnv)) {
    name += ` ${key}=${value}`;
  }
  const serverArgs = overrides.serverArgs ?? [];
  if (serverArgs.length > 0) name += ` ${serverArgs.join(" ")}`;
  return {
    name,
    denoFlags,
    env: { ...task.env, ...(jemalloc ? PRODUCTION_ENV : {}), ...extraEnv },
    serverArgs,
  };
}

/** A running server under test. */
export interface BenchServer extends AsyncDisposable {
  readonly child: Child;
  readonly pid: number;
  readonly port: number;
  /** Inspector port, or 0 when started without one. */
  readonly inspectPort: number;
  /** Sends SIGINT and waits (at most `timeoutMs`) for the exit. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Options of {@link launchServer}. */
export interface LaunchOptions {
  readonly settings: Settings;
  /** Connections the bench will open; caps are raised above it. */
  readonly connections: number;
  readonly port?: number;
  /** Extra ws-time flags after the profile's (e.g. --redis, --name). */
  readonly args?: readonly string[];
  /** Start with an inspector (bench/inspector.ts). Default false. */
  readonly inspect?: boolean;
  /** CPUs the server may run on (`taskset -c` syntax). Default: any. */
  readonly cpus?: string;
}

/** Starts main.ts with `settings`; resolves once /healthz answers. */
export async function launchServer(
  options: LaunchOptions,
): Promise<BenchServer> {
  const port = options.port ?? freePort();
  const inspectPort = options.inspect ? freePort() : 0;
  const n = Math.max(options.connections, 1);
  const reference = options.settings.reference;
  if (reference && (inspectPort || options.args?.length)) {
    throw new Error(`the ${reference} reference runs the steady scenario only`);
  }
  const child = reference
    ? await launchReference(reference, port, options.settings.env)
    : new Child(options.cpus ? "taskset" : Deno.execPath(), [
      // taskset execs deno: the pid stays the server's.
      ...(options.cpus ? ["-c", options.cpus, Deno.execPath()] : []),
      "run",
      ...options.settings.denoFlags,
      ...(inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
      `${ROOT}main.ts`,
      "--hostname",
      "127.0.0.1",
      "--port",
      String(port),
      "--log-level",
      "warn",
      "--max-connections",
      // Room above N, but no more than the inherited descriptor limit
      // fits (ws-time refuses an explicit cap it cannot hold; the 40 are
      // what a fresh process has open).
      String(Math.min(
        Math.ceil(n * 1.2) + 100,
        connectionsThatFit(openFileLimit(Deno.pid) - 40, RESERVE_SIZE),
      )),
      ...options.settings.serverArgs,
      ...(options.args ?? []),
    ], { env: { ...options.settings.env }, cwd: ROOT });
  const stop = async (timeoutMs = 10_000) => {
    // SIGINT closes at once; SIGTERM would drain for tens of seconds.
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await child.finished();
    clearTimeout(timer);
  };
  try {
    await waitHealthy(port, child);
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
  return {
    child,
    pid: child.process.pid,
    port,
    inspectPort,
    stop,
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  };
}

/**
 * Starts a reference server on `port`, installing its npm dependencies
 * (pinned by bench/reference/package-lock.json) on first use.
 */
async function launchReference(
  name: Reference,
  port: number,
  env: Readonly<Record<string, string>>,
): Promise<Child> {
  const { program, script, args } = REFERENCES[name];
  if (program === "deno") {
    // The start task's V8 flag, so the floor compares like for like.
    return new Child(Deno.execPath(), [
      "run",
      "--v8-flags=--optimize-for-size",
      "--allow-net=127.0.0.1",
      REFERENCE_DIR + script,
      String(port),
      ...args,
    ], { cwd: REFERENCE_DIR, env: { ...env } });
  }
  try {
    await Deno.stat(`${REFERENCE_DIR}node_modules/ws`);
  } catch {
    const install = await new Deno.Command("npm", {
      args: ["ci", "--no-audit", "--no-fund"],
      cwd: REFERENCE_DIR,
      stdout: "null",
      stderr: "piped",
    }).output().catch((error: Error) => {
      throw new Error(
        `the reference servers need Node.js and npm (${error.message})`,
      );
    });
    if (!install.success) {
      throw new Error(
        `npm ci in bench/reference failed:\n` +
          new TextDecoder().decode(install.stderr),
      );
    }
  }
  const path = program.includes("/") ? REFERENCE_DIR + program : program;
  return new Child(path, [REFERENCE_DIR + script, String(port), ...args], {
    cwd: REFERENCE_DIR,
  });
}

async function waitHealthy(port: number, child: Child): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.status) {
      throw new Error(
        `server exited (${child.status.code}):\n${child.lines.join("\n")}`,
      );
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  throw new Error(`server on port ${port} did not answer /healthz in 30 s`);
}

/** Throws unless `server` runs the Redis store (it was given --redis). */
export async function requireRedisStore(server: BenchServer): Promise<void> {
  const { body } = await healthDetail(`http://127.0.0.1:${server.port}`);
  const kind = (body.store as { kind?: string } | undefined)?.kind;
  if (kind !== "redis") {
    throw new Error(
      `this scenario needs the Redis store (issue 3): the server given ` +
        `--redis runs store "${kind}" (storm and drain can run on token ` +
        `resume alone with --store memory)`,
    );
  }
}
