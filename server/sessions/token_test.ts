import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import { hmacSha256, logLabel, TOKEN_LENGTH, TokenSigner } from "./token.ts";

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

Deno.test("TokenSigner carries the epoch, and still verifies version 1 tokens as epoch 0", () => {
  const signer = new TokenSigner("a secret of sixteen chars");
  const { token, id } = signer.issue(
    1_700_000_000_123,
    1_700_000_050_000,
    undefined,
    7,
  );
  assert.equal(token.length, TOKEN_LENGTH);
  assert.deepEqual(signer.verify(token), {
    id,
    start: 1_700_000_000_123,
    issued: 1_700_000_050_000,
    epoch: 7,
  });
  // A version 1 token (issued before epochs) as the previous release made
  // it: version | start | issued | id, then the first 16 bytes of the MAC.
  const body = Buffer.alloc(27);
  body.writeUInt8(1, 0);
  body.writeUIntBE(1_700_000_000_123, 1, 6);
  body.writeUInt32BE(1_700_000_050, 7);
  Buffer.from(id, "base64url").copy(body, 11);
  const mac = createHmac(
    "sha256",
    Buffer.from("ws-time token v1\0a secret of sixteen chars"),
  ).update(body).digest().subarray(0, 16);
  const v1 = Buffer.concat([body, mac]).toString("base64url");
  assert.equal(v1.length, 58);
  assert.deepEqual(signer.verify(v1), {
    id,
    start: 1_700_000_000_123,
    issued: 1_700_000_050_000,
    epoch: 0,
  });
  assert.equal(new TokenSigner("another secret, 16+").verify(v1), null);
});
