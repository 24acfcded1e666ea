/**
 * A ws-time server in its own process, started exactly as `deno task
 * start` runs it (same permission flags) on a free loopback port, and
 * the JSON detail of its health check.
 *
 * @module
 */

import { Child } from "./child.ts";
import { ROOT } from "./paths.ts";
import { freePort } from "./ports.ts";

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
 * Starts `main.ts` in its own process on a free loopback port (or `port`)
 * and waits for its listening line. Extra flags go in `args`, environment
 * in `env`; the server is named `name` (default `srv-<port>`).
 */
export async function startServer(
  options: {
    args?: string[];
    env?: Record<string, string>;
    port?: number;
    name?: string;
    /** Replaces {@link SERVER_PERMISSIONS}. */
    permissions?: readonly string[];
    /** A command the server is started through (it must exec its args). */
    wrap?: readonly string[];
  } = {},
): Promise<ServerProcess> {
  const port = options.port ?? freePort();
  const name = options.name ?? `srv-${port}`;
  const wrap = options.wrap ?? [];
  const command = wrap[0] ?? Deno.execPath();
  const prefix = wrap.length > 0 ? [...wrap.slice(1), Deno.execPath()] : [];
  const child = new Child(command, [
    ...prefix,
    "run",
    ...(options.permissions ?? SERVER_PERMISSIONS),
    `${ROOT}main.ts`,
    "--hostname",
    "127.0.0.1",
    "--port",
    String(port),
    "--name",
    name,
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

/**
 * One series of a server's /metrics (`name` or `name{labels}`, as written
 * there), or NaN when it is absent.
 */
export async function metricValue(
  http: string,
  series: string,
): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1) ?? NaN);
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
