import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { createSessionResolver, type RejectedToken } from "./resolver.ts";
import { MemoryStore } from "./store.ts";
import { TokenSigner } from "./token.ts";

const TTL = 60_000;

function setup(undelivered?: (id: string, epoch: number) => boolean) {
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
    ...(undelivered ? { undelivered } : {}),
  });
  return { clock, store, tokens, rejected, resolve };
}

Deno.test("createSessionResolver() starts a new session and records it in the store", async () => {
  const { clock, store, tokens, resolve } = setup();
  const session = await resolve("");
  assert.equal(session.resumed, "");
  assert.equal(session.start, clock.now());
  assert.equal(tokens.verify(session.token)?.id, session.id);
  assert.equal(session.epoch, 1);
  assert.deepEqual(await store.claim(session.id, 1), {
    start: clock.now(),
    epoch: 2,
    superseded: false,
  });
});

Deno.test("createSessionResolver() resumes from the store with the stored start", async () => {
  const { clock, store, tokens, resolve } = setup();
  const start = clock.now() - 42_000;
  const { token, id } = tokens.issue(start, clock.now(), undefined, 3);
  await store.create(id, start, 3);
  clock.advance(5_000);
  const session = await resolve(token);
  assert.deepEqual(
    [session.id, session.start, session.epoch, session.resumed],
    [id, start, 4, "store"],
  );
  const claims = tokens.verify(session.token);
  assert.deepEqual([claims?.issued, claims?.epoch], [clock.now(), 4]);
});

Deno.test("createSessionResolver() trusts a fresh token's start when the store forgot, and writes it back", async () => {
  const { clock, store, tokens, resolve } = setup();
  const start = clock.now() - 7_000;
  const { token, id } = tokens.issue(start, clock.now(), undefined, 2);
  const session = await resolve(token);
  assert.deepEqual(
    [session.id, session.start, session.epoch, session.resumed],
    [id, start, 3, "token"],
  );
  assert.equal((await store.claim(id, 3))?.start, start);
});

Deno.test("createSessionResolver() starts afresh for forged and stale tokens, and says why", async () => {
  const { clock, store, tokens, rejected, resolve } = setup();
  const forged = await resolve("x".repeat(58));
  assert.equal(forged.resumed, "");
  const { token, id } = tokens.issue(clock.now(), clock.now());
  await store.create(id, clock.now(), 1);
  clock.advance(2 * TTL);
  await store.refresh([{ id, epoch: 1, start: clock.now() }]);
  const stale = await resolve(token);
  assert.equal(stale.resumed, "");
  assert.notEqual(stale.id, id);
  assert.deepEqual(rejected, ["invalid", "expired"]);
});

Deno.test("createSessionResolver() marks a stale handshake superseded while a newer connection holds the session", async () => {
  const { clock, store, tokens, resolve } = setup();
  const start = clock.now() - 9_000;
  const { token, id } = tokens.issue(start, clock.now(), undefined, 5);
  await store.create(id, start, 5);
  const moved = await resolve(token);
  assert.deepEqual([moved.epoch, moved.superseded], [6, false]);
  const stale = await resolve(token);
  assert.deepEqual([stale.id, stale.start, stale.epoch, stale.superseded], [
    id,
    start,
    6,
    true,
  ]);
  assert.equal(stale.token, "");
  await store.release(id, 6);
  const after = await resolve(token);
  assert.deepEqual([after.epoch, after.superseded], [7, false]);
});

Deno.test("createSessionResolver() takes the session from a newer connection that never handed out its token", async () => {
  // The client's first try at this instance claimed epoch 6 but gave up
  // before its welcome arrived; it retries with the token of epoch 5.
  const asked: Array<[string, number]> = [];
  let delivered = false;
  const { clock, store, tokens, resolve } = setup((id, epoch) => {
    asked.push([id, epoch]);
    return !delivered;
  });
  const start = clock.now() - 9_000;
  const { token, id } = tokens.issue(start, clock.now(), undefined, 5);
  await store.create(id, start, 5);
  const abandoned = await resolve(token);
  assert.equal(abandoned.epoch, 6);
  const retry = await resolve(token);
  assert.deepEqual([retry.start, retry.epoch, retry.superseded], [
    start,
    7,
    false,
  ]);
  assert.deepEqual(asked, [[id, 6]]);
  assert.equal(tokens.verify(retry.token)?.epoch, 7);
  // Once a connection's welcome went out, an older token yields as before.
  delivered = true;
  const stale = await resolve(token);
  assert.deepEqual([stale.epoch, stale.superseded], [7, true]);
});
