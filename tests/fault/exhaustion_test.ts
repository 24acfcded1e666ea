/**
 * An instance under a lowered descriptor limit (`ulimit -n`), as on a small
 * host or under a unit without LimitNOFILE: a flood of half-open requests
 * exhausts its descriptors. The process and its sessions must survive, and
 * it must accept again by itself once the flood is gone. Also: the limit is
 * read at startup and --max-connections made to fit it.
 *
 * @module
 */

import assert from "node:assert/strict";
import net from "node:net";
import { Child } from "../../dev/child.ts";
import { netnsUnavailable, Network } from "../../dev/netns.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { metricValue, SERVER_PERMISSIONS } from "../../dev/server_process.ts";
import { sleep, waitFor } from "../../dev/timing.ts";

/** main.ts under `ulimit -n limit`, on a free loopback port. */
function limitedServer(limit: number, args: string[] = []) {
  const port = freePort();
  const child = new Child("sh", [
    "-c",
    `ulimit -n ${limit} && exec "$0" "$@"`,
    Deno.execPath(),
    "run",
    ...SERVER_PERMISSIONS,
    `${ROOT}main.ts`,
    "--hostname",
    "127.0.0.1",
    "--port",
    String(port),
    ...args,
  ], { env: { NO_COLOR: "1" } });
  return {
    child,
    port,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/`,
  };
}

/**
 * Opens `count` half-open requests from `localAddress` and returns the
 * sockets that connected; never ends them.
 */
async function flood(
  port: number,
  localAddress: string,
  count: number,
): Promise<net.Socket[]> {
  const open: net.Socket[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1", localAddress });
      socket.on("connect", () => {
        socket.write("GET / HTTP/1.1\r\nHost: flood\r\n");
        open.push(socket);
        resolve();
      });
      socket.on("error", () => resolve());
    });
  for (let i = 0; i < count; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, count - i) }, one));
  }
  return open;
}

Deno.test("main.ts under ulimit -n 3000: a flood of half-open requests costs new connections for a while, never the process or its sessions", async () => {
  const agentPort = freePort();
  const server = limitedServer(3000, ["--agent-port", String(agentPort)]);
  await using _ = server.child;
  await server.child.waitForLine(/listening on/, 20_000);
  const sessions = Array.from(
    { length: 200 },
    () => new RecordingSocket(server.ws, "ws-time.v1"),
  );
  let flooded: net.Socket[] = [];
  try {
    await waitFor(
      () => sessions.every((s) => s.messages.length >= 2),
      15_000,
      "200 sessions ticking",
    );
    flooded = await flood(server.port, "127.0.0.2", 2800);
    await server.child.waitForLine(
      /cannot accept connections.*Too many open files/,
      10_000,
    );
    // The listener gave up at the limit and stays down while the flood
    // holds the descriptors: a newcomer is refused at once, not left
    // hanging in a backlog. (Whether part of the flood itself was refused
    // depends on how much of it the kernel had queued when accept failed.)
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      Deno.errors.ConnectionRefused,
    );
    // Through the flood, every session keeps ticking.
    const before = sessions.map((s) => s.messages.length);
    await sleep(3000);
    sessions.forEach((s, i) =>
      assert.ok(
        s.messages.length >= before[i]! + 2 && s.closeEvent === undefined,
        `session ${i} stalled`,
      )
    );
    assert.equal(server.child.status, undefined, "the process exited");
    // The agent's own accept fails too while descriptors are out; that
    // must not end the process either.
    await Deno.connect({ hostname: "127.0.0.1", port: agentPort }).then(
      (conn) => conn.close(),
      () => {},
    );
    await sleep(500);
    assert.equal(server.child.status, undefined, "the agent ended the process");
  } finally {
    for (const socket of flooded) socket.destroy();
  }
  // Once the flood is gone, it listens again by itself.
  await server.child.waitForLine(/accepting connections again/, 15_000);
  await using late = new RecordingSocket(server.ws, "ws-time.v1");
  await late.waitForMessages(1, 5000);
  assert.equal(late.json[0]!.type, "welcome");
  assert.ok(
    await metricValue(server.http, "wstime_accept_failures_total") >= 1,
  );
  assert.equal(await metricValue(server.http, "wstime_accepting"), 1);
  const agent = await Deno.connect({ hostname: "127.0.0.1", port: agentPort });
  assert.match(await new Response(agent.readable).text(), /^ready up \d+%/);
  assert.equal(
    await metricValue(server.http, "wstime_connections"),
    201,
    "all 200 sessions and the late one",
  );
  await Promise.all(sessions.map((s) => s[Symbol.asyncDispose]()));
});

Deno.test("main.ts reads the descriptor limit: a default --max-connections is fitted to it, an explicit one that cannot fit stops startup", async () => {
  const fitted = limitedServer(1024);
  await using _ = fitted.child;
  await fitted.child.waitForLine(/listening on/, 20_000);
  const line = await fitted.child.waitForLine(
    /descriptors available=(\d+) maxConnections=(\d+)/,
  );
  const available = Number(line[1]);
  assert.ok(available > 950 && available < 1024, `${available} available`);
  assert.equal(Number(line[2]), available - 64 - 32 - 64);
  assert.ok(
    fitted.child.lines.some((l) => /--max-connections lowered/.test(l)),
  );

  const refused = limitedServer(1024, ["--max-connections", "5000"]);
  const status = await refused.child.finished();
  assert.equal(status.code, 2);
  assert.match(
    refused.child.lines.join("\n"),
    /Cannot fit --max-connections 5000 in the \d+ descriptors this process may still open/,
  );
});

const unavailable = netnsUnavailable() ??
  (commandMissing("nft") ? "nft (Debian nftables) is not installed" : null);

/** Whether `command` cannot be run here. */
function commandMissing(command: string): boolean {
  try {
    new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    return false;
  } catch {
    return true;
  }
}

/** A script that opens half-open requests, paced, and reports counts. */
const ATTACK = `
import net from "node:net";
const [host, count, perSecond] = [Deno.args[0], Number(Deno.args[1]), Number(Deno.args[2])];
let open = 0, refused = 0;
const held = [];
const one = () =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port: 8000 });
    socket.on("connect", () => {
      socket.write("GET / HTTP/1.1\\r\\nHost: x\\r\\n");
      // A reset may follow the handshake's last ACK: wait to be sure.
      setTimeout(() => { if (!socket.destroyed) { open++; held.push(socket); } resolve(); }, 20);
    });
    socket.on("error", () => { refused++; resolve(); });
  });
