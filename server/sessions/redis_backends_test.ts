import assert from "node:assert/strict";
import { primaryLayout, routingKey } from "./redis_backends.ts";

Deno.test("routingKey() routes a script by its first key, and keyless commands nowhere", () => {
  assert.equal(routingKey(["SET", "k", "v", "EX", "5"]), "k");
  assert.equal(routingKey(["GETEX", "k", "EX", "5"]), "k");
  assert.equal(routingKey(["EVALSHA", "abc", "2", "k1", "k2", "a"]), "k1");
  assert.equal(routingKey(["EVAL", "return 1", "0", "a"]), undefined);
  assert.equal(routingKey(["PUBLISH", "chan", "m"]), undefined);
  assert.equal(routingKey(["PING"]), undefined);
  assert.equal(routingKey(["HGETALL", "fleet"]), "fleet");
});

Deno.test("primaryLayout() changes with a promotion, not with slots moving between primaries", () => {
  const reply = (ranges: Array<[number, number, string, number]>) =>
    ranges.map(([from, to, host, port]) => [from, to, [host, port, "id"]]);
  const before = primaryLayout(reply([
    [0, 5460, "10.0.0.1", 6379],
    [5461, 10922, "10.0.0.2", 6379],
    [10923, 16383, "10.0.0.3", 6379],
  ]));
  assert.equal(before, "10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379");
  const resharded = primaryLayout(reply([
    [0, 1999, "10.0.0.2", 6379],
    [2000, 5460, "10.0.0.1", 6379],
    [5461, 10922, "10.0.0.2", 6379],
    [10923, 16383, "10.0.0.3", 6379],
  ]));
  assert.equal(resharded, before);
  const promoted = primaryLayout(reply([
    [0, 5460, "10.0.0.5", 6379],
    [5461, 10922, "10.0.0.2", 6379],
    [10923, 16383, "10.0.0.3", 6379],
  ]));
  assert.notEqual(promoted, before);
  assert.equal(primaryLayout("garbage"), "");
});
