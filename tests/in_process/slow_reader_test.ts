import assert from "node:assert/strict";
import { upgradeRequest } from "../helpers/raw_http.ts";
import { serve, testApp } from "../helpers/in_process.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { sleep, waitFor } from "../../dev/timing.ts";

Deno.test("--max-buffered-bytes: a client that stops reading is closed once its queue passes it; others keep ticking", async () => {
  await using t = testApp(["--max-buffered-bytes", "4096"]);
  await using server = serve(t.app.handler);
  await using good = new RecordingSocket(
    `ws://127.0.0.1:${server.port}/`,
    "ws-time.v1",
  );
  await good.waitForMessages(1);
  // A peer that completes the handshake and then never reads again.
  const stalled = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.port,
  });
  try {
    await stalled.write(
      new TextEncoder().encode(upgradeRequest("/?id=stalled", server.port)),
    );
    const conn = await waitFor(
      () => [...t.app.connections.values()].find((c) => c.label === "stalled"),
      5000,
      "the stalled connection",
    );
    // Stand in for hours of unread ticks: fill the kernel's buffers so that
    // Deno has to queue what follows in memory.
    const chunk = "x".repeat(100_000);
    for (let i = 0; i < 80 && conn.socket.bufferedAmount < 100_000; i++) {
      conn.socket.send(chunk);
      await sleep(5);
    }
    assert.ok(conn.socket.bufferedAmount > 4096, "the queue grew");
    await waitFor(
      () => t.app.metrics.value("wstime_slow_readers_closed_total") === 1,
      3000,
      "the slow reader to be closed",
    );
    assert.notEqual(conn.socket.readyState, WebSocket.OPEN);
    const before = good.messages.length;
    await good.waitForMessages(before + 2, 4000);
    assert.equal(good.closeEvent, undefined);
  } finally {
    stalled.close();
  }
  await waitFor(
    () => t.app.connections.size === 1,
    5000,
    "stalled socket gone",
  );
});
