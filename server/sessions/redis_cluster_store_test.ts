import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { systemClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { RedisStore } from "./redis_store.ts";
import { redisCall } from "../../dev/redis.ts";
import {
  type ClusterNode,
  startRedisCluster,
} from "../../dev/redis_cluster.ts";

const TTL_MS = 60_000;

/** The URLs of the nodes acting as primaries now. */
async function primaryUrls(
  cluster: { nodes: readonly ClusterNode[]; primaries(): Promise<number[]> },
): Promise<string[]> {
  const ports = await cluster.primaries();
  return cluster.nodes.filter((n) => ports.includes(n.port)).map((n) => n.url);
}

/** Sum of one `INFO` field (`<name>=<n>`) over the cluster's primaries. */
async function infoSum(urls: readonly string[], section: string, name: string) {
  let total = 0;
  for (const url of urls) {
    const info = String(await redisCall(url, "INFO", section));
    total += Number(new RegExp(`${name}=(\\d+)`).exec(info)?.[1] ?? 0);
  }
  return total;
}

/** Sum of one command's calls over the cluster's primaries. */
const calls = (urls: readonly string[], command: string) =>
  infoSum(urls, "commandstats", `cmdstat_${command}:calls`);

/** Sum of one kind of error reply over the cluster's primaries. */
const errorReplies = (urls: readonly string[], kind: string) =>
  infoSum(urls, "errorstats", `errorstat_${kind}:count`);

Deno.test("RedisStore on a real Redis Cluster: sessions spread over the shards, and 1,000 resumes at once cost one script call a shard", async () => {
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
    const primaries = await primaryUrls(cluster);
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
    // A node that has not seen the script yet answers NOSCRIPT first.
    assert.equal(await calls(primaries, "evalsha"), 3);
    assert.equal(await calls(primaries, "eval"), 3);
    // Once each node knows the script, a storm is one call per shard,
    // whichever of the 64 hash tags its sessions carry.
    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");
    await Promise.all(ids.map((id) => store.claim(id, 2)));
    assert.equal(await calls(primaries, "evalsha"), 3);
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

const TAGS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const DOC = Deno.readTextFileSync(
  new URL("../../docs/sessions.md", import.meta.url),
);

/** A store on `cluster` with the default prefix, as user `url` says. */
function clusterStore(
  cluster: { nodes: readonly { port: number }[] },
  url: string,
  instanceId: string,
): RedisStore {
  return new RedisStore({
    target: {
      kind: "cluster",
      nodes: cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
      url,
    },
    prefix: "ws-time:",
    instanceId,
    ttlMs: TTL_MS,
    timeoutMs: 1000,
    clock: systemClock,
    logger: memoryLogger(),
  });
}

/** Ids until every one of the 64 hash tags has at least two. */
function idsOverEveryTag(): string[] {
  const ids: string[] = [];
  const seen = new Map<string, number>();
  while (seen.size < 64 || [...seen.values()].some((n) => n < 2)) {
    const id = randomBytes(16).toString("base64url");
    ids.push(id);
    seen.set(id[0]!, (seen.get(id[0]!) ?? 0) + 1);
  }
  return ids;
}

/** The port of the primary holding each hash tag's slot. */
async function tagOwners(url: string): Promise<Map<string, number>> {
  const ranges = await redisCall(url, "CLUSTER", "SLOTS") as unknown[][];
  const owners = new Map<string, number>();
  for (const tag of TAGS) {
    const slot = Number(await redisCall(url, "CLUSTER", "KEYSLOT", `{${tag}}`));
    const range = ranges.find((r) =>
      Number(r[0]) <= slot && slot <= Number(r[1])
    );
    owners.set(tag, Number((range?.[2] as unknown[] | undefined)?.[1]));
  }
  return owners;
}

/** Claims every id on `from`; the ids `heard` has not had within 3 s. */
async function takeoversHeard(
  from: RedisStore,
  heard: Set<string>,
  ids: readonly string[],
  epoch: number,
): Promise<string[]> {
  heard.clear();
  const claims = await Promise.all(ids.map((id) => from.claim(id, epoch)));
  assert.ok(claims.every((c) => c !== null && !c.superseded), "claims failed");
  return await unheard(heard, ids);
}

/** The ids `heard` still lacks after up to 3 s. */
async function unheard(
  heard: Set<string>,
  ids: readonly string[],
): Promise<string[]> {
  const deadline = Date.now() + 3000;
  while (heard.size < ids.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return ids.filter((id) => !heard.has(id));
}

Deno.test("RedisStore on a cluster: takeovers go by sharded pub/sub, reach the other instance through a resharding, and the documented ACL user suffices", async () => {
  await using cluster = await startRedisCluster();
  const line = DOC.split("\n").map((l) => l.trim()).find((l) =>
    l.startsWith("ACL SETUSER wstime ") && l.includes("+ssubscribe")
  );
  assert.ok(line, "docs/sessions.md has the cluster's ACL line");
  const password = `acl-${crypto.randomUUID()}`;
  const words = line.replace("CHANGE-ME-data-password", password).split(" ");
  // A cluster's nodes keep their own users.
  for (const node of cluster.nodes) {
    assert.equal(await redisCall(node.url, ...words), "OK");
  }
  const user = `redis://wstime:${password}@127.0.0.1`;
  const a = clusterStore(cluster, user, "a");
  const b = clusterStore(cluster, user, "b");
  try {
    await a.firstAttempt;
    await b.firstAttempt;
    assert.equal(a.status().state, "up");
    assert.equal(b.status().state, "up");
    const heard = new Set<string>();
    a.onTakeover((id) => heard.add(id));
    const ids = idsOverEveryTag();
    await Promise.all(ids.map((id, i) => b.create(id, 1000 + i, 1)));

    for (const url of await primaryUrls(cluster)) {
      await redisCall(url, "CONFIG", "RESETSTAT");
    }
    assert.deepEqual(await takeoversHeard(b, heard, ids, 1), []);
    // Each takeover went to its shard only: no PUBLISH, which every node
    // of the cluster would relay.
    assert.equal(
      await calls(await primaryUrls(cluster), "spublish"),
      ids.length,
    );
    assert.equal(await calls(await primaryUrls(cluster), "publish"), 0);

    // Move the slots of some hash tags to another shard: their channels'
    // subscriptions must follow, or those takeovers are lost.
    const [from, to] = await cluster.primaries();
    const before = await tagOwners(cluster.nodes[0]!.url);
    await cluster.reshard(from!, to!, 2000);
    const after = await tagOwners(cluster.nodes[0]!.url);
    const moved = [...after].filter(([tag, port]) => before.get(tag) !== port);
    assert.ok(moved.length > 0, "no hash tag's slot moved");
    assert.deepEqual(await takeoversHeard(b, heard, ids, 2), []);

    // Announcements outside a claim (a resume from the token) too.
    heard.clear();
    await Promise.all(ids.map((id) => b.announce(id, 9)));
    assert.deepEqual(await unheard(heard, ids), []);

    // The rest of the store's commands, as the same user.
    await b.release(ids[0]!, 3);
    assert.deepEqual(
      await b.refresh(ids.map((id, i) => ({ id, start: 1000 + i, epoch: 3 }))),
      [],
    );
    await b.exchangePresence("b", "{}", []);
    for (const node of cluster.nodes) {
      assert.deepEqual(await redisCall(node.url, "ACL", "LOG"), []);
    }
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisStore on a cluster with holders in records: each takeover reaches the holder's shard subscription alone, through a resharding", async () => {
  await using cluster = await startRedisCluster();
  const stores = ["a", "b", "c"].map((name) =>
    clusterStore(cluster, cluster.credentials, name)
  );
  const [a, b, c] = stores as [RedisStore, RedisStore, RedisStore];
  try {
    await Promise.all(stores.map((s) => s.firstAttempt));
    for (const s of stores) s.writeHolders(true);
    const heard = [new Set<string>(), new Set<string>(), new Set<string>()];
    stores.forEach((s, i) => s.onTakeover((id) => heard[i]!.add(id)));
    const ids = idsOverEveryTag();
    await Promise.all(ids.map((id, i) => a.create(id, 1000 + i, 1)));
    const primaries = await primaryUrls(cluster);
    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");
    assert.deepEqual(await takeoversHeard(b, heard[0]!, ids, 1), []);
    assert.equal(await calls(primaries, "spublish"), ids.length);
    // After a resharding, the addressed channels' subscriptions follow too.
    const [from, to] = await cluster.primaries();
    await cluster.reshard(from!, to!, 2000);
    assert.deepEqual(await takeoversHeard(a, heard[1]!, ids, 2), []);
    // A session its holder takes back is published to nobody.
    heard[0]!.clear();
    for (const url of await primaryUrls(cluster)) {
      await redisCall(url, "CONFIG", "RESETSTAT");
    }
    await Promise.all(ids.map((id) => a.claim(id, 3)));
    assert.equal(await calls(await primaryUrls(cluster), "spublish"), 0);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(heard[0]!.size, 0);
    assert.equal(heard[2]!.size, 0, "c held nothing and heard nothing");
    assert.equal(c.status().figures.takeovers_received, 0);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

Deno.test("RedisStore on a cluster without sharded pub/sub (Redis 6) publishes takeovers cluster-wide, and they still arrive", async () => {
  // Redis 6 answers SSUBSCRIBE and SPUBLISH with "unknown command"; so does
  // a Redis 7 that renamed them away.
  await using cluster = await startRedisCluster({
    args: [
      "--rename-command",
      "SSUBSCRIBE",
      "",
      "--rename-command",
      "SPUBLISH",
      "",
    ],
  });
  const a = clusterStore(cluster, cluster.credentials, "a");
  const b = clusterStore(cluster, cluster.credentials, "b");
  try {
    await a.firstAttempt;
    await b.firstAttempt;
    assert.equal(a.status().state, "up");
    const heard = new Set<string>();
    a.onTakeover((id) => heard.add(id));
    const ids = idsOverEveryTag();
    await Promise.all(ids.map((id, i) => b.create(id, 1000 + i, 1)));
    const primaries = await primaryUrls(cluster);
    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");
    assert.deepEqual(await takeoversHeard(b, heard, ids, 1), []);
    assert.equal(await calls(primaries, "publish"), ids.length);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisStore on a cluster: a shard's claims that meet a slot in migration are refused whole, go again one call per slot, and each session is taken once", async () => {
  await using cluster = await startRedisCluster();
  const b = clusterStore(cluster, cluster.credentials, "b");
  try {
    await b.firstAttempt;
    assert.equal(b.status().state, "up");
    const ids = idsOverEveryTag();
    await Promise.all(ids.map((id, i) => b.create(id, 1000 + i, 1)));
    // Move one hash tag's slot as redis-cli --cluster reshard does, and
    // stop halfway: its keys are already on the new owner, which b does
    // not know yet, so the old owner refuses a call that reaches for them
    // (ASK for the slot's own calls).
    const owners = await tagOwners(cluster.nodes[0]!.url);
    const [tag, port] = [...owners][0]!;
    const source = cluster.nodes.find((n) => n.port === port)!;
    const target = cluster.nodes.find((n) =>
      n.port !== port && [...owners.values()].includes(n.port)
    )!;
    const slot = Number(
      await redisCall(source.url, "CLUSTER", "KEYSLOT", `{${tag}}`),
    );
    const idOf = async (url: string) =>
      String(await redisCall(url, "CLUSTER", "MYID"));
    const [sourceId, targetId] = [
      await idOf(source.url),
      await idOf(target.url),
    ];
    for (
      const [url, state, other] of [
        [target.url, "IMPORTING", sourceId],
        [source.url, "MIGRATING", targetId],
      ]
    ) {
      await redisCall(url!, "CLUSTER", "SETSLOT", String(slot), state!, other!);
    }
    const keys = ids.filter((id) => id[0] === tag).map((id) =>
      `ws-time:session:{${tag}}${id}`
    );
    assert.equal(
      await redisCall(
        source.url,
        "MIGRATE",
        "127.0.0.1",
        String(target.port),
        "",
        "0",
        "5000",
        "AUTH",
        cluster.password,
        "KEYS",
        ...keys,
      ),
      "OK",
    );
    const primaries = await primaryUrls(cluster);
    for (const url of primaries) await redisCall(url, "CONFIG", "RESETSTAT");

    const claims = await Promise.all(ids.map((id) => b.claim(id, 1)));
    claims.forEach((claim, i) =>
      assert.deepEqual(claim, { start: 1000 + i, epoch: 2, superseded: false })
    );
    assert.ok(
      await errorReplies([source.url], "ERR") > 0,
      "the old owner refused nothing: the migration was not in the way",
    );
  } finally {
    await b.close();
  }
});
