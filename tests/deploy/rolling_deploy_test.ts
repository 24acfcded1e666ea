/**
 * Rolling deploys through HAProxy behind round robin, the balancer that
 * sends a moving client to whichever instance is next, old or new: each
 * client should move once, onto an instance that stays, and miss no tick.
 * Two deploys of three instances run back to back on one fleet of 300
 * clients: one with surge (the new one is up before the old one is told),
 * then one replacing each instance as it stops (Kubernetes'
 * `maxUnavailable`: the new one gets its own address and starts when the
 * old one is told to stop). They also rotate the session secret as
 * docs/security.md tells operators to: the first deploy brings instances
 * that sign with a new secret and still accept the old one, the second,
 * one token interval later, instances that know the new one only. No
 * count may restart: the first proves old tokens verify, the second that
 * no client needs one any more. Real instances, Redis and HAProxy; the
 * clients are the page's own module.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type HaproxyProcess, startShippedHaproxy } from "../../dev/haproxy.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import {
  metricValue,
  type ServerProcess,
  startServer,
} from "../../dev/server_process.ts";
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
  /** The secret it signs with, then any it still accepts. */
  readonly secrets: readonly string[];
}

/** What one deploy did to the clients. */
interface DeployFigures {
  readonly moved: number;
  readonly average: number;
  readonly max: number;
  readonly gapP99: number;
  readonly spread: string;
}

async function isUp(haproxy: HaproxyProcess, name: string): Promise<boolean> {
  return (await haproxy.servers()).find((s) => s.name === name)?.status ===
    "UP";
}

/** Moves per client that moved, gaps and the final spread, since `marks`. */
function figures(
  clients: readonly TrackedClient[],
  marks: ReadonlyMap<TrackedClient, number>,
): DeployFigures {
  const counts = clients.map((c) => c.moves.length - marks.get(c)!);
  const moved = counts.filter((n) => n > 0);
  const gaps = clients.map((c) => c.longestGapMs).sort((x, y) => x - y);
  const by = new Map<string, number>();
  for (const c of clients) by.set(c.server, (by.get(c.server) ?? 0) + 1);
  return {
    moved: moved.length,
    average: moved.reduce((s, n) => s + n, 0) / Math.max(1, moved.length),
    max: Math.max(0, ...counts),
    gapP99: gaps[Math.ceil(gaps.length * 0.99) - 1]!,
    spread: [...by].sort().map(([name, n]) => `${name} ${n}`).join(", "),
  };
}

