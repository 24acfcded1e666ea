import assert from "node:assert/strict";
import { systemClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { RedisStore, type RedisStoreOptions } from "./redis_store.ts";
import { freePort } from "../../dev/ports.ts";
import { redisCall, startRedis } from "../../dev/redis.ts";
import { sleep, waitFor } from "../../dev/timing.ts";

const TTL_MS = 60_000;

function openStore(
  url: string,
  options: Partial<RedisStoreOptions> = {},
): RedisStore & AsyncDisposable {
  const store = new RedisStore({
    target: { kind: "url", url },
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
  await store.create("s1", 1234, 1);
  assert.equal(await calls(redis.url, "set"), 1);
  assert.equal(await calls(redis.url, "expire"), 0);
  assert.equal(await redisCall(redis.url, "GET", "t:session:s1"), "1234:1:1");
  const ttl = Number(await redisCall(redis.url, "TTL", "t:session:s1"));
  assert.ok(ttl > 55 && ttl <= 60, `TTL ${ttl}`);
  assert.deepEqual(await store.claim("s1", 1), {
    start: 1234,
    epoch: 2,
    superseded: false,
  });
  assert.equal(await store.claim("unknown", 1), null);
});

Deno.test("RedisStore.refresh() sends one GETEX per live session in pipelined batches, names the sessions taken over and writes lost ones back", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url, { batchSize: 40 });
  await store.firstAttempt;
  const ids = Array.from({ length: 100 }, (_, i) => `live${i}`);
  await Promise.all(ids.map((id) => store.create(id, 1, 1)));
  await redisCall(redis.url, "EXPIRE", "t:session:live7", "5");
  // Another instance's newer connection took live9 while we did not hear.
  await redisCall(redis.url, "SET", "t:session:live9", "1:4:1");
  await redisCall(redis.url, "CONFIG", "RESETSTAT");
  const lost = await store.refresh(
    [...ids, "gone"].map((id) => ({ id, epoch: 1, start: 1 })),
  );
  assert.deepEqual(lost, [{ id: "live9", epoch: 4 }]);
  assert.equal(await calls(redis.url, "getex"), 101);
  const ttl = Number(await redisCall(redis.url, "TTL", "t:session:live7"));
  assert.ok(ttl > 55, `TTL after refresh ${ttl}`);
  // A record Redis lost while a connection here still holds the session
  // (a restart, a failover before replication caught up) is counted and
  // written back, so fencing and resumes keep working from the store.
  assert.equal(store.status().figures.missing, 1);
  await waitFor(
    async () => await redisCall(redis.url, "GET", "t:session:gone") === "1:1:1",
    3000,
    "the lost record written back",
  );
  assert.equal(await calls(redis.url, "set"), 1, "only the lost one");
});

Deno.test("RedisStore.release() restarts the grace period of a closed session", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url);
  await store.firstAttempt;
  await store.create("s", 5, 1);
  await redisCall(redis.url, "EXPIRE", "t:session:s", "3");
  await store.release("s", 1);
  const ttl = Number(await redisCall(redis.url, "TTL", "t:session:s"));
  assert.ok(ttl > 55, `TTL after release ${ttl}`);
  assert.equal(await redisCall(redis.url, "GET", "t:session:s"), "5:1:0");
  // A release from an older connection leaves a newer one's record alone.
  await redisCall(redis.url, "SET", "t:session:s", "5:3:1", "EX", "3");
  await store.release("s", 2);
  assert.equal(await redisCall(redis.url, "GET", "t:session:s"), "5:3:1");
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
  await store.create("x", 42, 1);
  const db2 = `redis://:s3cret-pw@127.0.0.1:${port}/2`;
  assert.equal(await redisCall(db2, "GET", "deploy-a:session:x"), "42:1:1");
  const db0 = `redis://:s3cret-pw@127.0.0.1:${port}/0`;
  assert.equal(await redisCall(db0, "DBSIZE"), 0);

  // Another deployment on the same Redis sees nothing of this one.
  await using other = openStore(db2, { prefix: "deploy-b:" });
  await other.firstAttempt;
  assert.equal(await other.claim("x", 1), null);
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
  await store.create("a", 7, 1);
  assert.deepEqual(await store.claim("a", 1), {
    start: 7,
    epoch: 2,
    superseded: false,
  });
  assert.equal(store.status().figures.buffered, 1);
});

