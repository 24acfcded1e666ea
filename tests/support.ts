/**
 * Test support shared by every suite: free ports, a ws-time server in its
 * own process, a real redis-server, a WebSocket client that records what it
 * receives, and small waiting helpers. Everything started here binds to
 * loopback and is stopped by the caller (`await using`).
 *
 * @module
 */

import nodeFs from "node:fs";
import { fileURLToPath } from "node:url";
import { loopbackRedisArgs } from "../deploy/redis_args.ts";
import { type App, type AppDeps, createApp } from "../server/app.ts";
import { systemClock } from "../server/clock.ts";
import { type Config, parseConfig } from "../server/config.ts";
import { memoryLogger } from "../server/logger.ts";
import { MemoryStore } from "../server/sessions.ts";
import type { BrowserContext, Page } from "playwright-core";
import { type ClientOptions, WsTimeClient } from "../static/ws_time_client.js";
import { createClient } from "@redis/client";

/** Repository root (absolute path). */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A small fast PRNG (mulberry32): the same numbers for the same seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** A child process whose output lines are kept and can be awaited. */
export class Child implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly process: Deno.ChildProcess;
  readonly #done: Promise<void>;
  #status: Deno.CommandStatus | undefined;

  /** Spawns `command args` with piped output (and stdin if asked). */
  constructor(command: string, args: string[], options: {
    env?: Record<string, string>;
    cwd?: string;
    stdin?: "null" | "piped";
  } = {}) {
    this.process = new Deno.Command(command, {
      args,
      env: options.env ?? {},
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#done = Promise.all([
      this.#collect(this.process.stdout),
      this.#collect(this.process.stderr),
      this.process.status.then((status) => {
        this.#status = status;
      }),
    ]).then(() => {});
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop() ?? "";
      this.lines.push(...parts);
    }
    if (buffer !== "") this.lines.push(buffer);
  }

  /** The exit status once the process ended, else undefined. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Waits for an output line matching `pattern` and returns its match. */
  waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
    return waitFor(
      () => {
        for (const line of this.lines) {
          const match = pattern.exec(line);
          if (match) return match;
        }
        if (this.#status) {
          throw new Error(
            `Process exited (${this.#status.code}) before printing ${pattern}:\n${
              this.lines.join("\n")
            }`,
          );
        }
        return null;
      },
      timeoutMs,
      `output ${pattern}`,
    );
  }

  /** Sends a signal if the process still runs. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status) return;
    try {
      this.process.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Waits for the process to end and its output to be read. */
  async finished(): Promise<Deno.CommandStatus> {
    await this.#done;
    return this.#status!;
  }

  /** Kills (SIGKILL) and reaps the process. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.#done;
  }
}

/** A ws-time server process started by {@link startServer}. */
export interface ServerProcess extends AsyncDisposable {
  readonly child: Child;
  readonly port: number;
  /** http://127.0.0.1:port */
  readonly http: string;
  /** ws://127.0.0.1:port/ */
  readonly ws: string;
  readonly name: string;
}

/** The `--allow-*` flags of a task in deno.json, in order. */
export function taskPermissions(task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const command = String(config.tasks?.[task] ?? "");
  return command.split(/\s+/).filter((word) => word.startsWith("--allow-"));
}

/**
 * Permission flags for running main.ts: exactly those of `deno task start`,
 * so every server test also proves those flags suffice.
 */
export const SERVER_PERMISSIONS: readonly string[] = taskPermissions("start");

/**
 * Per-address limits for test servers: every test client comes from
 * 127.0.0.1, so the production defaults (100 open, 20 new a second) would
 * refuse ordinary tests; a test of those limits sets its own in `args`.
 */
export const LOOPBACK_CLIENT_LIMITS: readonly string[] = [
  "--max-per-address",
  "100000",
  "--rate-per-address",
  "100000",
];

/**
 * Starts `main.ts` in its own process on a free loopback port (or `port`)
 * and waits for its listening line. Extra flags go in `args` (after
 * {@link LOOPBACK_CLIENT_LIMITS}, so they win), environment in `env`; the
 * server is named `name` (default `srv-<port>`).
 */
