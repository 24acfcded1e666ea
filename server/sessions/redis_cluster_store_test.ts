import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { systemClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { RedisStore } from "./redis_store.ts";
import { redisCall } from "../../dev/redis.ts";
import { startRedisCluster } from "../../dev/redis_cluster.ts";

const TTL_MS = 60_000;

/** Sum of one command's calls over the cluster's primaries. */
async function calls(urls: readonly string[], command: string) {
  let total = 0;
  for (const url of urls) {
    const info = String(await redisCall(url, "INFO", "commandstats"));
    total += Number(
      new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0,
    );
  }
  return total;
}

Deno.test("RedisStore on a real Redis Cluster: sessions spread over the shards, and 1,000 resumes at once cost at most 64 script calls", async () => {
  await using cluster = await startRedisCluster();
  const store = new RedisStore({
    target: {
      kind: "cluster",
      nodes: cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
      url: cluster.credentials,
    },
    prefix: "t:",
    ttlMs: TTL_MS,
    timeoutMs: 1000,
    clock: systemClock,
    logger: memoryLogger(),
  });
  try {
    await store.firstAttempt;
    assert.equal(store.status().state, "up");
    const ids = Array.from(
      { length: 1000 },
      () => randomBytes(16).toString("base64url"),
    );
    await Promise.all(ids.map((id, i) => store.create(id, 1000 + i, 1)));
    const primaries = (await cluster.primaries()).map((port) =>
      `redis://:${cluster.password}@127.0.0.1:${port}`
    );
    assert.equal(primaries.length, 3);
    const perShard = await Promise.all(
      primaries.map(async (url) => Number(await redisCall(url, "DBSIZE"))),
    );
    assert.equal(perShard.reduce((a, b) => a + b), 1000);
    // The 64 hash tags fall 14/25/25 on the shards `--cluster create` makes,
    // so a shard expects 219 or 391 of 1,000 random ids (sd under 16); a
    // single tag for all would put 1,000 on one and none on the others.
    for (const n of perShard) assert.ok(n >= 120 && n <= 500, `${perShard}`);

    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");
    // A storm: every claim arrives in the same turn of the event loop.
    const claims = await Promise.all(ids.map((id) => store.claim(id, 1)));
    claims.forEach((claim, i) =>
      assert.deepEqual(claim, { start: 1000 + i, epoch: 2, superseded: false })
    );
    const scripts = await calls(primaries, "evalsha") +
      await calls(primaries, "eval");
    assert.ok(scripts <= 64 * 2, `${scripts} script calls for 1,000 claims`);
    // Once each node knows the script, a storm is one call per hash tag.
    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");
    await Promise.all(ids.map((id) => store.claim(id, 2)));
    assert.ok((await calls(primaries, "evalsha")) <= 64);
    assert.equal(await calls(primaries, "eval"), 0);

    // The refresh is one GETEX per session, sent to each shard together.
    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");
    const lost = await store.refresh(
      ids.map((id, i) => ({ id, start: 1000 + i, epoch: 3 })),
    );
    assert.deepEqual(lost, []);
    assert.equal(await calls(primaries, "getex"), 1000);
  } finally {
    await store.close();
  }
});
