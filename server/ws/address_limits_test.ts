import assert from "node:assert/strict";
import { addressKey, AddressLimits } from "./address_limits.ts";
import { ManualClock } from "../clock.ts";

Deno.test("AddressLimits caps open connections per address and frees slots on release", async () => {
  const limits = new AddressLimits(
    { maxPerAddress: 3, ratePerAddress: 100 },
    new ManualClock(),
  );
  for (let i = 0; i < 3; i++) assert.equal(limits.admit("192.0.2.1"), null);
  const refusal = limits.admit("192.0.2.1");
  assert.equal(refusal?.response.status, 429);
  assert.ok(Number(refusal?.response.headers.get("retry-after")) >= 1);
  assert.match(
    await refusal!.response.text(),
    /too many open connections from your address \(limit 3\)/,
  );
  assert.equal(
    limits.admit("192.0.2.2"),
    null,
    "another address is unaffected",
  );
  limits.release("192.0.2.1");
  assert.equal(limits.admit("192.0.2.1"), null);
});

Deno.test("AddressLimits limits new connections per second with a Retry-After", async () => {
  const clock = new ManualClock();
  const limits = new AddressLimits(
    { maxPerAddress: 1000, ratePerAddress: 2 },
    clock,
  );
  assert.equal(limits.admit("192.0.2.1"), null);
  assert.equal(limits.admit("192.0.2.1"), null);
  const refusal = limits.admit("192.0.2.1");
  assert.equal(refusal?.response.status, 429);
  assert.equal(refusal?.response.headers.get("retry-after"), "1");
  assert.match(await refusal!.response.text(), /too many new connections/);
  assert.equal(
    limits.admit("192.0.2.9"),
    null,
    "another address is unaffected",
  );
  clock.advance(500);
  assert.equal(limits.admit("192.0.2.1"), null, "half a second buys one more");
  assert.notEqual(limits.admit("192.0.2.1"), null);
});

Deno.test("AddressLimits counts an IPv6 /64 as one address", () => {
  const limits = new AddressLimits(
    { maxPerAddress: 2, ratePerAddress: 100 },
    new ManualClock(),
  );
  assert.equal(limits.admit("2001:db8:1:2::1"), null);
  assert.equal(limits.admit("2001:db8:1:2:ffff::9"), null);
  assert.equal(
    limits.admit("2001:db8:1:2:aaaa:bbbb:cccc:dddd")?.response.status,
    429,
  );
  assert.equal(limits.admit("2001:db8:1:3::1"), null);
  assert.equal(addressKey("2001:0db8:0001:0002::1"), "2001:db8:1:2::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
});

Deno.test("AddressLimits forgets idle addresses, so 100000 addresses leave no trace", () => {
  const clock = new ManualClock();
  const limits = new AddressLimits(
    { maxPerAddress: 10, ratePerAddress: 5 },
    clock,
  );
  for (let i = 0; i < 100_000; i++) {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    assert.equal(limits.admit(address), null);
    limits.release(address);
    if (i % 1000 === 999) clock.advance(100);
  }
  assert.ok(limits.size < 20_000, `remembered ${limits.size} addresses`);
  limits.admit("192.0.2.1");
  clock.advance(5000);
  limits.admit("192.0.2.2");
  assert.equal(limits.size, 2, "only addresses with open connections remain");
});

Deno.test("AddressLimits with 0 limits nothing: 5000 connections at once from one address", () => {
  const limits = new AddressLimits(
    { maxPerAddress: 0, ratePerAddress: 0 },
    new ManualClock(),
  );
  for (let i = 0; i < 5000; i++) assert.equal(limits.admit("192.0.2.1"), null);
  const openOnly = new AddressLimits(
    { maxPerAddress: 2, ratePerAddress: 0 },
    new ManualClock(),
  );
  assert.equal(openOnly.admit("192.0.2.1"), null);
  assert.equal(openOnly.admit("192.0.2.1"), null);
  assert.equal(openOnly.admit("192.0.2.1")?.reason, "address-open");
  const rateOnly = new AddressLimits(
    { maxPerAddress: 0, ratePerAddress: 1 },
    new ManualClock(),
  );
  assert.equal(rateOnly.admit("192.0.2.1"), null);
  assert.equal(rateOnly.admit("192.0.2.1")?.reason, "address-rate");
});
