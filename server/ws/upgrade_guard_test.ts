import assert from "node:assert/strict";
import type { ClientInfo } from "../http/client_address.ts";
import { refusal } from "../http/response.ts";
import { type Admission, createUpgradeGuard } from "./upgrade_guard.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

function request(
  headers: Record<string, string> = {},
  { url = "http://time.example/", method = "GET" } = {},
): Request {
  return new Request(url, {
    method,
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-version": "13",
      "sec-websocket-key": KEY,
      ...headers,
    },
  });
}

function guardWith(state: {
  occupancy?: number;
  draining?: boolean;
  admissions?: Admission[];
} = {}) {
  return createUpgradeGuard({
    maxConnections: 10,
    occupancy: () => state.occupancy ?? 0,
    draining: () => state.draining ?? false,
    clientInfo: (): ClientInfo => ({ address: "192.0.2.7" }),
    admissions: state.admissions ?? [],
    random: () => 0,
  });
}

async function outcome(verdict: ReturnType<ReturnType<typeof guardWith>>) {
  if (verdict.admitted) return "admitted";
  const { reason, response } = verdict.refusal;
  return `${response.status} ${reason}: ${(await response.text()).trim()}`;
}

Deno.test("createUpgradeGuard() admits a complete handshake with its label, token and protocol", () => {
  const verdict = guardWith()(
    request({ "sec-websocket-protocol": "chat, ws-time.v1" }, {
      url: "http://time.example/?id=tab-1&session=abc",
    }),
  );
  assert.deepEqual(verdict.admitted, {
    client: { address: "192.0.2.7" },
    json: true,
    label: "tab-1",
    token: "abc",
    hop: 0,
  });
  assert.equal(guardWith()(request()).admitted?.json, false);
});

Deno.test("createUpgradeGuard() refuses each broken precondition with its status and reason", async () => {
  const guard = guardWith();
  const cases: Array<[Request, string]> = [
    [
      request({ upgrade: "h2c" }),
      "400 handshake: only WebSocket upgrades are served",
    ],
    [
      request({}, { method: "POST" }),
      "405 method: WebSocket upgrades use GET",
    ],
    [
      request({ connection: "keep-alive" }),
      "400 handshake: Connection header must include Upgrade",
    ],
    [
      request({ "sec-websocket-version": "8" }),
      "426 version: Sec-WebSocket-Version must be 13",
    ],
    [
      request({ "sec-websocket-key": "short" }),
      "400 handshake: Sec-WebSocket-Key must be 16 bytes in base64",
    ],
    [
      request({}, { url: "http://time.example/?id=a%20b" }),
      "400 query: id must be 1-64 letters, digits, '.', ':', '_' or '-'",
    ],
    ...["0", "1000", "-1", "1e2", "x", ""].map((move): [Request, string] => [
      request({}, { url: `http://time.example/?move=${move}` }),
      "400 query: move must be a whole number from 1 to 999",
    ]),
  ];
  for (const [input, expected] of cases) {
    assert.equal(await outcome(guard(input)), expected);
  }
});

Deno.test("createUpgradeGuard() reads a move's try from `move`, 0 when absent", () => {
  const guard = guardWith();
  const hop = (url: string) => guard(request({}, { url })).admitted?.hop;
  assert.equal(hop("http://time.example/"), 0);
  assert.equal(hop("http://time.example/?session=t&move=7"), 7);
  assert.equal(hop("http://time.example/?move=999"), 999);
});

Deno.test("createUpgradeGuard() checks the handshake before the instance's state, and that before admissions", async () => {
  let asked = 0;
  const admissions: Admission[] = [() => {
    asked++;
    return refusal("origin", 403, "Origin is not allowed");
  }];
  const draining = guardWith({ draining: true, admissions });
  assert.equal(
    await outcome(draining(request({ "sec-websocket-version": "7" }))),
    "426 version: Sec-WebSocket-Version must be 13",
  );
  const refused = draining(request()).refusal!;
  assert.equal(refused.reason, "draining");
  assert.equal(refused.response.status, 503);
  assert.equal(refused.response.headers.get("retry-after"), "5");
  assert.equal(
    await outcome(guardWith({ occupancy: 10, admissions })(request())),
    "503 capacity: server is at capacity",
  );
  assert.equal(asked, 0, "no admission runs for a refused handshake or state");
  assert.equal(
    await outcome(guardWith({ admissions })(request())),
    "403 origin: Origin is not allowed",
  );
  assert.equal(asked, 1);
});
