/**
 * The defaults refuse no legitimate user: many clients behind one address
 * (a NAT, an office), and every client of a balancer that sends no
 * forwarding header or is not trusted. Clients never retry here
 * (`maxAttempts: 0`), so a single refusal shows as a missing session.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startHaproxy } from "../../dev/haproxy.ts";
import { plainHaproxyConfig } from "../../dev/plain_haproxy.ts";
import { startNginx } from "../../dev/nginx.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startRedis } from "../../dev/redis.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const SECRET = ["--session-secret", "defaults-test-secret-0123456789abcdef"];

/** Starts `count` clients on `url` and waits until each has a session. */
async function everyoneServed(
  url: string,
  count: number,
): Promise<TrackedClient[]> {
  const clients = Array.from(
    { length: count },
    () => new TrackedClient(url, { maxAttempts: 0 }),
  );
  try {
    await waitFor(
      () =>
        clients.every((c) =>
          c.welcomes.length > 0 || c.client.state === "gave-up" ||
          c.client.state === "closed"
        ),
      30_000,
      `${count} clients to be welcomed or refused`,
    );
    const served = clients.filter((c) => c.welcomes.length > 0).length;
    assert.equal(served, count, `${count - served} of ${count} refused`);
    return clients;
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
}

Deno.test("main.ts defaults: 2,000 clients from one address all get their session", async () => {
  await using server = await startServer();
  await server.child.waitForLine(/per-address limits off/);
  const sockets = Array.from(
    { length: 2000 },
    () => new RecordingSocket(server.ws, "ws-time.v1"),
  );
  try {
    await waitFor(
      () => sockets.every((s) => s.messages.length > 0 || s.closeEvent),
      60_000,
      "2000 welcomes",
    );
    const welcomed = sockets.filter((s) => s.json[0]?.type === "welcome");
    assert.equal(welcomed.length, 2000);
  } finally {
    await Promise.all(sockets.map((s) => s[Symbol.asyncDispose]()));
  }
});

Deno.test("main.ts defaults behind a plain HAProxy, with and without X-Forwarded-For: 300 of 300 clients get sessions", async () => {
  await using redis = await startRedis();
  const servers: ServerProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startServer({ args: [...SECRET, "--redis", redis.url] }),
      );
    }
    for (const forwardFor of [false, true]) {
      const port = freePort();
      const statsPort = freePort();
      await using haproxy = await startHaproxy(
        plainHaproxyConfig({
          port,
          statsPort,
          servers,
          check: "check inter 500ms",
          forwardFor,
        }),
        statsPort,
      );
      await waitFor(
        async () => (await haproxy.servers()).every((s) => s.status === "UP"),
        10_000,
        "every server UP",
      );
      const clients = await everyoneServed(`ws://127.0.0.1:${port}/`, 300);
      const perServer = new Set(clients.map((c) => c.welcomes[0]!.server));
      assert.equal(perServer.size, 3, "roundrobin reached every instance");
    }
    // The untrusted forwarding header is named once, not per request.
    const warnings = servers[0]!.child.lines.filter((l) =>
      /ignoring X-Forwarded-For/.test(l)
    );
    assert.equal(warnings.length, 1);
  } finally {
    await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
  }
});

Deno.test("main.ts defaults behind deploy/nginx.conf: 300 of 300 clients get sessions", async () => {
  await using a = await startServer({ args: SECRET });
  await using b = await startServer({ args: SECRET });
  await using nginx = await startNginx([a.port, b.port]);
  await everyoneServed(nginx.ws, 300);
});
