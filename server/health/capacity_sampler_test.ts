import assert from "node:assert/strict";
import { CapacitySampler, type Traffic } from "./capacity_sampler.ts";
import { ManualClock } from "../clock.ts";

/** A clock whose `now()` can run ahead of its timers, as a busy loop does. */
class LateClock extends ManualClock {
  late = 0;
  override now(): number {
    return super.now() + this.late;
  }
}

function setup(options: { linkBytesPerSecond?: number } = {}) {
  const clock = new LateClock();
  const load = {
    traffic: { bytesIn: 0, bytesOut: 0 } as Traffic | null,
    rss: 0,
  };
  const sampler = new CapacitySampler({
    clock,
    traffic: () => load.traffic,
    linkBytesPerSecond: options.linkBytesPerSecond ?? 1000,
    memory: () => load.rss,
    memoryLimitBytes: 1000,
    intervalMs: 1000,
    windowMs: 5000,
    lagLimitMs: 500,
  });
  sampler.start();
  return { clock, load, sampler };
}

/** Adds `perSecond` bytes in one direction each second for `seconds`. */
function run(
  env: ReturnType<typeof setup>,
  seconds: number,
  perSecond: { in?: number; out?: number },
) {
  for (let i = 0; i < seconds; i++) {
    const t = env.load.traffic ?? { bytesIn: 0, bytesOut: 0 };
    env.load.traffic = {
      bytesIn: t.bytesIn + (perSecond.in ?? 0),
      bytesOut: t.bytesOut + (perSecond.out ?? 0),
    };
    env.clock.advance(1000);
  }
}

Deno.test("CapacitySampler measures throughput over the window against the link", () => {
  const env = setup();
  assert.equal(env.sampler.probes.network!(), 0);
  run(env, 6, { out: 600, in: 100 });
  // The busier direction decides: 600 B/s of a 1000 B/s link.
  assert.equal(env.sampler.probes.network!(), 0.6);
  assert.equal(env.sampler.figures.bytesInPerSecond, 100);
  // A burst is averaged over the five-second window, then ages out.
  run(env, 1, { out: 3600 });
  assert.equal(env.sampler.probes.network!(), 1.2);
  run(env, 5, { out: 0 });
  assert.equal(env.sampler.probes.network!(), 0);
  env.sampler.stop();
  assert.equal(env.clock.pending, 0);
});

Deno.test("CapacitySampler reports no network use when the link or counters are unknown", () => {
  const unknownLink = setup({ linkBytesPerSecond: 0 });
  run(unknownLink, 3, { out: 10_000 });
  assert.equal(unknownLink.sampler.probes.network!(), 0);
  unknownLink.sampler.stop();

  const env = setup();
  env.load.traffic = null;
  run(env, 1, {});
  env.load.traffic = null;
  env.clock.advance(1000);
  assert.equal(env.sampler.probes.network!(), 0);
  assert.equal(env.sampler.figures.bytesOutPerSecond, null);
  env.sampler.stop();
});

Deno.test("CapacitySampler turns a late timer into event-loop lag, averaged over the window", () => {
  const env = setup();
  env.clock.advance(1000);
  assert.equal(env.sampler.probes.eventLoop!(), 0);
  // One stall of 1.5 s: that sample is 1500 ms late; once four more samples
  // followed, the mean over the five in the window is 300 ms, 60% of 500 ms.
  env.clock.late += 1500;
  env.clock.advance(1000);
  for (let i = 0; i < 4; i++) env.clock.advance(1000);
  assert.equal(env.sampler.figures.lagMs, 300);
  assert.equal(env.sampler.probes.eventLoop!(), 0.6);
  for (let i = 0; i < 5; i++) env.clock.advance(1000);
  assert.equal(env.sampler.probes.eventLoop!(), 0);
  env.sampler.stop();
});

Deno.test("CapacitySampler compares resident memory with the limit", () => {
  const env = setup();
  env.load.rss = 700;
  assert.equal(env.sampler.probes.memory!(), 0, "cached until the next sample");
  env.clock.advance(1000);
  assert.equal(env.sampler.probes.memory!(), 0.7);
  env.sampler.stop();
});
