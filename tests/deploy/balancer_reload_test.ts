/**
 * A balancer reload loses nobody: HAProxy (master-worker, the shipped
 * config with its `hard-stop-after` shortened) and nginx (master and
 * workers, `worker_shutdown_timeout` shortened) reload while the page's
 * clients tick through them; the old process closes its tunnels at the
 * bound and every client resumes through the new one with its count.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startShippedHaproxy } from "../../dev/haproxy.ts";
import { startNginx } from "../../dev/nginx.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import { startServer } from "../../dev/server_process.ts";
import { sleep, waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const TEMPLATE = Deno.readTextFileSync(`${ROOT}deploy/haproxy.cfg`);

Deno.test("deploy/haproxy.cfg bounds a reload: the old process lets go at hard-stop-after and every client resumes through the new one", async () => {
  assert.match(TEMPLATE, /^\s+hard-stop-after \d+s$/m, "the shipped bound");
  await using redis = await startRedis();
  const args = (agentPort: number) => [
    "--agent-port",
    String(agentPort),
    "--session-secret",
    "reload-test-secret-0123456789abcdef",
    "--redis",
    redis.url,
    "--trusted-proxies",
    "127.0.0.1",
  ];
  const agents = [freePort(), freePort()];
  await using a = await startServer({
    name: "reload-a",
    args: args(agents[0]!),
  });
  await using b = await startServer({
    name: "reload-b",
    args: args(agents[1]!),
  });
  // Master-worker, as systemd runs it: SIGUSR2 reloads.
  await using haproxy = await startShippedHaproxy({
    checkInterval: "500ms",
    hardStopAfter: "3s",
    backends: [
      { name: a.name, port: a.port, agentPort: agents[0]! },
      { name: b.name, port: b.port, agentPort: agents[1]! },
    ],
  }, { masterWorker: true });
  const { port } = haproxy;
  const clients: TrackedClient[] = [];
  try {
    await waitFor(
      async () => (await haproxy.servers()).every((s) => s.status === "UP"),
      10_000,
      "both instances UP",
    );
    for (let i = 0; i < 30; i++) {
      clients.push(new TrackedClient(`ws://127.0.0.1:${port}/`));
    }
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      20_000,
      "30 clients ticking",
    );
    const before = new Map(clients.map((c) => [c, c.seconds]));
    const reloadAt = Date.now();
    haproxy.reload();
    // The old process keeps every tunnel until the hard stop...
    await sleep(2000);
    assert.ok(clients.every((c) => c.welcomes.length === 1), "held for now");
    // ...then lets go; each client resumes through the new process.
    await waitFor(
      () => clients.every((c) => c.welcomes.length >= 2),
      10_000,
      "every client resumed after the hard stop",
    );
    const resumed = clients.map((c) => c.welcomes[1]!.at - reloadAt)
      .sort((x, y) => x - y);
    // deno-lint-ignore no-console
    console.log(
      `HAProxy reload, hard-stop-after 3 s: 30 of 30 resumed, from the reload p50 ${
        resumed[15]
      } ms, max ${resumed.at(-1)} ms`,
    );
    for (const client of clients) {
      const welcome = client.welcomes[1]!;
      assert.ok(welcome.resumed, "the count went on");
      assert.ok(welcome.seconds >= before.get(client)!);
      assert.equal(client.client.state, "connected");
    }
    assert.ok(resumed[0]! >= 2500, `resumed ${resumed[0]} ms in: before it`);
    assert.ok(resumed.at(-1)! <= 3000 + 3000, `${resumed.at(-1)} ms`);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
});

Deno.test("deploy/nginx.conf bounds a reload: old workers let go at worker_shutdown_timeout and every client resumes through the new ones", async () => {
  const shipped = Deno.readTextFileSync(`${ROOT}deploy/nginx.conf`);
  assert.match(
    shipped,
    /^worker_shutdown_timeout \d+s;$/m,
    "the shipped bound",
  );
  await using redis = await startRedis();
  const args = [
    "--session-secret",
    "reload-test-secret-0123456789abcdef",
    "--redis",
    redis.url,
  ];
  await using a = await startServer({ name: "nginx-a", args });
  await using b = await startServer({ name: "nginx-b", args });
  await using nginx = await startNginx([a.port, b.port], {
    master: true,
    shutdownTimeout: "3s",
  });
  const clients: TrackedClient[] = [];
  try {
    for (let i = 0; i < 20; i++) clients.push(new TrackedClient(nginx.ws));
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      20_000,
      "20 clients ticking",
    );
    const before = new Map(clients.map((c) => [c, c.seconds]));
    const reloadAt = Date.now();
    nginx.reload();
    await sleep(2000);
    assert.ok(clients.every((c) => c.welcomes.length === 1), "held for now");
    await waitFor(
      () => clients.every((c) => c.welcomes.length >= 2),
      10_000,
      "every client resumed after the old workers let go",
    );
    const resumed = clients.map((c) => c.welcomes[1]!.at - reloadAt)
      .sort((x, y) => x - y);
    // deno-lint-ignore no-console
    console.log(
      `nginx reload, worker_shutdown_timeout 3 s: 20 of 20 resumed, from the reload p50 ${
        resumed[10]
      } ms, max ${resumed.at(-1)} ms`,
    );
    for (const client of clients) {
      const welcome = client.welcomes[1]!;
      assert.ok(welcome.resumed, "the count went on");
      assert.ok(welcome.seconds >= before.get(client)!);
    }
    assert.ok(resumed[0]! >= 2500, `resumed ${resumed[0]} ms in: before it`);
    assert.ok(resumed.at(-1)! <= 3000 + 3000, `${resumed.at(-1)} ms`);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
});
