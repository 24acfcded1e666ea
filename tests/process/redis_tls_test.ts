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
import { clusterNodeArgs, loopbackRedisArgs } from "../../dev/redis_args.ts";

const FIXTURES = `${ROOT}tests/fixtures/redis_tls/`;
const SECRET = "tls-test-secret-0123456789abcdef";

/** A redis-server's TLS flags: the fixture certificate, no client certs. */
const TLS_ARGS = [
  "--tls-cert-file",
  `${FIXTURES}server.crt`,
  "--tls-key-file",
  `${FIXTURES}server.key`,
  "--tls-ca-cert-file",
  `${FIXTURES}ca.crt`,
  "--tls-auth-clients",
  "no",
];

async function startTlsRedis(): Promise<Child & { url: string }> {
  const port = freePort();
  const child = new Child("redis-server", [
    // Port 0: no plain-text port, TLS only.
    ...loopbackRedisArgs(0),
    "--tls-port",
    String(port),
    ...TLS_ARGS,
  ]);
  try {
    await child.waitForLine(/Ready to accept connections/);
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
  return Object.assign(child, { url: `rediss://127.0.0.1:${port}` });
}

/**
 * Opens `count` sessions on `server`, resumes each, and checks the store:
 * up, with every record written (nothing left in the buffer).
 */
async function assertResumesThroughStore(
  server: { ws: string; http: string },
  count: number,
): Promise<Record<string, number>> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    await using socket = new RecordingSocket(server.ws, "ws-time.v1");
    await socket.waitForMessages(1);
    tokens.push(socket.json[0]!.session as string);
  }
  for (const token of tokens) {
    await using again = new RecordingSocket(
      `${server.ws}?session=${token}`,
      "ws-time.v1",
    );
    await again.waitForMessages(1);
    assert.equal(again.json[0]!.resumed, true);
  }
  const store = (await healthDetail(server.http)).body.store as {
    state: string;
    figures: Record<string, number>;
  };
  assert.equal(store.state, "up");
  assert.equal(store.figures.buffered, 0);
  return store.figures;
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
  // Written over TLS, not waiting in the buffer; PINGs answered.
  const figures = await assertResumesThroughStore(trusted, 1);
  assert.ok(figures.rtt_ms! >= 0);
});

Deno.test("--redis-sentinels over TLS with passwords: connects with --redis-sentinel-tls and the sentinels' password, and not without", async () => {
  const dataPassword = `data-${crypto.randomUUID()}`;
  const sentinelPassword = `sentinel-${crypto.randomUUID()}`;
  const dataPort = freePort();
  const sentinelPort = freePort();
  await using data = new Child("redis-server", [
    "--port",
    String(dataPort),
    "--bind",
    "127.0.0.1",
    "--requirepass",
    dataPassword,
    "--save",
    "",
    "--appendonly",
    "no",
  ]);
  await data.waitForLine(/Ready to accept connections/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/sentinel.conf`,
      [
        "port 0",
        `tls-port ${sentinelPort}`,
        "bind 127.0.0.1",
        `tls-cert-file ${FIXTURES}server.crt`,
        `tls-key-file ${FIXTURES}server.key`,
        `tls-ca-cert-file ${FIXTURES}ca.crt`,
        "tls-auth-clients no",
        "protected-mode yes",
        `requirepass ${sentinelPassword}`,
        `sentinel monitor wstime 127.0.0.1 ${dataPort} 1`,
        `sentinel auth-pass wstime ${dataPassword}`,
        "",
      ].join("\n"),
    );
    await using sentinel = new Child("redis-sentinel", [
      `${dir}/sentinel.conf`,
    ]);
    await sentinel.waitForLine(/\+monitor master wstime/);
    const env = (extra: Record<string, string>) => ({
      REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
      REDIS_MASTER_NAME: "wstime",
      REDIS_URL: `redis://:${dataPassword}@wstime`,
      SESSION_SECRET: SECRET,
      DENO_CERT: `${FIXTURES}ca.crt`,
      ...extra,
    });
    for (
      const missing of [
        { REDIS_SENTINEL_TLS: "true" },
        { REDIS_SENTINEL_PASSWORD: sentinelPassword },
      ]
    ) {
      await using refused = await startServer({ env: env(missing) });
      await refused.child.waitForLine(/redis unreachable/);
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(
        !refused.child.lines.some((l) => /redis connected/.test(l)),
        `connected with only ${Object.keys(missing)}`,
      );
    }
    await using server = await startServer({
      env: env({
        REDIS_SENTINEL_TLS: "true",
        REDIS_SENTINEL_PASSWORD: sentinelPassword,
      }),
    });
    await server.child.waitForLine(/redis connected/);
    const store = (await healthDetail(server.http)).body.store as {
      state: string;
    };
    assert.equal(store.state, "up");
    assert.ok(
      !server.child.lines.join("\n").includes(sentinelPassword),
      "the sentinels' password reached the log",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--redis-cluster over TLS (as ElastiCache Serverless requires): a private CA through DENO_CERT, sessions resume, the password stays out of the log", async () => {
  const password = `cluster-${crypto.randomUUID()}`;
  const dir = await Deno.makeTempDir({ prefix: "ws-time-tls-cluster-" });
  const ports = [freePort(), freePort(), freePort()];
  const nodes = ports.map((port) =>
    new Child("redis-server", [
      ...loopbackRedisArgs(0),
      "--tls-port",
      String(port),
      "--tls-cluster",
      "yes",
      "--dir",
      dir,
      ...TLS_ARGS,
      ...clusterNodeArgs(`${dir}/nodes-${port}.conf`, 2000, password),
    ], { cwd: dir })
  );
  try {
    for (const node of nodes) {
      await node.waitForLine(/Ready to accept connections/);
    }
    // Three primaries, no replicas: TLS between the nodes and to clients.
    const create = await new Deno.Command("redis-cli", {
      args: [
        "--tls",
        "--cacert",
        `${FIXTURES}ca.crt`,
        "-a",
        password,
        "--no-auth-warning",
        "--cluster",
        "create",
        ...ports.map((port) => `127.0.0.1:${port}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(
      create.success,
      new TextDecoder().decode(create.stdout) +
        new TextDecoder().decode(create.stderr),
    );
    const env = (extra: Record<string, string>) => ({
      REDIS_CLUSTER: ports.map((port) => `127.0.0.1:${port}`).join(","),
      REDIS_URL: `rediss://:${password}@127.0.0.1`,
      SESSION_SECRET: SECRET,
      ...extra,
    });
    {
      await using untrusted = await startServer({ env: env({}) });
      // The log names the cause, not only "no seed answered".
      await untrusted.child.waitForLine(/redis unreachable.*certificate/);
    }
    await using server = await startServer({
      env: env({ DENO_CERT: `${FIXTURES}ca.crt` }),
    });
    await server.child.waitForLine(/redis connected/);
    // 30 sessions spread over the shards (the smallest holds 22% of the
    // tags: it gets none once in 1,600 runs), so the resumes cross TLS to
    // every shard.
    await assertResumesThroughStore(server, 30);
    assert.ok(
      !server.child.lines.join("\n").includes(password),
      "the cluster's password reached the log",
    );
  } finally {
    for (const node of nodes) await node[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