Deno.test("RedisStore.announce() reaches the other instances' listeners, not its own", async () => {
  await using redis = await startRedis();
  await using a = openStore(redis.url);
  await using b = openStore(redis.url);
  await using elsewhere = openStore(redis.url, { prefix: "other:" });
  await Promise.all([a.firstAttempt, b.firstAttempt, elsewhere.firstAttempt]);
  const heard: Record<string, string[]> = { a: [], b: [], elsewhere: [] };
  a.onTakeover((id, epoch) => heard.a!.push(`${id}@${epoch}`));
  b.onTakeover((id, epoch) => heard.b!.push(`${id}@${epoch}`));
  elsewhere.onTakeover((id, epoch) => heard.elsewhere!.push(`${id}@${epoch}`));
  const sent = Date.now();
  await b.announce("sess-1", 3);
  await waitFor(() => heard.a!.length === 1, 2000, "takeover on a");
  const latency = Date.now() - sent;
  assert.ok(latency < 1000, `takeover heard after ${latency} ms`);
  await sleep(100);
  assert.deepEqual(heard, { a: ["sess-1@3"], b: [], elsewhere: [] });
});

Deno.test("RedisStore.claim() of many sessions at once costs one script call, each answered for itself, and announces each takeover to the other instances", async () => {
  await using redis = await startRedis();
  await using a = openStore(redis.url);
  await using b = openStore(redis.url);
  await Promise.all([a.firstAttempt, b.firstAttempt]);
  const heardByA: string[] = [];
  const heardByB: string[] = [];
  a.onTakeover((id, epoch) => heardByA.push(`${id}@${epoch}`));
  b.onTakeover((id, epoch) => heardByB.push(`${id}@${epoch}`));
  const ids = Array.from({ length: 50 }, (_, i) => `m${i}`);
  await Promise.all(ids.map((id, i) => a.create(id, 1000 + i, 1)));
  // One held live by a newer connection: a stale claim of it must yield.
  await redisCall(redis.url, "SET", "t:session:m7", "1007:9:1");
  await redisCall(redis.url, "CONFIG", "RESETSTAT");
  const claims = await Promise.all(
    [...ids, "unknown"].map((id) => b.claim(id, 1)),
  );
  assert.equal(await calls(redis.url, "evalsha"), 1);
  // Redis counts the script's own commands: one PUBLISH per takeover.
  assert.equal(await calls(redis.url, "publish"), 49);
  claims.slice(0, 50).forEach((claim, i) =>
    assert.deepEqual(
      claim,
      i === 7
        ? { start: 1007, epoch: 9, superseded: true }
        : { start: 1000 + i, epoch: 2, superseded: false },
      ids[i],
    )
  );
  assert.equal(claims[50], null, "an unknown session");
  assert.equal(await redisCall(redis.url, "GET", "t:session:m3"), "1003:2:1");
  assert.equal(await redisCall(redis.url, "GET", "t:session:m7"), "1007:9:1");
  // The instance that held them hears of all 49 takeovers, the taker none.
  await waitFor(() => heardByA.length === 49, 2000, "takeovers heard by a");
  await sleep(100);
  assert.equal(heardByA.length, 49);
  assert.ok(heardByA.includes("m3@2") && !heardByA.includes("m7@9"));
  assert.deepEqual(heardByB, []);
  assert.equal(b.status().figures.takeovers_sent, 49);
  assert.equal(a.status().figures.takeovers_received, 49);
});

