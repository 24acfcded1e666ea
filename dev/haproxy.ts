/**
 * A real haproxy in the foreground on a given config, and its CSV stats.
 *
 * @module
 */

import { Child } from "./child.ts";
import { renderHaproxyConfig, type RenderOptions } from "./haproxy_config.ts";
import { ROOT } from "./paths.ts";
import { freePort } from "./ports.ts";
import { waitFor } from "./timing.ts";

/** A HAProxy process started by {@link startHaproxy}. */
export interface HaproxyProcess extends AsyncDisposable {
  readonly child: Child;
  /** Reads the stats page: one row per server of `backend`. */
  servers(backend?: string): Promise<HaproxyServer[]>;
  /** Reads the stats page's row of frontend `name` (default ws_time). */
  frontend(name?: string): Promise<HaproxyFrontend>;
  /** Reloads the config (SIGUSR2 to the master; needs `masterWorker`). */
  reload(): void;
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

/** What the stats page says of a frontend. */
export interface HaproxyFrontend {
  /** Connections open now, and the most at once since the start. */
  readonly current: number;
  readonly max: number;
  /** Connections accepted since the start. */
  readonly total: number;
  /** Requests answered 4xx by HAProxy itself or a server. */
  readonly responses4xx: number;
  /** Requests denied by an http-request rule. */
  readonly denied: number;
}

/**
 * Starts Debian's haproxy in the foreground on `config` (written to a
 * temporary file) and waits until its stats frontend on `statsPort` answers.
 * `masterWorker` runs it as systemd does, so that it can reload.
 */
export async function startHaproxy(
  config: string,
  statsPort: number,
  options: { readonly masterWorker?: boolean } = {},
): Promise<HaproxyProcess> {
  const file = await Deno.makeTempFile({ suffix: ".cfg" });
  await Deno.writeTextFile(file, config);
  const child = new Child("haproxy", [
    ...(options.masterWorker ? ["-W"] : []),
    "-db",
    "-f",
    file,
  ]);
  const table = async () => {
    const response = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`);
    const [header = "", ...rows] = (await response.text()).split("\n");
    const columns = header.replace(/^# /, "").split(",");
    const col = (name: string) => columns.indexOf(name);
    return { rows, col };
  };
  const frontend = async (name = "ws_time"): Promise<HaproxyFrontend> => {
    const { rows, col } = await table();
    const cells = rows.map((row) => row.split(",")).find((c) =>
      c[0] === name && c[1] === "FRONTEND"
    );
    if (!cells) throw new Error(`no frontend ${name}`);
    const n = (column: string) => Number(cells[col(column)] || 0);
    return {
      current: n("scur"),
      max: n("smax"),
      total: n("stot"),
      responses4xx: n("hrsp_4xx"),
      denied: n("dreq"),
    };
  };
  const servers = async (backend = "ws_time") => {
    const { rows, col } = await table();
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
  return {
    child,
    servers,
    frontend,
    reload: () => child.kill("SIGUSR2"),
    [Symbol.asyncDispose]: stop,
  };
}

/** A HAProxy on the shipped config, with the port its frontend listens on. */
export interface ShippedHaproxy extends HaproxyProcess {
  readonly port: number;
}

/**
 * Starts HAProxy on `deploy/haproxy.cfg` as rendered for loopback (see
 * haproxy_config.ts), its frontend and stats on free ports; `render`
 * holds everything else the rendering takes.
 */
export async function startShippedHaproxy(
  render: Omit<RenderOptions, "port" | "statsPort">,
  options: { readonly masterWorker?: boolean } = {},
): Promise<ShippedHaproxy> {
  const port = freePort();
  const statsPort = freePort();
  const template = await Deno.readTextFile(`${ROOT}deploy/haproxy.cfg`);
  const haproxy = await startHaproxy(
    renderHaproxyConfig(template, { ...render, port, statsPort }),
    statsPort,
    options,
  );
  return Object.assign(haproxy, { port });
}
