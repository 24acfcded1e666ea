import assert from "node:assert/strict";
import { ManualClock } from "../../server/clock.ts";
import { CapacitySampler } from "../../server/health/capacity_sampler.ts";
import { testApp } from "../helpers/in_process.ts";

/** An app whose network load and clock the test controls. */
function setup() {
  const clock = new ManualClock();
  const load = { bytesOutPerSecond: 0, bytesOut: 0 };
  const sampler = new CapacitySampler({
    clock,
    traffic: () => ({ bytesIn: 0, bytesOut: load.bytesOut }),
    linkBytesPerSecond: 1000,
    memory: () => 0,
    memoryLimitBytes: 1000,
  });
  const built = testApp(["--name", "health-test"], {
    clock,
    probes: sampler.probes,
    capacityFigures: () => sampler.figures,
  });
  const app = built.app;
  sampler.start();
  /** Runs the given network load for `seconds`, sampling each second. */
  const run = (bytesOutPerSecond: number, seconds = 6) => {
    for (let i = 0; i < seconds; i++) {
      load.bytesOut += bytesOutPerSecond;
      clock.advance(1000);
    }
  };
  const get = async (headers: Record<string, string> = {}, method = "GET") => {
    const response = await app.handler(
      new Request("http://localhost/healthcheck", { method, headers }),
    );
    return { status: response.status, body: await response.text() };
  };
  return {
    app,
    run,
    get,
    [Symbol.asyncDispose]: async () => {
      sampler.stop();
      await built[Symbol.asyncDispose]();
    },
  };
}

Deno.test("/healthcheck answers 200 ok with spare capacity, for GET and HEAD", async () => {
  await using env = setup();
  env.run(300);
  assert.deepEqual(await env.get(), { status: 200, body: "ok\n" });
  assert.deepEqual(await env.get({}, "HEAD"), { status: 200, body: "" });
  assert.equal((await env.get({}, "POST")).status, 405);
});

Deno.test("/healthcheck fails above the threshold and recovers only below the lower mark", async () => {
  await using env = setup();
  env.run(650);
  assert.deepEqual(await env.get(), {
    status: 503,
    body: "server is overloaded (network at 65%, limit 60%)\n",
  });
  assert.equal((await env.get({}, "HEAD")).status, 503);
  // Between the marks the verdict holds: no flapping near the line.
  env.run(550);
  assert.equal((await env.get()).status, 503);
  env.run(450);
  assert.equal((await env.get()).status, 200);
  env.run(550);
  assert.equal((await env.get()).status, 200, "healthy stays healthy at 55%");
});

Deno.test("/healthcheck gives every ratio, the state and the reason as JSON", async () => {
  await using env = setup();
  env.run(700);
  const { status, body } = await env.get({ accept: "application/json" });
  assert.equal(status, 503);
  const details = JSON.parse(body);
  assert.equal(details.state, "overloaded");
  assert.equal(details.healthy, false);
  assert.match(details.reason, /network at 70%/);
  assert.deepEqual(details.ratios, {
    connections: 0,
    network: 0.7,
    eventLoop: 0,
    memory: 0,
  });
  assert.equal(details.threshold, 0.6);
  assert.equal(details.recover, 0.5);
  assert.equal(details.figures.bytesOutPerSecond, 700);
});

Deno.test("/healthcheck says draining once the drain started, whatever the load", async () => {
  await using env = setup();
  env.run(0);
  env.app.monitor.startDraining();
  assert.deepEqual(await env.get(), { status: 503, body: "draining\n" });
  const details = JSON.parse(
    (await env.get({ accept: "application/json" })).body,
  );
  assert.equal(details.state, "draining");
});