Deno.test("RedisStore.claim() in a storm of separate handshakes goes in rounds at most one a pace apart; a lone claim is not held", async () => {
  await using redis = await startRedis();
  const paceMs = 400;
  await using store = openStore(redis.url, { claimPaceMs: paceMs });
  await store.firstAttempt;
  const ids = Array.from({ length: 40 }, (_, i) => `p${i}`);
  await Promise.all(ids.map((id, i) => store.create(id, 1000 + i, 1)));
  await redisCall(redis.url, "CONFIG", "RESETSTAT");
  const began = performance.now();
  assert.deepEqual(await store.claim("p0", 1), {
    start: 1000,
    epoch: 2,
    superseded: false,
  });
  const lone = performance.now() - began;
  assert.ok(lone < paceMs / 2, `a lone claim took ${lone} ms`);
  // Handshakes that finish one per turn, as in a storm: each claim would
  // be its own round without the pace.
  const later: Promise<unknown>[] = [];
  for (const id of ids.slice(1)) {
    later.push(store.claim(id, 1));
    await sleep(0);
  }
  const claims = await Promise.all(later);
  claims.forEach((claim, i) =>
    assert.deepEqual(claim, { start: 1001 + i, epoch: 2, superseded: false })
  );
  const rounds = await calls(redis.url, "evalsha");
  assert.ok(rounds <= 3, `${rounds} script calls for 40 claims`);
});

Deno.test("RedisStore.claim() of one session twice in one batch gives it to the later claim: the earlier handshake was never welcomed", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url);
  await store.firstAttempt;
  await store.create("twice", 500, 3);
  // A client gave up on a queued handshake and retried; both reach the
  // store in the same turn, presenting the same token.
  const [first, retry] = await Promise.all([
    store.claim("twice", 3),
    store.claim("twice", 3),
  ]);
  assert.deepEqual(first, { start: 500, epoch: 4, superseded: false });
  assert.deepEqual(retry, { start: 500, epoch: 5, superseded: false });
  assert.equal(await redisCall(redis.url, "GET", "t:session:twice"), "500:5:1");
  // Across batches the rule is unchanged: a live newer epoch fences.
  assert.deepEqual(await store.claim("twice", 3), {
    start: 500,
    epoch: 5,
    superseded: true,
  });
});

Deno.test("RedisStore.close() answers claims still waiting for their batch with null", async () => {
  await using redis = await startRedis();
  const store = openStore(redis.url);
  await store.firstAttempt;
  await store.create("w", 1, 1);
  const pending = store.claim("w", 1);
  await store.close();
  assert.equal(await pending, null);
  assert.equal(await redisCall(redis.url, "GET", "t:session:w"), "1:1:1");
});

