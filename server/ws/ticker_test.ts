import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { type Tickable, Ticker } from "./ticker.ts";

interface Item extends Tickable {
  readonly name: string;
}

function setup() {
  const clock = new ManualClock(1_000_000);
  const sent: Array<[string, number, number]> = [];
  const ticker = new Ticker<Item>(clock, (item, seconds) => {
    sent.push([item.name, seconds, clock.now()]);
  });
  return { clock, sent, ticker };
}

Deno.test("Ticker delivers tick k at start + k s for each item's own phase", () => {
  const { clock, sent, ticker } = setup();
  const a: Item = { name: "a", start: clock.now(), lastTick: 0 };
  const b: Item = { name: "b", start: clock.now() + 250, lastTick: 0 };
  ticker.add(a);
  clock.advance(250);
  ticker.add(b);
  clock.advance(2_800);
  assert.deepEqual(sent, [
    ["a", 1, 1_001_000],
    ["b", 1, 1_001_250],
    ["a", 2, 1_002_000],
    ["b", 2, 1_002_250],
    ["a", 3, 1_003_000],
  ]);
  ticker.stop();
  assert.equal(clock.pending, 0);
});

Deno.test("Ticker continues a resumed session's count without repeating it", () => {
  const { clock, sent, ticker } = setup();
  const start = clock.now() - 41_600;
  ticker.add({ name: "resumed", start, lastTick: 41 });
  clock.advance(1_500);
  assert.deepEqual(sent.map(([, k, at]) => [k, at - start]), [
    [42, 42_000],
    [43, 43_000],
  ]);
  ticker.stop();
});

Deno.test("Ticker never drifts: tick 3600 is due exactly one hour after start", () => {
  const { clock, sent, ticker } = setup();
  const item: Item = { name: "long", start: clock.now(), lastTick: 0 };
  ticker.add(item);
  for (let i = 0; i < 3600; i++) clock.advance(1000);
  assert.equal(sent.length, 3600);
  assert.deepEqual(sent.at(-1), ["long", 3600, item.start + 3_600_000]);
  ticker.stop();
});

Deno.test("Ticker after a stall sends each item's current count once", () => {
  const { clock, sent, ticker } = setup();
  ticker.add({ name: "x", start: clock.now(), lastTick: 0 });
  // Time jumps 5.5 s without the timer firing (a blocked event loop).
  clock.jump(5_500);
  clock.advance(0);
  assert.deepEqual(sent.map(([, k]) => k), [5]);
  clock.advance(1_000);
  assert.deepEqual(sent.map(([, k]) => k), [5, 6]);
  ticker.stop();
});

Deno.test("Ticker removes items and holds no timer when empty", () => {
  const { clock, sent, ticker } = setup();
  const item: Item = { name: "gone", start: clock.now(), lastTick: 0 };
  ticker.add(item);
  ticker.add(item);
  assert.equal(ticker.size, 1);
  ticker.remove(item);
  assert.equal(ticker.size, 0);
  assert.equal(clock.pending, 0);
  clock.advance(3_000);
  assert.deepEqual(sent, []);
});

Deno.test("Ticker arms one timer for many items", () => {
  const { clock, ticker, sent } = setup();
  for (let i = 0; i < 5_000; i++) {
    ticker.add({ name: `n${i}`, start: clock.now() + (i % 1000), lastTick: 0 });
  }
  assert.equal(clock.pending, 1);
  clock.advance(2_000);
  assert.equal(clock.pending, 1);
  // Every item had tick 1; only the five with phase 0 are due for tick 2.
  assert.equal(sent.length, 5_005);
  assert.equal(sent.filter(([, k]) => k === 2).length, 5);
  ticker.stop();
});

Deno.test("Ticker with minGapMs 2 serves neighbouring buckets in one wake, never early", () => {
  const clock = new ManualClock(1_000_000);
  const sent: Array<[string, number, number]> = [];
  const wakes = new Set<number>();
  const ticker = new Ticker<Item>(clock, (item, seconds) => {
    sent.push([item.name, seconds, clock.now()]);
    wakes.add(clock.now());
  }, { minGapMs: 2 });
  const base = clock.now();
  for (let i = 0; i < 6; i++) {
    ticker.add({ name: `i${i}`, start: base + i, lastTick: 0 });
  }
  clock.advance(1_010);
  assert.equal(sent.length, 6);
  for (const [name, seconds, at] of sent) {
    const due = base + Number(name.slice(1)) + 1000;
    assert.equal(seconds, 1);
    assert.ok(at >= due && at <= due + 1, `${name} at ${at - due} ms`);
  }
  assert.ok(wakes.size <= 4, `${wakes.size} wakes for 6 adjacent buckets`);
  ticker.stop();
});

Deno.test("Ticker sends a tick that fell due between counting and add() at once, then keeps the phase", () => {
  const { clock, sent, ticker } = setup();
  const other: Item = { name: "other", start: clock.now() - 500, lastTick: 0 };
  ticker.add(other);
  // Counted at 4.990 s (lastTick 4), added at 5.010 s: the bucket of its
  // phase was served 10 ms ago in this second.
  const start = clock.now() - 4_990;
  clock.advance(20);
  const late: Item = { name: "late", start, lastTick: 4 };
  ticker.add(late);
  assert.deepEqual(sent.at(-1), ["late", 5, clock.now()]);
  clock.advance(1_000);
  assert.deepEqual(
    sent.filter(([name]) => name === "late"),
    [["late", 5, 1_000_020], ["late", 6, start + 6_000]],
  );
  ticker.stop();
});

Deno.test("Ticker serves the buckets that fell due while it was sending, not a second later", () => {
  const clock = new ManualClock(1_000_000);
  const sent: Array<[string, number, number]> = [];
  // Sending to "a" takes 3 ms (a busy instance): b's instant passes meanwhile.
  const ticker = new Ticker<Item>(clock, (item, seconds) => {
    sent.push([item.name, seconds, clock.now()]);
    if (item.name === "a") clock.jump(3);
  });
  const a: Item = { name: "a", start: clock.now() + 100, lastTick: 0 };
  const b: Item = { name: "b", start: clock.now() + 102, lastTick: 0 };
  ticker.add(a);
  ticker.add(b);
  clock.advance(1_200);
  assert.deepEqual(sent, [["a", 1, 1_001_100], ["b", 1, 1_001_103]]);
  ticker.stop();
});
