/**
 * `rediss://`: the server talks TLS to Redis and verifies its certificate.
 * A private CA is trusted through Deno's `DENO_CERT`; without it the
 * connection is refused and the server serves on without Redis.
 *
 * The fixtures in `fixtures/redis_tls/` were made once with openssl: a test
 * CA (its key discarded) and a 100-year certificate for 127.0.0.1 signed by
 * it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { healthDetail, startServer } from "../../dev/server_process.ts";

const FIXTURES = `${ROOT}tests/fixtures/redis_tls/`;
const SECRET = "tls-test-secret-0123456789abcdef";

async function startTlsRedis(): Promise<Child & { url: string }> {
  const port = freePort();
  const child = new Child("redis-server", [
    "--port",
    "0",
    "--tls-port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--tls-cert-file",
    `${FIXTURES}server.crt`,
    "--tls-key-file",
    `${FIXTURES}server.key`,
    "--tls-ca-cert-file",
    `${FIXTURES}ca.crt`,
    "--tls-auth-clients",
    "no",
    "--save",
    "",
    "--appendonly",
    "no",
  ]);
  try {
    await child.waitForLine(/Ready to accept connections/);
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
  return Object.assign(child, { url: `rediss://127.0.0.1:${port}` });
}

Deno.test("rediss:// connects when the CA is trusted and refuses an unknown certificate", async () => {
  await using redis = await startTlsRedis();
  {
    await using untrusted = await startServer({
      env: { REDIS_URL: redis.url, SESSION_SECRET: SECRET },
    });
    await untrusted.child.waitForLine(/redis unreachable.*certificate/);
    await using socket = new RecordingSocket(untrusted.ws, "ws-time.v1");
    await socket.waitForMessages(2);
  }
  await using trusted = await startServer({
    env: {
      REDIS_URL: redis.url,
      SESSION_SECRET: SECRET,
      DENO_CERT: `${FIXTURES}ca.crt`,
    },
  });
  await trusted.child.waitForLine(/redis connected/);
  await using first = new RecordingSocket(trusted.ws, "ws-time.v1");
  await first.waitForMessages(1);
  const token = first.json[0]!.session;
  await first[Symbol.asyncDispose]();
  await using again = new RecordingSocket(
    `${trusted.ws}?session=${token}`,
    "ws-time.v1",
  );
  await again.waitForMessages(1);
  assert.equal(again.json[0]!.resumed, true);
  // Written over TLS, not waiting in the buffer; PINGs answered.
  const store = (await healthDetail(trusted.http)).body.store as {
    state: string;
    figures: Record<string, number>;
  };
  assert.equal(store.state, "up");
  assert.equal(store.figures.buffered, 0);
  assert.ok(store.figures.rtt_ms! >= 0);
});
