import assert from "node:assert/strict";
import { parseDuration } from "../server/config/parse.ts";
import { Child } from "./helpers/child.ts";
import { ROOT } from "./helpers/paths.ts";

const UNIT = Deno.readTextFileSync(`${ROOT}deploy/ws-time.service`);

function settings(name: string): string[] {
  return UNIT.split("\n").filter((l) => l.startsWith(`${name}=`)).map((l) =>
    l.slice(name.length + 1)
  );
}

Deno.test("systemd-analyze verify finds no unknown or invalid setting in deploy/ws-time.service", async () => {
  // The binary is installed on the host, not here: point at one that exists.
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/ws-time.service`;
    await Deno.writeTextFile(
      file,
      UNIT.replace(/^ExecStart=.*$/m, "ExecStart=/bin/true"),
    );
    await using verify = new Child("systemd-analyze", ["verify", file]);
    const status = await verify.finished();
    assert.equal(status.code, 0, verify.lines.join("\n"));
    assert.deepEqual(verify.lines.filter((l) => l.trim() !== ""), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy/ws-time.service binds port 80 unprivileged and outlasts the drain when stopping", () => {
  assert.deepEqual(settings("DynamicUser"), ["yes"]);
  assert.deepEqual(settings("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
  assert.deepEqual(settings("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
  assert.ok(Number(settings("LimitNOFILE")[0]) >= 65536);
  const env = Object.fromEntries(
    settings("Environment").flatMap((l) => l.split(/\s+/)).map((pair) =>
      pair.split("=") as [string, string]
    ),
  );
  assert.equal(env.PORT, "80");
  const drain = parseDuration(env.DRAIN_DELAY!)! +
    parseDuration(env.DRAIN_PERIOD!)!;
  const stop = parseDuration(settings("TimeoutStopSec")[0]!)!;
  assert.ok(stop > drain, `TimeoutStopSec ${stop} ms > drain ${drain} ms`);
  assert.deepEqual(settings("KillSignal"), ["SIGTERM"]);
});