export async function startServer(
  options: {
    args?: string[];
    env?: Record<string, string>;
    port?: number;
    name?: string;
    /** Replaces {@link SERVER_PERMISSIONS}. */
    permissions?: readonly string[];
  } = {},
): Promise<ServerProcess> {
  const port = options.port ?? freePort();
  const name = options.name ?? `srv-${port}`;
  const child = new Child(Deno.execPath(), [
    "run",
    ...(options.permissions ?? SERVER_PERMISSIONS),
    `${ROOT}main.ts`,
    "--hostname",
    "127.0.0.1",
    "--port",
    String(port),
    "--name",
    name,
    ...LOOPBACK_CLIENT_LIMITS,
    ...(options.args ?? []),
  ], { env: options.env ?? {}, cwd: ROOT });
  try {
    await child.waitForLine(/listening on/, 20_000);
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
  return {
    child,
    port,
    name,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/`,
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  };
}

/** A redis-server with no persistence on a free loopback port. */
export interface RedisProcess extends AsyncDisposable {
  readonly child: Child;
  readonly port: number;
  readonly url: string;
}

/**
 * Starts Debian's redis-server without persistence; stops on dispose.
 * `args` adds server options (say `["--requirepass", "pw"]`).
 */
export async function startRedis(
  port = freePort(),
  args: string[] = [],
): Promise<RedisProcess> {
  const child = new Child("redis-server", [
    ...loopbackRedisArgs(port),
    "--protected-mode",
    "no",
    ...args,
  ]);
  await child.waitForLine(/Ready to accept connections/, 10_000);
  return {
    child,
    port,
    url: `redis://127.0.0.1:${port}`,
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  };
}

/** Two ws-time servers sharing one redis-server, as in production. */
export interface SharedPair extends AsyncDisposable {
  readonly redis: RedisProcess;
  readonly a: ServerProcess;
  readonly b: ServerProcess;
}

/** Starts a redis-server and two servers using it with `secret`. */
export async function startSharedPair(secret: string): Promise<SharedPair> {
  const redis = await startRedis();
  const env = { REDIS_URL: redis.url, SESSION_SECRET: secret };
  const started: AsyncDisposable[] = [redis];
  const stop = async () => {
    for (const item of started.reverse()) await item[Symbol.asyncDispose]();
  };
  try {
    const a = await startServer({ env });
    started.push(a);
    const b = await startServer({ env });
    started.push(b);
    return { redis, a, b, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Sends one command to the Redis at `url` on a fresh connection and returns
 * the reply: how tests look at (or wipe) what the servers wrote.
 */
export async function redisCall(
  url: string,
  ...args: string[]
): Promise<unknown> {
  const client = createClient({
    url,
    socket: { reconnectStrategy: false },
    disableClientInfo: true,
    maintNotifications: "disabled",
  });
  client.on("error", () => {});
  await client.connect();
  try {
    return await client.sendCommand(args);
  } finally {
    client.destroy();
  }
}

/** The JSON detail of a server's /healthcheck, with its HTTP status. */
export async function healthDetail(
  http: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${http}/healthcheck`, {
    headers: { accept: "application/json" },
  });
  return { status: response.status, body: await response.json() };
}

/** A WebSocket that records every message and its arrival time. */
export class RecordingSocket implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly messages: string[] = [];
  readonly times: number[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  closeEvent: CloseEvent | undefined;
  /** When the close event arrived (ms since the epoch). */
  closedAt: number | undefined;

  /** Connects to `url` offering `protocols`. */
  constructor(url: string, protocols?: string | string[]) {
    this.socket = new WebSocket(url, protocols);
    const opened = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<CloseEvent>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    // A failed handshake closes without opening; tests await `closed`.
    this.opened.catch(() => {});
    this.socket.onopen = () => opened.resolve();
    this.socket.onmessage = (event) => {
      this.messages.push(String(event.data));
      this.times.push(Date.now());
    };
    this.socket.onerror = () => {};
    this.socket.onclose = (event) => {
      this.closeEvent = event;
      this.closedAt = Date.now();
      opened.reject(new Error(`closed before open (${event.code})`));
      closed.resolve(event);
    };
  }

  /** Messages parsed as JSON. */
  get json(): Array<Record<string, unknown>> {
    return this.messages.map((m) => JSON.parse(m));
  }

  /** Waits until at least `n` messages arrived. */
  async waitForMessages(n: number, timeoutMs = 5000): Promise<string[]> {
    await waitFor(
      () => this.messages.length >= n || this.closeEvent !== undefined,
      timeoutMs,
      `${n} messages`,
    );
    if (this.messages.length < n) {
      throw new Error(
        `closed (${this.closeEvent?.code}) after ${this.messages.length} of ${n} messages`,
      );
    }
    return this.messages;
  }

  /** Waits for the close event, at most `timeoutMs`. */
  async waitForClose(timeoutMs = 5000): Promise<CloseEvent> {
    await waitFor(() => this.closeEvent, timeoutMs, "the socket to close");
    return this.closeEvent!;
  }

  /** Closes (if open) and waits for the close event. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState < WebSocket.CLOSING) this.socket.close();
    await this.closed;
  }
}

/** An app built in-process on the memory store, closed on dispose. */
export interface TestApp extends AsyncDisposable {
  readonly app: App;
  readonly config: Config;
  readonly store: MemoryStore;
  readonly logger: ReturnType<typeof memoryLogger>;
}

/** Builds the real handler with a memory store and `flags` applied. */
export function testApp(
  flags: string[] = [],
  deps: Partial<AppDeps> = {},
): TestApp {
  const parsed = parseConfig(["--name", "test-app", ...flags], {});
  if (parsed.help) throw new Error("unexpected --help");
  const config = parsed.config;
  const clock = deps.clock ?? systemClock;
  const store = new MemoryStore(clock, config.sessionTtlMs);
  const logger = memoryLogger();
  const app = createApp({ config, store, clock, logger, ...deps });
  return {
    app,
    config,
    store,
    logger,
    async [Symbol.asyncDispose]() {
      app.close();
      await store.close();
    },
  };
}

/** Serves `handler` on a free loopback port; aborts and awaits on dispose. */
export function serve(
  handler: Deno.ServeHandler,
): { port: number; url: string } & AsyncDisposable {
  const controller = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen() {},
  }, handler);
  const port = server.addr.port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      controller.abort();
      await server.finished;
    },
  };
}

/** Flags for Debian's chromium: headless, quiet, no network of its own. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** A headless chromium with a fresh profile; dispose closes both. */
export interface BrowserSession extends AsyncDisposable {
  readonly context: BrowserContext;
  /** The first tab. */
  readonly page: Page;
}

/**
 * Starts /usr/bin/chromium through playwright-core with a fresh temporary
 * profile. Playwright loads only here, so other suites do not pay for it.
 */
export async function startBrowser(
  options: {
    viewport?: { width: number; height: number };
    /** Host names chromium resolves to 127.0.0.1 (insecure origins). */
    loopbackNames?: string[];
  } = {},
): Promise<BrowserSession> {
  const { chromium } = await importPlaywright();
  const profile = await Deno.makeTempDir({ prefix: "ws-time-chromium-" });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        ...CHROMIUM_ARGS,
        ...(options.loopbackNames ?? []).map((name) =>
          `--host-resolver-rules=MAP ${name} 127.0.0.1`
        ),
      ],
      viewport: options.viewport ?? { width: 1000, height: 800 },
    });
  } catch (error) {
    await Deno.remove(profile, { recursive: true });
    throw error;
  }
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context,
    page,
    async [Symbol.asyncDispose]() {
      await context.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Loads playwright-core. At load it probes for WSL with `fs.existsSync` on
 * a /proc/sys path, which Deno grants only under --allow-all and answers
 * with NotCapable otherwise; for that load only, such a refusal counts as
 * "absent" (it is: this is not WSL), so the test task keeps its explicit
 * permission flags.
 */
async function importPlaywright(): Promise<typeof import("playwright-core")> {
  const existsSync = nodeFs.existsSync;
  nodeFs.existsSync = (path) => {
    try {
      return existsSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) return false;
      throw error;
    }
  };
  try {
    return await import("playwright-core");
  } finally {
    nodeFs.existsSync = existsSync;
  }
}

/** A HAProxy process started by {@link startHaproxy}. */
export interface HaproxyProcess extends AsyncDisposable {
  readonly child: Child;
  /** Reads the stats page: one row per server of `backend`. */
  servers(backend?: string): Promise<HaproxyServer[]>;
}

/** One server line of HAProxy's CSV stats. */
export interface HaproxyServer {
  readonly name: string;
  /** "UP", "DOWN", "DRAIN", "UP 1/2"... */
  readonly status: string;
  readonly weight: number;
  /** Current sessions (connections) on the server. */
  readonly sessions: number;
}

/**
 * Starts Debian's haproxy in the foreground on `config` (written to a
 * temporary file) and waits until its stats frontend on `statsPort` answers.
 */
export async function startHaproxy(
  config: string,
  statsPort: number,
): Promise<HaproxyProcess> {
  const file = await Deno.makeTempFile({ suffix: ".cfg" });
  await Deno.writeTextFile(file, config);
  const child = new Child("haproxy", ["-db", "-f", file]);
  const servers = async (backend = "ws_time") => {
    const response = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`);
    const [header = "", ...rows] = (await response.text()).split("\n");
    const columns = header.replace(/^# /, "").split(",");
    const col = (name: string) => columns.indexOf(name);
    return rows.map((row) => row.split(",")).filter((cells) =>
      cells[0] === backend && !["FRONTEND", "BACKEND"].includes(cells[1]!)
    ).map((cells) => ({
      name: cells[col("svname")]!,
      status: cells[col("status")]!,
      weight: Number(cells[col("weight")]),
      sessions: Number(cells[col("scur")]),
    }));
  };
  const stop = async () => {
    child.kill("SIGTERM");
    await child.finished();
    await Deno.remove(file);
  };
  try {
    await waitFor(
      () => servers().then(() => true, () => false),
      10_000,
      "haproxy stats",
    );
  } catch (error) {
    await stop();
    throw new Error(`${error}\n${child.lines.join("\n")}`);
  }
  return { child, servers, [Symbol.asyncDispose]: stop };
}

/**
 * The page's reconnecting client ({@link WsTimeClient}) with what it saw
 * recorded: every welcome and every close of an open connection (with the
 * drain hint that preceded it), for load-balancer tests.
 */
export class TrackedClient {
  readonly client: WsTimeClient;
  /** Every welcome, with its arrival time. */
  readonly welcomes: Array<
    { server: string; seconds: number; resumed: boolean; at: number }
  > = [];
  /** Every close of an opened connection. */
  readonly closes: Array<
    { code: number; at: number; server: string; hint: number | null }
  > = [];
  /** Latest count seen (-1 before the first welcome). */
  seconds = -1;
  /** Server of the latest welcome. */
  server = "";
  #hint: number | null = null;

  /** Starts a client on `url`; `options` go to {@link WsTimeClient}. */
  constructor(url: string, options: ClientOptions = {}) {
    this.client = new WsTimeClient(url, options);
    this.client.on("message", (message) => {
      if (message.type === "welcome") {
        this.server = String(message.server);
        this.seconds = Number(message.seconds);
        this.welcomes.push({
          server: this.server,
          seconds: this.seconds,
          resumed: message.resumed === true,
          at: Date.now(),
        });
      } else if (message.type === "tick") {
        this.seconds = Number(message.seconds);
      } else if (message.type === "drain") {
        this.#hint = Number(message.reconnectAfterMs);
      }
    });
    this.client.on("close", (detail) => {
      if (!detail.opened) return;
      this.closes.push({
        code: detail.code,
        at: Date.now(),
        server: this.server,
        hint: this.#hint,
      });
      this.#hint = null;
    });
    this.client.start();
  }

  /** Stops the client and waits until its socket is gone. */
  stop(): Promise<void> {
    return this.client.stop();
  }
}
