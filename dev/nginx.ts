/**
 * A real nginx on the shipped deploy/nginx.conf, rewritten for loopback:
 * its listen port, the given upstreams, and its pid and log in a
 * temporary folder, with the workers running as the current user.
 *
 * @module
 */

import { Child } from "./child.ts";
import { ROOT } from "./paths.ts";
import { freePort } from "./ports.ts";
import { waitFor } from "./timing.ts";

/** A running nginx. */
export interface NginxProcess extends AsyncDisposable {
  readonly port: number;
  /** The process; its lines are nginx's error log (stderr, warn and up). */
  readonly child: Child;
  /** ws:// URL of its frontend. */
  readonly ws: string;
  /** Reloads the config (SIGHUP to the master; needs `master: true`). */
  reload(): void;
}

/** How to run it. */
export interface NginxOptions {
  /** A master process with workers, as deployed, so it can reload. */
  readonly master?: boolean;
  /** Replaces `worker_shutdown_timeout` (how long old workers linger). */
  readonly shutdownTimeout?: string;
  /** Replaces the per-source limits (open, and the burst of new), a test's. */
  readonly perSourceLimit?: number;
}

/** deploy/nginx.conf with loopback addresses and files under `dir`. */
export function localNginxConfig(
  port: number,
  upstreams: readonly number[],
  dir: string,
  options: NginxOptions = {},
): string {
  let serversWritten = false;
  return Deno.readTextFileSync(`${ROOT}deploy/nginx.conf`).split("\n").flatMap(
    (line) => {
      const trimmed = line.trim();
      if (/^user\s/.test(trimmed)) return [];
      if (/^pid\s/.test(trimmed)) return [`pid ${dir}/nginx.pid;`];
      if (
        /^worker_shutdown_timeout\s/.test(trimmed) && options.shutdownTimeout
      ) {
        return [`worker_shutdown_timeout ${options.shutdownTimeout};`];
      }
      if (/^worker_processes\s/.test(trimmed) && options.master) {
        return ["worker_processes 1;"];
      }
      if (/^error_log\s/.test(trimmed)) return ["error_log stderr warn;"];
      if (
        /^limit_(conn per_source|req zone)/.test(trimmed) &&
        options.perSourceLimit
      ) {
        return [
          line.replace(/(per_source|burst=)\d+/, `$1${options.perSourceLimit}`)
            .replace(
              /per_source (\d+)/,
              `per_source ${options.perSourceLimit}`,
            ),
        ];
      }
      if (/^listen\s/.test(trimmed)) {
        return [`        listen 127.0.0.1:${port};`];
      }
      if (/^server\s+\S+:\d+/.test(trimmed)) {
        if (serversWritten) return [];
        serversWritten = true;
        const options = trimmed.replace(/^server\s+\S+\s*/, "");
        return upstreams.map((p) => `        server 127.0.0.1:${p} ${options}`);
      }
      return [line];
    },
  ).join("\n");
}

/** Starts nginx in front of `upstreams` and waits until it answers. */
export async function startNginx(
  upstreams: readonly number[],
  options: NginxOptions = {},
): Promise<NginxProcess> {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const file = `${dir}/nginx.conf`;
  await Deno.writeTextFile(
    file,
    localNginxConfig(port, upstreams, dir, options),
  );
  // Workers of a root master would run as nobody, who cannot reach the
  // temporary folder: they run as whoever runs the test.
  const user = Deno.uid() === 0 ? " user root root;" : "";
  const nginx = new Child("nginx", [
    "-c",
    file,
    "-p",
    dir,
    "-g",
    options.master ? `daemon off;${user}` : "daemon off; master_process off;",
  ]);
  const stop = async () => {
    nginx.kill("SIGQUIT");
    await nginx.finished();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitFor(
      () =>
        fetch(`http://127.0.0.1:${port}/healthz`).then(
          async (r) => (await r.body?.cancel(), true),
          () => false,
        ),
      10_000,
      "nginx to listen",
    );
  } catch (error) {
    await stop();
    throw new Error(`${error}\n${nginx.lines.join("\n")}`);
  }
  return {
    port,
    child: nginx,
    ws: `ws://127.0.0.1:${port}/`,
    reload: () => nginx.kill("SIGHUP"),
    [Symbol.asyncDispose]: stop,
  };
}
