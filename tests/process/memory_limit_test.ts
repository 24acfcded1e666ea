import assert from "node:assert/strict";
import { resolveMemoryLimit } from "../../server/health/host_sampler.ts";
import { memoryCgroup } from "../helpers/cgroup.ts";
import { startServer } from "../../dev/server_process.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
// What an unlimited cgroup reads as (2^63 rounded down to a page).
const UNLIMITED = 9223372036854771712;

Deno.test("resolveMemoryLimit() takes the flag, else 80% of the lower of the cgroup's limit and RAM", () => {
  const host = (constrained: number | (() => number)) => ({
    ram: () => 16 * GiB,
    constrained: typeof constrained === "number"
      ? () => constrained
      : constrained,
  });
  assert.deepEqual(resolveMemoryLimit(300, host(512 * MiB)), {
    bytes: 300 * MiB,
    source: "flag",
  });
  assert.deepEqual(resolveMemoryLimit(0, host(512 * MiB)), {
    bytes: Math.floor(512 * MiB * 0.8),
    source: "cgroup",
  });
  for (const unbounded of [UNLIMITED, 0, 32 * GiB]) {
    assert.deepEqual(resolveMemoryLimit(0, host(unbounded)), {
      bytes: Math.floor(16 * GiB * 0.8),
      source: "ram",
    }, `cgroup reading ${unbounded}`);
  }
  const unreadable = resolveMemoryLimit(
    0,
    host(() => {
      throw new Error("NotCapable");
    }),
  );
  assert.equal(unreadable.source, "ram");
  const nothing = resolveMemoryLimit(0, {
    ram: () => {
      throw new Error("Requires sys access");
    },
    constrained: () => 512 * MiB,
  });
  assert.equal(nothing.source, "none");
  assert.match(nothing.error!, /sys access/);
});

// Tried once: a cgroup this test can create, or why not (then it is
// reported as ignored with the reason, never passed).
const probe = await memoryCgroup(512 * MiB);
const unavailable = typeof probe === "string" ? probe : null;
if (typeof probe !== "string") await probe[Symbol.asyncDispose]();

Deno.test({
  name: unavailable === null
    ? "memory limit: an instance in a 512 MiB cgroup counts 80% of it as full, not 80% of the host"
    : `memory limit in a cgroup (skipped: ${unavailable})`,
  ignore: unavailable !== null,
}, async () => {
  const made = await memoryCgroup(512 * MiB);
  if (typeof made === "string") throw new Error(made);
  await using cgroup = made;
  // Started exactly as `deno task start` runs it: least privilege, so
  // this also proves those flags are enough to read the cgroup.
  await using server = await startServer({
    wrap: cgroup.wrap,
    args: ["--log-format", "json"],
  });
  const response = await fetch(`${server.http}/healthcheck`, {
    headers: { accept: "application/json" },
  });
  const details = await response.json();
  assert.equal(details.figures.memoryLimitBytes, Math.floor(512 * MiB * 0.8));
  const line = server.child.lines.map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return {};
    }
  }).find((l) => l.msg === "memory limit");
  assert.equal(line?.source, "cgroup", server.child.lines.join("\n"));
  assert.equal(line?.limitMb, 410);

  // Outside the cgroup the same build counts the host's RAM.
  await using free = await startServer();
  const host = await (await fetch(`${free.http}/healthcheck`, {
    headers: { accept: "application/json" },
  })).json();
  assert.ok(
    host.figures.memoryLimitBytes > 512 * MiB,
    `${host.figures.memoryLimitBytes} bytes outside the cgroup`,
  );
});
