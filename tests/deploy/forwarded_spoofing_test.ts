/**
 * Client addresses through the shipped balancers, when a client lies: with
 * `--trusted-proxies` naming the balancer and `--max-per-address 1`, a
 * client's own `Forwarded` / `X-Forwarded-For` / `X-Request-Id` headers must
 * neither buy it more connections under made-up addresses nor get a chosen
 * victim's address refused, nor pass as the balancer's request id.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startShippedHaproxy } from "../../dev/haproxy.ts";
import { startNginx } from "../../dev/nginx.ts";
import { freePort } from "../../dev/ports.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import { silentWebSocket } from "../helpers/raw_http.ts";

/** The headers a lying client sends, naming `address`. */
const lies = (address: string) => ({
  forwarded: `for=${address};proto=https`,
  "x-forwarded-for": address,
  "x-request-id": "victims-request-id",
});

Deno.test("the shipped HAProxy and nginx configs and main.ts keep a client from choosing its address or request id", async () => {
  await using server = await startServer({
    args: [
      "--trusted-proxies",
      "127.0.0.1",
      "--max-per-address",
      "1",
      "--log-connections",
      "on",
    ],
  });
  await using haproxy = await startShippedHaproxy({
    checkInterval: "500ms",
    backends: [{ name: server.name, port: server.port, agentPort: freePort() }],
  });
  await waitFor(
    async () => (await haproxy.servers()).every((s) => s.status === "UP"),
    10_000,
    "UP",
  );
  await using nginx = await startNginx([server.port]);
  const balancers = [["haproxy", haproxy.port], ["nginx", nginx.port]] as const;
  for (const [name, port_] of balancers) {
    // Made-up addresses: the second connection from 127.0.0.1 is its
    // second, whatever it claims.
    await using first = silentWebSocket(
      { port: port_ },
      "/",
      lies("203.0.113.1"),
    );
    assert.equal(await first.status, 101, `${name}: first`);
    await using second = silentWebSocket(
      { port: port_ },
      "/",
      lies("203.0.113.2"),
    );
    assert.equal(await second.status, 429, `${name}: a made-up address`);
    const line = await server.child.waitForLine(/ connect .*address=(\S+)/);
    assert.equal(line[1], "127.0.0.1", `${name}: the address logged`);
    assert.doesNotMatch(line.input!, /victims-request-id/, name);
    await first[Symbol.asyncDispose]();
    await second[Symbol.asyncDispose]();
    await server.child.waitForLine(/ disconnect /);
    server.child.lines.length = 0;

    // A chosen victim: the liar names 127.0.0.3, whose own connection must
    // still be its first.
    await using liar = silentWebSocket({ port: port_ }, "/", lies("127.0.0.3"));
    assert.equal(await liar.status, 101, `${name}: the liar, as itself`);
    await using victim = silentWebSocket({
      port: port_,
      localAddress: "127.0.0.3",
    });
    assert.equal(await victim.status, 101, `${name}: the victim refused`);
    await liar[Symbol.asyncDispose]();
    await victim[Symbol.asyncDispose]();
    await waitFor(
      () =>
        server.child.lines.filter((l) => / disconnect /.test(l)).length >= 2,
      5_000,
      "both released",
    );
    server.child.lines.length = 0;
  }
});
