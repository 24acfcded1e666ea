/**
 * The fragment attack against an instance run as the shipped unit bounds
 * it: Deno assembles a message sent in endless continuation frames without
 * a total limit, so one unauthenticated client can grow an instance's
 * memory without end. Inside a cgroup with the unit's `MemoryMax=`, the
 * worst it can do is have the kernel kill that one process; its clients
 * resume on the other instances, whose clients notice nothing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "node:net";
import { Buffer } from "node:buffer";
import { startShippedHaproxy } from "../../dev/haproxy.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { memoryCgroup } from "../helpers/cgroup.ts";
import { upgradeRequest } from "../helpers/raw_http.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

const MiB = 1024 ** 2;
const CLIENTS = 60;
const UNIT = Deno.readTextFileSync(`${ROOT}deploy/ws-time.service`);
const MEMORY_MAX = Number(/^MemoryMax=(\d+)M$/m.exec(UNIT)?.[1]) * MiB;

const probe = await memoryCgroup(MEMORY_MAX);
const unavailable = typeof probe === "string" ? probe : null;
if (typeof probe !== "string") await probe[Symbol.asyncDispose]();

/** A client frame header, masked with a zero key (payload as written). */
function frame(fin: boolean, opcode: number, length: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  return head; // the last 4 bytes, zero, are the mask key
}

/**
 * Upgrades on `port`, then sends one text message as 1 MiB fragments, none
 * final, as fast as the socket takes them, until the server goes away.
 * Resolves with the bytes sent.
 */
function fragmentFlood(port: number): Promise<number> {
  const payload = Buffer.alloc(MiB, 0x61);
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let sent = 0;
    let upgraded = false;
    const pump = () => {
      while (upgraded && !socket.destroyed) {
        const first = sent === 0;
        sent += payload.length;
        const more = socket.write(Buffer.concat([
          frame(false, first ? 1 : 0, payload.length),
          payload,
        ]));
        if (!more) return void socket.once("drain", pump);
      }
    };
    socket.on("connect", () => socket.write(upgradeRequest("/", port)));
    socket.on("data", (chunk: Buffer) => {
      if (!upgraded && chunk.toString("latin1").startsWith("HTTP/1.1 101")) {
        upgraded = true;
        pump();
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(sent));
  });
}

Deno.test({
  name: unavailable === null
    ? `fragment attack: an instance under the unit's MemoryMax (${
      MEMORY_MAX / MiB
    } MiB) is killed alone, and every client keeps its session`
    : `fragment attack in a cgroup (skipped: ${unavailable})`,
  ignore: unavailable !== null,
}, async () => {
  const made = await memoryCgroup(MEMORY_MAX);
  if (typeof made === "string") throw new Error(made);
  await using cgroup = made;
  await using redis = await startRedis();
  const args = [
    "--redis",
    redis.url,
    "--session-secret",
    "fragment-test-secret-0123456789abcdefghij",
    "--trusted-proxies",
    "127.0.0.1",
  ];
  const servers: ServerProcess[] = [];
  for (const wrap of [cgroup.wrap, [], []]) {
    servers.push(await startServer({ args, wrap }));
  }
  const [victim, ...others] = servers as [ServerProcess, ...ServerProcess[]];
  try {
    await using haproxy = await startShippedHaproxy({
      checkInterval: "500ms",
      backends: servers.map((s) => ({
        name: s.name,
        port: s.port,
        agentPort: freePort(),
      })),
    });
    await waitFor(
      async () => (await haproxy.servers()).every((s) => s.status === "UP"),
      10_000,
      "all UP",
    );
    const clients = Array.from(
      { length: CLIENTS },
      () => new TrackedClient(`ws://127.0.0.1:${haproxy.port}/`),
    );
    try {
      await waitFor(
        () => clients.every((c) => c.seconds >= 2),
        20_000,
        "clients ticking",
      );
      const onVictim = clients.filter((c) => c.server === victim.name);
      const elsewhere = clients.filter((c) => c.server !== victim.name);
      assert.ok(onVictim.length > 0 && elsewhere.length > 0);
      const counts = new Map(clients.map((c) => [c, c.seconds]));
      // Straight at the instance: a balancer that relays frames untouched
      // (all of them do) changes nothing.
      const began = performance.now();
      const sent = await Promise.all(
        [1, 2, 3, 4].map(() => fragmentFlood(victim.port)),
      );
      const status = await victim.child.finished();
      const seconds = (performance.now() - began) / 1000;
      const peak = await cgroup.peak();
      // deno-lint-ignore no-console
      console.log(
        `fragment attack: ${
          Math.round(sent.reduce((a, b) => a + b, 0) / MiB)
        } MiB sent on 4 connections; the instance peaked at ${
          Math.round(peak / MiB)
        } MiB of its ${
          MEMORY_MAX / MiB
        } MiB and was killed (${status.signal}) after ${
          seconds.toFixed(1)
        } s; ${onVictim.length} of its clients moved on, ${elsewhere.length} elsewhere untouched`,
      );
      assert.equal(status.signal, "SIGKILL", "the OOM killer ended it");
      assert.ok(await cgroup.oomKills() >= 1, "killed for memory");
      assert.ok(peak <= MEMORY_MAX, `peak ${peak}`);
      await waitFor(
        () =>
          onVictim.every((c) =>
            c.server !== victim.name && c.welcomes.at(-1)!.resumed
          ),
        20_000,
        "the victim's clients resumed elsewhere",
      );
      for (const client of clients) {
        assert.ok(
          client.seconds >= counts.get(client)!,
          "no count reset or went back",
        );
        assert.ok(client.welcomes.slice(1).every((w) => w.resumed));
      }
      for (const client of elsewhere) {
        assert.deepEqual(client.closes, [], "a bystander lost its connection");
      }
      for (const other of others) {
        assert.equal(other.child.status, undefined, `${other.name} died`);
      }
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
    }
  } finally {
    for (const server of servers) await server[Symbol.asyncDispose]();
  }
});
