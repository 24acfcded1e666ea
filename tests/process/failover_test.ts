/**
 * Failover across instances: sessions live in one Redis shared by two
 * ws-time processes, so a client resumes on either one with its count, one
 * live connection per session is enforced across them, and a SIGKILLed
 * instance costs its clients nothing but a reconnect.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TokenSigner } from "../../server/sessions/token.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { redisCall, startRedis, startSharedPair } from "../../dev/redis.ts";
import {
  metricValue,
  type ServerProcess,
  startServer,
} from "../../dev/server_process.ts";
import { sleep, waitFor } from "../../dev/timing.ts";

const PROTOCOL = "ws-time.v1";
const SECRET = "failover-test-secret-0123456789abcdef";
const signer = new TokenSigner(SECRET);

/** Session start carried by a token the servers issued. */
function startOf(token: unknown): number {
  const claims = signer.verify(String(token));
  assert.ok(claims, "the server issued an invalid token");
  return claims.start;
}

Deno.test("RedisStore across instances: two sharing Redis resume each other's sessions; the older connection gets 4001", async () => {
  await using pair = await startSharedPair(SECRET);
  const { a, b } = pair;

  await using onA = new RecordingSocket(a.ws, PROTOCOL);
  await onA.waitForMessages(2);
  const first = onA.json[0]!;
  assert.equal(first.resumed, false);
  const start = startOf(first.session);

  await using onB = new RecordingSocket(
    `${b.ws}?session=${first.session}`,
    PROTOCOL,
  );
  await onB.waitForMessages(2);
  const welcomeB = onB.json[0]!;
  assert.equal(welcomeB.server, b.name);
  assert.equal(welcomeB.resumed, true);
  assert.equal(startOf(welcomeB.session), start);
  assert.ok((welcomeB.seconds as number) >= 1);

  const closeA = await onA.waitForClose();
  assert.equal(closeA.code, 4001);
  assert.equal(closeA.reason, "session resumed elsewhere");
  const takeoverMs = onA.closedAt! - onB.times[0]!;
  assert.ok(
    takeoverMs < 1000,
    `older connection closed after ${takeoverMs} ms`,
  );

  // And back again: B's connection is now the older one.
  await using backOnA = new RecordingSocket(
    `${a.ws}?session=${welcomeB.session}`,
    PROTOCOL,
  );
  await backOnA.waitForMessages(1);
  assert.equal(backOnA.json[0]!.resumed, true);
  assert.equal(startOf(backOnA.json[0]!.session), start);
  assert.equal((await onB.waitForClose()).code, 4001);

  const metrics = await (await fetch(`${b.http}/metrics`)).text();
  assert.match(metrics, /wstime_takeovers_total\{where="remote"\} 1/);
  assert.match(
    metrics,
    /wstime_sessions_total\{kind="resumed",from="store"\} 1/,
  );
});

Deno.test("RedisStore across instances: a client whose instance is SIGKILLed resumes on the other with its count", async () => {
  await using pair = await startSharedPair(SECRET);
  const { a, b } = pair;

  await using client = new RecordingSocket(a.ws, PROTOCOL);
  await client.waitForMessages(3);
  const token = client.json[0]!.session;
  const start = startOf(token);

  a.child.kill("SIGKILL");
  await a.child.finished();
  await client.waitForClose();

  await using resumed = new RecordingSocket(
    `${b.ws}?session=${token}`,
    PROTOCOL,
  );
  await resumed.waitForMessages(2, 4000);
  const [welcome, tick] = resumed.json;
  assert.equal(welcome!.resumed, true);
  assert.equal(startOf(welcome!.session), start);
  // The count an uninterrupted connection would show at that moment.
  const uninterrupted = Math.floor((resumed.times[0]! - start) / 1000);
  const seconds = welcome!.seconds as number;
  assert.ok(
    Math.abs(seconds - uninterrupted) <= 1,
    `resumed at ${seconds}, uninterrupted count ${uninterrupted}`,
  );
  assert.equal(tick!.seconds, seconds + 1);
});

