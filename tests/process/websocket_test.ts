import assert from "node:assert/strict";
import { rawRequest, upgradeRequest } from "../helpers/raw_http.ts";
import { serve, testApp } from "../helpers/in_process.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startServer } from "../../dev/server_process.ts";
import { sleep } from "../../dev/timing.ts";

/** The status and the whole response as text (headers and reason alike). */
async function exchange(
  port: number,
  request: string,
): Promise<{ status: number; text: string }> {
  const response = await rawRequest({ port }, request);
  return {
    status: response.status,
    text: `${response.head}\r\n\r\n${response.body}`,
  };
}

Deno.test("upgrade on /: a valid handshake switches protocols and selects ws-time.v1", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const response = await exchange(
    server.port,
    upgradeRequest("/", server.port, {
      "Sec-WebSocket-Protocol": "chat, ws-time.v1",
    }),
  );
  assert.equal(response.status, 101);
  assert.match(response.text, /sec-websocket-protocol: ws-time\.v1/i);
  assert.match(
    response.text,
    /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i,
  );
});

Deno.test("upgrade on /: bad handshakes get the right status and a reason", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const port = server.port;
  const cases: Array<[string, number, RegExp]> = [
    [
      upgradeRequest("/", port, { "Sec-WebSocket-Version": "12" }),
      426,
      /must be 13/,
    ],
    [
      upgradeRequest("/", port, { "Sec-WebSocket-Version": null }),
      426,
      /must be 13/,
    ],
    [upgradeRequest("/", port, { "Sec-WebSocket-Key": null }), 400, /Key/],
    [upgradeRequest("/", port, { "Sec-WebSocket-Key": "short" }), 400, /Key/],
    [
      upgradeRequest("/", port, {
        "Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!==",
      }),
      400,
      /Key/,
    ],
    [upgradeRequest("/", port, { Connection: "keep-alive" }), 400, /Upgrade/],
    [upgradeRequest("/", port, { Upgrade: "h2c" }), 400, /WebSocket/],
    [upgradeRequest("/?id=<script>", port), 400, /id must be/],
    [upgradeRequest("/?id=" + "x".repeat(65), port), 400, /id must be/],
    [upgradeRequest("/", port, {}, "POST"), 405, /GET/],
    [upgradeRequest("/elsewhere", port), 404, /no WebSocket/],
  ];
  for (const [request, status, reason] of cases) {
    const response = await exchange(port, request);
    assert.equal(
      response.status,
      status,
      request.split("\r\n").join(" | "),
    );
    assert.match(response.text, reason);
    if (status === 426) {
      assert.match(response.text, /sec-websocket-version: 13/i);
    }
  }
  assert.equal(t.app.connections.size, 0);
  assert.match(
    t.app.metrics.render(),
    /wstime_upgrades_refused_total\{reason="version"\} 2/,
  );
});

Deno.test("upgrade on /: two clients at once get their own sessions and counts", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws");
  await using a = new RecordingSocket(`${ws}/?id=a`, "ws-time.v1");
  await a.waitForMessages(2);
  await using b = new RecordingSocket(`${ws}/?id=b`, "ws-time.v1");
  await b.waitForMessages(2);
  const [wa, wb] = [a.json[0]!, b.json[0]!];
  assert.deepEqual([wa.type, wa.server, wa.resumed, wa.seconds], [
    "welcome",
    "test-app",
    false,
    0,
  ]);
  assert.equal(wb.resumed, false);
  assert.notEqual(wa.session, wb.session);
  assert.match(String(wa.session), /^[\w-]{66}$/);
  assert.deepEqual(b.json[1], { type: "tick", server: "test-app", seconds: 1 });
  assert.ok((a.json.at(-1)!.seconds as number) >= 2, "a started earlier");
});

Deno.test("upgrade on /?session=: a resumed session continues its count instead of restarting", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws");
  let token: string;
  {
    await using first = new RecordingSocket(ws + "/", "ws-time.v1");
    await first.waitForMessages(3);
    token = String(first.json[0]!.session);
  }
  await sleep(1200);
  await using again = new RecordingSocket(
    `${ws}/?session=${encodeURIComponent(token)}`,
    "ws-time.v1",
  );
  await again.waitForMessages(2);
  const welcome = again.json[0]!;
  assert.equal(welcome.resumed, true);
  assert.ok((welcome.seconds as number) >= 3, `seconds ${welcome.seconds}`);
  assert.equal(again.json[1]!.seconds, (welcome.seconds as number) + 1);
  assert.notEqual(welcome.session, token, "a fresh token is issued");
});

