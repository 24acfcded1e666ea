import assert from "node:assert/strict";
import { PreciseClock } from "./precise_clock.ts";

Deno.test("PreciseClock fires each timer once, in order, never before its time", async () => {
  using clock = new PreciseClock();
  // Spawning the worker takes tens of ms: not part of any delay below.
  clock.start();
  const fired: Array<[string, number]> = [];
  const done = Promise.withResolvers<void>();
  const began = clock.now();
  for (const [name, ms] of [["c", 30], ["a", 5], ["b", 12]] as const) {
    clock.setTimeout(() => {
      fired.push([name, clock.now() - began]);
      if (fired.length === 3) done.resolve();
    }, ms);
  }
  await done.promise;
  assert.deepEqual(fired.map(([name]) => name), ["a", "b", "c"]);
  for (const [name, elapsed] of fired) {
    const due = { a: 5, b: 12, c: 30 }[name as "a" | "b" | "c"];
    assert.ok(elapsed >= due, `${name} fired at ${elapsed} ms, due ${due}`);
  }
});

Deno.test("PreciseClock: a cleared timer never fires and an earlier one still does", async () => {
  using clock = new PreciseClock();
  let cleared = 0;
  const id = clock.setTimeout(() => cleared++, 10);
  const later = Promise.withResolvers<void>();
  clock.setTimeout(() => later.resolve(), 40);
  clock.clearTimeout(id);
  await later.promise;
  assert.equal(cleared, 0);
});

Deno.test("PreciseClock: a timer set from a callback fires too, and close stops everything", async () => {
  const clock = new PreciseClock();
  const fired: number[] = [];
  const done = Promise.withResolvers<void>();
  const step = () => {
    fired.push(fired.length);
    if (fired.length < 5) clock.setTimeout(step, 2);
    else done.resolve();
  };
  clock.setTimeout(step, 2);
  await done.promise;
  let late = 0;
  clock.setTimeout(() => late++, 5);
  clock.close();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(fired, [0, 1, 2, 3, 4]);
  assert.equal(late, 0);
  assert.throws(() => clock.setTimeout(() => {}, 1), /closed/);
});
