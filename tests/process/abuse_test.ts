/**
 * Hostile clients against a real server process: oversize, multibyte,
 * flooding and binary messages, a peer that stops answering pings, forged
 * and replayed tokens, and one address hogging connections, each while
 * well-behaved clients on the same instance carry on unharmed. Also checks
 * that no token ever reaches the logs or the metrics.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  rawRequest,
  type SilentSocket,
  silentWebSocket,
  upgradeRequest,
} from "../helpers/raw_http.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { sleep, waitFor } from "../../dev/timing.ts";

const PROTOCOL = "ws-time.v1";

/** Opens a JSON client and waits for its welcome. */
async function client(url: string): Promise<RecordingSocket> {
  const socket = new RecordingSocket(url, PROTOCOL);
  await socket.opened;
  await socket.waitForMessages(1);
  return socket;
}

/** Sends `data` and waits for the server to close; returns code and reason. */
async function closedBy(
  server: ServerProcess,
  data: Array<string | Uint8Array>,
): Promise<string> {
  await using socket = await client(server.ws);
  for (const item of data) socket.socket.send(item);
  const event = await socket.closed;
  return `${event.code} ${event.reason}`;
}

/** Milliseconds between consecutive ticks of a JSON client. */
function tickGaps(socket: RecordingSocket): number[] {
  const ticks = socket.times.filter((_, i) => socket.json[i]!.type === "tick");
  return ticks.slice(1).map((t, i) => t - ticks[i]!);
}

Deno.test("WebSocket limits: abusive messages close with 1009, 1008 and 1003 while a good client keeps ticking; a silent peer is dropped", async (t) => {
  await using server = await startServer({
    args: ["--idle-timeout", "1", "--log-level", "debug"],
  });
  await using good = await client(server.ws + "?id=good");

  await t.step("a message over 4096 bytes closes with 1009", async () => {
    assert.equal(
      await closedBy(server, ["a".repeat(4097)]),
      "1009 message too big (limit 4096 bytes)",
    );
    // 1366 characters, but 4098 bytes in UTF-8: the limit is in bytes.
    assert.match(await closedBy(server, ["€".repeat(1366)]), /^1009 /);
    assert.match(await closedBy(server, ["x".repeat(1 << 20)]), /^1009 /);
  });

  await t.step(
    "more than 5 messages in a second closes with 1008",
    async () => {
      assert.equal(
        await closedBy(server, Array(20).fill("hi")),
        "1008 too many messages (limit 5 per second)",
      );
    },
  );

  await t.step("a binary message closes with 1003", async () => {
    assert.equal(
      await closedBy(server, [new Uint8Array(8)]),
      "1003 binary messages not accepted",
    );
  });

  await t.step(
    "a 4096-byte message and 5 messages a second are fine",
    async () => {
      await using polite = await client(server.ws);
      polite.socket.send("a".repeat(4096));
      for (let i = 0; i < 4; i++) polite.socket.send("ok");
      await polite.waitForMessages(polite.messages.length + 2, 4000);
      assert.equal(polite.closeEvent, undefined);
    },
  );

  await t.step(
    "a peer that stops answering pings is closed after the idle timeout",
    async () => {
      await using silent = silentWebSocket({ port: server.port });
      assert.equal(await silent.status, 101);
      const after = await silent.closedAfter;
      assert.ok(after >= 500 && after <= 5000, `closed after ${after} ms`);
    },
  );

  await t.step("the good client ticked on time throughout", async () => {
    await good.waitForMessages(5, 6000);
    assert.equal(good.closeEvent, undefined, "good client was closed");
    const seconds = good.json.filter((m) => m.type === "tick").map((m) =>
      Number(m.seconds)
    );
    seconds.slice(1).forEach((s, i) => assert.equal(s, seconds[i]! + 1));
    for (const gap of tickGaps(good)) {
      assert.ok(gap > 500 && gap < 1500, `tick gap ${gap} ms`);
    }
  });

  await t.step("the refusals and disconnects are counted by code", async () => {
    const metrics = await (await fetch(`${server.http}/metrics`)).text();
    for (const code of ["1009", "1008", "1003"]) {
      assert.match(
        metrics,
        new RegExp(`wstime_disconnects_total\\{code="${code}"\\} [1-9]`),
      );
    }
  });
});

/** The session id inside a token, as the server would name it. */
function sessionIdOf(token: string): string {
  return Buffer.from(token, "base64url").subarray(11, 27).toString(
    "base64url",
  );
}

