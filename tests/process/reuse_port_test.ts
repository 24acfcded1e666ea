import assert from "node:assert/strict";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";

/** A process on the shared `port`, named `name`, with `args` added. */
function startSibling(port: number, name: string, args: string[] = []) {
  return startServer({
    port,
    args: [
      "--reuse-port",
      "true",
      "--session-secret",
      "shared-by-both-processes-0123456789",
      "--name",
      name,
      ...args,
    ],
  });
}

Deno.test("--reuse-port: two processes share one port, each with its own cap and health", async () => {
  const port = freePort();
  const cap = ["--max-connections", "10"];
  await using _a = await startSibling(port, "proc-a", cap);
  await using _b = await startSibling(port, "proc-b", cap);
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

/**
 * Connections the kernel completes for a stopped server on `port` within
 * 600 ms, out of `attempts`: what its accept queues hold. All attempts are
 * settled and closed before returning (after SIGCONT the rest get through).
 */
async function queuedWhileStopped(
  server: { port: number; child: { process: Deno.ChildProcess } },
  attempts: number,
): Promise<number> {
  server.child.process.kill("SIGSTOP");
  let completed = 0;
  const conns = Array.from(
    { length: attempts },
    () =>
      Deno.connect({ hostname: "127.0.0.1", port: server.port }).then(
        (conn) => {
          completed++;
          return conn;
        },
        () => null,
      ),
  );
  await new Promise((resolve) => setTimeout(resolve, 600));
  const counted = completed;
  server.child.process.kill("SIGCONT");
  for (const conn of await Promise.all(conns)) conn?.close();
  return counted;
}

Deno.test("--listeners: more accept queues on one port hold a larger connection burst", async () => {
  await using one = await startServer();
  await using three = await startServer({ args: ["--listeners", "3"] });
  const listening = new TextDecoder().decode(
    (await new Deno.Command("ss", {
      args: ["-Hltn", `sport = :${three.port}`],
      stdout: "piped",
    }).output()).stdout,
  ).trim().split("\n").filter((line) => line !== "");
  assert.equal(listening.length, 3, listening.join("\n"));
  // Deno's backlog is 511: a stopped server's kernel holds 512 per queue
  // (measured here: 512 with one listener, 1536 with three).
  const single = await queuedWhileStopped(one, 1800);
  const triple = await queuedWhileStopped(three, 1800);
  assert.ok(single <= 520, `one listener held ${single}`);
  assert.ok(triple >= 1000, `three listeners held ${triple}`);
  // And the server behind them serves as usual.
  await using client = new RecordingSocket(three.ws, "ws-time.v1");
  await client.waitForMessages(2);
});

Deno.test("--reuse-port: a reconnect the kernel hands to the sibling process keeps the count", async () => {
  const port = freePort();
  await using _a = await startSibling(port, "proc-a");
  await using _b = await startSibling(port, "proc-b");
  const url = `ws://127.0.0.1:${port}/`;
  await using first = new RecordingSocket(url, "ws-time.v1");
  await first.waitForMessages(3, 5_000);
  const welcome = first.json[0]!;
  const counted = first.json.at(-1)!.seconds as number;
  first.socket.close();
  await first.closed;
  // Each new connection has a new source port, so the kernel's hash picks
  // either process; retry until one lands on the sibling.
  let sibling: RecordingSocket | undefined;
  for (let attempt = 0; attempt < 40 && !sibling; attempt++) {
    const next = new RecordingSocket(
      `${url}?session=${encodeURIComponent(welcome.session as string)}`,
      "ws-time.v1",
    );
    await next.waitForMessages(1, 5_000);
    if (next.json[0]!.server !== welcome.server) sibling = next;
    else await next[Symbol.asyncDispose]();
  }
  assert.ok(sibling, "no reconnect landed on the sibling in 40 tries");
  await using resumed = sibling;
  const again = resumed.json[0]!;
  assert.equal(again.resumed, true, "the sibling resumed the session");
  assert.ok(
    (again.seconds as number) >= counted,
    `count went from ${counted} back to ${again.seconds}`,
  );
});
