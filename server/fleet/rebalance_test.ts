import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import type { FleetView, PresenceRecord } from "./presence.ts";
import {
  decide,
  Rebalancer,
  RETURN_PAUSE_MS,
  STORM_HANDSHAKES,
} from "./rebalance.ts";

const OPTIONS = { tolerance: 0.1, rate: 5, threshold: 0.6 };

function record(name: string, connections: number, more = {}): PresenceRecord {
  return {
    name,
    version: "1.0.0",
    startedAt: 0,
    connections,
    capacity: 10_000,
    load: connections / 10_000,
    healthy: true,
    draining: false,
    at: 0,
    ...more,
  };
}

function view(...instances: PresenceRecord[]): FleetView {
  return { instances, lost: [], reachable: true, settling: [] };
}

const self = (connections: number, more = {}) => ({
  name: "a",
  connections,
  load: connections / 10_000,
  handshakes: 0,
  ...more,
});

Deno.test("decide() after a scale-out moves an instance's excess, a few a second, down to the mean and never below", () => {
  // Three at 80, a fourth just started: the mean is 60.
  const fleet = view(
    record("a", 80),
    record("b", 80),
    record("c", 80),
    record("d", 0),
  );
  assert.deepEqual(decide(fleet, self(80), OPTIONS), {
    move: 5,
    why: "above the mean",
  });
  assert.equal(decide(fleet, self(80), { ...OPTIONS, rate: 50 }).move, 20);
  // The new instance itself moves nobody.
  assert.equal(decide(fleet, { ...self(0), name: "d" }, OPTIONS).move, 0);
});

Deno.test("decide() leaves a balanced fleet alone: within the tolerance nobody moves", () => {
  const fleet = view(record("a", 64), record("b", 58), record("c", 58));
  assert.deepEqual(decide(fleet, self(64), OPTIONS), {
    move: 0,
    why: "within tolerance",
  });
  assert.equal(decide(fleet, self(58), OPTIONS).why, "at or below the mean");
});

Deno.test("decide() after a scale-out 3 -> 4 sheds down to the mean while the new instance is short, not just into the tolerance", () => {
  // Each old instance is within 10% of the mean (75); the new one is 30%
  // short of it.
  const fleet = view(
    record("a", 82),
    record("b", 82),
    record("c", 82),
    record("d", 54),
  );
  assert.deepEqual(decide(fleet, self(82), OPTIONS), {
    move: 5,
    why: "another instance is short",
  });
  // Close enough everywhere: nobody moves.
  const even = view(
    record("a", 77),
    record("b", 77),
    record("c", 77),
    record("d", 69),
  );
  assert.equal(decide(even, self(77), OPTIONS).move, 0);
});

Deno.test("decide() moves from an instance over its health threshold while others have room, even within the tolerance", () => {
  const fleet = view(record("a", 100), record("b", 95));
  const busy = self(100, { load: 0.7 });
  assert.equal(decide(fleet, self(100), OPTIONS).move, 0);
  assert.deepEqual(decide(fleet, busy, OPTIONS), {
    move: 2,
    why: "over capacity threshold",
  });
  // Nowhere to go: everyone is over the threshold.
  const full = view(record("a", 100), record("b", 95, { load: 0.9 }));
  assert.equal(decide(full, busy, OPTIONS).move, 0);
});

Deno.test("decide() pauses while the fleet is unsettled", () => {
  const uneven = [record("a", 80), record("b", 0)];
  assert.equal(decide(view(...uneven), self(80), OPTIONS).move, 5);
  const cases: Array<[FleetView, ReturnType<typeof self>, RegExp]> = [
    [{ ...view(...uneven), reachable: false }, self(80), /store unreachable/],
    [{ ...view(...uneven), lost: ["c"] }, self(80), /1 instance\(s\) lost/],
    [
      view(record("a", 80), record("b", 0, { draining: true })),
      self(80),
      /draining/,
    ],
    [view(...uneven), self(80, { handshakes: STORM_HANDSHAKES }), /storm/],
    [{ ...view(...uneven), settling: ["b"] }, self(80), /settling/],
    [view(record("a", 80)), self(80), /alone/],
  ];
  for (const [fleet, me, why] of cases) {
    const decision = decide(fleet, me, OPTIONS);
    assert.equal(decision.move, 0);
    assert.match(decision.why, why);
  }
});

Deno.test("Rebalancer moves a batch, waits until the others' counts show it, and logs each batch and each change of reason", () => {
  const clock = new ManualClock();
  const logger = memoryLogger();
  let mine = 80;
  // Every exchange brings records written now, with the moves landed.
  const fresh = () =>
    view(
      record("a", mine, { at: clock.now() }),
      record("b", 80 - mine, { at: clock.now() }),
    );
  const asked: number[] = [];
  const rebalancer = new Rebalancer({
    ...OPTIONS,
    fleet: {
      get view() {
        return fresh();
      },
    },
    clock,
    logger,
    self: () => self(mine),
    move: (count) => {
      asked.push(count);
      mine -= count;
      return count;
    },
  });
  rebalancer.start();
  clock.advance(30_000);
  rebalancer.stop();
  // 80 and 0: mean 40, 5 a second: a batch every 2 s, once the last one
  // shows in the records, with two seconds' worth (the first one three),
  // down to the mean and no further.
  assert.deepEqual(asked, [15, 10, 10, 5]);
  assert.equal(rebalancer.moved, 40);
  assert.equal(rebalancer.state, "at or below the mean");
  const batches = logger.lines.filter((l) => /rebalancing/.test(l));
  assert.equal(batches.length, 4);
  assert.ok(logger.lines.some((l) => /waiting for the last moves/.test(l)));
});

Deno.test("Rebalancer pauses when a moved client came back: the balancer does not send to the others yet", () => {
  const clock = new ManualClock();
  const asked: number[] = [];
  const rebalancer = new Rebalancer({
    ...OPTIONS,
    fleet: {
      get view() {
        return view(
          record("a", 80, { at: clock.now() }),
          record("b", 0, { at: clock.now() }),
        );
      },
    },
    clock,
    logger: memoryLogger(),
    self: () => self(80),
    move: (count) => {
      asked.push(count);
      return count;
    },
  });
  assert.equal(rebalancer.step(), 15);
  clock.advance(2000);
  rebalancer.returned();
  clock.advance(RETURN_PAUSE_MS - 1);
  assert.equal(rebalancer.step(), 0);
  assert.match(rebalancer.state, /came back/);
  clock.advance(1);
  assert.equal(rebalancer.step(), 15, "at most three seconds' worth");
});