Deno.test("RedisStore across instances: a handshake queued at a frozen instance cannot take the session from the connection its client moved to (4002)", async () => {
  await using pair = await startSharedPair(SECRET);
  const { a, b } = pair;
  await using original = new RecordingSocket(a.ws, PROTOCOL);
  await original.waitForMessages(1);
  const token = String(original.json[0]!.session);

  // A freezes; the client's first retry reaches it and waits in its queue.
  a.child.kill("SIGSTOP");
  let queued: RecordingSocket | undefined;
  try {
    queued = new RecordingSocket(`${a.ws}?session=${token}`, PROTOCOL);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Its next retry reaches B and takes the session over.
    await using moved = new RecordingSocket(
      `${b.ws}?session=${token}`,
      PROTOCOL,
    );
    await moved.waitForMessages(1);
    assert.equal(moved.json[0]!.resumed, true);
    a.child.kill("SIGCONT");
    // A thaws and finally handles the old handshake: it must yield.
    const stale = await queued.waitForClose(10_000);
    assert.equal(stale.code, 4002);
    assert.equal(stale.reason, "a newer connection holds this session");
    assert.equal(queued.messages.length, 0, "no welcome, no tick");
    // And A closes its own copy from before the freeze.
    assert.equal((await original.waitForClose(10_000)).code, 4001);
    // The connection the client moved to lives on, ticking.
    const ticks = moved.messages.length;
    await moved.waitForMessages(ticks + 2, 5000);
    assert.equal(moved.closeEvent, undefined);
    const metrics = await (await fetch(`${a.http}/metrics`)).text();
    assert.match(metrics, /^wstime_superseded_total 1$/m);
  } finally {
    a.child.kill("SIGCONT");
    await queued?.[Symbol.asyncDispose]();
  }
});

const RECEIVED = 'wstime_takeover_messages_total{direction="received"}';

/** The stored record of the session `token` names. */
async function recordOf(url: string, token: unknown): Promise<string> {
  const { id } = signer.verify(String(token))!;
  return String(await redisCall(url, "GET", `ws-time:session:${id}`));
}

/** How many times `server` has logged a line matching `pattern`. */
function logged(server: ServerProcess, pattern: RegExp): number {
  return server.child.lines.filter((line) => pattern.test(line)).length;
}

/** A client's session moved from `from` to `to`; `from`'s socket got 4001. */
async function move(from: ServerProcess, to: ServerProcess) {
  const first = new RecordingSocket(from.ws, PROTOCOL);
  await first.waitForMessages(1);
  const token = first.json[0]!.session;
  await using second = new RecordingSocket(
    `${to.ws}?session=${token}`,
    PROTOCOL,
  );
  await second.waitForMessages(1);
  assert.equal(second.json[0]!.resumed, true);
  assert.equal((await first.waitForClose()).code, 4001);
  await first[Symbol.asyncDispose]();
  return token;
}

Deno.test("RedisStore across three instances: records name their holder and a takeover reaches it alone; while an older version is on the board, they name none and everyone hears", async () => {
  await using redis = await startRedis();
  const env = { REDIS_URL: redis.url, SESSION_SECRET: SECRET };
  await using a = await startServer({ env });
  await using b = await startServer({ env });
  await using c = await startServer({ env });
  const servers = [a, b, c];
  const naming = /session records name their holder/;
  const unnamed = /session records name no holder/;
  for (const s of servers) await s.child.waitForLine(naming);

  const token = await move(a, b);
  assert.match(await recordOf(redis.url, token), /^\d+:2:[01]:[\w-]{12}$/);
  await waitFor(
    async () => await metricValue(a.http, RECEIVED) === 1,
    2000,
    "the takeover at a",
  );
  // Time for a takeover sent to everyone to have arrived, had it been.
  await sleep(200);
  assert.equal(await metricValue(b.http, RECEIVED), 0);
  assert.equal(await metricValue(c.http, RECEIVED), 0, "c held nothing");

  // An instance of a version before holders joins (its presence has no
  // record format): it could not read a holder, so none is written.
  await redisCall(
    redis.url,
    "HSET",
    "ws-time:fleet",
    "older",
    JSON.stringify({
      name: "older",
      version: "0.9.0",
      startedAt: Date.now(),
      connections: 0,
      capacity: 100,
      load: 0,
      healthy: true,
      draining: false,
      at: Date.now(),
    }),
  );
  for (const s of servers) await s.child.waitForLine(unnamed, 3000);
  const plain = await move(a, b);
  assert.match(await recordOf(redis.url, plain), /^\d+:2:[01]$/);
  // Every instance hears a takeover of a record that names no holder.
  await waitFor(
    async () => await metricValue(c.http, RECEIVED) === 1,
    2000,
    "the takeover at c",
  );
  await waitFor(
    async () => await metricValue(a.http, RECEIVED) === 2,
    2000,
    "the second takeover at a",
  );

  // Once it is gone from the board, holders come back.
  await redisCall(redis.url, "HDEL", "ws-time:fleet", "older");
  await waitFor(
    () => servers.every((s) => logged(s, naming) === 2),
    3000,
    "holders named again",
  );
});
