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

Deno.test("TokenSigner carries the epoch, and still verifies version 1 and 2 tokens", () => {
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
    previous: false,
  });
  // A version 2 token (before key ids): version | start | issued | id |
  // epoch, then the MAC.
  const v2Body = Buffer.alloc(31);
  v2Body.writeUInt8(2, 0);
  v2Body.writeUIntBE(1_700_000_000_123, 1, 6);
  v2Body.writeUInt32BE(1_700_000_050, 7);
  Buffer.from(id, "base64url").copy(v2Body, 11);
  v2Body.writeUInt32BE(5, 27);
  const v2Mac = createHmac(
    "sha256",
    Buffer.from("ws-time token v1\0a secret of sixteen chars"),
  ).update(v2Body).digest().subarray(0, 16);
  const v2 = Buffer.concat([v2Body, v2Mac]).toString("base64url");
  assert.equal(v2.length, 63);
  assert.deepEqual(signer.verify(v2), {
    id,
    start: 1_700_000_000_123,
    issued: 1_700_000_050_000,
    epoch: 5,
    previous: false,
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
    previous: false,
  });
  assert.equal(new TokenSigner("another secret, 16+").verify(v1), null);
});

Deno.test("TokenSigner verifies tokens of previous secrets, signs only with the current one, and a key id picks the key", () => {
  const old = "Pz8Yw1Xc4Vb7Nm0Qa3Sd6Fg9Hj2Kl5Ro";
  const current = "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e";
  const before = new TokenSigner(old);
  const rotated = new TokenSigner(current, [old]);
  const after = new TokenSigner(current);
  const { token: oldToken, id } = before.issue(1000, 2000, undefined, 3);
  assert.deepEqual(rotated.verify(oldToken), {
    id,
    start: 1000,
    issued: 2000 - 2000 % 1000,
    epoch: 3,
    previous: true,
  });
  assert.equal(after.verify(oldToken), null, "dropped: no longer verifies");
  const { token } = rotated.issue(1000, 5000, id, 4);
  assert.equal(before.verify(token), null, "not signed with the old one");
  assert.equal(after.verify(token)?.previous, false);
  assert.equal(rotated.verify(token)?.previous, false);
  // The key id sits after the version byte; another id finds no key, so
  // the same MAC under a changed key id is refused without trying others.
  const raw = Buffer.from(token, "base64url");
  raw.writeUInt16BE(raw.readUInt16BE(1) ^ 1, 1);
  assert.equal(rotated.verify(raw.toString("base64url")), null);
  // Announcing the next secret in advance (the first step of a two-step
  // rotation): the old one signs, the next one already verifies.
  const announced = new TokenSigner(old, [current]);
  assert.equal(announced.verify(token)?.previous, true);
});
