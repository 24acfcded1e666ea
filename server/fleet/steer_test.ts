import assert from "node:assert/strict";
import type { FleetView, PresenceRecord } from "./presence.ts";
import {
  handOn,
  hopLimit,
  MAX_HOPS,
  MIN_HOPS,
  placingMean,
  replacementReady,
  type SteerSelf,
  YOUNGER_MS,
} from "./steer.ts";

const OLD = 1_000_000;
const NEW = OLD + 10 * 60_000;

function record(
  name: string,
  connections: number,
  more: Partial<PresenceRecord> = {},
): PresenceRecord {
  return {
    name,
    version: "1.0.0",
    startedAt: OLD,
    connections,
    capacity: 10_000,
    load: connections / 10_000,
    healthy: true,
    draining: false,
    at: 0,
    ...more,
  };
}

function view(
  instances: PresenceRecord[],
  more: Partial<FleetView> = {},
): FleetView {
  return { instances, lost: [], reachable: true, settling: [], ...more };
}

function self(
  name: string,
  connections: number,
  more: Partial<SteerSelf> = {},
): SteerSelf {
  return { name, startedAt: OLD, connections, draining: false, ...more };
}

Deno.test("handOn() in a surge deploy sends movers from old instances to the new one until it holds the mean", () => {
  // a drains 80; b and c hold 80; a2 started for the deploy.
  const fleet = (a2: number) =>
    view([
      // What a2 holds came from a.
      record("a", 80 - a2, { draining: true }),
      record("b", 80),
      record("c", 80),
      record("a2", a2, { startedAt: NEW }),
    ]);
  assert.equal(placingMean(fleet(0).instances, self("b", 80)), 80);
  assert.equal(
    handOn(fleet(0), self("b", 80), 1),
    "an emptier instance has room",
  );
  // b a little below the mean still prefers the younger one.
  assert.equal(
    handOn(fleet(40), self("b", 70), 1),
    "a younger instance has room",
  );
  // The new instance itself keeps them.
  assert.equal(handOn(fleet(0), self("a2", 0, { startedAt: NEW }), 1), null);
  // Once it holds the mean, nobody is handed on.
  assert.equal(handOn(fleet(80), self("b", 80), 1), null);
});

Deno.test("handOn() leaves a fleet started together alone: no instance is younger", () => {
  const fleet = view([
    record("a", 80, { draining: true }),
    record("b", 80, { startedAt: OLD + YOUNGER_MS - 1 }),
    record("c", 80),
  ]);
  // The mean over the two that stay is 120: both have room.
  assert.equal(handOn(fleet, self("c", 80), 1), null);
  assert.equal(handOn(fleet, self("b", 80), 1), null);
});

Deno.test("handOn() in a rebalance sends a mover from an instance at the mean to one below it", () => {
  const fleet = view([record("a", 75), record("b", 60), record("c", 45)]);
  assert.equal(handOn(fleet, self("b", 60), 1), "an emptier instance has room");
  assert.equal(handOn(fleet, self("c", 45), 1), null);
});

Deno.test("handOn() keeps a mover after hopLimit() tries, and hands on everything while draining", () => {
  const fleet = view([record("b", 80), record("a2", 0, { startedAt: NEW })]);
  const limit = hopLimit(2);
  assert.equal(limit, MIN_HOPS);
  assert.notEqual(handOn(fleet, self("b", 80), limit - 1), null);
  assert.equal(handOn(fleet, self("b", 80), limit), null);
  assert.equal(hopLimit(4), 12);
  assert.equal(hopLimit(100), MAX_HOPS);
  assert.equal(
    handOn(view([record("b", 80)]), self("a", 3, { draining: true }), 99),
    "this instance is draining",
  );
});

Deno.test("handOn() keeps movers when the store is unreachable or the better instance is unhealthy or draining", () => {
  const instances = [record("b", 80), record("a2", 0, { startedAt: NEW })];
  assert.equal(
    handOn(view(instances, { reachable: false }), self("b", 80), 1),
    null,
  );
  for (const more of [{ healthy: false }, { draining: true }]) {
    const fleet = view([
      record("b", 80),
      record("a2", 0, { startedAt: NEW, ...more }),
    ]);
    assert.equal(handOn(fleet, self("b", 80), 1), null, JSON.stringify(more));
  }
});

Deno.test("replacementReady() waits for a younger, settled instance below the mean", () => {
  const a = self("a", 80, { draining: true });
  const before = view([
    record("a", 80, { draining: true }),
    record("b", 80),
    record("c", 80),
  ]);
  assert.equal(replacementReady(before, a), false, "in place: nothing yet");
  const joined = view([
    ...before.instances,
    record("a2", 0, { startedAt: NEW }),
  ]);
  assert.equal(
    replacementReady({ ...joined, settling: ["a2"] }, a),
    false,
    "the balancer may not send there yet",
  );
  assert.equal(replacementReady(joined, a), true);
  // The second step of an in-place deploy: a2 is younger than b but full,
  // so b waits for its own replacement.
  const b = self("b", 80, { draining: true });
  const second = view([
    record("a2", 80, { startedAt: NEW }),
    record("b", 80, { draining: true }),
    record("c", 80),
  ]);
  assert.equal(replacementReady(second, b), false);
});
