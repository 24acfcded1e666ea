/**
 * The bad-input suite: thousands of generated malformed upgrades and a few
 * hundred traversal vectors, first through the handler, then over raw TCP
 * to a real server process (so no client library tidies them up first).
 * Each must get its exact status, nothing may upgrade or crash, nothing
 * outside `static/` may be served, and the server's open file descriptors
 * must return to where they started.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testApp } from "../helpers/in_process.ts";
import {
  malformedUpgrades,
  toRequest,
  toWire,
  type UpgradeCase,
} from "../helpers/malformed_upgrades.ts";
import { rawRequest, upgradeRequest } from "../helpers/raw_http.ts";
import { ROOT } from "../../dev/paths.ts";
import { seededRandom } from "../../dev/random.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";
import {
  SECRET_MARKERS,
  traversalVectors,
} from "../helpers/traversal_vectors.ts";

const HANDLER_CASES = 5000;
const WIRE_CASES = 3000;
const DROPPED_UPGRADES = 200;
const WIRE_GARBAGE = 300;

/** Runs `fn` over `items` with at most `width` in flight. */
async function pool<T, R>(
  items: readonly T[],
  width: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

/** Tallies statuses as "400×12 404×3 ..." for failure messages and logs. */
function tally(statuses: readonly number[]): string {
  const counts = new Map<number, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`)
    .join(" ");
}

function report(line: string): void {
  // deno-lint-ignore no-console
  console.log(`  ${line}`);
}

function assertStatuses(
  cases: readonly UpgradeCase[],
  statuses: readonly number[],
): void {
  const wrong = cases.filter((c, i) => statuses[i] !== c.expect);
  assert.equal(statuses.filter((s) => s === 101).length, 0, "upgrades");
  assert.deepEqual(
    wrong.slice(0, 5).map((c) => ({
      index: c.index,
      defects: c.defects,
      expect: c.expect,
      got: statuses[c.index],
      request: toWire(c).slice(0, 300),
    })),
    [],
    `${wrong.length} of ${cases.length} got the wrong status`,
  );
}

const STATIC_FILES = [
  "index.html",
  "app.js",
  "ws_time_client.js",
  "style.css",
  "favicon.svg",
].map((name) => Deno.readTextFileSync(`${ROOT}static/${name}`));

/** Asserts a response to a traversal vector served nothing from outside. */
function assertNothingOutside(
  vector: string,
  status: number,
  body: string,
): void {
  assert.ok(
    [200, 304, 400, 404, 405, 414].includes(status),
    `${vector} -> ${status}`,
  );
  if (status === 200) {
    assert.ok(STATIC_FILES.includes(body), `${vector} served a non-asset`);
  }
  for (const marker of SECRET_MARKERS) {
    assert.ok(!body.includes(marker), `${vector} leaked ${marker}`);
  }
}

Deno.test(`buildApp().handler: ${HANDLER_CASES} generated malformed upgrades, 0 upgrades, exact statuses`, async () => {
  await using t = testApp();
  const app = t.app;
  const info = {
    remoteAddr: { transport: "tcp", hostname: "192.0.2.1", port: 1 },
    completed: Promise.resolve(),
  } as Deno.ServeHandlerInfo;
  // A Request object holds its URL parsed, so a path's raw spelling cannot
  // reach the handler this way; the wire test below covers those.
  const cases = malformedUpgrades(20261125, HANDLER_CASES, "time.example")
    .filter((item) => !item.defects.includes("path-spelling"));
  const statuses: number[] = [];
  for (const item of cases) {
    const response = await app.handler(toRequest(item), info);
    await response.body?.cancel();
    statuses.push(response.status);
  }
  assertStatuses(cases, statuses);
  assert.equal(app.connections.size, 0);
  report(`${cases.length} requests: ${tally(statuses)}, 0 upgrades`);
});

Deno.test(`buildApp().handler: ${traversalVectors().length} traversal vectors serve nothing outside static/`, async () => {
  await using t = testApp();
  const app = t.app;
  const statuses: number[] = [];
  for (const vector of traversalVectors()) {
    let request: Request;
    try {
      request = new Request(`http://time.example${vector}`);
    } catch {
      continue; // Not a URL at all: only the wire test can send it.
    }
    const response = await app.handler(request);
    const body = await response.text();
    assertNothingOutside(vector, response.status, body);
    statuses.push(response.status);
  }
  report(`${statuses.length} vectors: ${tally(statuses)}`);
});

