import assert from "node:assert/strict";
import { PRODUCTION_ENV } from "../bench/server_launcher.ts";
import { parseDuration } from "../server/config/parse.ts";
import { Child } from "./helpers/child.ts";
import { ROOT } from "./helpers/paths.ts";

const UNIT = Deno.readTextFileSync(`${ROOT}deploy/ws-time.service`);
const TEMPLATE = Deno.readTextFileSync(`${ROOT}deploy/ws-time@.service`);
const TARGET = Deno.readTextFileSync(`${ROOT}deploy/ws-time.target`);

/** Every `Key=value` line of a unit, by section, comments left out. */
function entries(unit: string): string[] {
  let section = "";
  const out: string[] = [];
  for (const line of unit.split("\n")) {
    if (line.startsWith("[")) section = line;
    else if (/^[A-Za-z]+=/.test(line)) out.push(`${section}${line}`);
  }
  return out;
}

/** The Environment= assignments of a unit as one map. */
function environment(unit: string): Record<string, string> {
  return Object.fromEntries(
    entries(unit).filter((l) => l.startsWith("[Service]Environment="))
      .flatMap((l) => l.slice("[Service]Environment=".length).split(/\s+/))
      .map((
        pair,
      ) => [
        pair.slice(0, pair.indexOf("=")),
        pair.slice(pair.indexOf("=") + 1),
      ]),
  );
}

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
  const drain = parseDuration(env.DRAIN_DELAY!)! +
    parseDuration(env.DRAIN_PERIOD!)!;
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

Deno.test("the bench's production profile runs with the allocator settings of deploy/ws-time.service", () => {
  // Figures quoted for "production" must be those of what the unit runs.
  const unit = environment(UNIT);
  for (const [key, value] of Object.entries(PRODUCTION_ENV)) {
    assert.equal(unit[key], value, key);
  }
});
