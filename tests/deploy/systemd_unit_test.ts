import assert from "node:assert/strict";
import { parseDuration } from "../../server/config/parse.ts";
import { OPTIONS } from "../../server/config/schema.ts";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import {
  productionAllocatorEnv,
  unitEntries as entries,
  unitEnvironment as environment,
} from "../../dev/systemd_unit.ts";

const UNIT = Deno.readTextFileSync(`${ROOT}deploy/ws-time.service`);
const TEMPLATE = Deno.readTextFileSync(`${ROOT}deploy/ws-time@.service`);
const TARGET = Deno.readTextFileSync(`${ROOT}deploy/ws-time.target`);

function settings(name: string): string[] {
  return UNIT.split("\n").filter((l) => l.startsWith(`${name}=`)).map((l) =>
    l.slice(name.length + 1)
  );
}

/**
 * Runs systemd-analyze verify on units written to a temporary folder (name
 * -> text), the binary pointed at one that exists; fails on any complaint.
 */
async function verifyUnits(units: Record<string, string>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const files = [];
    for (const [name, text] of Object.entries(units)) {
      files.push(`${dir}/${name}`);
      await Deno.writeTextFile(
        `${dir}/${name}`,
        text.replace(/^ExecStart=.*$/m, "ExecStart=/bin/true"),
      );
    }
    await using verify = new Child("systemd-analyze", ["verify", ...files]);
    const status = await verify.finished();
    assert.equal(status.code, 0, verify.lines.join("\n"));
    assert.deepEqual(verify.lines.filter((l) => l.trim() !== ""), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("systemd-analyze verify finds no unknown or invalid setting in deploy/ws-time.service", async () => {
  await verifyUnits({ "ws-time.service": UNIT });
});

Deno.test("deploy/ws-time.service binds port 80 unprivileged and outlasts the drain when stopping", () => {
  assert.deepEqual(settings("DynamicUser"), ["yes"]);
  assert.deepEqual(settings("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
  assert.deepEqual(settings("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
  assert.ok(Number(settings("LimitNOFILE")[0]) >= 65536);
  const env = environment(UNIT);
  assert.equal(env.PORT, "80");
  // Delay, the wait for a replacement, period, then the last movers' hint
  // (up to 1 s) and window.
  const setting = (name: string) =>
    parseDuration(
      env[name] ?? OPTIONS.find((o) => o.env === name)!.fallback,
    )!;
  const drain = setting("DRAIN_DELAY") + setting("DRAIN_HANDOVER") +
    setting("DRAIN_PERIOD") + 1000 + setting("MOVE_WINDOW");
  const stop = parseDuration(settings("TimeoutStopSec")[0]!)!;
  assert.ok(stop > drain, `TimeoutStopSec ${stop} ms > drain ${drain} ms`);
  assert.deepEqual(settings("KillSignal"), ["SIGTERM"]);
});

Deno.test("systemd-analyze verify finds no unknown or invalid setting in deploy/ws-time@.service and ws-time.target", async () => {
  // An instance name makes systemd expand %i as it would on a host.
  await verifyUnits({
    "ws-time@3.service": TEMPLATE,
    "ws-time.target": TARGET,
  });
});

Deno.test("deploy/ws-time@.service differs from ws-time.service only in what one process per core needs", () => {
  // Hardening or limits added to one unit and forgotten in the other would
  // leave per-core hosts weaker than single-process ones.
  const differs = (line: string) =>
    /^\[Unit\](Description|PartOf)=/.test(line) ||
    line.startsWith("[Service]Environment=PORT=") ||
    line.startsWith("[Install]WantedBy=");
  assert.deepEqual(
    entries(TEMPLATE).filter((l) => !differs(l)),
    entries(UNIT).filter((l) => !differs(l)),
  );
  const single = environment(UNIT);
  const perCore = environment(TEMPLATE);
  assert.equal(perCore.REUSE_PORT, "true");
  assert.equal(
    perCore.AGENT_PORT,
    "0",
    "one agent port cannot serve N processes",
  );
  assert.equal(perCore.NAME, "%H-%i", "each process names itself apart");
  for (const key of ["REUSE_PORT", "AGENT_PORT", "NAME"]) {
    delete single[key];
    delete perCore[key];
  }
  assert.deepEqual(perCore, single);
  assert.match(TEMPLATE, /^PartOf=ws-time\.target$/m);
  assert.match(TEMPLATE, /^WantedBy=ws-time\.target$/m);
  assert.match(TARGET, /^WantedBy=multi-user\.target$/m);
});

Deno.test("productionAllocatorEnv() reads jemalloc and its settings from the shipped unit", () => {
  // The bench's "production" profile is this: figures quoted for it are
  // those of what the unit runs.
  const env = productionAllocatorEnv(UNIT);
  assert.match(env.LD_PRELOAD!, /\/libjemalloc\.so\.2$/);
  assert.equal(env.MALLOC_CONF, environment(UNIT).MALLOC_CONF);
  assert.throws(
    () => productionAllocatorEnv("[Service]\nEnvironment=PORT=80\n"),
    /sets no LD_PRELOAD/,
  );
});
