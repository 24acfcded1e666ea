/**
 * The shipped units' system call filter against what ws-time really calls:
 * an instance run under strace through its whole life (start on Redis,
 * clients, the operator port, a drain on SIGTERM) makes no call outside
 * `@system-service` and none of the groups the units exclude, so the
 * filter never turns a path ws-time takes into EPERM.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { startRedis } from "../../dev/redis.ts";
import { startServer } from "../../dev/server_process.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";

const UNIT = Deno.readTextFileSync(`${ROOT}deploy/ws-time.service`);

/** Every system call of `groups`, nested groups expanded. */
async function syscalls(groups: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  const seen = new Set<string>();
  const pending = [...groups];
  while (pending.length > 0) {
    const group = pending.pop()!;
    if (seen.has(group)) continue;
    seen.add(group);
    await using list = new Child("systemd-analyze", ["syscall-filter", group]);
    await list.finished();
    for (const line of list.lines.slice(1)) {
      const name = line.trim().split(/\s+/)[0] ?? "";
      if (name.startsWith("@")) pending.push(name);
      else if (/^\w+$/.test(name)) out.add(name);
    }
  }
  return out;
}

/** The groups of the unit's `SystemCallFilter=` lines: allowed, excluded. */
function unitFilter(): { allowed: string[]; excluded: string[] } {
  const lines = UNIT.split("\n").filter((l) =>
    l.startsWith("SystemCallFilter=")
  ).map((l) => l.slice("SystemCallFilter=".length));
  return {
    allowed: lines.filter((l) => !l.startsWith("~")).flatMap((l) =>
      l.split(/\s+/)
    ),
    excluded: lines.filter((l) => l.startsWith("~")).flatMap((l) =>
      l.slice(1).split(/\s+/)
    ),
  };
}

/**
 * Calls outside the filter that are probes: V8 asks for a memory
 * protection key and runs without one when refused (EINVAL on this
 * machine's CPU, EPERM under the filter: the same path).
 */
const PROBES = new Set(["pkey_alloc"]);

const stracePresent = await new Deno.Command("strace", { args: ["-V"] })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: stracePresent
    ? "ws-time makes no system call the shipped units' filter refuses, from start to drain"
    : "syscall filter (skipped: strace is not installed)",
  ignore: !stracePresent,
}, async () => {
  const { allowed, excluded } = unitFilter();
  assert.deepEqual(excluded, ["@privileged", "@resources"]);
  const allowedCalls = await syscalls(allowed);
  const excludedCalls = await syscalls(excluded);
  assert.ok(excludedCalls.has("setuid") && excludedCalls.has("setrlimit"));
  await using redis = await startRedis();
  const dir = await Deno.makeTempDir();
  const trace = `${dir}/trace`;
  const metricsPort = freePort();
  // Only what the filter would refuse is traced, by a seccomp filter of
  // strace's own, so the calls ws-time makes all day run at full speed.
  // execve is traced too: the one call that must show up.
  const passed = [...allowedCalls].filter((c) =>
    !excludedCalls.has(c) && c !== "execve"
  );
  const server = await startServer({
    wrap: [
      "strace",
      "-f",
      "-qq",
      "-y",
      "--seccomp-bpf",
      "-e",
      `trace=!${passed.map((c) => `?${c}`).join(",")}`,
      "-o",
      trace,
    ],
    args: [
      "--redis",
      redis.url,
      "--session-secret",
      "syscall-test-secret-0123456789abcdef",
      "--metrics-port",
      String(metricsPort),
      "--drain-delay",
      "0",
      "--drain-period",
      "1s",
      "--drain-handover",
      "0",
    ],
  });
  try {
    await using client = new RecordingSocket(server.ws, "ws-time.v1");
    await client.waitForMessages(2);
    const page = await fetch(`${server.http}/`);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.match(await metrics.text(), /wstime_connections 1/);
    // The drain runs in the traced process: signal it, not strace.
    await using pgrep = new Child("pgrep", [
      "-P",
      String(server.child.process.pid),
    ]);
    await pgrep.finished();
    const pid = Number(pgrep.lines[0]);
    assert.ok(pid > 0, "the traced deno process");
    Deno.kill(pid, "SIGTERM");
    assert.equal((await server.child.finished()).code, 0);
    await client.closed;
  } finally {
    await server[Symbol.asyncDispose]();
  }
  // `deno run` keeps a module cache (SQLite, which fchown()s its files);
  // the compiled binary the units start has none, so those calls are not
  // ws-time's.
  const used = new Map<string, string>();
  for (const line of Deno.readTextFileSync(trace).split("\n")) {
    const call = /^\d+\s+(\w+)\(/.exec(line)?.[1];
    if (call === undefined || /\/deno\/[^>]*_cache_v\d/.test(line)) continue;
    if (!used.has(call)) used.set(call, line);
  }
  await Deno.remove(dir, { recursive: true });
  assert.ok(used.has("execve"), "nothing traced");
  const refused = [...used].filter(([call]) =>
    (!allowedCalls.has(call) || excludedCalls.has(call)) &&
    !PROBES.has(call)
  );
  assert.deepEqual(refused.map(([, line]) => line), []);
});
