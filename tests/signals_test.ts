import assert from "node:assert/strict";
import { RecordingSocket, startServer } from "./support.ts";

Deno.test("SIGINT closes every connection at once with a drain hint and exits 0", async () => {
  await using server = await startServer({ args: ["--drain-delay", "1m"] });
  await using json = new RecordingSocket(server.ws, "ws-time.v1");
  await using text = new RecordingSocket(server.ws);
  await json.waitForMessages(1);
  await text.opened;
  server.child.kill("SIGINT");
  const [jsonClose, textClose] = await Promise.all([json.closed, text.closed]);
  assert.equal(jsonClose.code, 1001);
  assert.equal(textClose.code, 1001);
  const drain = json.json.at(-1)!;
  assert.equal(drain.type, "drain");
  assert.ok(typeof drain.reconnectAfterMs === "number");
  assert.ok(!text.messages.some((m) => m.includes("drain")));
  assert.equal((await server.child.finished()).code, 0);
});

Deno.test("a second SIGTERM during the drain delay exits at once", async () => {
  await using server = await startServer({ args: ["--drain-delay", "1m"] });
  await using client = new RecordingSocket(server.ws, "ws-time.v1");
  await client.waitForMessages(1);
  server.child.kill("SIGTERM");
  await server.child.waitForLine(/draining/);
  const refused = await fetch(`${server.http}/healthcheck`);
  assert.equal(refused.status, 503);
  assert.equal(await refused.text(), "draining\n");
  server.child.kill("SIGTERM");
  assert.equal((await server.child.finished()).code, 1);
  await client.closed;
});
