/**
 * A frozen instance behind a plain HAProxy (not the shipped config: its
 * `timeout server` is 60 s, as many are, and ALB's idle timeout too) holds
 * the handshakes routed to it before its checks fail. The page's client
 * races a second handshake beside a hung one, so its clients still resume
 * within seconds. Real instances, Redis, HAProxy and SIGSTOP.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startHaproxy } from "../../dev/haproxy.ts";
import { plainHaproxyConfig } from "../../dev/plain_haproxy.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

Deno.test("a frozen instance behind a plain HAProxy (timeout server 60 s): its clients resume within 10 s, the hung handshakes raced by a second one", async () => {
  await using redis = await startRedis();
  const args = [
    "--session-secret",
    "frozen-test-secret-0123456789abcdef",
    "--redis",
    redis.url,
    "--rebalance",
    "false",
  ];
  await using a = await startServer({ name: "frozen-a", args });
  await using b = await startServer({ name: "frozen-b", args });
  await using c = await startServer({ name: "frozen-c", args });
  const port = freePort();
  const statsPort = freePort();
  await using haproxy = await startHaproxy(
    // Leastconn and HAProxy's default checks (every 2 s, down after 3).
    plainHaproxyConfig({
      port,
      statsPort,
      servers: [a, b, c],
      balance: "leastconn",
    }),
    statsPort,
  );
  await waitFor(
    async () => (await haproxy.servers()).every((s) => s.status === "UP"),
    10_000,
    "every server UP",
  );
  const clients = Array.from(
    { length: 60 },
    () => new TrackedClient(`ws://127.0.0.1:${port}/`),
  );
  try {
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      20_000,
      "60 clients ticking",
    );
    const frozen = clients.filter((c) => c.server === "frozen-a");
    assert.ok(frozen.length >= 10, `${frozen.length} clients on frozen-a`);
    const before = new Map(frozen.map((c) => [c, c.welcomes.length]));
    const frozeAt = Date.now();
    a.child.kill("SIGSTOP");
    let downAfter = -1;
    try {
      await waitFor(
        async () => {
          if (downAfter < 0) {
            const servers = await haproxy.servers();
            const state = servers.find((s) => s.name === "frozen-a")?.status;
            if (state && !state.startsWith("UP")) {
              downAfter = Date.now() - frozeAt;
            }
          }
          return frozen.every((c) => c.welcomes.length > before.get(c)!);
        },
        20_000,
        "every client of the frozen instance resumed",
      );
    } finally {
      a.child.kill("SIGCONT");
    }
    const times = frozen.map((c) => c.welcomes.at(-1)!.at - frozeAt)
      .sort((x, y) => x - y);
    const p99 = times[Math.ceil(times.length * 0.99) - 1]!;
    // deno-lint-ignore no-console
    console.log(
      `HAProxy marked the frozen instance down ${
        downAfter < 0 ? "not before all had resumed" : `after ${downAfter} ms`
      }; ${frozen.length} clients of a frozen instance resumed: p50 ${
        times[Math.floor(times.length / 2)]
      } ms, p99 ${p99} ms, max ${times.at(-1)} ms`,
    );
    for (const client of frozen) {
      const welcome = client.welcomes.at(-1)!;
      assert.notEqual(welcome.server, "frozen-a");
      assert.ok(welcome.resumed, "the count went on");
    }
    assert.ok(p99 <= 10_000, `p99 ${p99} ms`);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
});
