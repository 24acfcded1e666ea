/**
 * The reconnecting client against real server processes: failover to a new
 * instance on the same port keeps the count, a full server's wait hint
 * reaches the client through the probe, and a plain text client (the
 * original ws-time page) still gets its lines.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type CloseDetail,
  healthcheckProbe,
  type Message,
  type RetryDetail,
  WsTimeClient,
} from "../../static/ws_time_client.js";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";

/** A client whose messages and retries are recorded; stopped on dispose. */
function recordingClient(
  url: string,
  options: ConstructorParameters<typeof WsTimeClient>[1] = {},
) {
  const client = new WsTimeClient(url, options);
  const messages: Message[] = [];
  const retries: RetryDetail[] = [];
  const closes: CloseDetail[] = [];
  client.on("message", (message) => messages.push(message));
  client.on("retry", (retry) => retries.push(retry));
  client.on("close", (close) => closes.push(close));
  client.start();
  return {
    client,
    messages,
    retries,
    closes,
    [Symbol.asyncDispose]: () => client.stop(),
  };
}

Deno.test("WsTimeClient carries on counting on a new instance on the same port", async () => {
  const env = { SESSION_SECRET: "shared-secret-for-failover-test-0123456789" };
  const first = await startServer({ env });
  await using rc = recordingClient(first.ws, {
    id: "failover",
    baseMs: 200,
    capMs: 1000,
  });
  await waitFor(
    () => rc.messages.some((m) => m.type === "tick" && m.seconds === 2),
    8000,
    "two ticks",
  );
  const token = rc.client.session;
  await first[Symbol.asyncDispose]();
  const before = rc.messages.length;
  const lastSeconds = rc.messages.at(-1)!.seconds as number;
  await waitFor(() => rc.retries.length >= 1, 5000, "a scheduled retry");
  await using second = await startServer({ env, port: first.port });
  const welcome = await waitFor(
    () => rc.messages.slice(before).find((m) => m.type === "welcome"),
    15_000,
    "a welcome from the new instance",
  );
  assert.equal(welcome.server, second.name);
  assert.equal(welcome.resumed, true);
  assert.ok((welcome.seconds as number) >= lastSeconds, "count went back");
  assert.notEqual(token, "");
  assert.ok(rc.retries.every((r) => r.delayMs <= 1000));
  assert.equal(rc.client.state, "connected");
});

Deno.test("WsTimeClient waits for the Retry-After of a full server (healthcheckProbe)", async () => {
  await using server = await startServer({ args: ["--max-connections", "1"] });
  await using holder = new RecordingSocket(server.ws, "ws-time.v1");
  await holder.waitForMessages(1);
  await using rc = recordingClient(server.ws, {
    probe: healthcheckProbe(),
    random: () => 0.5,
  });
  const retry = await waitFor(() => rc.retries[0], 8000, "a retry");
  assert.ok(retry.hintMs !== undefined, "no hint from /healthcheck");
  assert.ok(retry.hintMs >= 5000 && retry.hintMs <= 15_000, `${retry.hintMs}`);
  assert.equal(retry.delayMs, retry.hintMs);
  assert.equal(rc.client.state, "retrying");
});

Deno.test("upgrade on / without subprotocol: a plain text client still receives the text lines", async () => {
  await using server = await startServer();
  await using socket = new RecordingSocket(server.ws);
  await socket.opened;
  assert.equal(socket.socket.protocol, "");
  const [first, second] = await socket.waitForMessages(2, 5000);
  assert.equal(first, `${server.name}: you have been connected for 1 second`);
  assert.equal(second, `${server.name}: you have been connected for 2 seconds`);
});

Deno.test("WsTimeClient yields to a newer connection of its session (4001), waits while it lives (4002), then takes the session back", async () => {
  await using server = await startServer();
  const options = { baseMs: 100, supersededMs: 300 };
  await using older = recordingClient(server.ws, options);
  await waitFor(() => older.client.session, 5000, "a welcome");
  const newer = recordingClient(server.ws, {
    ...options,
    session: older.client.session,
  });
  try {
    await waitFor(
      () => newer.messages.some((m) => m.type === "tick"),
      5000,
      "a tick on the newer connection",
    );
    assert.equal(newer.messages[0]!.resumed, true);
    // The older one retries with its older token and is told 4002 while
    // the newer connection lives: it never evicts it.
    await waitFor(
      () => older.closes.filter((c) => c.code === 4002).length >= 2,
      10_000,
      "the older client to be refused twice",
    );
    assert.equal(older.closes[0]!.code, 4001);
    assert.equal(newer.client.state, "connected");
    assert.equal(newer.retries.length, 0);
  } finally {
    await newer.client.stop();
  }
  // The newer copy is gone: the older client takes the session back.
  await waitFor(
    () =>
      older.client.state === "connected" &&
      older.messages.at(-1)?.type === "tick",
    10_000,
    "the older client to resume",
  );
  const welcome = older.messages.filter((m) => m.type === "welcome").at(-1)!;
  assert.equal(welcome.resumed, true);
});