Deno.test("session tokens: forged ones never resume and no token reaches the logs or metrics", async () => {
  await using server = await startServer({ args: ["--log-level", "debug"] });
  const first = await client(server.ws + "?id=first");
  const token = String(first.json[0]!.session);
  await first[Symbol.asyncDispose]();

  const forged = token.slice(0, 20) + (token[20] === "A" ? "B" : "A") +
    token.slice(21);
  await using liar = await client(
    `${server.ws}?session=${encodeURIComponent(forged)}`,
  );
  assert.equal(liar.json[0]!.resumed, false);
  assert.notEqual(liar.json[0]!.session, token);

  await using back = await client(`${server.ws}?session=${token}`);
  assert.equal(back.json[0]!.resumed, true, "the genuine token resumes");
  const tokens = [token, forged, String(liar.json[0]!.session)];
  tokens.push(String(back.json[0]!.session));
  const secrets = [...tokens, ...tokens.map(sessionIdOf)];

  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  await waitFor(() => server.child.lines.some((l) => /connect/.test(l)));
  const logs = server.child.lines.join("\n");
  assert.ok(/connect .*session=/.test(logs), "connects are logged");
  for (const secret of secrets) {
    assert.ok(!logs.includes(secret), `logs contain ${secret}`);
    assert.ok(!metrics.includes(secret), `metrics contain ${secret}`);
  }
  assert.match(
    metrics,
    /wstime_tokens_rejected_total\{reason="invalid"\} 1/,
  );
});

Deno.test("Origin check over the wire: the page's own origin upgrades and foreign ones get 403 with the reason", async () => {
  await using server = await startServer();
  const verdict = async (origin: string) => {
    const response = await rawRequest(
      { port: server.port },
      upgradeRequest("/", server.port, { origin }),
    );
    return `${response.status} ${response.body.trim()}`.trim();
  };
  const own = `127.0.0.1:${server.port}`;
  assert.equal(await verdict(`http://${own}`), "101");
  // Behind a TLS-terminating balancer the page is https on the same host.
  assert.equal(await verdict(`https://${own}`), "101");
  assert.equal(
    await verdict("http://evil.example"),
    "403 Origin http://evil.example is not allowed",
  );
  const lookAlike = `http://127.0.0.1.evil.example:${server.port}`;
  assert.equal(
    await verdict(lookAlike),
    `403 Origin ${lookAlike} is not allowed`,
  );
  assert.equal(
    await verdict("http://127.0.0.1:1"),
    "403 Origin http://127.0.0.1:1 is not allowed",
  );
  assert.equal(await verdict("null"), "403 Origin null is not allowed");
});

Deno.test("--max-per-address, --rate-per-address: 429 with Retry-After; other addresses and proxied clients are unaffected", async () => {
  await using server = await startServer({
    args: [
      "--max-per-address",
      "3",
      "--rate-per-address",
      "2",
      "--trusted-proxies",
      "127.0.0.4",
    ],
  });
  const sockets: SilentSocket[] = [];
  const open = (localAddress: string, headers: Record<string, string> = {}) => {
    const socket = silentWebSocket(
      { port: server.port, localAddress },
      "/",
      headers,
    );
    sockets.push(socket);
    return socket;
  };
  const refusal = async (
    localAddress: string,
    headers: Record<string, string> = {},
  ) => {
    const response = await rawRequest(
      { port: server.port, localAddress },
      upgradeRequest("/", server.port, headers),
    );
    return `${response.status} ${response.body.trim()} retry-after=${
      response.headers.get("retry-after")
    }`;
  };
  try {
    await limitsHold(server, open, refusal);
  } finally {
    for (const socket of sockets) await socket[Symbol.asyncDispose]();
  }
});

async function limitsHold(
  server: ServerProcess,
  open: (address: string, headers?: Record<string, string>) => SilentSocket,
  refusal: (
    address: string,
    headers?: Record<string, string>,
  ) => Promise<string>,
): Promise<void> {
  const a1 = open("127.0.0.2");
  const a2 = open("127.0.0.2");
  assert.deepEqual([await a1.status, await a2.status], [101, 101]);
  assert.match(
    await refusal("127.0.0.2"),
    /^429 too many new connections from your address \(limit 2\/s\) retry-after=1$/,
  );
  // An untrusted peer's X-Forwarded-For is ignored: still 127.0.0.2.
  assert.match(
    await refusal("127.0.0.2", { "x-forwarded-for": "198.51.100.1" }),
    /^429 /,
  );
  const b1 = open("127.0.0.3");
  assert.equal(await b1.status, 101, "another address is unaffected");
  // Behind a trusted proxy, each forwarded client has its own allowance.
  const proxied = [
    open("127.0.0.4", { "x-forwarded-for": "198.51.100.1" }),
    open("127.0.0.4", { "x-forwarded-for": "198.51.100.1" }),
    open("127.0.0.4", { "x-forwarded-for": "198.51.100.2" }),
  ];
  assert.deepEqual(
    await Promise.all(proxied.map((p) => p.status)),
    [101, 101, 101],
  );

  await sleep(1100);
  const a3 = open("127.0.0.2");
  assert.equal(await a3.status, 101);
  assert.match(
    await refusal("127.0.0.2"),
    /^429 too many open connections from your address \(limit 3\) retry-after=\d+$/,
  );
  await a1[Symbol.asyncDispose]();
  // The slot comes back once the server has seen the close.
  await waitFor(
    async () => await open("127.0.0.2").status === 101,
    3000,
    "a freed slot",
  );

  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(metrics, /reason="address-rate"\} [1-9]/);
  assert.match(metrics, /reason="address-open"\} [1-9]/);
}
