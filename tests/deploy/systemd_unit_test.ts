import assert from "node:assert/strict";
import { parseDuration } from "../../server/config/parse.ts";
import { OPTIONS } from "../../server/config/schema.ts";
import { Child } from "../../dev/child.ts";
import { drainBudgetMs } from "../../dev/drain_budget.ts";
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
  const drain = drainBudgetMs(env);
  const stop = parseDuration(settings("TimeoutStopSec")[0]!)!;
  assert.ok(stop > drain, `TimeoutStopSec ${stop} ms > drain ${drain} ms`);
  assert.deepEqual(settings("KillSignal"), ["SIGTERM"]);
});

Deno.test("systemd-analyze verify finds no unknown or invalid setting in deploy/ws-time@.service and ws-time.target", async () => {
  // An instance name makes systemd expand %i as it would on a host.
  await verifyUnits({
    "ws-time@9465.service": TEMPLATE,
    "ws-time.target": TARGET,
  });
});

Deno.test("deploy/ws-time@.service differs from ws-time.service only in what one process per core needs", () => {
  // Hardening or limits added to one unit and forgotten in the other would
  // leave per-core hosts weaker than single-process ones.
  const differs = (line: string) =>
    /^\[Unit\](Description|PartOf)=/.test(line) ||
    line.startsWith("[Service]Environment=PORT=") ||
    line.startsWith("[Service]Environment=METRICS_PORT=") ||
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
  assert.equal(perCore.METRICS_PORT, "%i", "each process its own port");
  for (const key of ["REUSE_PORT", "AGENT_PORT", "NAME", "METRICS_PORT"]) {
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

/** `systemd-analyze security`'s overall exposure of a unit (0-10, lower is safer). */
async function exposure(name: string, text: string): Promise<number> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/${name}`,
      text.replace(/^ExecStart=.*$/m, "ExecStart=/bin/true"),
    );
    await using analyze = new Child("systemd-analyze", [
      "security",
      "--offline=true",
      `${dir}/${name}`,
    ]);
    await analyze.finished();
    const line = analyze.lines.find((l) => /Overall exposure level/.test(l));
    return Number(/level for \S+: ([\d.]+)/.exec(line ?? "")?.[1] ?? NaN);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("systemd-analyze security rates both shipped units 1.5 or safer", async () => {
  // Before the syscall exclusions and PrivateMounts= it rated 1.8. What is
  // left open is what ws-time needs: the network, port 80, V8's JIT.
  for (
    const [name, text] of [
      ["ws-time.service", UNIT],
      ["ws-time@9465.service", TEMPLATE],
    ]
  ) {
    const level = await exposure(name!, text!);
    assert.ok(level <= 1.5, `${name}: exposure ${level}`);
  }
});

Deno.test("the units bound memory, keep the secret in a credential and list proxies, not their networks", () => {
  const env = environment(UNIT);
  const bytes = (text: string) =>
    Number(/^(\d+)M$/.exec(text)?.[1] ?? NaN) * 1024 * 1024;
  const high = bytes(settings("MemoryHigh")[0] ?? "");
  const max = bytes(settings("MemoryMax")[0] ?? "");
  assert.ok(high > 0 && high < max, `MemoryHigh ${high} < MemoryMax ${max}`);
  assert.deepEqual(settings("MemorySwapMax"), ["0"]);
  // The default connections at 12.5 KB each (deploy/PRODUCTION.md) plus
  // 80 MB of runtime must stay under where /healthcheck fails (the
  // threshold of 80% of the cgroup's limit), so only an attack reaches it.
  const option = (key: string) =>
    Number(env[key] ?? OPTIONS.find((o) => o.env === key)!.fallback);
  const normal = option("MAX_CONNECTIONS") * 12_500 + 80e6;
  const healthFails = max * 0.8 * option("HEALTH_THRESHOLD");
  assert.ok(normal < healthFails, `${normal} bytes at the cap`);
  assert.deepEqual(settings("LoadCredential"), [
    "session-secret:/etc/ws-time/session-secret",
  ]);
  assert.equal(env.SESSION_SECRET_FILE, "%d/session-secret");
  assert.ok(!("SESSION_SECRET" in env));
  assert.equal(env.METRICS_PORT, "9464");
  // The examples in comments name balancer addresses, never a subnet.
  for (const match of UNIT.matchAll(/TRUSTED_PROXIES[^\n]*\n#[^\n]*/g)) {
    assert.doesNotMatch(match[0], /\/(1\d|[0-9])\b/, match[0]);
  }
});
