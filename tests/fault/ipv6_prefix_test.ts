/**
 * IPv6 sources through the shipped HAProxy config: a subscriber gets a
 * whole /64, so counting per address would let one host open connection
 * after connection from fresh addresses. The per-source limits count the
 * /64: a second address of the same /64 shares the first one's count, an
 * address of another /64 does not. Real HAProxy in a network namespace
 * whose loopback carries addresses of two /64s.
 *
 * @module
 */

import assert from "node:assert/strict";
import { renderHaproxyConfig } from "../../dev/haproxy_config.ts";
import { ip, netnsUnavailable, Network } from "../../dev/netns.ts";
import { ROOT } from "../../dev/paths.ts";
import { sleep } from "../../dev/timing.ts";

const unavailable = netnsUnavailable();

/** Opens upgrades from each source in turn, holding them; prints statuses. */
const CLIENT = `
import net from "node:net";
const statuses = [];
for (const localAddress of Deno.args) {
  statuses.push(await new Promise((resolve) => {
    const socket = net.connect({ host: "fd00:64::1", port: 8080, localAddress });
    socket.on("error", () => resolve(0));
    socket.on("connect", () => socket.write("GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n"));
    socket.once("data", (d) => resolve(Number(String(d).split(" ")[1])));
  }));
}
console.log(JSON.stringify(statuses));
await new Promise(() => {});
`;

Deno.test({
  name: unavailable === null
    ? "deploy/haproxy.cfg counts an IPv6 source by its /64"
    : `IPv6 per /64 (skipped: ${unavailable})`,
  ignore: unavailable !== null,
  async fn() {
    await using net = await Network.create();
    const host = await net.addHost("v6", 10);
    for (
      const address of ["fd00:64::1", "fd00:64::2", "fd00:64::3", "fd00:65::1"]
    ) {
      await ip(
        "-n",
        host.ns,
        "addr",
        "add",
        `${address}/64`,
        "dev",
        "lo",
        "nodad",
      );
    }
    await net.startServer(host.ns, "127.0.0.1");
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${dir}/haproxy.cfg`,
        renderHaproxyConfig(
          Deno.readTextFileSync(`${ROOT}deploy/haproxy.cfg`),
          {
            host: "ipv6@fd00:64::1",
            port: 8080,
            statsPort: 8081,
            checkInterval: "200ms",
            perSourceLimit: 1,
            backends: [{ name: "ws1", port: 8000, agentPort: 8082 }],
          },
        ),
      );
      await using haproxy = net.spawn(host.ns, "haproxy", [
        "-db",
        "-f",
        `${dir}/haproxy.cfg`,
      ]);
      // Its first health checks (every 200 ms, two to rise) mark ws1 UP.
      await sleep(1500);
      assert.equal(haproxy.status, undefined, haproxy.lines.join("\n"));
      // Held one after another: the first of fd00:64::/64, a second address
      // of it, then an address of another /64.
      const client = net.spawn(host.ns, Deno.execPath(), [
        "eval",
        CLIENT,
        "fd00:64::2",
        "fd00:64::3",
        "fd00:65::1",
      ], { env: { NO_COLOR: "1" } });
      const statuses = JSON.parse(
        (await client.waitForLine(/^\[.*\]$/, 15_000))[0],
      );
      assert.deepEqual(statuses, [101, 429, 101]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
