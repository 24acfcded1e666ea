/**
 * Ping frames: Deno answers them below the JavaScript API, so they bypass
 * `--max-messages-per-second` and ws-time cannot even count them. Measured
 * here, one connection pinging as fast as it can keeps a core busy with
 * pongs. What does bound it is the upload rate of a connection, which no
 * ws-time client comes near (a handshake, then a few bytes a minute), and
 * which the kernel can cap where client connections end: the shipped
 * `deploy/nftables/ws-time.nft` drops a connection's packets above
 * 64 KB/s, and the sender's TCP slows to that. Real instance, real kernel
 * rules, in network namespaces.
 *
 * @module
 */

import assert from "node:assert/strict";
import { netnsUnavailable, Network } from "../../dev/netns.ts";
import { cpuTimes } from "../../dev/proc.ts";

const unavailable = netnsUnavailable() ??
  (await new Deno.Command("nft", { args: ["--version"] }).output().then(
      (o) => o.success,
      () => false,
    )
    ? null
    : "nft (Debian nftables) is not installed");

/** Pings as fast as the socket takes them for `seconds`; counts pongs. */
const FLOOD = `
import { Buffer } from "node:buffer";
import net from "node:net";
const [host, seconds] = [Deno.args[0], Number(Deno.args[1])];
const ping = Buffer.concat([Buffer.from([0x89, 0x80 | 125, 0, 0, 0, 0]), Buffer.alloc(125, 98)]);
const batch = Buffer.concat(Array(500).fill(ping));
const socket = net.connect({ host, port: 8000 });
let received = 0, upgraded = false;
socket.on("error", () => {});
socket.on("data", (d) => { received += d.length; upgraded = true; });
socket.on("connect", () => socket.write("GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n"));
while (!upgraded) await new Promise((r) => setTimeout(r, 10));
received = 0;
let sent = 0;
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  sent += 500;
  if (!socket.write(batch)) {
    await Promise.race([new Promise((r) => socket.once("drain", r)), new Promise((r) => setTimeout(r, 100))]);
  }
}
console.log(JSON.stringify({ pongsPerSecond: Math.round(received / 127 / seconds) }));
socket.destroy();
`;

/** A bystander that reports the longest wait between its ticks. */
const BYSTANDER = `
const socket = new WebSocket("ws://" + Deno.args[0] + ":8000/", "ws-time.v1");
let last = 0, longest = 0;
socket.onmessage = () => {
  const now = performance.now();
  if (last > 0) longest = Math.max(longest, now - last);
  last = now;
};
await new Promise((r) => setTimeout(r, Number(Deno.args[1]) * 1000));
console.log(JSON.stringify({ longestGapMs: Math.round(longest) }));
socket.close();
`;

Deno.test({
  name: unavailable === null
    ? "a ping flood: unbounded it costs a core; deploy/nftables/ws-time.nft caps it and a bystander keeps its ticks"
    : `ping flood (skipped: ${unavailable})`,
  ignore: unavailable !== null,
  async fn() {
    await using net = await Network.create();
    const server = await net.addHost("srv", 10);
    const attacker = await net.addHost("atk", 20);
    const user = await net.addHost("user", 30);
    await using ws = await net.startServer(server.ns, server.address);
    const pid = ws.process.pid;
    const SECONDS = 3;
    const flood = async () => {
      await using bystander = net.spawn(user.ns, Deno.execPath(), [
        "eval",
        BYSTANDER,
        server.address,
        String(SECONDS + 2),
      ], { env: { NO_COLOR: "1" } });
      await new Promise((r) => setTimeout(r, 1000));
      const before = cpuTimes(pid);
      await using attack = net.spawn(attacker.ns, Deno.execPath(), [
        "eval",
        FLOOD,
        server.address,
        String(SECONDS),
      ], { env: { NO_COLOR: "1" } });
      const result = JSON.parse(
        (await attack.waitForLine(/^\{"pongs.*$/, 30_000))[0],
      );
      const after = cpuTimes(pid);
      const cpu = (after.user + after.system - before.user - before.system) /
        SECONDS;
      const gap = JSON.parse(
        (await bystander.waitForLine(/^\{"longest.*$/, 30_000))[0],
      );
      return { ...result, cpu, ...gap };
    };
    const open = await flood();
    await net.loadShippedNftables(server.ns);
    const capped = await flood();
    // deno-lint-ignore no-console
    console.log(
      `ping flood from one connection: ${open.pongsPerSecond} pongs/s, ${
        Math.round(open.cpu * 100)
      }% of a core, bystander's longest gap ${open.longestGapMs} ms; under ws-time.nft ${capped.pongsPerSecond} pongs/s, ${
        Math.round(capped.cpu * 100)
      }%, ${capped.longestGapMs} ms`,
    );
    assert.ok(open.pongsPerSecond > 20_000, "the flood did not flood");
    // 64 KB/s of 131-byte pings is 500 a second, plus the burst.
    assert.ok(capped.pongsPerSecond < 2_000, `${capped.pongsPerSecond}/s`);
    assert.ok(capped.cpu < open.cpu / 4, `capped at ${capped.cpu} cores`);
    assert.ok(capped.longestGapMs < 1500, "the bystander missed a tick");
  },
});