if (perSecond === 0) {
  await Promise.all(Array.from({ length: count }, one));
} else {
  for (let i = 0; i < count; i++) {
    await one();
    await new Promise((r) => setTimeout(r, 1000 / perSecond));
  }
}
console.log(JSON.stringify({ open, refused }));
await new Promise(() => {});
`;

Deno.test({
  name: unavailable === null
    ? "deploy/nftables/ws-time.nft caps what one source can hold and open, and leaves other clients alone"
    : `deploy/nftables/ws-time.nft (skipped: ${unavailable})`,
  ignore: unavailable !== null,
  async fn() {
    await using net = await Network.create();
    const server = await net.addHost("srv", 10);
    const burst = await net.addHost("burst", 20);
    const holder = await net.addHost("holder", 21);
    const user = await net.addHost("user", 30);
    await net.loadShippedNftables(server.ns);
    await net.startServer(server.ns, server.address);
    const attack = (host: typeof burst, count: number, perSecond: number) =>
      net.spawn(host.ns, Deno.execPath(), [
        "eval",
        ATTACK,
        server.address,
        String(count),
        String(perSecond),
      ], { env: { NO_COLOR: "1" } });
    // All at once: the rate limit's burst lets about 100 through.
    const fast = attack(burst, 300, 0);
    const fastResult = JSON.parse(
      (await fast.waitForLine(/^\{"open".*$/, 60_000))[0],
    );
    assert.ok(
      fastResult.open >= 90 && fastResult.open <= 160,
      `burst: ${JSON.stringify(fastResult)}`,
    );
    // Paced under the rate: the count cap stops it at 256 held.
    const slow = attack(holder, 290, 40);
    const slowResult = JSON.parse(
      (await slow.waitForLine(/^\{"open".*$/, 60_000))[0],
    );
    assert.equal(slowResult.open, 256, `held: ${JSON.stringify(slowResult)}`);
    // Another address is not affected, and ws-time serves it.
    const client = net.spawn(user.ns, Deno.execPath(), [
      "eval",
      `const s = new WebSocket("ws://${server.address}:8000/", "ws-time.v1");
       s.onmessage = (e) => { console.log(e.data); s.close(); };`,
    ], { env: { NO_COLOR: "1" } });
    await client.waitForLine(/"type":"welcome"/, 10_000);
  },
});
