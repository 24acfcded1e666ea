import assert from "node:assert/strict";
import { Child } from "./helpers/child.ts";
import { ROOT } from "./helpers/paths.ts";
import { freePort } from "./helpers/ports.ts";
import { startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/timing.ts";
import { TrackedClient } from "./helpers/tracked_client.ts";

const CONFIG = `${ROOT}deploy/nginx.conf`;

/**
 * The shipped config with loopback addresses, its pid and error log in
 * `dir`, and the workers running as the current user.
 */
function localConfig(port: number, upstreams: number[], dir: string): string {
  let serversWritten = false;
  return Deno.readTextFileSync(CONFIG).split("\n").flatMap((line) => {
    const trimmed = line.trim();
    if (/^user\s/.test(trimmed)) return [];
    if (/^pid\s/.test(trimmed)) return [`pid ${dir}/nginx.pid;`];
    if (/^error_log\s/.test(trimmed)) return ["error_log stderr warn;"];
    if (/^listen\s/.test(trimmed)) return [`        listen 127.0.0.1:${port};`];
    if (/^server\s+\S+:\d+/.test(trimmed)) {
      if (serversWritten) return [];
      serversWritten = true;
      const options = trimmed.replace(/^server\s+\S+\s*/, "");
      return upstreams.map((p) => `        server 127.0.0.1:${p} ${options}`);
    }
    return [line];
  }).join("\n");
}

Deno.test("nginx -t accepts deploy/nginx.conf", async () => {
  await using check = new Child("nginx", ["-t", "-c", CONFIG]);
  const status = await check.finished();
  assert.equal(status.code, 0, check.lines.join("\n"));
  assert.ok(check.lines.some((l) => /test is successful/.test(l)));
});

Deno.test("nginx with deploy/nginx.conf proxies WebSockets and retries a draining instance's 503 on the next one", async () => {
  const secret = ["--session-secret", "nginx-test-secret-0123456789"];
  await using draining = await startServer({
    args: [...secret, "--drain-delay", "1m"],
  });
  await using serving = await startServer({ args: secret });
  draining.child.kill("SIGTERM");
  await draining.child.waitForLine(/draining/);

  const dir = await Deno.makeTempDir();
  const port = freePort();
  const file = `${dir}/nginx.conf`;
  await Deno.writeTextFile(
    file,
    localConfig(port, [draining.port, serving.port], dir),
  );
  const nginx = new Child("nginx", [
    "-c",
    file,
    "-p",
    dir,
    "-g",
    "daemon off; master_process off;",
  ]);
  const clients: TrackedClient[] = [];
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
    for (let i = 0; i < 6; i++) {
      clients.push(
        new TrackedClient(`ws://127.0.0.1:${port}/`, { maxAttempts: 0 }),
      );
    }
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      10_000,
      "ticks through nginx",
    );
    // least_conn sends some upgrades to the draining instance first; its
    // 503 makes nginx try the other one, so every client lands there.
    assert.ok(clients.every((c) => c.server === serving.name));
    assert.ok(clients.every((c) => c.closes.length === 0));
    const metrics = await (await fetch(`${draining.http}/metrics`)).text();
    const refused = /wstime_upgrades_refused_total\{reason="draining"\} (\d+)/
      .exec(metrics);
    assert.ok(Number(refused?.[1]) >= 1, "nginx did try the draining one");
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    nginx.kill("SIGQUIT");
    await nginx.finished();
    await Deno.remove(dir, { recursive: true });
  }
});