/** HTTP that is broken below the WebSocket layer: the parser must cope. */
function garbageRequests(seed: number, count: number, port: number): string[] {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T =>
    items[Math.floor(random() * items.length)]!;
  const host = `host: 127.0.0.1:${port}\r\n`;
  const upgrade =
    "upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n" +
    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  const makers: Array<() => string> = [
    () => `GET / HTTP/1.1\r\n${host}${upgrade}x-bad\0header: 1\r\n\r\n`,
    () => `GET / HTTP/1.1\r\n${host}${upgrade}bad header: 1\r\n\r\n`,
    () => `GET / HTTP/9.9\r\n${host}${upgrade}\r\n`,
    () => `GET /\r\n\r\n`,
    () => `\r\n\r\n\r\n`,
    () => `${pick(["G", "GE T", "GET  /"])} / HTTP/1.1\r\n${host}\r\n`,
    () =>
      `GET / HTTP/1.1\r\n${host}${upgrade}${
        Array.from({ length: 250 }, (_, i) => `x-${i}: ${i}\r\n`).join("")
      }\r\n`,
    () =>
      `GET / HTTP/1.1\r\n${host}${upgrade}x-big: ${"a".repeat(70000)}\r\n\r\n`,
    () => `GET /?${"q".repeat(90000)} HTTP/1.1\r\n${host}${upgrade}\r\n`,
    () => `GET / HTTP/1.1\r\n${host}${upgrade}content-length: -1\r\n\r\n`,
    () =>
      `GET / HTTP/1.1\r\n${host}${upgrade}transfer-encoding: chunked\r\n\r\nzz\r\n`,
    () => {
      let noise = "";
      const length = 1 + Math.floor(random() * 200);
      for (let i = 0; i < length; i++) {
        noise += String.fromCharCode(Math.floor(random() * 256));
      }
      return noise + "\r\n\r\n";
    },
  ];
  return Array.from({ length: count }, () => pick(makers)());
}

/** Open descriptors of process `pid` (Deno reserves /proc/<pid>/fd to -A). */
async function openFds(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("ls", {
    args: ["-1", `/proc/${pid}/fd`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout).split("\n").filter(Boolean).length;
}

Deno.test(`main.ts over raw TCP: ${WIRE_CASES} malformed upgrades, ${WIRE_GARBAGE} broken requests, the traversal vectors and ${DROPPED_UPGRADES} dropped upgrades`, async (t) => {
  await using server = await startServer();
  const pid = server.child.process.pid;
  const options = { port: server.port };
  // Warm up (lazily opened descriptors), then take the baseline.
  await rawRequest(options, `GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n`);
  const baseline = await openFds(pid);
  assert.ok(baseline > 0);

  await t.step(
    `main.ts over raw TCP: ${WIRE_CASES} malformed upgrades: exact statuses, 0 upgrades`,
    async () => {
      const cases = malformedUpgrades(
        777,
        WIRE_CASES,
        `127.0.0.1:${server.port}`,
      );
      const responses = await pool(
        cases,
        16,
        (item) => rawRequest(options, toWire(item)),
      );
      const statuses = responses.map((r) => r.status);
      assertStatuses(cases, statuses);
      report(`${cases.length} requests: ${tally(statuses)}, 0 upgrades`);
    },
  );

  await t.step(
    `${WIRE_GARBAGE} broken HTTP requests: refused, never upgraded`,
    async () => {
      const requests = garbageRequests(99, WIRE_GARBAGE, server.port);
      const responses = await pool(
        requests,
        16,
        (text) => rawRequest(options, text),
      );
      const statuses = responses.map((r) => r.status);
      const bad = statuses.filter((s) =>
        ![0, 400, 405, 414, 431, 505].includes(s)
      );
      assert.deepEqual(bad, [], `unexpected statuses: ${tally(statuses)}`);
      report(`${requests.length} requests: ${tally(statuses)} (0 = closed)`);
    },
  );

  await t.step("traversal vectors: nothing outside static/", async () => {
    const vectors = traversalVectors();
    const responses = await pool(
      vectors,
      16,
      (vector) =>
        rawRequest(
          options,
          `GET ${vector} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`,
        ),
    );
    responses.forEach((r, i) =>
      assertNothingOutside(vectors[i]!, r.status, r.body)
    );
    report(
      `${vectors.length} vectors: ${tally(responses.map((r) => r.status))}`,
    );
  });

  await t.step(
    `${DROPPED_UPGRADES} valid upgrades dropped right after the 101 leave no connection behind`,
    async () => {
      const responses = await pool(
        Array.from({ length: DROPPED_UPGRADES }, (_, i) => i),
        16,
        (i) =>
          rawRequest(
            options,
            upgradeRequest(`/?id=drop-${i}`, server.port),
          ),
      );
      assert.deepEqual(
        tally(responses.map((r) => r.status)),
        `101×${DROPPED_UPGRADES}`,
      );
      await waitFor(
        async () =>
          /^wstime_connections 0$/m.test(
            (await rawRequest(
              options,
              `GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n`,
            )).body,
          ),
        5000,
        "no open connections",
      );
    },
  );

  await t.step(
    "the process survived and its descriptors returned to baseline",
    async () => {
      assert.equal(server.child.status, undefined, "server process exited");
      const health = await rawRequest(
        options,
        `GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n`,
      );
      assert.equal(health.status, 200);
      let settled = await openFds(pid);
      await waitFor(
        async () => (settled = await openFds(pid)) <= baseline,
        5000,
        `fds back to ${baseline}`,
      ).catch(() => {});
      assert.ok(
        settled <= baseline,
        `open fds ${settled}, baseline ${baseline}`,
      );
      report(`open fds: baseline ${baseline}, after ${settled}`);
      const crashes = server.child.lines.filter((l) =>
        /panic|uncaught|error:/i.test(l)
      );
      assert.deepEqual(crashes, []);
    },
  );
});
