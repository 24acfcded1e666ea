import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startServer } from "../../dev/server_process.ts";
import { sleep } from "../../dev/timing.ts";

Deno.test("main.ts on SIGINT closes every connection at once with a drain hint and exits 0", async () => {
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

Deno.test("main.ts on a second SIGTERM during the drain delay exits at once", async () => {
  await using server = await startServer({ args: ["--drain-delay", "1m"] });
  await using client = new RecordingSocket(server.ws, "ws-time.v1");
  await client.waitForMessages(1);
  server.child.kill("SIGTERM");
  await server.child.waitForLine(/draining/);
  const refused = await fetch(`${server.http}/healthcheck`);
  assert.equal(refused.status, 503);
  assert.equal(await refused.text(), "draining\n");
  // A person's second signal; copies within 250 ms are taken as one.
  await sleep(300);
  server.child.kill("SIGTERM");
  assert.equal((await server.child.finished()).code, 1);
  await client.closed;
});

Deno.test("deno task start on Ctrl-C (the whole process group) stops gracefully once", async () => {
  const port = freePort();
  // setsid gives the task its own process group, as a terminal would.
  await using task = new Child("setsid", [
    Deno.execPath(),
    "task",
    "start",
    "--hostname",
    "127.0.0.1",
    "--port",
    String(port),
    "--name",
    "terminal",
  ], { cwd: ROOT });
  await task.waitForLine(/listening on/, 20_000);
  await using client = new RecordingSocket(
    `ws://127.0.0.1:${port}/`,
    "ws-time.v1",
  );
  await client.waitForMessages(1);
  // The terminal signals every process of the group: deno task and the
  // server both get SIGINT, and deno task forwards its copy to the server.
  Deno.kill(-task.process.pid, "SIGINT");
  const closed = await client.closed;
  assert.equal(closed.code, 1001);
  assert.equal(client.json.at(-1)!.type, "drain");
  assert.equal((await task.finished()).code, 0);
  assert.ok(
    !task.lines.some((line) => line.includes("second signal")),
    task.lines.join("\n"),
  );
});
