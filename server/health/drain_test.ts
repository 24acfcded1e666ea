import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { Drainer, RECONNECT_SPREAD_MS } from "./drain.ts";

function setup(count: number, delayMs = 2000, periodMs = 1000) {
  const clock = new ManualClock();
  const live = new Set(Array.from({ length: count }, (_, i) => i));
  const closes: Array<{ conn: number; at: number; hint: number }> = [];
  const drainer = new Drainer<number>({
    clock,
    delayMs,
    periodMs,
    connections: () => live,
    close(conn, hint) {
      live.delete(conn);
      closes.push({ conn, at: clock.now(), hint });
    },
    random: () => 0.999,
  });
  return { clock, live, closes, drainer, t0: clock.now() };
}

Deno.test("Drainer closes nothing before the delay, then one connection per slice of the period", async () => {
  const env = setup(10);
  let done = false;
  const finished = env.drainer.start().then(() => done = true);
  env.clock.advance(1999);
  assert.equal(env.closes.length, 0);
  env.clock.advance(1);
  assert.equal(env.closes.length, 1);
  // Ten connections over 1000 ms: one per 100 ms, never a burst.
  for (let slice = 1; slice < 10; slice++) {
    env.clock.advance(100);
    assert.equal(env.closes.length, slice + 1, `after slice ${slice}`);
  }
  await finished;
  assert.ok(done);
  assert.equal(env.live.size, 0);
  assert.equal(env.drainer.closed, 10);
  for (const close of env.closes) {
    assert.ok(close.hint >= 0 && close.hint <= RECONNECT_SPREAD_MS);
  }
  assert.equal(env.clock.pending, 0);
});

Deno.test("Drainer batches closes when there are more connections than steps", async () => {
  const env = setup(1000, 0, 1000);
  const finished = env.drainer.start();
  env.clock.advance(0);
  const counts: number[] = [];
  for (let i = 0; i < 10; i++) {
    const before = env.closes.length;
    env.clock.advance(100);
    counts.push(env.closes.length - before);
  }
  await finished;
  assert.equal(env.closes.length, 1000);
  // Evenly spread: each 100 ms holds about a tenth.
  for (const n of counts) assert.ok(n >= 90 && n <= 110, String(counts));
});

Deno.test("Drainer also closes connections that arrived during the drain", async () => {
  const env = setup(2, 100, 100);
  const finished = env.drainer.start();
  env.live.add(99);
  env.clock.advance(300);
  await finished;
  assert.deepEqual(env.closes.map((c) => c.conn).sort((a, b) => a - b), [
    0,
    1,
    99,
  ]);
});

Deno.test("Drainer.closeAllNow() closes everyone at once and cancels the schedule", async () => {
  const env = setup(5);
  const finished = env.drainer.start();
  env.clock.advance(500);
  env.drainer.closeAllNow();
  await finished;
  assert.equal(env.closes.length, 5);
  assert.equal(env.clock.pending, 0);
});

Deno.test("Drainer with `ready` closes nothing until it resolves, and nothing at all once everyone was closed at once", async () => {
  const clock = new ManualClock();
  const live = new Set([1, 2, 3]);
  const closes: Array<{ conn: number; now: boolean }> = [];
  const waited = Promise.withResolvers<void>();
  const drainer = new Drainer<number>({
    clock,
    delayMs: 1000,
    periodMs: 0,
    connections: () => live,
    close(conn, _hint, now) {
      live.delete(conn);
      closes.push({ conn, now });
    },
    ready: () => waited.promise,
  });
  const finished = drainer.start();
  clock.advance(5000);
  await Promise.resolve();
  assert.equal(closes.length, 0, "waiting for the movers' destination");
  waited.resolve();
  await finished;
  assert.deepEqual(closes.map((c) => c.conn), [1, 2, 3]);
  assert.ok(closes.every((c) => !c.now));

  // SIGINT during the wait: everyone goes at once, and only once.
  const second = Promise.withResolvers<void>();
  live.add(4);
  const other = new Drainer<number>({
    clock,
    delayMs: 0,
    periodMs: 0,
    connections: () => live,
    close(conn, _hint, now) {
      live.delete(conn);
      closes.push({ conn, now });
    },
    ready: () => second.promise,
  });
  void other.start();
  clock.advance(0);
  other.closeAllNow();
  second.resolve();
  await second.promise;
  await Promise.resolve();
  assert.deepEqual(closes.slice(3), [{ conn: 4, now: true }]);
});
