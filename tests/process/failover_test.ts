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
import { startSharedPair } from "../../dev/redis.ts";

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
