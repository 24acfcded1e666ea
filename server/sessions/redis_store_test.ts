import assert from "node:assert/strict";
import { systemClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { RedisStore, type RedisStoreOptions } from "./redis_store.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { redisCall, startRedis } from "../../tests/helpers/redis.ts";
import { sleep, waitFor } from "../../tests/helpers/timing.ts";

const TTL_MS = 60_000;

function openStore(
  url: string,
  options: Partial<RedisStoreOptions> = {},
): RedisStore & AsyncDisposable {
  const store = new RedisStore({
    url,
    prefix: "t:",
    ttlMs: TTL_MS,
    timeoutMs: 500,
    clock: systemClock,
    logger: memoryLogger(),
    backoffMaxMs: 200,
    ...options,
  });
  return Object.assign(store, {
    [Symbol.asyncDispose]: () => store.close(),
  });
}

/** Calls of one command since the last CONFIG RESETSTAT. */
async function calls(url: string, command: string): Promise<number> {
  const info = String(await redisCall(url, "INFO", "commandstats"));
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
  return match ? Number(match[1]) : 0;
}

Deno.test("RedisStore.create() costs one SET that expires after the grace period", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url);
  await store.firstAttempt;
  assert.equal(store.status().state, "up");
  await redisCall(redis.url, "CONFIG", "RESETSTAT");
  await store.create("s1", { start: 1234 });
  assert.equal(await calls(redis.url, "set"), 1);
  assert.equal(await calls(redis.url, "expire"), 0);
  assert.equal(await redisCall(redis.url, "GET", "t:session:s1"), "1234");
  const ttl = Number(await redisCall(redis.url, "TTL", "t:session:s1"));
  assert.ok(ttl > 55 && ttl <= 60, `TTL ${ttl}`);
  assert.deepEqual(await store.get("s1"), { start: 1234 });
  assert.equal(await store.get("unknown"), null);
});

Deno.test("RedisStore.refresh() sends one EXPIRE per live session in pipelined batches", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url, { batchSize: 40 });
  await store.firstAttempt;
  const ids = Array.from({ length: 100 }, (_, i) => `live${i}`);
  await Promise.all(ids.map((id) => store.create(id, { start: 1 })));
  await redisCall(redis.url, "EXPIRE", "t:session:live7", "5");
  await redisCall(redis.url, "CONFIG", "RESETSTAT");
  await store.refresh([...ids, "gone"]);
  assert.equal(await calls(redis.url, "expire"), 101);
  assert.equal(await calls(redis.url, "set"), 0);
  const ttl = Number(await redisCall(redis.url, "TTL", "t:session:live7"));
  assert.ok(ttl > 55, `TTL after refresh ${ttl}`);
  // The record nobody wrote is reported missing, not invented.
  assert.equal(store.status().figures.missing, 1);
  assert.equal(await redisCall(redis.url, "EXISTS", "t:session:gone"), 0);
});

Deno.test("RedisStore.release() restarts the grace period of a closed session", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url);
  await store.firstAttempt;
  await store.create("s", { start: 5 });
  await redisCall(redis.url, "EXPIRE", "t:session:s", "3");
  await store.release("s");
  const ttl = Number(await redisCall(redis.url, "TTL", "t:session:s"));
  assert.ok(ttl > 55, `TTL after release ${ttl}`);
});

Deno.test("RedisStore uses the URL's password and database and the key prefix", async () => {
  await using redis = await startRedis(freePort(), [
    "--requirepass",
    "s3cret-pw",
  ]);
  const port = redis.port;
  await using store = openStore(
    `redis://default:s3cret-pw@127.0.0.1:${port}/2`,
    { prefix: "deploy-a:" },
  );
  await store.firstAttempt;
  assert.equal(store.status().state, "up");
  await store.create("x", { start: 42 });
  const db2 = `redis://:s3cret-pw@127.0.0.1:${port}/2`;
  assert.equal(await redisCall(db2, "GET", "deploy-a:session:x"), "42");
  const db0 = `redis://:s3cret-pw@127.0.0.1:${port}/0`;
  assert.equal(await redisCall(db0, "DBSIZE"), 0);

  // Another deployment on the same Redis sees nothing of this one.
  await using other = openStore(db2, { prefix: "deploy-b:" });
  await other.firstAttempt;
  assert.equal(await other.get("x"), null);
});

Deno.test("RedisStore with a wrong password stays down, says why and never throws", async () => {
  await using redis = await startRedis(freePort(), ["--requirepass", "right"]);
  const logger = memoryLogger();
  await using store = openStore(`redis://:wrong@127.0.0.1:${redis.port}`, {
    logger,
  });
  await store.firstAttempt;
  assert.equal(store.status().state, "down");
  assert.ok(
    logger.lines.some((l) => /redis unreachable.*WRONGPASS/.test(l)),
    logger.lines.join("\n"),
  );
  assert.ok(!logger.lines.join("\n").includes("wrong@"), "password logged");
  await store.create("a", { start: 7 });
  assert.deepEqual(await store.get("a"), { start: 7 });
  assert.equal(store.status().figures.buffered, 1);
});

