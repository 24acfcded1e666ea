import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { createSessionResolver, type RejectedToken } from "./resolver.ts";
import { MemoryStore } from "./store.ts";
import { TokenSigner } from "./token.ts";

const TTL = 60_000;

function setup() {
  const clock = new ManualClock();
  const store = new MemoryStore(clock, TTL);
  const tokens = new TokenSigner("a secret of sixteen chars");
  const rejected: RejectedToken[] = [];
  const resolve = createSessionResolver({
    store,
    tokens,
    clock,
    ttlMs: TTL,
    logger: memoryLogger(),
    onRejected: (reason) => rejected.push(reason),
  });
  return { clock, store, tokens, rejected, resolve };
}

Deno.test("createSessionResolver() starts a new session and records it in the store", async () => {
  const { clock, store, tokens, resolve } = setup();
  const session = await resolve("");
  assert.equal(session.resumed, "");
  assert.equal(session.start, clock.now());
  assert.equal(tokens.verify(session.token)?.id, session.id);
  assert.deepEqual(await store.get(session.id), { start: clock.now() });
});

Deno.test("createSessionResolver() resumes from the store with the stored start", async () => {
  const { clock, store, tokens, resolve } = setup();
  const start = clock.now() - 42_000;
  const { token, id } = tokens.issue(start, clock.now());
  await store.create(id, { start });
  clock.advance(5_000);
  const session = await resolve(token);
  assert.deepEqual([session.id, session.start, session.resumed], [
    id,
    start,
    "store",
  ]);
  assert.equal(tokens.verify(session.token)?.issued, clock.now());
});

Deno.test("createSessionResolver() trusts a fresh token's start when the store forgot, and writes it back", async () => {
  const { clock, store, tokens, resolve } = setup();
  const start = clock.now() - 7_000;
  const { token, id } = tokens.issue(start, clock.now());
  const session = await resolve(token);
  assert.deepEqual([session.id, session.start, session.resumed], [
    id,
    start,
    "token",
  ]);
  assert.deepEqual(await store.get(id), { start });
});

Deno.test("createSessionResolver() starts afresh for forged and stale tokens, and says why", async () => {
  const { clock, store, tokens, rejected, resolve } = setup();
  const forged = await resolve("x".repeat(58));
  assert.equal(forged.resumed, "");
  const { token, id } = tokens.issue(clock.now(), clock.now());
  await store.create(id, { start: clock.now() });
  clock.advance(2 * TTL);
  await store.refresh([id]);
  const stale = await resolve(token);
  assert.equal(stale.resumed, "");
  assert.notEqual(stale.id, id);
  assert.deepEqual(rejected, ["invalid", "expired"]);
});
