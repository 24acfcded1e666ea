import assert from "node:assert/strict";
import { ManualClock } from "../../server/clock.ts";
import { MemoryStore, type SessionStore } from "../../server/sessions/store.ts";
import { TOKEN_LENGTH } from "../../server/sessions/token.ts";
import { testApp } from "../helpers/in_process.ts";

/** A spy on the SessionStore interface: counts every call, then delegates. */
function countingStore(inner: SessionStore): SessionStore & {
  calls: Record<string, number>;
} {
  const calls: Record<string, number> = {};
  const count = <T>(name: string, result: T): T => {
    calls[name] = (calls[name] ?? 0) + 1;
    return result;
  };
  return {
    calls,
    kind: inner.kind,
    create: (id, start, epoch) =>
      count("create", inner.create(id, start, epoch)),
    claim: (id, epoch) => count("claim", inner.claim(id, epoch)),
    refresh: (held) => count("refresh", inner.refresh(held)),
    release: (id, epoch) => count("release", inner.release(id, epoch)),
    announce: (id, epoch) => count("announce", inner.announce(id, epoch)),
    onTakeover: (listener) => inner.onTakeover(listener),
    onResync: (listener) => inner.onResync(listener),
    status: () => inner.status(),
    callDurations: () => inner.callDurations(),
    close: () => inner.close(),
  };
}

function setup() {
  const clock = new ManualClock();
  const store = countingStore(new MemoryStore(clock, 60_000));
  const { app, config, logger } = testApp(["--session-ttl", "60s"], {
    clock,
    store,
  });
  const upgrade = async (token: string) => {
    const response = await app.handler(
      new Request(`http://127.0.0.1/?session=${encodeURIComponent(token)}`, {
        headers: {
          upgrade: "websocket",
          connection: "Upgrade",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      }),
    );
    await response.body?.cancel();
    return response.status;
  };
  const resumed = () =>
    app.metrics.value("wstime_sessions_total", {
      kind: "resumed",
      from: "store",
    }) +
    app.metrics.value("wstime_sessions_total", {
      kind: "resumed",
      from: "token",
    });
  return { clock, config, store, app, logger, upgrade, resumed };
}

Deno.test("buildApp() resume: a genuine token resumes from the store, the spy sees the claim", async () => {
  const { clock, store, app, upgrade, resumed } = setup();
  const { token, id } = app.tokens.issue(clock.now(), clock.now());
  await store.create(id, clock.now(), 1);
  assert.equal(await upgrade(token), 101);
  assert.equal(store.calls.claim, 1);
  assert.equal(resumed(), 1);
  app.close();
  await store.close();
});

Deno.test("buildApp() resume: forged, truncated, altered and oversized tokens never resume and never reach the store", async () => {
  const { clock, store, app, upgrade, resumed } = setup();
  const { token, id } = app.tokens.issue(clock.now() - 5000, clock.now());
  await store.create(id, clock.now() - 5000, 1);
  const alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const bad: string[] = [];
  // Every single-character alteration of a genuine token.
  for (let i = 0; i < token.length; i++) {
    const other = alphabet[(alphabet.indexOf(token[i]!) + 17) % 64]!;
    bad.push(token.slice(0, i) + other + token.slice(i + 1));
  }
  // Every truncation and a few extensions.
  for (let n = 1; n < token.length; n++) bad.push(token.slice(0, n));
  bad.push(token + "A", token + token, token.replace(/.$/, "=="));
  // The same bytes spelled differently (the last character's spare bits).
  const last = alphabet.indexOf(token.at(-1)!);
  bad.push(token.slice(0, -1) + alphabet[last ^ 1]);
  // Forgeries: random strings of the right length and shape.
  let seed = 7;
  for (let f = 0; f < 100; f++) {
    let forged = "";
    for (let i = 0; i < TOKEN_LENGTH; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      forged += alphabet[seed % 64];
    }
    bad.push(forged);
  }
  // Oversized, and shapes a parser might trip on.
  bad.push(
    "A".repeat(2000),
    "%00".repeat(20),
    "../../etc/passwd",
    " ".repeat(58),
  );
  for (const candidate of bad) {
    assert.equal(await upgrade(candidate), 101, candidate);
  }
  assert.equal(
    store.calls.claim ?? 0,
    0,
    `store.claim calls for ${bad.length} bad tokens`,
  );
  assert.equal(resumed(), 0);
  assert.equal(
    app.metrics.value("wstime_tokens_rejected_total", { reason: "invalid" }),
    bad.length,
  );
  app.close();
  await store.close();
});

Deno.test("buildApp() resume: a token older than twice the grace period is refused before any store call", async () => {
  const { clock, config, store, app, upgrade, resumed } = setup();
  const { token, id } = app.tokens.issue(clock.now(), clock.now());
  await store.create(id, clock.now(), 1);
  clock.advance(2 * config.sessionTtlMs);
  // Keep the record alive, as a live connection's refreshes would.
  await store.refresh([{ id, epoch: 1, start: clock.now() }]);
  const before = store.calls.claim ?? 0;
  assert.equal(await upgrade(token), 101);
  assert.equal((store.calls.claim ?? 0) - before, 0);
  assert.equal(resumed(), 0);
  assert.equal(
    app.metrics.value("wstime_tokens_rejected_total", { reason: "expired" }),
    1,
  );
  app.close();
  await store.close();
});

Deno.test("buildApp() resume: a token issued in the future (a leaked secret's eternal token) is refused before any store call", async () => {
  const { clock, store, app, upgrade, resumed } = setup();
  // Minted with the secret, dated an hour ahead so it would never expire.
  const { token, id } = app.tokens.issue(
    clock.now() - 60_000,
    clock.now() + 3600_000,
  );
  await store.create(id, clock.now() - 60_000, 1);
  const before = store.calls.claim ?? 0;
  assert.equal(await upgrade(token), 101);
  assert.equal((store.calls.claim ?? 0) - before, 0);
  assert.equal(resumed(), 0);
  assert.equal(
    app.metrics.value("wstime_tokens_rejected_total", { reason: "future" }),
    1,
  );
  // Within the clock skew allowed between hosts it still resumes.
  const { token: skewed, id: id2 } = app.tokens.issue(
    clock.now(),
    clock.now() + 20_000,
  );
  await store.create(id2, clock.now(), 1);
  assert.equal(await upgrade(skewed), 101);
  assert.equal(resumed(), 1);
  app.close();
  await store.close();
});

Deno.test("buildApp() resume: a client returning late in the grace period with its last token still resumes", async () => {
  const { clock, config, store, app, upgrade, resumed } = setup();
  // Its newest token came with a tick half a grace period before it left.
  const { token, id } = app.tokens.issue(clock.now(), clock.now());
  await store.create(id, clock.now(), 1);
  clock.advance(config.sessionTtlMs / 2);
  await store.release(id, 1);
  clock.advance(config.sessionTtlMs - 1000);
  assert.equal(await upgrade(token), 101);
  assert.equal(store.calls.claim, 1);
  assert.equal(resumed(), 1);
  app.close();
  await store.close();
});
