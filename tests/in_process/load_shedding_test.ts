import assert from "node:assert/strict";
import { serve, testApp } from "../helpers/in_process.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";

const UPGRADE = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

Deno.test("--max-connections: refused clients get spread-out Retry-After values, /healthcheck still answers, and a freed slot is reused", async () => {
  await using t = testApp(["--max-connections", "2"]);
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws") + "/";
  await using a = new RecordingSocket(ws, "ws-time.v1");
  await using b = new RecordingSocket(ws, "ws-time.v1");
  await a.waitForMessages(1);
  await b.waitForMessages(1);

  const retries = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const refused = await fetch(server.url + "/", { headers: UPGRADE });
    assert.equal(refused.status, 503);
    await refused.body?.cancel();
    retries.add(Number(refused.headers.get("retry-after")));
  }
  assert.ok(retries.size > 1, `Retry-After jittered: ${[...retries]}`);

  const health = await fetch(`${server.url}/healthcheck`);
  assert.equal(health.status, 503);
  assert.match(await health.text(), /connections at 100%/);

  const seen = [a.messages.length, b.messages.length];
  await a.waitForMessages(seen[0]! + 1, 3000);
  await b.waitForMessages(seen[1]! + 1, 3000);
  assert.equal(a.closeEvent, undefined);
  assert.equal(b.closeEvent, undefined);

  await a[Symbol.asyncDispose]();
  await using c = new RecordingSocket(ws, "ws-time.v1");
  await c.waitForMessages(1);
});
