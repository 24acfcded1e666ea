/**
 * What the shipped balancer configs let through, over the wire to real
 * HAProxy and nginx: the client's own paths, never /metrics in any
 * spelling an instance would normalise to it; and the request id both
 * sides log.
 *
 * @module
 */

import assert from "node:assert/strict";
import { renderHaproxyConfig } from "../../dev/haproxy_config.ts";
import { startHaproxy } from "../../dev/haproxy.ts";
import { startNginx } from "../../dev/nginx.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { rawRequest } from "../helpers/raw_http.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";

const TEMPLATE = Deno.readTextFileSync(`${ROOT}deploy/haproxy.cfg`);

/** Spellings of /metrics an instance (WHATWG URL parsing) reads as it. */
const METRICS_SPELLINGS = [
  "/metrics",
  "/metrics/",
  "/./metrics",
  "/%2e/metrics",
  "/%2E/metrics",
  "/healthcheck/../metrics",
  "/healthcheck/%2e%2e/metrics",
  "/x/../metrics?y=1",
  "//metrics",
  "/x\\..\\metrics",
  "/healthcheck\\..\\metrics",
  "/x/%2E%2e\\metrics",
];

const get = (port: number, path: string) =>
  rawRequest(
    { port },
    `GET ${path} HTTP/1.1\r\nHost: time.example\r\nConnection: close\r\n\r\n`,
  );

/** The shipped HAProxy config in front of `server`, once it routes. */
async function haproxyFor(server: ServerProcess, trafficLog = false) {
  const port = freePort();
  const statsPort = freePort();
  const haproxy = await startHaproxy(
    renderHaproxyConfig(TEMPLATE, {
      port,
      statsPort,
      trafficLog,
      backends: [{
        name: server.name,
        port: server.port,
        agentPort: freePort(),
      }],
    }),
    statsPort,
  );
  await waitFor(
    async () => (await get(port, "/healthz")).status === 200,
    10_000,
    "haproxy to route",
  );
  return Object.assign(haproxy, { port });
}

Deno.test("main.ts serves /metrics under its one spelling and refuses every other spelling that URL parsing turns into it", async () => {
  await using server = await startServer();
  assert.match((await get(server.port, "/metrics")).body, /^# HELP wstime_/m);
  // Each of these, parsed as WHATWG URLs, is /metrics (nginx passes the
  // backslash ones on as written): they are refused, not served.
  const rewritten = METRICS_SPELLINGS.filter((p) =>
    !["/metrics", "//metrics", "/metrics/"].includes(p)
  );
  for (const path of rewritten) {
    const response = await get(server.port, path);
    assert.equal(response.status, 400, path);
    assert.match(response.body, /not in canonical form/, path);
  }
});

Deno.test("deploy/haproxy.cfg lets the client's paths through and no spelling of /metrics", async () => {
  await using server = await startServer();
  await using balancer = await haproxyFor(server);
  const { port } = balancer;
  for (const path of ["/", "/app.js", "/ws_time_client.js", "/healthcheck"]) {
    assert.equal((await get(port, path)).status, 200, path);
  }
  for (const path of METRICS_SPELLINGS) {
    const response = await get(port, path);
    assert.equal(response.status, 404, path);
    assert.doesNotMatch(response.body, /wstime_/, path);
  }
});

Deno.test("deploy/haproxy.cfg allows exactly the assets the instance serves, and its health paths", () => {
  const acl = /acl client_path path (.+)$/m.exec(TEMPLATE)?.[1]?.split(" ");
  const served = [
    ...Deno.readTextFileSync(`${ROOT}server/http/static.ts`)
      .matchAll(/\["(\/[\w.]+)", \w+, "/g),
  ].map((m) => m[1]!);
  assert.deepEqual(
    acl?.sort(),
    ["/", ...served, "/healthcheck", "/healthz"].sort(),
  );
});

Deno.test("deploy/nginx.conf lets the client's paths through and no spelling of /metrics, and passes its request id", async () => {
  await using server = await startServer({
    args: ["--log-connections", "on", "--trusted-proxies", "127.0.0.1"],
  });
  await using nginx = await startNginx([server.port]);
  for (const path of ["/", "/app.js", "/healthcheck"]) {
    assert.equal((await get(nginx.port, path)).status, 200, path);
  }
  for (const path of METRICS_SPELLINGS) {
    // nginx's own 404, or the instance's 400 for the spellings nginx
    // passes on (it keeps a backslash as a byte).
    const response = await get(nginx.port, path);
    assert.ok(
      [400, 404].includes(response.status),
      `${path}: ${response.status}`,
    );
    assert.doesNotMatch(response.body, /wstime_/, path);
  }
  await using client = new RecordingSocket(nginx.ws, "ws-time.v1");
  await client.waitForMessages(1);
  // nginx's $request_id: 32 hex digits, as its log_format writes it.
  await server.child.waitForLine(/ connect cid=[0-9a-f]{32} /);
});

Deno.test("deploy/haproxy.cfg and main.ts log the same request id for a connection", async () => {
  await using server = await startServer({
    args: ["--log-connections", "on", "--trusted-proxies", "127.0.0.1"],
  });
  await using haproxy = await haproxyFor(server, true);
  const { port } = haproxy;
  await using client = new RecordingSocket(
    `ws://127.0.0.1:${port}/?session=secret-looking-token`,
    "ws-time.v1",
  );
  await client.waitForMessages(1);
  const cid = (await server.child.waitForLine(/ connect .*cid=(\S+)/))[1]!;
  // HAProxy's id, not one of ours (those start with the server's name).
  assert.ok(!cid.startsWith(server.name.slice(0, 8)), cid);
  await client[Symbol.asyncDispose]();
  const line = await haproxy.child.waitForLine(
    new RegExp(` ${cid.replace(/[.:]/g, "\\$&")} GET /$`),
  ).catch((error) => {
    throw new Error(`${error}\n${haproxy.child.lines.join("\n")}`);
  });
  assert.doesNotMatch(line.input, /secret-looking-token/, "query logged");
});

Deno.test("with --metrics-port the public port serves no metrics and no health details, in any spelling; the operator port serves both", async () => {
  const metricsPort = freePort();
  await using server = await startServer({
    args: ["--metrics-port", String(metricsPort)],
  });
  await server.child.waitForLine(/operator endpoints listening/);
  for (const path of METRICS_SPELLINGS) {
    const response = await get(server.port, path);
    assert.ok(
      [400, 404].includes(response.status),
      `${path}: ${response.status}`,
    );
    assert.doesNotMatch(response.body, /wstime_/, path);
  }
  const json = { headers: { accept: "application/json" } };
  const publicHealth = await fetch(`${server.http}/healthcheck`, json);
  assert.equal(await publicHealth.text(), "ok\n");
  const operator = `http://127.0.0.1:${metricsPort}`;
  assert.match(await (await fetch(`${operator}/metrics`)).text(), /^# HELP/m);
  const details = await (await fetch(`${operator}/healthcheck`, json)).json();
  assert.ok("figures" in details && "store" in details);
  assert.equal((await get(metricsPort, "/")).status, 404, "no page there");
  assert.equal((await get(metricsPort, "/x\\..\\metrics")).status, 400);
});
