/**
 * The Redis user docs/sessions.md tells operators to create, applied as
 * written: an instance running as that user serves sessions, resumes,
 * the fleet's presence and a drain, and Redis's `ACL LOG` (every command,
 * key or channel the user was refused) stays empty. A command ws-time
 * starts sending without the doc being updated fails this test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ROOT } from "../../dev/paths.ts";
import { redisCall, startRedis } from "../../dev/redis.ts";
import { healthDetail, startServer } from "../../dev/server_process.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";

const DOC = Deno.readTextFileSync(`${ROOT}docs/sessions.md`);

Deno.test("the documented ACL user runs ws-time, presence and drain included, with nothing refused", async () => {
  const line = /^ACL SETUSER wstime .+$/m.exec(DOC)?.[0];
  assert.ok(line, "docs/sessions.md has the ACL line");
  const password = `acl-${crypto.randomUUID()}`;
  await using redis = await startRedis();
  const words = line.replace("CHANGE-ME-data-password", password).split(" ");
  assert.equal(await redisCall(redis.url, ...words), "OK");
  const url = redis.url.replace("redis://", `redis://wstime:${password}@`);
  const args = [
    "--redis",
    url,
    "--session-secret",
    "acl-test-secret-0123456789abcdefghijkl",
    // Refreshes (GETEX) every second, and a drain that does not wait
    // for a replacement.
    "--session-ttl",
    "2s",
    "--drain-delay",
    "0",
    "--drain-period",
    "500ms",
    "--drain-handover",
    "0",
  ];
  // Two instances: presence records go both ways.
  await using a = await startServer({ args });
  await using b = await startServer({ args });
  await a.child.waitForLine(/redis connected/);
  await using first = new RecordingSocket(a.ws, "ws-time.v1");
  await first.waitForMessages(2);
  const token = String(first.json[0]!.session);
  await first[Symbol.asyncDispose]();
  await using again = new RecordingSocket(
    `${b.ws}?session=${token}`,
    "ws-time.v1",
  );
  await again.waitForMessages(2);
  assert.equal(again.json[0]!.resumed, true);
  // Time for presence records to go both ways and refreshes to run.
  await new Promise((r) => setTimeout(r, 2500));
  const store = (await healthDetail(a.http)).body.store as { state: string };
  assert.equal(store.state, "up");
  b.child.kill("SIGTERM");
  assert.equal((await b.child.finished()).code, 0);
  const denied = await redisCall(redis.url, "ACL", "LOG");
  assert.deepEqual(
    denied,
    [],
    `refused to the wstime user:\n${JSON.stringify(denied)}`,
  );
  // And the user really is confined: anything else is refused.
  await assert.rejects(redisCall(url, "CONFIG", "GET", "*"), /NOPERM/);
});