Deno.test("upgrade on /?session=: unknown, malformed and foreign tokens start a new session quietly", async () => {
  await using t = testApp();
  await using other = testApp(); // another secret: its tokens are foreign here
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws");
  const foreign = other.app.tokens.issue(Date.now() - 60_000, Date.now()).token;
  const expired = t.app.tokens.issue(
    Date.now() - 3_600_000,
    Date.now() - 3_600_000,
  ).token;
  for (
    const token of [
      "nonsense",
      "",
      "A".repeat(58),
      foreign,
      expired,
      "x".repeat(5000),
    ]
  ) {
    await using socket = new RecordingSocket(
      `${ws}/?session=${token}&id=probe`,
      "ws-time.v1",
    );
    const [welcome] = await socket.waitForMessages(1);
    const parsed = JSON.parse(welcome!);
    assert.equal(parsed.type, "welcome");
    assert.equal(parsed.resumed, false, token.slice(0, 20));
    assert.equal(parsed.seconds, 0);
  }
});

Deno.test("upgrade on /?id=: the label never resumes a session", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws");
  {
    await using first = new RecordingSocket(`${ws}/?id=alice`, "ws-time.v1");
    await first.waitForMessages(2);
  }
  await using second = new RecordingSocket(`${ws}/?id=alice`, "ws-time.v1");
  const [welcome] = await second.waitForMessages(1);
  assert.equal(JSON.parse(welcome!).resumed, false);
  assert.equal(JSON.parse(welcome!).seconds, 0);
});

Deno.test("upgrade on /?session=: a second connection with the same token takes the session over (4001)", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const ws = server.url.replace("http", "ws");
  await using first = new RecordingSocket(ws + "/", "ws-time.v1");
  await first.waitForMessages(2);
  const token = String(first.json[0]!.session);
  await using second = new RecordingSocket(
    `${ws}/?session=${token}`,
    "ws-time.v1",
  );
  await second.waitForMessages(1);
  const closed = await first.closed;
  assert.equal(closed.code, 4001);
  assert.equal(closed.reason, "session resumed elsewhere");
  assert.equal(second.json[0]!.resumed, true);
  await second.waitForMessages(2);
  assert.equal(t.app.connections.size, 1);
});

Deno.test("upgrade on / without subprotocol: text clients get the original lines, '1 second' singular", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  await using socket = new RecordingSocket(
    server.url.replace("http", "ws") + "/",
  );
  await socket.waitForMessages(3, 6000);
  assert.deepEqual(socket.messages.slice(0, 3), [
    "test-app: you have been connected for 1 second",
    "test-app: you have been connected for 2 seconds",
    "test-app: you have been connected for 3 seconds",
  ]);
  assert.equal(socket.socket.protocol, "");
});

/**
 * Waits for `n` ticks on `socket` and asserts they came about 1 s apart and
 * that tick n landed n s after `opened`, not n s plus accumulated lag.
 */
async function assertCadence(
  socket: RecordingSocket,
  opened: number,
  n: number,
): Promise<void> {
  await socket.waitForMessages(n + 1, n * 1000 + 3000);
  const ticks = socket.times.slice(1, n + 1);
  const gaps = ticks.slice(1).map((t, i) => t - ticks[i]!);
  for (const gap of gaps) assert.ok(gap > 800 && gap < 1200, `gap ${gap}`);
  const drift = ticks[n - 1]! - opened - n * 1000;
  assert.ok(drift > -100 && drift < 250, `drift ${drift} ms`);
  assert.deepEqual(
    socket.json.slice(1, n + 1).map((m) => m.seconds),
    Array.from({ length: n }, (_, i) => i + 1),
  );
}

Deno.test("ticks: they arrive about 1 s apart with no drift over 5 s", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  const opened = Date.now();
  await using socket = new RecordingSocket(
    server.url.replace("http", "ws") + "/",
    "ws-time.v1",
  );
  await assertCadence(socket, opened, 5);
});

Deno.test("--precise-ticks: the worker-timed ticker keeps the cadence; SIGINT still closes with 1001, exit 0", async () => {
  await using server = await startServer({ args: ["--precise-ticks", "true"] });
  const opened = Date.now();
  await using socket = new RecordingSocket(server.ws, "ws-time.v1");
  await assertCadence(socket, opened, 3);
  server.child.kill("SIGINT");
  assert.equal((await socket.closed).code, 1001);
  assert.equal((await server.child.finished()).code, 0);
});
