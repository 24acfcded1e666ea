import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { SERVER_PERMISSIONS, startServer } from "../../dev/server_process.ts";

function run(args: string[], env: Record<string, string> = {}): Child {
  return new Child(Deno.execPath(), [
    "run",
    ...SERVER_PERMISSIONS,
    `${ROOT}main.ts`,
    ...args,
  ], { env });
}

Deno.test("main.ts: startup prints one line with the URL, the name and the store", async () => {
  await using server = await startServer();
  const [line] = server.child.lines.filter((l) => /listening on/.test(l));
  assert.match(
    line!,
    new RegExp(
      `listening on http://127\\.0\\.0\\.1:${server.port}/ name=${server.name} store=memory`,
    ),
  );
  const page = await fetch(server.http + "/");
  assert.match(await page.text(), /ws-time/);
});

Deno.test("main.ts: an invalid flag stops startup with one line naming it", async () => {
  await using child = run(["--port", "eighty"]);
  const status = await child.finished();
  assert.equal(status.code, 2);
  assert.deepEqual(child.lines.filter((l) => l !== ""), [
    'ws-time: Invalid --port "eighty": expected a whole number',
  ]);
});

Deno.test("main.ts: an invalid environment variable names the variable and its flag", async () => {
  await using child = run([], { MAX_CONNECTIONS: "lots" });
  assert.equal((await child.finished()).code, 2);
  assert.match(
    child.lines.join("\n"),
    /MAX_CONNECTIONS \(--max-connections\) "lots"/,
  );
});

Deno.test("main.ts --help lists the options and exits 0", async () => {
  await using child = run(["--help"]);
  assert.equal((await child.finished()).code, 0);
  const text = child.lines.join("\n");
  assert.match(text, /--session-ttl <duration>.*\[default: 5m\]/);
  assert.match(text, /--max-connections/);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`main.ts on ${signal} closes every connection with 1001 and exits 0`, async () => {
    await using server = await startServer({
      args: ["--drain-delay", "0", "--drain-period", "0"],
    });
    await using a = new RecordingSocket(server.ws, "ws-time.v1");
    await using b = new RecordingSocket(server.ws);
    await a.waitForMessages(2);
    await b.waitForMessages(1);
    server.child.kill(signal);
    const [closeA, closeB] = await Promise.all([a.closed, b.closed]);
    assert.equal(closeA.code, 1001);
    assert.equal(closeB.code, 1001);
    const status = await server.child.finished();
    assert.equal(status.code, 0);
    assert.match(server.child.lines.join("\n"), /stopped/);
  });
}
