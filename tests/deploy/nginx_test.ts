import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { startNginx } from "../../dev/nginx.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const CONFIG = `${ROOT}deploy/nginx.conf`;

Deno.test("nginx -t accepts deploy/nginx.conf", async () => {
  await using check = new Child("nginx", ["-t", "-c", CONFIG]);
  const status = await check.finished();
  assert.equal(status.code, 0, check.lines.join("\n"));
  assert.ok(check.lines.some((l) => /test is successful/.test(l)));
});

Deno.test("nginx with deploy/nginx.conf proxies WebSockets and retries a draining instance's 503 on the next one", async () => {
  const secret = ["--session-secret", "nginx-test-secret-0123456789abcdef"];
  await using draining = await startServer({
    args: [...secret, "--drain-delay", "1m"],
  });
  await using serving = await startServer({ args: secret });
  draining.child.kill("SIGTERM");
  await draining.child.waitForLine(/draining/);

  await using nginx = await startNginx([draining.port, serving.port]);
  const clients: TrackedClient[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      clients.push(
        new TrackedClient(nginx.ws, { maxAttempts: 0 }),
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
  }
});
