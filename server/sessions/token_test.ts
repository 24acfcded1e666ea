import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import { hmacSha256, logLabel } from "./token.ts";

Deno.test("hmacSha256 matches node:crypto's HMAC for short, block-sized and long keys", () => {
  for (const keyLength of [0, 1, 31, 63, 64, 65, 200]) {
    const key = randomBytes(keyLength);
    const mac = hmacSha256(key);
    for (const length of [0, 27, 64, 1000]) {
      const message = randomBytes(length);
      assert.deepEqual(
        mac(message),
        createHmac("sha256", key).update(message).digest(),
        `key ${keyLength} bytes, message ${length} bytes`,
      );
    }
  }
});

Deno.test("logLabel is stable, short and differs between ids", () => {
  const a = logLabel("ztOsydZbAAAAAAAAAAAAAA");
  assert.equal(a, logLabel("ztOsydZbAAAAAAAAAAAAAA"));
  assert.equal(a.length, 8);
  assert.notEqual(a, logLabel("ztOsydZbAAAAAAAAAAAAAB"));
  // The label of old logs stays the same: HMAC-SHA256 keyed "ws-time log".
  assert.equal(
    a,
    createHmac("sha256", "ws-time log").update("ztOsydZbAAAAAAAAAAAAAA")
      .digest("base64url").slice(0, 8),
  );
  assert.ok(!Buffer.from(a).includes("ztOs"));
});