Deno.test("RedisStore while Redis hangs: calls end within the timeout, writes wait and land later", async () => {
  await using redis = await startRedis();
  await using store = openStore(redis.url, { timeoutMs: 150 });
  await store.firstAttempt;
  await store.create("before", 1, 1);
  redis.child.kill("SIGSTOP");
  try {
    let started = Date.now();
    assert.equal(await store.claim("before", 1), null);
    const getMs = Date.now() - started;
    started = Date.now();
    await store.create("during", 2, 1);
    const createMs = Date.now() - started;
    assert.ok(getMs < 1000 && createMs < 1000, `${getMs} / ${createMs} ms`);
    assert.deepEqual(await store.claim("during", 1), {
      start: 2,
      epoch: 2,
      superseded: false,
    });
    assert.equal(store.status().figures.buffered, 1);
    assert.ok((store.status().errors?.timeout ?? 0) >= 2);
    assert.equal(store.status().state, "slow");
  } finally {
    redis.child.kill("SIGCONT");
  }
  await waitFor(() => store.status().figures.buffered === 0, 5000, "flush");
  assert.equal(await redisCall(redis.url, "GET", "t:session:during"), "2:2:1");
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
  for (let i = 1; i <= 5; i++) await store.create(`n${i}`, i, 1);
  await store.refresh([{ id: "n5", epoch: 1, start: 5 }]);
  await store.release("n1", 1);
  await store.announce("n5", 1);
  assert.equal(store.status().figures.buffered, 3);
  assert.equal(store.status().figures.dropped, 2);
  // The refresh, release and announce that could not be sent are counted.
  assert.equal(store.status().errors?.offline, 3);
  assert.equal(await store.claim("n1", 1), null);
  assert.deepEqual(await store.claim("n5", 1), {
    start: 5,
    epoch: 2,
    superseded: false,
  });

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
  await store.create("while-down", 9, 1);
  await using again = await startRedis(redis.port);
  await waitFor(() => store.status().state === "up", 5000, "up again");
  await waitFor(() => store.status().figures.buffered === 0, 5000, "flush");
  assert.equal(
    await redisCall(again.url, "GET", "t:session:while-down"),
    "9:1:1",
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
  await store.create("after", 3, 1);
  assert.equal(await redisCall(redis.url, "GET", "t:session:after"), "3:1:1");
});

Deno.test("RedisStore.claim() fences by epoch: a stale handshake yields to a live newer connection, not to a closed one", async () => {
  await using redis = await startRedis();
  await using a = openStore(redis.url);
  await using b = openStore(redis.url);
  await Promise.all([a.firstAttempt, b.firstAttempt]);
  await a.create("s", 1000, 5);
  // The client moved on: its retry reached b first and took the session.
  assert.deepEqual(await b.claim("s", 5), {
    start: 1000,
    epoch: 6,
    superseded: false,
  });
  // Its older handshake, queued at a, comes through late: it must yield.
  assert.deepEqual(await a.claim("s", 5), {
    start: 1000,
    epoch: 6,
    superseded: true,
  });
  assert.equal(await redisCall(redis.url, "GET", "t:session:s"), "1000:6:1");
  // Once the newer connection has closed, a client that never saw its
  // token takes the session again instead of being locked out.
  await b.release("s", 6);
  assert.deepEqual(await a.claim("s", 5), {
    start: 1000,
    epoch: 7,
    superseded: false,
  });
  // A record written before epochs existed is claimed as epoch 0.
  await redisCall(redis.url, "SET", "t:session:old", "1700000000123");
  assert.deepEqual(await a.claim("old", 0), {
    start: 1700000000123,
    epoch: 1,
    superseded: false,
  });
  // After a script flush (a restarted Redis), EVALSHA falls back to EVAL.
  await redisCall(redis.url, "SCRIPT", "FLUSH");
  assert.equal((await a.claim("s", 7))?.epoch, 8);
});

Deno.test("RedisStore follows a failover behind one address: READONLY tears the link down, the store says it is not writable until the node is a primary again", async () => {
  await using redis = await startRedis();
  await using other = await startRedis();
  const logger = memoryLogger();
  await using store = openStore(redis.url, { logger, timeoutMs: 300 });
  await store.firstAttempt;
  await store.create("before", 1, 1);
  // Demoted behind the same address, as a managed service's failover does.
  await redisCall(redis.url, "REPLICAOF", "127.0.0.1", String(other.port));
  await store.create("during", 2, 1);
  await waitFor(() => store.status().state !== "up", 3000, "not writable");
  assert.ok(
    logger.lines.some((l) => /takes no writes.*READONLY/.test(l)),
    logger.lines.join("\n"),
  );
  assert.ok(store.status().figures.failovers! >= 1);
  assert.ok((store.status().errors?.readonly ?? 0) >= 1);
  // While the node stays a replica the link does not come up.
  await sleep(1500);
  assert.notEqual(store.status().state, "up");
  assert.equal(store.status().figures.buffered, 1, "the write waits");
  await redisCall(redis.url, "REPLICAOF", "NO", "ONE");
  await waitFor(() => store.status().state === "up", 8000, "writable again");
  await waitFor(() => store.status().figures.buffered === 0, 5000, "flush");
  assert.equal(await redisCall(redis.url, "GET", "t:session:during"), "2:1:1");
  assert.equal(
    logger.lines.filter((l) => /takes no writes/.test(l)).length,
    1,
    "the first such error is logged, not every one",
  );
});

Deno.test("RedisStore with holders in records sends a takeover to the holder alone, none to itself, and to everyone for a record that names none", async () => {
  await using redis = await startRedis();
  await using a = openStore(redis.url, { instanceId: "inst-a" });
  await using b = openStore(redis.url, { instanceId: "inst-b" });
  await using c = openStore(redis.url, { instanceId: "inst-c" });
  // Writes records as a version before holders does.
  await using older = openStore(redis.url, { instanceId: "inst-o" });
  const stores = { a, b, c, older };
  await Promise.all(Object.values(stores).map((s) => s.firstAttempt));
  for (const s of [a, b, c]) s.writeHolders(true);
  const heard: Record<string, string[]> = { a: [], b: [], c: [], older: [] };
  for (const [name, s] of Object.entries(stores)) {
    s.onTakeover((id, epoch) => heard[name]!.push(`${id}@${epoch}`));
  }
  const ids = Array.from({ length: 10 }, (_, i) => `h${i}`);
  await Promise.all(ids.map((id, i) => a.create(id, 1000 + i, 1)));
  assert.equal(
    await redisCall(redis.url, "GET", "t:session:h3"),
    "1003:1:1:inst-a",
  );
  await redisCall(redis.url, "CONFIG", "RESETSTAT");
  await Promise.all(ids.map((id) => b.claim(id, 1)));
  assert.equal(await calls(redis.url, "publish"), 10);
  assert.equal(
    await redisCall(redis.url, "GET", "t:session:h3"),
    "1003:2:1:inst-b",
  );
  await waitFor(() => heard.a!.length === 10, 2000, "takeovers heard by a");
  // A session taken back by the instance that holds it: nobody to tell.
  await b.claim("h0", 2);
  assert.equal(await calls(redis.url, "publish"), 10);
  await sleep(200);
  assert.deepEqual(heard, {
    a: ids.map((id) => `${id}@2`),
    b: [],
    c: [],
    older: [],
  });
  assert.equal(c.status().figures.takeovers_received, 0);

  // A record that names no holder (an older instance wrote it): everyone.
  await older.create("o1", 2000, 1);
  assert.equal(await redisCall(redis.url, "GET", "t:session:o1"), "2000:1:1");
  await a.claim("o1", 1);
  await waitFor(
    () =>
      heard.older!.length === 1 && heard.b!.length === 1 &&
      heard.c!.length === 1,
    2000,
    "a takeover everyone hears",
  );
  assert.equal(
    await redisCall(redis.url, "GET", "t:session:o1"),
    "2000:2:1:inst-a",
  );
  // Released, it keeps its holder; a store told to stop writes none.
  await a.release("o1", 2);
  assert.equal(
    await redisCall(redis.url, "GET", "t:session:o1"),
    "2000:2:0:inst-a",
  );
  a.writeHolders(false);
  await a.claim("o1", 2);
  assert.equal(await redisCall(redis.url, "GET", "t:session:o1"), "2000:3:1");
  // And a record with a holder still refreshes as its own.
  assert.deepEqual(
    await b.refresh([{ id: "h3", start: 1003, epoch: 2 }]),
    [],
  );
});

Deno.test("RedisStore refuses an instance id that cannot go into a record or a channel name", () => {
  assert.throws(
    () => openStore("redis://127.0.0.1:1", { instanceId: "a b" }),
    /instanceId: letters, digits/,
  );
});

Deno.test("RedisStore as a user whose ACL predates addressed takeovers: it comes up, says so once, names no holder, and still hears every takeover", async () => {
  await using redis = await startRedis();
  await redisCall(
    redis.url,
    ..."ACL SETUSER old on >old-password resetkeys ~t:* resetchannels &t:takeover -@all +auth +ping +role +get +set +getex +eval +evalsha +publish +subscribe"
      .split(" "),
  );
  const url = redis.url.replace("redis://", "redis://old:old-password@");
  const logger = memoryLogger();
  await using a = openStore(url, { instanceId: "inst-a", logger });
  await using b = openStore(url, { instanceId: "inst-b" });
  await Promise.all([a.firstAttempt, b.firstAttempt]);
  assert.equal(a.status().state, "up");
  a.writeHolders(true);
  a.writeHolders(true);
  assert.equal(
    logger.lines.filter((l) => /refused the takeover channels/.test(l)).length,
    1,
  );
  await a.create("s1", 1000, 1);
  assert.equal(await redisCall(redis.url, "GET", "t:session:s1"), "1000:1:1");
  const heard: string[] = [];
  a.onTakeover((id) => heard.push(id));
  await b.claim("s1", 1);
  await waitFor(() => heard.length === 1, 2000, "the takeover at a");
});
