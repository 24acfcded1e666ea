import assert from "node:assert/strict";
import { requestIds } from "./request_id.ts";

Deno.test("requestIds() takes X-Request-Id from a trusted proxy only, and only a safe token", () => {
  const next = requestIds("srv-");
  const given = (id: string) => new Headers({ "x-request-id": id });
  assert.equal(next(given("haproxy-7f3a"), true), "haproxy-7f3a");
  // A client's own id could make its lines pass for another connection's.
  assert.equal(next(given("victims-id"), false), "srv-0");
  assert.equal(next(given("a b forged=1"), true), "srv-1");
  assert.equal(next(new Headers(), true), "srv-2");
});
