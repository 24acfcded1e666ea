/**
 * The per-source limits of the shipped balancer configs against the users
 * they must never refuse: 2,000 people behind one NAT address (here all
 * from 127.0.0.1), each running the page's client, through the shipped
 * HAProxy and then the shipped nginx; in each, one of the two instances is
 * killed so that its half reconnects at once. Nobody may be refused, and
 * the figures the configs' comments quote come from here.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startShippedHaproxy } from "../../dev/haproxy.ts";
import { startNginx } from "../../dev/nginx.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { silentWebSocket } from "../helpers/raw_http.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const USERS = 2000;

/** Two instances on one Redis, every user of the NAT ticking through `url`. */
async function natStorm(
  redisUrl: string,
  url: (a: ServerProcess, b: ServerProcess) => Promise<string>,
  watch: () => Promise<void> = async () => {},
): Promise<{ clients: TrackedClient[]; stop: () => Promise<void> }> {
  const start = () =>
    startServer({
      args: [
        "--redis",
        redisUrl,
        "--session-secret",
        "nat-test-secret-0123456789abcdefghijk",
        "--trusted-proxies",
        "127.0.0.1",
      ],
    });
  const a = await start();
  const b = await start();
  const target = await url(a, b);
  // A first reading before anyone connects: the window counts them all.
  await watch();
  const clients: TrackedClient[] = [];
  for (let i = 0; i < USERS; i++) {
    clients.push(new TrackedClient(target));
    // As a working day starts, not all in one millisecond.
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  };
  try {
    await waitFor(
      async () => (await watch(), clients.every((c) => c.seconds >= 1)),
      60_000,
      `${USERS} users ticking`,
    );
    // The instance half of them are on dies: they all come back at once.
    const welcomed = new Map(clients.map((c) => [c, c.welcomes.length]));
    const onB = clients.filter((c) => c.server === b.name);
    assert.ok(onB.length > USERS / 4, `${onB.length} users on b`);
    b.child.kill("SIGKILL");
    await b.child.finished();
    await waitFor(
      async () => (await watch(),
        onB.every((c) => c.welcomes.length > welcomed.get(c)!) &&
        clients.every((c) => c.server === a.name)),
      60_000,
      "every user back on the surviving instance",
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { clients, stop };
}

Deno.test("a NAT of 2,000 users, a reconnect storm included, is never refused by the shipped HAProxy or nginx limits", async () => {
  await using redis = await startRedis();

  // HAProxy: its stats say how many connections the one source held at
  // once and opened per 10 s, the two figures its limits are on.
  let haproxy: Awaited<ReturnType<typeof startShippedHaproxy>> | undefined;
  const totals: Array<{ at: number; total: number }> = [];
  let peakRate = 0;
  const watch = async () => {
    const f = await haproxy!.frontend();
    const now = performance.now();
    totals.push({ at: now, total: f.total });
    const since = totals.find((t) => t.at >= now - 10_000)!;
    peakRate = Math.max(peakRate, f.total - since.total);
  };
  const viaHaproxy = await natStorm(redis.url, async (a, b) => {
    haproxy = await startShippedHaproxy({
      checkInterval: "500ms",
      // Within this machine's 20,000 descriptors a process: two each.
      maxconn: 9000,
      backends: [a, b].map((s) => ({
        name: s.name,
        port: s.port,
        agentPort: freePort(),
      })),
    });
    await waitFor(
      async () => (await haproxy!.servers()).every((s) => s.status === "UP"),
      10_000,
      "both UP",
    );
    return `ws://127.0.0.1:${haproxy.port}/`;
  }, watch);
  const haproxyFigures = await haproxy!.frontend();
  const lost =
    viaHaproxy.clients.filter((c) =>
      c.welcomes.slice(1).some((w) => !w.resumed)
    ).length;
  await viaHaproxy.stop();
  await haproxy![Symbol.asyncDispose]();
  // deno-lint-ignore no-console
  console.log(
    `NAT of ${USERS} users through deploy/haproxy.cfg: at most ${haproxyFigures.max} connections open at once and ${peakRate} new in 10 s; ${haproxyFigures.denied} denied, ${lost} sessions lost`,
  );
  assert.equal(haproxyFigures.denied, 0, "HAProxy refused a user");
  assert.equal(haproxyFigures.responses4xx, 0, "a user got a 4xx");
  assert.equal(lost, 0, "a count restarted");
  const limit = (pattern: RegExp) =>
    Number(
      pattern.exec(Deno.readTextFileSync(
        new URL("../../deploy/haproxy.cfg", import.meta.url),
      ))?.[1],
    );
  // The limits leave at least twice what the NAT needed.
  assert.ok(haproxyFigures.max * 2 <= limit(/sc0_conn_cur gt (\d+)/));
  assert.ok(peakRate * 2 <= limit(/sc0_conn_rate gt (\d+)/));

  // nginx logs every request its limits refuse ("limiting ...").
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  const viaNginx = await natStorm(redis.url, async (a, b) => {
    nginx = await startNginx([a.port, b.port]);
    return nginx.ws;
  });
  const refusals = nginx!.child.lines.filter((l) => /limiting /.test(l));
  const lostNginx =
    viaNginx.clients.filter((c) => c.welcomes.slice(1).some((w) => !w.resumed))
      .length;
  await viaNginx.stop();
  await nginx![Symbol.asyncDispose]();
  // deno-lint-ignore no-console
  console.log(
    `NAT of ${USERS} users through deploy/nginx.conf: ${refusals.length} refused, ${lostNginx} sessions lost`,
  );
  assert.deepEqual(refusals, []);
  assert.equal(lostNginx, 0, "a count restarted");
});

Deno.test("the shipped per-source limits do refuse one address past them, with 429 (lowered to 20 to reach them)", async () => {
  await using server = await startServer();
  await using haproxy = await startShippedHaproxy({
    perSourceLimit: 20,
    backends: [{ name: server.name, port: server.port, agentPort: freePort() }],
  });
  await using nginx = await startNginx([server.port], { perSourceLimit: 20 });
  await waitFor(
    async () => (await haproxy.servers()).every((s) => s.status === "UP"),
    10_000,
    "UP",
  );
  const balancers = [["haproxy", haproxy.port], ["nginx", nginx.port]] as const;
  for (const [name, port] of balancers) {
    // One after another: each is held open while the next one asks.
    const sockets = [];
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const socket = silentWebSocket({ port });
      sockets.push(socket);
      statuses.push(await socket.status);
    }
    const count = (code: number) => statuses.filter((s) => s === code).length;
    // deno-lint-ignore no-console
    console.log(
      `${name} limited to 20: ${count(101)} upgraded, ${
        count(429)
      } refused with 429`,
    );
    assert.deepEqual(
      statuses,
      [...Array(20).fill(101), ...Array(10).fill(429)],
      name,
    );
    await Promise.all(sockets.map((s) => s[Symbol.asyncDispose]()));
  }
});
