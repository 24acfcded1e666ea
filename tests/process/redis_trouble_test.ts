/**
 * Redis trouble never reaches the clients: a Redis killed under load, wiped,
 * or absent at startup costs no connection and no count, /healthcheck stays
 * 200, and what could not be written is written when Redis returns.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TokenSigner } from "../../server/sessions/token.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { redisCall, startRedis, startSharedPair } from "../../dev/redis.ts";
import { healthDetail, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";

const PROTOCOL = "ws-time.v1";
const SECRET = "trouble-test-secret-0123456789ab";
const signer = new TokenSigner(SECRET);

function claims(token: unknown): { id: string; start: number } {
  const verified = signer.verify(String(token));
  assert.ok(verified, "the server issued an invalid token");
  return verified;
}

async function storeState(http: string): Promise<Record<string, unknown>> {
  const { status, body } = await healthDetail(http);
  assert.equal(status, 200, "/healthcheck failed because of Redis");
  return body.store as Record<string, unknown>;
}

async function waitForStore(http: string, state: string): Promise<void> {
  await waitFor(
    async () => {
      const store = await storeState(http);
      const figures = store.figures as Record<string, number>;
      return store.state === state && figures.buffered === 0;
    },
    8000,
    `store ${state}`,
  );
}

Deno.test("RedisStore, Redis killed under 100 clients: none dropped, ticks go on, new sessions start, records come back and resume after it returns", async () => {
  const redis = await startRedis();
  const port = redis.port;
  const env = { REDIS_URL: redis.url, SESSION_SECRET: SECRET };
  await using server = await startServer({ env });
  const clients = Array.from(
    { length: 100 },
    (_, i) => new RecordingSocket(`${server.ws}?id=c${i}`, PROTOCOL),
  );
  const newcomers: RecordingSocket[] = [];
  try {
    await Promise.all(clients.map((c) => c.waitForMessages(1)));

    await redis[Symbol.asyncDispose]();
    const killedAt = Date.now();
    await waitFor(
      async () => (await storeState(server.http)).state === "down",
      3000,
      "store down",
    );
    for (let i = 0; i < 3; i++) {
      newcomers.push(new RecordingSocket(`${server.ws}?id=n${i}`, PROTOCOL));
    }
    await Promise.all(newcomers.map((c) => c.waitForMessages(2)));
    for (const c of newcomers) assert.equal(c.json[0]!.resumed, false);
    await waitFor(
      () =>
        clients.every((c) => c.times.filter((t) => t > killedAt).length >= 2),
      5000,
      "two ticks on every client after the kill",
    );
    const dropped = clients.filter((c) => c.closeEvent !== undefined);
    assert.equal(dropped.length, 0, "connections dropped");
    const down = await storeState(server.http);
    assert.equal((down.figures as Record<string, number>).buffered, 3);

    await using again = await startRedis(port);
    await waitForStore(server.http, "up");
    for (const c of newcomers) {
      const { id } = claims(c.json[0]!.session);
      assert.equal(
        await redisCall(again.url, "EXISTS", `ws-time:session:${id}`),
        1,
        "a session started during the outage was not written",
      );
    }

    // The restarted Redis lost the old clients' records; the instance holds
    // their sessions, so its first refresh after the outage writes them
    // back.
    const old = claims(clients[0]!.json[0]!.session);
    await waitFor(
      async () =>
        await redisCall(again.url, "EXISTS", `ws-time:session:${old.id}`) ===
          1,
      5000,
      "a held session's record written back",
    );
    // A newcomer and an old client both resume from the store, with their
    // start.
    const resumes = [newcomers[0]!, clients[0]!].map((c) => {
      const token = c.json.findLast((m) => m.session)!.session;
      return {
        start: claims(token).start,
        socket: new RecordingSocket(`${server.ws}?session=${token}`, PROTOCOL),
      };
    });
    try {
      for (const { start, socket } of resumes) {
        await socket.waitForMessages(1);
        assert.equal(socket.json[0]!.resumed, true);
        assert.equal(claims(socket.json[0]!.session).start, start);
      }
    } finally {
      await Promise.all(resumes.map((r) => r.socket[Symbol.asyncDispose]()));
    }
    const metrics = await (await fetch(`${server.http}/metrics`)).text();
    assert.match(
      metrics,
      /wstime_sessions_total\{kind="resumed",from="store"\} 2/,
    );
    assert.match(metrics, /from="token"\} 0\n/);
    assert.match(
      metrics,
      /wstime_store_errors_total\{kind="connection"\} [1-9]/,
    );
  } finally {
    await redis[Symbol.asyncDispose]();
    await Promise.all(
      [...clients, ...newcomers].map((c) => c[Symbol.asyncDispose]()),
    );
  }
});

Deno.test("RedisStore, Redis flushed: valid tokens resume with their start on any instance; forged or altered ones never do", async () => {
  await using pair = await startSharedPair(SECRET);
  const { redis, a, b } = pair;
  await using original = new RecordingSocket(a.ws, PROTOCOL);
  await original.waitForMessages(2);
  const token = String(original.json[0]!.session);
  const { id, start } = claims(token);
  await original[Symbol.asyncDispose]();

  await redisCall(redis.url, "FLUSHALL");
  await using resumed = new RecordingSocket(
    `${b.ws}?session=${token}`,
    PROTOCOL,
  );
  await resumed.waitForMessages(1);
  assert.equal(resumed.json[0]!.resumed, true);
  assert.equal(claims(resumed.json[0]!.session).start, start);
  // B wrote the record back, so the next resume comes from the store: the
  // start, the epoch of the connection at B, live, and (once B's fleet
  // exchange shows every instance reads them) B as its holder.
  await waitFor(
    async () =>
      new RegExp(`^${start}:2:1(:[\\w-]{12})?$`).test(
        String(await redisCall(redis.url, "GET", `ws-time:session:${id}`)),
      ),
    3000,
    "record written back",
  );

  const altered = token.slice(0, 4) + (token[4] === "A" ? "B" : "A") +
    token.slice(5);
  const otherSecret = new TokenSigner("some-other-secret-0123456789abcd")
    .issue(start - 60_000, Date.now(), id).token;
  for (const bad of [altered, otherSecret, "not-a-token", id]) {
    await using forged = new RecordingSocket(
      `${a.ws}?session=${encodeURIComponent(bad)}`,
      PROTOCOL,
    );
    await forged.waitForMessages(1);
    const welcome = forged.json[0]!;
    assert.equal(welcome.resumed, false, `resumed with ${bad}`);
    assert.notEqual(claims(welcome.session).id, id);
  }
  assert.equal(resumed.closeEvent, undefined, "a forged token took over");
});

Deno.test("RedisStore, Redis down at startup: the server starts, serves, stays healthy, and writes sessions once Redis comes", async () => {
  const port = freePort();
  await using server = await startServer({
    env: { REDIS_URL: `redis://127.0.0.1:${port}`, SESSION_SECRET: SECRET },
  });
  await server.child.waitForLine(/redis unreachable/);
  assert.equal((await storeState(server.http)).state, "down");
  await using client = new RecordingSocket(server.ws, PROTOCOL);
  await client.waitForMessages(2);
  const { id, start } = claims(client.json[0]!.session);

  await using redis = await startRedis(port);
  await server.child.waitForLine(/redis connected/, 8000);
  await waitForStore(server.http, "up");
  // Written when Redis came, before or after the first fleet exchange:
  // with or without its holder.
  assert.match(
    String(await redisCall(redis.url, "GET", `ws-time:session:${id}`)),
    new RegExp(`^${start}:1:1(:[\\w-]{12})?$`),
  );
});
