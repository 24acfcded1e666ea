import assert from "node:assert/strict";
import { floorRatio, modelledP99S, windowChart } from "./report.ts";
import type { StormResult } from "./storm.ts";
import {
  allocatorPerConnection,
  parseAllocatorTotals,
  withAllocatorStats,
} from "./allocator_stats.ts";
import { PRODUCTION_ENV, settingsFor } from "./server_launcher.ts";

/** A storm result as the bench stores it, with the fields under test set. */
function storm(fields: Partial<StormResult>): StormResult {
  return {
    kind: "storm",
    mode: "jitter",
    baseMs: 0,
    profile: "production",
    store: "redis",
    connections: 10_000,
    resumed: 10_000,
    resumedMs: { p50: 3000, p99: 5000, all: 5100 },
    failedAttempts: 0,
    discontinuous: 0,
    peakAcceptPerSecond: 2000,
    listenOverflows: 0,
    listenDrops: 0,
    firstCloseMs: null,
    lastCloseMs: null,
    closedBeforeDelay: 0,
    drainDelayMs: 0,
    curve: [],
    closes: {},
    retries: {},
    afterNoticeMs: { p50: null, p99: null },
    survivors: 1,
    pinned: null,
    cpuSeconds: { survivors: 5, clients: 5, redis: 0 },
    survivorCpuMsPerSession: 0.5,
    ...fields,
  };
}

Deno.test("floorRatio() divides ws-time's CPU per session by the floor's storm of the same size and mode, and gives the floor itself none", () => {
  const floor = storm({ profile: "floor", survivorCpuMsPerSession: 0.25 });
  const ours = storm({ survivorCpuMsPerSession: 0.4 });
  const other = storm({ connections: 2000, survivorCpuMsPerSession: 0.4 });
  const all = [floor, ours, other];
  assert.equal(floorRatio(ours, all), "1.60x");
  assert.equal(floorRatio(floor, all), "-");
  assert.equal(floorRatio(other, all), "-", "no floor run of that size");
});

Deno.test("windowChart() draws 99% resumed against the first window beside the model max(0.99 W, 0.99 N/R), only for a sweep", () => {
  assert.equal(windowChart([storm({})]), null, "one window is no sweep");
  assert.equal(
    windowChart([storm({ baseMs: 500 }), storm({ baseMs: 0 })]),
    null,
    "the default window is 500 ms",
  );
  const svg = windowChart([
    storm({ baseMs: 250, survivorCpuMsPerSession: 1 }),
    storm({ baseMs: 4000, survivorCpuMsPerSession: 1 }),
    storm({ baseMs: 8000, survivorCpuMsPerSession: 2 }),
  ]);
  assert.ok(svg?.startsWith("<svg"), "an SVG document");
  assert.match(svg!, /production \(N=10000\), measured/);
  // The median cost, 1 ms a session: one core resumes 1,000 a second.
  assert.match(svg!, /model \(R = 1000\/s\)/);
});

Deno.test("modelledP99S(): a window shorter than N/R leaves 99% at the survivor's pace, a longer one at the window's end", () => {
  // 10,000 clients, 1 ms a session: one core needs 10 s for them all.
  assert.equal(modelledP99S(10_000, 1, 0.5), 9.9);
  assert.equal(modelledP99S(10_000, 1, 10), 9.9);
  assert.equal(modelledP99S(10_000, 1, 20), 19.8);
  assert.equal(modelledP99S(2000, 0.25, 0.5), 0.495);
});

Deno.test("allocatorPerConnection() splits jemalloc's growth per connection into held blocks, free space in pages, metadata and pages not returned", () => {
  const idle = {
    allocated: 1_000_000,
    active: 1_200_000,
    metadata: 300_000,
    resident: 1_600_000,
  };
  const held = {
    allocated: 1_000_000 + 1000 * 8192,
    active: 1_200_000 + 1000 * 8192 + 1000 * 512,
    metadata: 300_000 + 1000 * 256,
    resident: 1_600_000 + 1000 * (8192 + 512 + 256 + 1024),
  };
  assert.deepEqual(allocatorPerConnection(idle, held, 1000), {
    allocatedKb: 8,
    pageSlackKb: 0.5,
    metadataKb: 0.25,
    unreturnedKb: 1,
    residentKb: 9.75,
  });
});

Deno.test("--allocator-stats refuses a profile without jemalloc, naming the flag, and keeps production's allocator settings", () => {
  assert.throws(
    () => withAllocatorStats(settingsFor("start")),
    /--allocator-stats .*--jemalloc true/,
  );
  const conf = withAllocatorStats(settingsFor("production")).env.MALLOC_CONF!;
  assert.ok(conf.startsWith(PRODUCTION_ENV.MALLOC_CONF!), conf);
  assert.match(conf, /stats_interval:\d+/);
});

Deno.test("jemalloc's periodic totals, as --allocator-stats turns them on, are read from a real process's output", async () => {
  const env = withAllocatorStats(settingsFor("production")).env;
  // 32 MB of allocation: prints every 2 MB, each one line-less JSON.
  const { stderr, success } = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "const k = []; for (let i = 0; i < 4096; i++) k.push(new Uint8Array(8192).fill(1)); console.log(k.length);",
    ],
    env: { ...env },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(success);
  const output = new TextDecoder().decode(stderr);
  assert.doesNotMatch(output, /Invalid conf/);
  const totals = parseAllocatorTotals(output);
  assert.ok(totals.length >= 4, `${totals.length} prints in ${output}`);
  const last = totals.at(-1)!;
  // The 32 MB are held when the last print comes.
  assert.ok(last.allocated > 16 * 1024 * 1024, JSON.stringify(last));
  assert.ok(last.active >= last.allocated, JSON.stringify(last));
  assert.ok(last.resident >= last.active, JSON.stringify(last));
});
