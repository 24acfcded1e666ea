import assert from "node:assert/strict";
import { redact, redactText } from "./redact.ts";

Deno.test("redactText() hides every URL's password inside a message, and nothing else", () => {
  assert.equal(
    redactText(
      "connect to redis://:s3cret@10.0.0.5:6379 failed; rediss://user:pw%40x@h/0 too",
    ),
    "connect to redis://:***@10.0.0.5:6379 failed; rediss://user:***@h/0 too",
  );
  assert.equal(
    redactText("Socket closed unexpectedly"),
    "Socket closed unexpectedly",
  );
});

Deno.test("redact() hides a URL's password and refuses what is no URL", () => {
  assert.equal(redact("redis://:pw@h:1"), "redis://:***@h:1");
  assert.equal(redact("not a url"), "<unparsable URL>");
});
