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
  /** ws:// URL of its frontend. */
  readonly ws: string;
}

/** deploy/nginx.conf with loopback addresses and files under `dir`. */
export function localNginxConfig(
  port: number,
  upstreams: readonly number[],
  dir: string,
): string {
  let serversWritten = false;
  return Deno.readTextFileSync(`${ROOT}deploy/nginx.conf`).split("\n").flatMap(
    (line) => {
      const trimmed = line.trim();
      if (/^user\s/.test(trimmed)) return [];
      if (/^pid\s/.test(trimmed)) return [`pid ${dir}/nginx.pid;`];
      if (/^error_log\s/.test(trimmed)) return ["error_log stderr warn;"];
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
): Promise<NginxProcess> {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const file = `${dir}/nginx.conf`;
  await Deno.writeTextFile(file, localNginxConfig(port, upstreams, dir));
  const nginx = new Child("nginx", [
    "-c",
    file,
    "-p",
    dir,
    "-g",
    "daemon off; master_process off;",
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
    ws: `ws://127.0.0.1:${port}/`,
    [Symbol.asyncDispose]: stop,
  };
}
