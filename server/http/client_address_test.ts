import assert from "node:assert/strict";
import { AddressSet, createClientInfo } from "./client_address.ts";

function info(hostname: string): Deno.ServeHandlerInfo {
  return {
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
    completed: Promise.resolve(),
  } as Deno.ServeHandlerInfo;
}

function request(headers: Record<string, string>): Request {
  return new Request("http://time.example/", { headers });
}

const proxies = new AddressSet(["10.0.0.0/8", "fd00::/8"]);
const viaProxy = createClientInfo(proxies);
const viaRfcProxy = createClientInfo(proxies, "forwarded");
const direct = createClientInfo(new AddressSet([]));

Deno.test("createClientInfo() uses the socket peer and ignores headers from untrusted peers", () => {
  const forged = request({
    "x-forwarded-for": "1.2.3.4",
    forwarded: "for=1.2.3.4;proto=https",
    "x-forwarded-proto": "https",
  });
  assert.deepEqual(direct(forged, info("203.0.113.5")), {
    address: "203.0.113.5",
  });
  assert.deepEqual(viaProxy(forged, info("203.0.113.5")), {
    address: "203.0.113.5",
  });
  assert.deepEqual(direct(forged, info("::ffff:192.0.2.1")), {
    address: "192.0.2.1",
  });
  assert.deepEqual(direct(forged, undefined), { address: "unknown" });
});

Deno.test("createClientInfo() believes X-Forwarded-For from a trusted proxy, rightmost untrusted hop", () => {
  const client = viaProxy(
    request({
      "x-forwarded-for": "6.6.6.6, 198.51.100.20, 10.1.1.1",
      "x-forwarded-proto": "https",
    }),
    info("10.0.0.2"),
  );
  assert.deepEqual(client, { address: "198.51.100.20", proto: "https" });
});

Deno.test("createClientInfo() reads the Forwarded header when asked to, quoted IPv6 and ports included", () => {
  const client = viaRfcProxy(
    request({ forwarded: 'for="[2001:db8::7]:4711";proto=http, for=10.2.2.2' }),
    info("10.0.0.2"),
  );
  assert.deepEqual(client, { address: "2001:db8::7", proto: "http" });
  const v4 = viaRfcProxy(
    request({ forwarded: "for=192.0.2.60:1234" }),
    info("fd00::1"),
  );
  assert.equal(v4.address, "192.0.2.60");
});

Deno.test("createClientInfo() falls back to the proxy when the header is garbage or absent", () => {
  assert.equal(viaProxy(request({}), info("10.0.0.2")).address, "10.0.0.2");
  assert.equal(
    viaProxy(request({ "x-forwarded-for": "not-an-ip" }), info("10.0.0.2"))
      .address,
    "10.0.0.2",
  );
  assert.equal(
    viaRfcProxy(request({ forwarded: "for=unknown" }), info("10.0.0.2"))
      .address,
    "10.0.0.2",
  );
});

Deno.test("AddressSet rejects entries that are not addresses or ranges", () => {
  for (
    const bad of [
      "10.0.0.0/33",
      "::1/129",
      "proxy.example",
      "10.0.0.0/8/8",
      "10.0.0/8",
      "10.0.0.0/x",
    ]
  ) {
    assert.throws(() => new AddressSet([bad]), RangeError, bad);
  }
  const set = new AddressSet(["127.0.0.1", "::1", "192.168.0.0/16"]);
  assert.ok(set.has("127.0.0.1") && set.has("::1") && set.has("192.168.9.9"));
  assert.ok(!set.has("127.0.0.2") && !set.has("not an ip"));
});

Deno.test("createClientInfo() reports forwarding headers from an untrusted peer", () => {
  const ignored: string[] = [];
  const clientInfo = createClientInfo(
    new AddressSet([]),
    "x-forwarded-for",
    (peer) => ignored.push(peer),
  );
  const info = {
    remoteAddr: { transport: "tcp", hostname: "10.1.2.3", port: 4000 },
  } as unknown as Deno.ServeHandlerInfo;
  const plainRequest = new Request("http://h/");
  assert.deepEqual(clientInfo(plainRequest, info), { address: "10.1.2.3" });
  assert.deepEqual(ignored, []);
  const forwarded = new Request("http://h/", {
    headers: { "x-forwarded-for": "203.0.113.9" },
  });
  assert.deepEqual(clientInfo(forwarded, info), { address: "10.1.2.3" });
  assert.deepEqual(ignored, ["10.1.2.3"]);
});

Deno.test("createClientInfo() reads only the configured header: a client's Forwarded cannot replace the balancer's X-Forwarded-For", () => {
  // The balancer appended the client's real address to X-Forwarded-For and
  // passed the client's own Forwarded header through untouched.
  const spoofed = request({
    forwarded: "for=203.0.113.66",
    "x-forwarded-for": "198.51.100.20",
  });
  assert.equal(viaProxy(spoofed, info("10.0.0.2")).address, "198.51.100.20");
  // And the other way round, for a proxy that writes Forwarded.
  const spoofedXff = request({
    forwarded: "for=198.51.100.20;proto=https",
    "x-forwarded-for": "203.0.113.66",
    "x-forwarded-proto": "http",
  });
  assert.deepEqual(viaRfcProxy(spoofedXff, info("10.0.0.2")), {
    address: "198.51.100.20",
    proto: "https",
  });
});
