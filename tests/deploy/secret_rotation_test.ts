/**
 * A rolling rotation of the session secret, as docs/security.md tells an
 * operator to do it: three instances behind HAProxy (round robin, so a
 * moving client lands on old and new instances alike) and 300 clients of
 * the page's module. First each instance is replaced by one signing with
 * the new secret and still accepting the old one; after one token interval
 * each is replaced again by one that knows the new secret only. No count
 * may restart in either roll: the first proves the old tokens verify, the
 * second that no client needs one any more.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type HaproxyProcess, startShippedHaproxy } from "../../dev/haproxy.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const CLIENTS = 300;
const OLD = "old-rotation-secret-0123456789abcdefghij";
const NEW = "new-rotation-secret-9876543210zyxwvutsrq";
/** Tokens ride on ticks every half grace period: 5 s here. */
const SESSION_TTL_S = 10;

interface Slot {
  readonly name: string;
  readonly port: number;
  readonly agentPort: number;
  readonly secrets: readonly string[];
}

async function isUp(haproxy: HaproxyProcess, name: string): Promise<boolean> {
  return (await haproxy.servers()).find((s) => s.name === name)?.status ===
    "UP";
}

/** One counter of an instance's /metrics. */
async function counter(server: ServerProcess, series: string): Promise<number> {
  const text = await (await fetch(`${server.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return Number(line?.split(" ")[1] ?? NaN);
}

Deno.test("a rolling rotation of --session-secret, then dropping the old one, restarts no count of 300 clients", async () => {
  await using redis = await startRedis();
  const slot = (name: string, secrets: string[]): Slot => ({
    name,
    port: freePort(),
    agentPort: freePort(),
    secrets,
  });
  const generations = [
    ["a", "b", "c"].map((n) => slot(n, [OLD])),
    ["a2", "b2", "c2"].map((n) => slot(n, [NEW, OLD])),
    ["a3", "b3", "c3"].map((n) => slot(n, [NEW])),
  ];
  const start = (s: Slot) =>
    startServer({
      port: s.port,
      name: s.name,
      args: [
        "--agent-port",
        String(s.agentPort),
        "--session-secret",
        s.secrets[0]!,
        ...(s.secrets.length > 1
          ? ["--session-secret-previous", s.secrets.slice(1).join(",")]
          : []),
        "--session-ttl",
        `${SESSION_TTL_S}s`,
        "--redis",
        redis.url,
        "--trusted-proxies",
        "127.0.0.1",
        "--drain-delay",
        "500ms",
        "--drain-period",
        "1s",
      ],
    });
  await using haproxy = await startShippedHaproxy({
    checkInterval: "500ms",
    balance: "roundrobin",
    backends: generations.flat(),
  });
  const live = new Map<string, ServerProcess>();
  for (const s of generations[0]!) live.set(s.name, await start(s));
  await waitFor(
    async () => {
      for (const s of generations[0]!) {
        if (!await isUp(haproxy, s.name)) return false;
      }
      return true;
    },
    15_000,
    "the first three UP",
  );
  const clients = Array.from(
    { length: CLIENTS },
    () => new TrackedClient(`ws://127.0.0.1:${haproxy.port}/`),
  );
  /** Each roll's figures from the instances it started, before they go. */
  const seen: Record<string, { previous: number; invalid: number }> = {};
  try {
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      30_000,
      `${CLIENTS} clients ticking`,
    );
    // The new generation starts first (surge), then the old one stops one
    // instance at a time: its movers land on old and new instances alike.
    const roll = async (from: readonly Slot[], to: readonly Slot[]) => {
      const started = await Promise.all(to.map(start));
      for (const [i, s] of to.entries()) live.set(s.name, started[i]!);
      for (const s of to) {
        await waitFor(() => isUp(haproxy, s.name), 10_000, `${s.name} UP`);
      }
      for (const old of from) {
        const leaving = live.get(old.name)!;
        leaving.child.kill("SIGTERM");
        assert.equal((await leaving.child.finished()).code, 0);
        live.delete(old.name);
        await leaving[Symbol.asyncDispose]();
      }
      // Every client is on the new generation once its movers settled.
      await waitFor(
        () => clients.every((c) => to.some((s) => s.name === c.server)),
        15_000,
        "every client on the new generation",
      );
    };
    await roll(generations[0]!, generations[1]!);
    // One token interval: every client now holds a token of the new secret.
    await new Promise((r) => setTimeout(r, (SESSION_TTL_S / 2 + 1) * 1000));
    for (const s of generations[1]!) {
      const server = live.get(s.name)!;
      seen[s.name] = {
        previous: await counter(server, "wstime_tokens_previous_key_total"),
        invalid: await counter(
          server,
          'wstime_tokens_rejected_total{reason="invalid"}',
        ),
      };
    }
    await roll(generations[1]!, generations[2]!);
    for (const s of generations[2]!) {
      const server = live.get(s.name)!;
      seen[s.name] = {
        previous: await counter(server, "wstime_tokens_previous_key_total"),
        invalid: await counter(
          server,
          'wstime_tokens_rejected_total{reason="invalid"}',
        ),
      };
    }
    // deno-lint-ignore no-console
    console.log(
      `secret rotation, ${CLIENTS} clients: tokens under the old secret accepted ${
        generations[1]!.map((s) => seen[s.name]!.previous).join("+")
      } during the roll; refused as invalid after dropping it ${
        generations[2]!.map((s) => seen[s.name]!.invalid).join("+")
      }`,
    );
    // The first roll's movers presented old tokens, and they verified.
    const previous = generations[1]!.reduce(
      (sum, s) => sum + seen[s.name]!.previous,
      0,
    );
    assert.ok(previous >= CLIENTS / 2, `${previous} old tokens accepted`);
    for (const s of [...generations[1]!, ...generations[2]!]) {
      assert.equal(seen[s.name]!.invalid, 0, `${s.name} refused a token`);
    }
    for (const client of clients) {
      assert.deepEqual(client.closes, [], "no connection was lost");
      assert.ok(
        client.welcomes.slice(1).every((w) => w.resumed),
        "every reconnect resumed",
      );
      const counts = client.welcomes.map((w) => w.seconds);
      assert.ok(
        counts.every((n, i) => i === 0 || n >= counts[i - 1]!),
        `a count restarted: ${counts}`,
      );
    }
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    for (const server of live.values()) await server[Symbol.asyncDispose]();
  }
});
