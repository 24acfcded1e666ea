/**
 * Unit tests of the page's address check: each usual mistake gets its own
 * message with a corrected address, and good addresses come back normalised.
 *
 * @module
 */

import assert from "node:assert/strict";
import { defaultAddress, parseServerAddress } from "./address.js";

const page = { protocol: "http:" };
const securePage = { protocol: "https:" };

function errorOf(input: string, from = page): string {
  const result = parseServerAddress(input, from);
  assert.equal(result.ok, false, `${input} was accepted`);
  return result.ok ? "" : result.error;
}

Deno.test("defaultAddress() follows the page's scheme and host", () => {
  assert.equal(
    defaultAddress({ protocol: "http:", host: "h:8000" }),
    "ws://h:8000/",
  );
  assert.equal(
    defaultAddress({ protocol: "https:", host: "h" }),
    "wss://h/",
  );
});

Deno.test("parseServerAddress() accepts ws:// and wss:// addresses, normalised", () => {
  assert.deepEqual(parseServerAddress("  ws://Example.COM:8000 ", page), {
    ok: true,
    url: "ws://example.com:8000/",
  });
  assert.deepEqual(parseServerAddress("wss://h/path?x=1#frag", securePage), {
    ok: true,
    url: "wss://h/path?x=1",
  });
});

Deno.test("parseServerAddress() explains two schemes with the fixed address", () => {
  assert.match(
    errorOf("ws://http://host:8000/"),
    /two schemes \(ws:\/\/http:\/\/…\): keep one, for example ws:\/\/host:8000\//,
  );
  assert.match(errorOf("wss://https://host/"), /for example wss:\/\/host\//);
});

Deno.test("parseServerAddress() explains a missing scheme", () => {
  assert.match(
    errorOf("localhost:8000"),
    /needs a scheme: try ws:\/\/localhost:8000$/,
  );
  assert.match(
    errorOf("example.com"),
    /needs a scheme: try ws:\/\/example\.com$/,
  );
  assert.match(errorOf("example.com", securePage), /try wss:\/\/example\.com$/);
  assert.match(errorOf("ws:host"), /two slashes after the scheme: ws:\/\/host/);
});

Deno.test("parseServerAddress() explains http:// and https:// instead of ws://", () => {
  assert.match(
    errorOf("http://host:8000/"),
    /http:\/\/ is for web pages.*start with ws:\/\/\. Try ws:\/\/host:8000\//,
  );
  assert.match(errorOf("https://host/"), /Try wss:\/\/host\//);
});

Deno.test("parseServerAddress() refuses other schemes, blanks and blocked mixed content", () => {
  assert.match(errorOf(""), /Enter the server's address/);
  assert.match(errorOf("ftp://host/"), /Unsupported scheme ftp:\/\//);
  assert.match(errorOf("ws://ho st/"), /cannot contain spaces/);
  assert.match(errorOf("ws://[::1/"), /not a valid address/);
  assert.match(
    errorOf("ws://host/", securePage),
    /blocks unencrypted ws:\/\/: use wss:\/\/host\//,
  );
});
