import assert from "node:assert/strict";
import { freePort, RecordingSocket, startServer, waitFor } from "./support.ts";

const LIMITS = ["--max-per-address", "1000", "--rate-per-address", "1000"];

Deno.test("--reuse-port: two processes share one port, each with its own cap and health", async () => {
  const port = freePort();
  const start = (name: string) =>
    startServer({
      port,
      args: [
        "--reuse-port",
        "true",
        "--max-connections",
        "10",
        "--name",
        name,
        ...LIMITS,
      ],
    });
  await using _a = await start("proc-a");
  await using _b = await start("proc-b");
  const sockets = Array.from(
    { length: 60 },
    () => new RecordingSocket(`ws://127.0.0.1:${port}/`, "ws-time.v1"),
  );
  try {
    await waitFor(
      () => sockets.every((s) => s.messages.length > 0 || s.closeEvent),
      15_000,
      "every socket to be welcomed or refused",
    );
    const servers = sockets.filter((s) => s.messages.length > 0)
      .map((s) => s.json[0]!.server as string);
    // The kernel spreads connections over both; each refuses past its own
    // cap of 10, so the port holds 2 x 10, not 10.
    assert.equal(servers.length, 20);
    assert.equal(servers.filter((s) => s === "proc-a").length, 10);
    assert.equal(servers.filter((s) => s === "proc-b").length, 10);

    // Each new TCP connection may land on either process: the health check
    // speaks for one process at a time.
    using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/healthcheck`, {
        client,
        headers: { accept: "application/json" },
      });
      const body = await response.json();
      assert.equal(response.status, 503, "a full process reports unhealthy");
      assert.equal(body.connections, 10);
      seen.add(body.server);
    }
    assert.deepEqual([...seen].sort(), ["proc-a", "proc-b"]);
  } finally {
    await Promise.all(sockets.map((s) => s[Symbol.asyncDispose]()));
  }
});
