import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import {
  Fleet,
  lowestRecordFormat,
  parsePresence,
  type PresenceBoard,
} from "./presence.ts";

/** A board in memory, as the shared store's hash would be. */
class Board implements PresenceBoard {
  readonly hash = new Map<string, string>();
  down = false;
  exchangePresence(
    name: string,
    record: string,
    stale: readonly string[],
  ): Promise<Record<string, string>> {
    if (this.down) return Promise.reject(new Error("Redis is not connected"));
    this.hash.set(name, record);
    for (const gone of stale) this.hash.delete(gone);
    return Promise.resolve(Object.fromEntries(this.hash));
  }
}

function member(
  board: Board,
  clock: ManualClock,
  name: string,
  logger = memoryLogger(),
) {
  let connections = 0;
  const fleet = new Fleet({
    board,
    clock,
    logger,
    self: () => ({
      name,
      version: "1.0.0",
      startedAt: 0,
      connections,
      capacity: 100,
      load: connections / 100,
      healthy: true,
      draining: false,
    }),
  });
  return { fleet, set: (n: number) => connections = n };
}

Deno.test("Fleet: instances sharing a board see each other's records within a second", async () => {
  const clock = new ManualClock();
  const board = new Board();
  const a = member(board, clock, "a");
  const b = member(board, clock, "b");
  a.set(80);
  await a.fleet.exchange();
  const view = await b.fleet.exchange();
  assert.deepEqual(
    view.instances.map((r) => [r.name, r.connections]).sort(),
    [["a", 80], ["b", 0]],
  );
  assert.equal(view.reachable, true);
  assert.deepEqual(view.lost, []);
});

Deno.test("Fleet: an instance whose record goes stale counts as lost for a while, then is forgotten", async () => {
  const clock = new ManualClock();
  const board = new Board();
  const a = member(board, clock, "a");
  const b = member(board, clock, "b");
  await a.fleet.exchange();
  await b.fleet.exchange();
  clock.advance(4000); // "a" stopped publishing: stale after 3.5 s
  let view = await b.fleet.exchange();
  assert.deepEqual(view.instances.map((r) => r.name), ["b"]);
  assert.deepEqual(view.lost, ["a"]);
  clock.advance(31_000);
  view = await b.fleet.exchange();
  assert.deepEqual(view.lost, []);
  assert.equal(board.hash.has("a"), false, "forgotten on the board too");
});

Deno.test("Fleet: an unreachable board keeps the last view but says so, and warns once", async () => {
  const clock = new ManualClock();
  const board = new Board();
  const logger = memoryLogger();
  const { fleet } = member(board, clock, "a", logger);
  await fleet.exchange();
  board.down = true;
  await fleet.exchange();
  await fleet.exchange();
  assert.equal(fleet.view.reachable, false);
  assert.equal(fleet.view.instances.length, 1);
  assert.equal(logger.lines.filter((l) => /presence/.test(l)).length, 1);
});

Deno.test("parsePresence() refuses anything that is not a presence record", () => {
  assert.equal(parsePresence("not json"), null);
  assert.equal(parsePresence('{"name":"a"}'), null);
  assert.equal(parsePresence("null"), null);
  const good = {
    name: "a",
    version: "1",
    startedAt: 1,
    connections: 2,
    capacity: 3,
    load: 0.5,
    healthy: true,
    draining: false,
    at: 9,
  };
  assert.deepEqual(parsePresence(JSON.stringify(good)), good);
});

Deno.test("Fleet: an instance that appears after this one started is settling for a few seconds; those already there are not", async () => {
  const clock = new ManualClock();
  const board = new Board();
  const a = member(board, clock, "a");
  const b = member(board, clock, "b");
  await a.fleet.exchange();
  let view = await b.fleet.exchange();
  assert.deepEqual(view.settling, [], "a was there before b started");
  const c = member(board, clock, "c");
  await c.fleet.exchange();
  view = await b.fleet.exchange();
  assert.deepEqual(view.settling, ["c"]);
  clock.advance(5000);
  await a.fleet.exchange();
  await c.fleet.exchange();
  view = await b.fleet.exchange();
  assert.deepEqual(view.settling, []);
});

Deno.test("lowestRecordFormat(): the oldest format any record on the board reads, an older version's (no field) counting as 1", () => {
  const record = (name: string, records?: number) =>
    JSON.stringify({
      name,
      version: "1",
      startedAt: 1,
      connections: 0,
      capacity: 10,
      load: 0,
      healthy: true,
      draining: false,
      at: 9,
      ...(records === undefined ? {} : { records }),
    });
  assert.equal(lowestRecordFormat({}), 0);
  assert.equal(lowestRecordFormat({ a: record("a", 2), b: record("b", 2) }), 2);
  assert.equal(lowestRecordFormat({ a: record("a", 2), b: record("b") }), 1);
  assert.equal(
    lowestRecordFormat({ a: record("a", 2), junk: "not a record" }),
    2,
  );
});
