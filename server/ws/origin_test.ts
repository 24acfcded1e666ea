import assert from "node:assert/strict";
import { createOriginCheck } from "./origin.ts";
import type { ClientInfo } from "../http/client_address.ts";

const plainClient: ClientInfo = { address: "203.0.113.9" };

function upgrade(
  origin: string | null,
  url = "http://time.example:8000/",
  host = new URL(url).host,
): Request {
  const headers = new Headers({ host, upgrade: "websocket" });
  if (origin !== null) headers.set("origin", origin);
  return new Request(url, { headers });
}

async function verdict(
  check: ReturnType<typeof createOriginCheck>,
  request: Request,
  client = plainClient,
): Promise<string> {
  const refusal = check(request, client);
  if (!refusal) return "allowed";
  assert.equal(refusal.reason, "origin");
  assert.equal(refusal.response.status, 403);
  return `403 ${(await refusal.response.text()).trim()}`;
}

const defaults = createOriginCheck({
  allowedOrigins: [],
  requireOrigin: false,
});

Deno.test("createOriginCheck() admits the page's own origin", async () => {
  assert.equal(
    await verdict(defaults, upgrade("http://time.example:8000")),
    "allowed",
  );
  // Behind a TLS-terminating balancer the page is https on the same host.
  assert.equal(
    await verdict(
      defaults,
      upgrade("https://time.example", "http://time.example/"),
    ),
    "allowed",
  );
  assert.equal(
    await verdict(defaults, upgrade("HTTP://TIME.EXAMPLE:8000")),
    "allowed",
  );
});

Deno.test("createOriginCheck() refuses look-alikes, other ports, other schemes and null", async () => {
  const refused: Array<[string, string]> = [
    [
      "http://time.example.evil.test",
      "Origin http://time.example.evil.test is not allowed",
    ],
    [
      "http://eviltime.example:8000",
      "Origin http://eviltime.example:8000 is not allowed",
    ],
    ["http://time.example", "Origin http://time.example is not allowed"],
    [
      "http://time.example:8001",
      "Origin http://time.example:8001 is not allowed",
    ],
    [
      "http://sub.time.example:8000",
      "Origin http://sub.time.example:8000 is not allowed",
    ],
    ["null", "Origin null is not allowed"],
    ["", "Origin header is malformed"],
    ["*", "Origin header is malformed"],
    ["time.example:8000", "Origin header is malformed"],
    ["ftp://time.example:8000", "Origin header is malformed"],
    ["http://time.example:8000/", "Origin header is malformed"],
    ["http://time.example:8000/page", "Origin header is malformed"],
    ["http://user@time.example:8000", "Origin header is malformed"],
    ["http://time.example:8000?x", "Origin header is malformed"],
    ["http://time .example:8000", "Origin header is malformed"],
    ["x".repeat(600), "Origin header is malformed"],
  ];
  for (const [origin, reason] of refused) {
    assert.equal(
      await verdict(defaults, upgrade(origin)),
      `403 ${reason}`,
      origin,
    );
  }
});

Deno.test("createOriginCheck() over TLS refuses the http origin of the same host", async () => {
  const request = upgrade("http://time.example", "https://time.example/");
  assert.equal(
    await verdict(defaults, request),
    "403 Origin http://time.example is not allowed",
  );
  assert.equal(
    await verdict(
      defaults,
      upgrade("https://time.example", "https://time.example/"),
    ),
    "allowed",
  );
});

Deno.test("createOriginCheck() follows the scheme a trusted proxy reports", async () => {
  const viaTls: ClientInfo = { address: "198.51.100.7", proto: "https" };
  const request = (origin: string) => upgrade(origin, "http://time.example/");
  assert.equal(
    await verdict(defaults, request("https://time.example"), viaTls),
    "allowed",
  );
  assert.equal(
    await verdict(defaults, request("http://time.example"), viaTls),
    "403 Origin http://time.example is not allowed",
  );
});

Deno.test("createOriginCheck() refuses a garbage or missing Host instead of matching it", async () => {
  for (const host of ["", "time.example/evil", "a b", "time.example:8000@x"]) {
    const request = upgrade(
      "http://time.example:8000",
      "http://time.example:8000/",
      host,
    );
    assert.match(
      await verdict(defaults, request),
      /^403 Origin .* is not allowed$/,
      host,
    );
  }
});

Deno.test("createOriginCheck() admits listed origins exactly", async () => {
  const check = createOriginCheck({
    allowedOrigins: ["https://app.example", "http://localhost:3000"],
    requireOrigin: false,
  });
  assert.equal(await verdict(check, upgrade("https://app.example")), "allowed");
  assert.equal(
    await verdict(check, upgrade("http://localhost:3000")),
    "allowed",
  );
  assert.equal(
    await verdict(check, upgrade("http://app.example")),
    "403 Origin http://app.example is not allowed",
  );
  assert.equal(
    await verdict(check, upgrade("https://app.example:444")),
    "403 Origin https://app.example:444 is not allowed",
  );
  assert.equal(
    await verdict(check, upgrade("http://localhost:3001")),
    "403 Origin http://localhost:3001 is not allowed",
  );
});

Deno.test("createOriginCheck() admits any origin only when * is configured", async () => {
  const check = createOriginCheck({
    allowedOrigins: ["*"],
    requireOrigin: false,
  });
  assert.equal(
    await verdict(check, upgrade("https://anything.test")),
    "allowed",
  );
  assert.equal(await verdict(check, upgrade("null")), "allowed");
});

Deno.test("createOriginCheck() allows no Origin by default and refuses it when required", async () => {
  assert.equal(await verdict(defaults, upgrade(null)), "allowed");
  const strict = createOriginCheck({ allowedOrigins: [], requireOrigin: true });
  assert.equal(
    await verdict(strict, upgrade(null)),
    "403 Origin header is required",
  );
  assert.equal(
    await verdict(strict, upgrade("http://time.example:8000")),
    "allowed",
  );
});
