import assert from "node:assert/strict";
import { renderHaproxyConfig } from "../../dev/haproxy_config.ts";
import { Child } from "../../dev/child.ts";
import { type HaproxyProcess, startHaproxy } from "../../dev/haproxy.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { type RedisProcess, startRedis } from "../../dev/redis.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const TEMPLATE = Deno.readTextFileSync(`${ROOT}deploy/haproxy.cfg`);
const SECRET = "haproxy-test-secret-0123456789abcdef";

interface Cluster extends AsyncDisposable {
  readonly servers: ServerProcess[];
  readonly agentPorts: number[];
  readonly haproxy: HaproxyProcess;
  /** ws:// URL of the HAProxy frontend. */
  readonly url: string;
}

/**
 * Three ws-time instances sharing one Redis and token secret behind HAProxy
 * running the deploy config (checks every 500 ms instead of 2 s, to keep
 * tests short).
 */
async function startCluster(args: string[] = [], count = 3): Promise<Cluster> {
  const agentPorts = Array.from({ length: count }, () => freePort());
  const servers: ServerProcess[] = [];
  let redis: RedisProcess | undefined;
  const stopServers = async () => {
    await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
    await redis?.[Symbol.asyncDispose]();
  };
  try {
    redis = await startRedis();
    const redisUrl = redis.url;
    servers.push(
      ...await Promise.all(agentPorts.map((agentPort) =>
        startServer({
          args: [
            "--agent-port",
            String(agentPort),
            "--session-secret",
            SECRET,
            "--redis",
            redisUrl,
            // HAProxy is the peer: believe its X-Forwarded-For, as deployed.
            "--trusted-proxies",
            "127.0.0.1",
            ...args,
          ],
        })
      )),
    );
    const port = freePort();
    const statsPort = freePort();
    const config = renderHaproxyConfig(TEMPLATE, {
      port,
      statsPort,
      checkInterval: "500ms",
      backends: servers.map((s, i) => ({
        name: s.name,
        port: s.port,
        agentPort: agentPorts[i]!,
      })),
    });
    const haproxy = await startHaproxy(config, statsPort);
    try {
      await waitFor(
        async () => (await haproxy.servers()).every((s) => s.status === "UP"),
        10_000,
        "every server UP in haproxy",
      );
    } catch (error) {
      await haproxy[Symbol.asyncDispose]();
      throw error;
    }
    return {
      servers,
      agentPorts,
      haproxy,
      url: `ws://127.0.0.1:${port}/`,
      async [Symbol.asyncDispose]() {
        await haproxy[Symbol.asyncDispose]();
        await stopServers();
      },
    };
  } catch (error) {
    await stopServers();
    throw error;
  }
}

/**
 * `count` clients through `url`, returned once every one of them has had a
 * tick (the first second of its session); stopped when the scope ends.
 */
