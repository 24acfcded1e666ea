import assert from "node:assert/strict";
import { serve, testApp } from "../helpers/in_process.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";

const req = (path: string, init: RequestInit = {}) =>
  new Request(`http://localhost${path}`, init);

Deno.test("/healthz answers 200 while the process responds", async () => {
  await using t = testApp();
  const response = await t.app.handler(req("/healthz"));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.equal(await response.text(), "alive\n");
});

Deno.test("/healthcheck turns 503 with a reason past the connection threshold", async () => {
  await using t = testApp([
    "--max-connections",
    "4",
    "--health-threshold",
    "0.5",
  ]);
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws") + "/";
  const ok = await t.app.handler(req("/healthcheck"));
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "ok\n");
  await using a = new RecordingSocket(ws, "ws-time.v1");
  await a.opened;
  assert.equal((await t.app.handler(req("/healthcheck"))).status, 200);
  await using b = new RecordingSocket(ws, "ws-time.v1");
  await b.opened;
  const full = await t.app.handler(req("/healthcheck"));
  assert.equal(full.status, 503);
  assert.match(
    await full.text(),
    /server is overloaded \(connections at 50%, limit 50%\)/,
  );
  const head = await t.app.handler(req("/healthcheck", { method: "HEAD" }));
  assert.equal(head.status, 503);
  assert.equal(head.body, null);
  const detail = await t.app.handler(
    req("/healthcheck", { headers: { accept: "application/json" } }),
  );
  const json = await detail.json();
  assert.equal(json.healthy, false);
  assert.equal(json.state, "overloaded");
  assert.equal(json.ratios.connections, 0.5);
  assert.equal(json.connections, 2);
  assert.equal(json.store.kind, "memory");
});

Deno.test("--max-connections: at the hard cap new upgrades get 503 with Retry-After and existing stay", async () => {
  await using t = testApp(["--max-connections", "1"]);
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws") + "/";
  await using first = new RecordingSocket(ws, "ws-time.v1");
  await first.waitForMessages(1);
  const refused = await fetch(server.url + "/", {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
  assert.equal(refused.status, 503);
  assert.match(await refused.text(), /at capacity/);
  const retry = Number(refused.headers.get("retry-after"));
  assert.ok(retry >= 5 && retry <= 15, `Retry-After ${retry}`);
  await first.waitForMessages(2);
  assert.equal(first.closeEvent, undefined);
});

Deno.test("/metrics exposes connections, sessions, ticks and refusals", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws") + "/";
  let token: string;
  {
    await using a = new RecordingSocket(ws, "ws-time.v1");
    await a.waitForMessages(2);
    token = String(a.json[0]!.session);
  }
  await using b = new RecordingSocket(`${ws}?session=${token}`, "ws-time.v1");
  await b.waitForMessages(1);
  const refused = await fetch(server.url + "/", {
    headers: { upgrade: "websocket", connection: "upgrade" },
  });
  await refused.body?.cancel();
  const response = await fetch(server.url + "/metrics");
  assert.match(
    response.headers.get("content-type") ?? "",
    /text\/plain; version=0\.0\.4/,
  );
  const text = await response.text();
  assert.match(text, /^wstime_connections 1$/m);
  assert.match(text, /^wstime_sessions_total\{kind="started",from="new"\} 1$/m);
  assert.match(
    text,
    /^wstime_sessions_total\{kind="resumed",from="store"\} 1$/m,
  );
  assert.match(text, /^wstime_ticks_sent_total [1-9]\d*$/m);
  assert.match(text, /^wstime_upgrades_refused_total\{reason="version"\} 1$/m);
  assert.match(text, /^wstime_healthy 1$/m);
  assert.match(text, /^wstime_capacity_ratio\{probe="connections"\} 0\.0001$/m);
  assert.match(text, /^# TYPE wstime_ticks_sent_total counter$/m);
  assert.doesNotMatch(
    text,
    new RegExp(token.slice(0, 20)),
    "no token in metrics",
  );
});