Deno.test("RedisStore.announce() reaches the other instances' listeners, not its own", async () => {
  await using redis = await startRedis();
  await using a = openStore(redis.url);
  await using b = openStore(redis.url);
  await using elsewhere = openStore(redis.url, { prefix: "other:" });
  await Promise.all([a.firstAttempt, b.firstAttempt, elsewhere.firstAttempt]);
  const heard: Record<string, string[]> = { a: [], b: [], elsewhere: [] };
  a.onTakeover((id) => heard.a!.push(id));
  b.onTakeover((id) => heard.b!.push(id));
  elsewhere.onTakeover((id) => heard.elsewhere!.push(id));
  const sent = Date.now();
  await b.announce("sess-1");
  await waitFor(() => heard.a!.length === 1, 2000, "takeover on a");
  const latency = Date.now() - sent;
  assert.ok(latency < 1000, `takeover heard after ${latency} ms`);
  await sleep(100);
  assert.deepEqual(heard, { a: ["sess-1"], b: [], elsewhere: [] });
});

Deno.test("RedisStore while Redis hangs: calls end within the timeout, writes wait and land later", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url, { timeoutMs: 150 });
  await store.firstAttempt;
  await store.create("before", { start: 1 });
  redis.child.kill("SIGSTOP");
  try {
    let started = Date.now();
    assert.equal(await store.get("before"), null);
    const getMs = Date.now() - started;
    started = Date.now();
    await store.create("during", { start: 2 });
    const createMs = Date.now() - started;
    assert.ok(getMs < 1000 && createMs < 1000, `${getMs} / ${createMs} ms`);
    assert.deepEqual(await store.get("during"), { start: 2 });
    assert.equal(store.status().figures.buffered, 1);
    assert.ok((store.status().errors?.timeout ?? 0) >= 2);
    assert.equal(store.status().state, "slow");
  } finally {
    redis.child.kill("SIGCONT");
  }
  await waitFor(() => store.status().figures.buffered === 0, 5000, "flush");
  assert.equal(await redisCall(redis.url, "GET", "t:session:during"), "2");
  assert.equal(store.status().state, "up");
});

Deno.test("RedisStore without Redis buffers a bounded number of writes and flushes them when it comes", async () => {
  const port = freePort();
  const logger = memoryLogger();
  await using store = openStore(`redis://127.0.0.1:${port}`, {
    bufferLimit: 3,
    logger,
  });
  await store.firstAttempt;
  assert.equal(store.status().state, "down");
  for (let i = 1; i <= 5; i++) await store.create(`n${i}`, { start: i });
  await store.refresh(["n5"]);
  await store.release("n1");
  await store.announce("n5");
  assert.equal(store.status().figures.buffered, 3);
  assert.equal(store.status().figures.dropped, 2);
  // The refresh, release and announce that could not be sent are counted.
  assert.equal(store.status().errors?.offline, 3);
  assert.equal(await store.get("n1"), null);
  assert.deepEqual(await store.get("n5"), { start: 5 });

  await using redis = await startRedis(port);
  await waitFor(() => store.status().figures.buffered === 0, 5000, "flush");
  assert.equal(store.status().state, "up");
  const keys = (await redisCall(redis.url, "KEYS", "t:session:*") as string[])
    .sort();
  assert.deepEqual(keys, ["t:session:n3", "t:session:n4", "t:session:n5"]);
  assert.ok(logger.lines.some((l) => l.includes("redis unreachable")));
  assert.ok(logger.lines.some((l) => l.includes("redis connected")));
});

Deno.test("RedisStore reconnects after Redis restarts and reports the outage", async () => {
  const redis = await startRedis();
  await using store = openStore(redis.url);
  await store.firstAttempt;
  await waitFor(() => store.status().figures.rtt_ms! >= 0, 2000, "rtt");
  await redis[Symbol.asyncDispose]();
  await waitFor(() => store.status().state === "down", 2000, "down");
  await store.create("while-down", { start: 9 });
  await using again = await startRedis(redis.port);
  await waitFor(() => store.status().state === "up", 5000, "up again");
  await waitFor(() => store.status().figures.buffered === 0, 5000, "flush");
  assert.equal(
    await redisCall(again.url, "GET", "t:session:while-down"),
    "9",
  );
  assert.equal(store.status().figures.reconnects, 1);
  assert.ok((store.status().errors?.connection ?? 0) >= 1);
});

Deno.test("RedisStore rebuilds its connection after three unanswered PINGs and recovers", async () => {
  await using redis = await startRedis();
  const logger = memoryLogger();
  await using store = openStore(redis.url, {
    timeoutMs: 100,
    pingEveryMs: 100,
    logger,
  });
  await store.firstAttempt;
  redis.child.kill("SIGSTOP");
  try {
    await waitFor(
      () => store.status().state === "down",
      3000,
      "link torn down",
    );
    assert.ok(
      logger.lines.some((l) => l.includes("3 PINGs unanswered")),
      logger.lines.join("\n"),
    );
  } finally {
    redis.child.kill("SIGCONT");
  }
  await waitFor(() => store.status().state === "up", 6000, "link rebuilt");
  assert.equal(store.status().figures.reconnects, 1);
  await store.create("after", { start: 3 });
  assert.equal(await redisCall(redis.url, "GET", "t:session:after"), "3");
});