async function tickingClients(
  url: string,
  count: number,
): Promise<{ clients: TrackedClient[] } & AsyncDisposable> {
  const clients = Array.from(
    { length: count },
    () => new TrackedClient(url),
  );
  const stop = async () => {
    await Promise.all(clients.map((c) => c.stop()));
  };
  try {
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      30_000,
      `${count} clients ticking`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { clients, [Symbol.asyncDispose]: stop };
}

function byServer(clients: TrackedClient[]): Map<string, TrackedClient[]> {
  const groups = new Map<string, TrackedClient[]>();
  for (const client of clients) {
    groups.set(client.server, [...groups.get(client.server) ?? [], client]);
  }
  return groups;
}

async function agentSays(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return await new Response(conn.readable).text();
}

Deno.test("haproxy -c accepts deploy/haproxy.cfg and its loopback rendering", async () => {
  await using shipped = new Child("haproxy", [
    "-c",
    "-f",
    `${ROOT}deploy/haproxy.cfg`,
  ]);
  assert.equal((await shipped.finished()).code, 0, shipped.lines.join("\n"));
  assert.ok(shipped.lines.some((l) => /Configuration file is valid/.test(l)));

  const file = await Deno.makeTempFile({ suffix: ".cfg" });
  try {
    await Deno.writeTextFile(
      file,
      renderHaproxyConfig(TEMPLATE, {
        port: 18080,
        statsPort: 18081,
        backends: [{ name: "a", port: 18000, agentPort: 18001 }],
      }),
    );
    await using local = new Child("haproxy", ["-c", "-f", file]);
    const status = await local.finished();
    assert.equal(status.code, 0, local.lines.join("\n"));
    assert.ok(
      !local.lines.some((l) => /WARNING|ALERT/.test(l)),
      local.lines.join("\n"),
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("deploy/haproxy.cfg: after SIGKILL of an instance its clients resume on survivors within 5 s with their counts", async () => {
  await using cluster = await startCluster();
  await using group = await tickingClients(cluster.url, 300);
  const { clients } = group;
  const groups = byServer(clients);
  assert.equal(groups.size, 3, "leastconn spreads clients over 3 instances");
  const victim = cluster.servers[0]!;
  const orphans = groups.get(victim.name)!;
  const others = clients.filter((c) => c.server !== victim.name);
  const before = new Map(orphans.map((c) => [c, c.seconds]));
  const othersClosed = others.reduce((n, c) => n + c.closes.length, 0);

  const killedAt = Date.now();
  victim.child.kill("SIGKILL");
  await waitFor(
    () => orphans.every((c) => c.welcomes.length >= 2),
    10_000,
    "every orphan resumed",
  );
  for (const client of orphans) {
    const resumed = client.welcomes[1]!;
    assert.notEqual(resumed.server, victim.name);
    assert.ok(resumed.resumed, "the session was resumed, not restarted");
    assert.ok(
      resumed.at - killedAt <= 5000,
      `resumed after ${resumed.at - killedAt} ms`,
    );
    const last = before.get(client)!;
    const elapsed = Math.ceil((resumed.at - killedAt) / 1000);
    assert.ok(
      resumed.seconds >= last && resumed.seconds <= last + elapsed + 2,
      `count ${last} continued as ${resumed.seconds}`,
    );
  }
  const slowest = Math.max(...orphans.map((c) => c.welcomes[1]!.at - killedAt));
  // deno-lint-ignore no-console
  console.log(
    `${orphans.length} orphans resumed on survivors, slowest after ${slowest} ms`,
  );
  assert.equal(
    others.reduce((n, c) => n + c.closes.length, 0),
    othersClosed,
    "clients of the survivors were not disturbed",
  );
  // The survivors found the orphans' sessions in the shared Redis.
  let fromStore = 0;
  for (const server of cluster.servers.slice(1)) {
    const text = await (await fetch(`${server.http}/metrics`)).text();
    fromStore += Number(
      /^wstime_sessions_total\{kind="resumed",from="store"\} (\d+)$/m.exec(text)
        ?.[1] ?? 0,
    );
  }
  assert.equal(fromStore, orphans.length);
});

Deno.test("deploy/haproxy.cfg: an instance over its threshold gets no new connections, keeps its own, and its agent weight follows the load", async () => {
  await using cluster = await startCluster(["--max-connections", "20"]);
  const [busy, ...rest] = cluster.servers;
  const weightOf = async (name: string) =>
    (await cluster.haproxy.servers()).find((s) => s.name === name)!;

  // 8 of 20 connections: 40% used, weight about 60%.
  const direct: RecordingSocket[] = [];
  const closeDirect = () =>
    Promise.all(direct.map((s) => s[Symbol.asyncDispose]()));
  try {
    for (let i = 0; i < 8; i++) {
      direct.push(new RecordingSocket(busy!.ws, "ws-time.v1"));
    }
    const loaded = await waitFor(
      async () => {
        const server = await weightOf(busy!.name);
        return server.weight <= 65 ? server : null;
      },
      5000,
      "agent weight to fall",
    );
    assert.ok(loaded.weight >= 50, `weight ${loaded.weight} at 40% use`);
    assert.equal(loaded.status, "UP");
    for (const other of rest) {
      assert.ok((await weightOf(other.name)).weight >= 90);
    }

    // 13 of 20: 65%, above the 60% threshold: out of rotation.
    for (let i = 0; i < 5; i++) {
      direct.push(new RecordingSocket(busy!.ws, "ws-time.v1"));
    }
    await waitFor(
      async () => (await weightOf(busy!.name)).status === "DOWN",
      5000,
      "HAProxy to mark the busy instance down",
    );
    await using group = await tickingClients(cluster.url, 15);
    assert.ok(
      group.clients.every((c) => c.server !== busy!.name),
      "no new client landed on the overloaded instance",
    );
    // Its own 13 connections stay up and keep ticking.
    const counts = direct.map((s) => s.messages.length);
    await Promise.all(direct.map((s, i) => s.waitForMessages(counts[i]! + 1)));
    assert.ok(direct.every((s) => s.closeEvent === undefined));

    // Load gone: healthy again below the recover mark, full weight back.
    await closeDirect();
    await waitFor(
      async () => {
        const server = await weightOf(busy!.name);
        return server.status === "UP" && server.weight >= 90;
      },
      5000,
      "the instance back in rotation",
    );
  } finally {
    await closeDirect();
  }
});

Deno.test("main.ts on SIGTERM through HAProxy: health and agent turn at once, moves wait for the delay and the handover, spread over the period, and every client moves without missing a tick", async () => {
  await using cluster = await startCluster([
    "--drain-delay",
    "2s",
    // No replacement comes (a scale-in): the drain waits this long for one.
    "--drain-handover",
    "1s",
    "--drain-period",
    "4s",
  ]);
  await using group = await tickingClients(cluster.url, 90);
  const { clients } = group;
  const leaving = cluster.servers[0]!;
  const drained = clients.filter((c) => c.server === leaving.name);
  const n = drained.length;
  assert.ok(n >= 20, `${n} clients on the leaving instance`);
  const before = new Map(drained.map((c) => [c, c.seconds]));
  for (const client of clients) client.markGaps();

  const termAt = Date.now();
  leaving.child.kill("SIGTERM");
  const health = await waitFor(
    async () => {
      const response = await fetch(`${leaving.http}/healthcheck`);
      const text = await response.text();
      return response.status === 503 ? text : null;
    },
    1000,
    "healthcheck to fail",
  );
  assert.equal(health, "draining\n");
  assert.equal(await agentSays(cluster.agentPorts[0]!), "drain\n");
  assert.equal(leaving.child.status, undefined, "still serving meanwhile");

  const status = await leaving.child.finished();
  assert.equal(status.code, 0, "exits 0 after the drain");
  await waitFor(
    () => drained.every((c) => c.server !== leaving.name),
    10_000,
    "every drained client elsewhere",
  );

  // Make before break: each client opened its new connection while the old
  // one ticked, so none lost a connection and none missed a tick.
  for (const client of drained) {
    assert.equal(client.moves.length, 1, "moved once");
    assert.deepEqual(client.closes, [], "no connection lost");
    const move = client.moves[0]!;
    assert.equal(move.reason, "drain");
    assert.equal(move.from, leaving.name);
    assert.notEqual(move.to, leaving.name);
    assert.ok(move.at - termAt >= 2900, `moved ${move.at - termAt} ms in`);
    // Delay, handover (polled every 250 ms), period, hint and handshake.
    assert.ok(
      move.at - termAt <= 2000 + 1250 + 4000 + 1500,
      `moved ${move.at - termAt} ms in`,
    );
    const resumed = client.welcomes.at(-1)!;
    assert.ok(resumed.resumed);
    assert.ok(resumed.seconds >= before.get(client)!);
  }
  const gaps = drained.map((c) => c.longestGapMs).sort((a, b) => a - b);
  // The asks are spread over the period: no second holds more than a fair
  // share (the moves themselves follow each ask by its jittered hint).
  const perSecond = new Map<number, number>();
  for (const client of drained) {
    const asked = client.drains[0]!.at - termAt;
    assert.ok(asked >= 2900, `asked ${asked} ms in: before delay + handover`);
    const second = Math.floor((asked - 3000) / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  const fair = Math.ceil(n / 4);
  const busiest = Math.max(...perSecond.values());
  // deno-lint-ignore no-console
  console.log(
    `${n} moved: per second ${
      JSON.stringify([...perSecond.entries()].sort((a, b) => a[0] - b[0]))
    }; longest tick gap p50 ${gaps[Math.floor(n / 2)]!.toFixed(0)} ms, max ${
      gaps.at(-1)!.toFixed(0)
    } ms`,
  );
  assert.ok(busiest <= fair + 2, `busiest second held ${busiest} of ${n}`);
  // No moved client missed a tick (the once-seen late tick came from the
  // ticker, server/ws/ticker.ts).
  const late = drained.filter((c) => c.longestGapMs > 1500);
  assert.deepEqual(
    late.map((c) => c.longestGapMs.toFixed(0)),
    [],
    "moved clients that waited over 1.5 s (ms)",
  );
});