Deno.test("rolling deploys through HAProxy round robin move each client once, to an instance that stays, without a missed tick, and rotate the secret without a reset", async () => {
  await using redis = await startRedis();
  const slot = (secrets: string[]) => (name: string): Slot => ({
    name,
    port: freePort(),
    agentPort: freePort(),
    secrets,
  });
  const generations = [
    ["a", "b", "c"].map(slot([OLD])),
    ["a2", "b2", "c2"].map(slot([NEW, OLD])),
    ["a3", "b3", "c3"].map(slot([NEW])),
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
        "1s",
        "--drain-period",
        "2s",
      ],
    });
  // Every slot is in the config from the start, as a Kubernetes Service's
  // endpoints or a cloud target group would be updated: a slot with no
  // instance yet is down.
  await using haproxy = await startShippedHaproxy({
    checkInterval: "500ms",
    balance: "roundrobin",
    backends: generations.flat(),
  });
  const { port } = haproxy;
  const live = new Map<string, ServerProcess>();
  for (const s of generations[0]!) live.set(s.name, await start(s));
  await waitFor(
    async () => {
      const servers = await haproxy.servers();
      return servers.every((s) =>
        s.status === (live.has(s.name) ? "UP" : "DOWN")
      );
    },
    15_000,
    "the first three UP, the other slots DOWN",
  );
  const clients = Array.from(
    { length: CLIENTS },
    () => new TrackedClient(`ws://127.0.0.1:${port}/`),
  );
  try {
    await waitFor(
      () => clients.every((c) => c.seconds >= 1),
      20_000,
      `${CLIENTS} clients ticking`,
    );
    const startCounts = new Map(clients.map((c) => [c, c.seconds]));

    /** Replaces each old instance by its new one, `surge` or in place. */
    const deploy = async (
      from: readonly Slot[],
      to: readonly Slot[],
      surge: boolean,
    ): Promise<DeployFigures> => {
      const marks = new Map(clients.map((c) => [c, c.moves.length]));
      for (const client of clients) client.markGaps();
      for (const [i, old] of from.entries()) {
        const fresh = to[i]!;
        const leaving = live.get(old.name)!;
        if (surge) {
          live.set(fresh.name, await start(fresh));
          await waitFor(
            () => isUp(haproxy, fresh.name),
            10_000,
            `${fresh.name} UP`,
          );
          leaving.child.kill("SIGTERM");
        } else {
          // The old one is told to stop as the new one starts elsewhere.
          leaving.child.kill("SIGTERM");
          live.set(fresh.name, await start(fresh));
        }
        const status = await leaving.child.finished();
        assert.equal(status.code, 0, `${old.name} drained and exited`);
        live.delete(old.name);
        await leaving[Symbol.asyncDispose]();
      }
      return figures(clients, marks);
    };

    /** Tokens each instance of `slots` accepted under an old secret, refused. */
    const tokens = async (slots: readonly Slot[]) => {
      const out = { previous: 0, invalid: 0 };
      for (const s of slots) {
        const server = live.get(s.name)!;
        out.previous += await metricValue(
          server.http,
          "wstime_tokens_previous_key_total",
        );
        out.invalid += await metricValue(
          server.http,
          'wstime_tokens_rejected_total{reason="invalid"}',
        );
      }
      return out;
    };
    // Surge first: while it runs, old instances (the old secret only) still
    // take movers, who all hold old tokens then.
    const surge = await deploy(generations[0]!, generations[1]!, true);
    // One token interval: every client now holds a token of the new secret.
    await new Promise((r) => setTimeout(r, (SESSION_TTL_S / 2 + 1) * 1000));
    const rotated = await tokens(generations[1]!);
    const inPlace = await deploy(generations[1]!, generations[2]!, false);
    const dropped = await tokens(generations[2]!);
    // deno-lint-ignore no-console
    console.log(
      `secret rotation, ${CLIENTS} clients: ${rotated.previous} tokens under the old secret accepted during the first deploy, ${dropped.invalid} refused after it was dropped`,
    );
    // The first deploy's movers presented old tokens, and they verified.
    assert.ok(rotated.previous >= CLIENTS / 2, `${rotated.previous} accepted`);
    assert.equal(rotated.invalid, 0, "a token refused during the rotation");
    assert.equal(dropped.invalid, 0, "an old token was still needed");
    for (
      const [kind, f] of [["surge", surge], ["in place", inPlace]] as const
    ) {
      // deno-lint-ignore no-console
      console.log(
        `rolling deploy ${kind}, round robin, ${CLIENTS} clients: ${f.moved} moved, moves per moved client ${
          f.average.toFixed(2)
        } (max ${f.max}), longest tick gap p99 ${
          f.gapP99.toFixed(0)
        } ms; ends ${f.spread}`,
      );
      // Every instance was replaced, so every client moved: once, onto a
      // new instance. Without steering, a probe of the same set-up (90
      // clients) moved clients 1.58 times on average, up to 3. The issue's
      // bound of 1.05 leaves 15 of the 300 a second move.
      assert.equal(f.moved, CLIENTS, `${kind}: everyone moved`);
      assert.ok(f.average <= 1.05, `${kind}: ${f.average} moves per client`);
      assert.ok(f.max <= 2, `${kind}: a client moved ${f.max} times`);
      assert.ok(f.gapP99 <= 1500, `${kind}: gap p99 ${f.gapP99} ms`);
    }
    for (const client of clients) {
      assert.deepEqual(client.closes, [], "no connection was lost");
      assert.ok(
        client.seconds >= startCounts.get(client)!,
        "no count reset or went back",
      );
      assert.ok(client.welcomes.slice(1).every((w) => w.resumed));
      assert.ok(
        client.moves.every((m) => m.reason === "deploy"),
        `moves by ${client.moves.map((m) => m.reason)}`,
      );
      assert.match(client.server, /^[abc]3$/, "on the last generation");
    }
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    for (const server of live.values()) await server[Symbol.asyncDispose]();
  }
});
