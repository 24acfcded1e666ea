import assert from "node:assert/strict";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { rawRequest } from "../helpers/raw_http.ts";
import { serve, testApp } from "../helpers/in_process.ts";

const req = (path: string, init: RequestInit = {}) =>
  new Request(`http://localhost${path}`, init);

Deno.test("GET / serves the client page with type, ETag and security headers", async () => {
  await using t = testApp();
  const response = await t.app.handler(req("/"));
  assert.equal(response.status, 200);
  assert.equal(
    response.headers.get("content-type"),
    "text/html; charset=utf-8",
  );
  assert.match(response.headers.get("etag") ?? "", /^"[\w-]{22}"$/);
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.match(
    response.headers.get("content-security-policy") ?? "",
    /connect-src 'self' ws: wss:/,
  );
  assert.equal(response.headers.get("cache-control"), "no-cache");
  assert.match(await response.text(), /<title>ws-time<\/title>/);
});

Deno.test("GET /<asset>: static assets carry their content types", async () => {
  await using t = testApp();
  const types: Record<string, string> = {
    "/index.html": "text/html",
    "/app.js": "text/javascript",
    "/ws_time_client.js": "text/javascript",
    "/style.css": "text/css",
    "/favicon.svg": "image/svg+xml",
  };
  for (const [path, type] of Object.entries(types)) {
    const response = await t.app.handler(req(path));
    assert.equal(response.status, 200, path);
    assert.ok(response.headers.get("content-type")?.startsWith(type), path);
    await response.body?.cancel();
  }
});

Deno.test("GET / with If-None-Match of the current ETag answers 304 without a body", async () => {
  await using t = testApp();
  const first = await t.app.handler(req("/app.js"));
  const etag = first.headers.get("etag")!;
  await first.body?.cancel();
  const second = await t.app.handler(
    req("/app.js", { headers: { "if-none-match": `W/"other", ${etag}` } }),
  );
  assert.equal(second.status, 304);
  assert.equal(second.body, null);
  const stale = await t.app.handler(
    req("/app.js", { headers: { "if-none-match": '"stale"' } }),
  );
  assert.equal(stale.status, 200);
  await stale.body?.cancel();
});

Deno.test("HEAD / answers headers and length without a body", async () => {
  await using t = testApp();
  const get = await t.app.handler(req("/style.css"));
  const body = new Uint8Array(await get.arrayBuffer());
  const head = await t.app.handler(req("/style.css", { method: "HEAD" }));
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  assert.equal(head.headers.get("content-length"), String(body.length));
});

Deno.test("GET /<asset> is compressed with br or gzip when the client accepts it", async () => {
  await using t = testApp();
  const plain = await (await t.app.handler(req("/index.html"))).text();
  const br = await t.app.handler(
    req("/index.html", { headers: { "accept-encoding": "gzip, br" } }),
  );
  assert.equal(br.headers.get("content-encoding"), "br");
  assert.equal(br.headers.get("vary"), "Accept-Encoding");
  const brBytes = new Uint8Array(await br.arrayBuffer());
  assert.equal(new TextDecoder().decode(brotliDecompressSync(brBytes)), plain);
  const gz = await t.app.handler(
    req("/index.html", { headers: { "accept-encoding": "gzip;q=1, br;q=0" } }),
  );
  assert.equal(gz.headers.get("content-encoding"), "gzip");
  const gzBytes = new Uint8Array(await gz.arrayBuffer());
  assert.equal(new TextDecoder().decode(gunzipSync(gzBytes)), plain);
  assert.notEqual(br.headers.get("etag"), gz.headers.get("etag"));
});

Deno.test("GET /<unknown> is 404 and other methods 405", async () => {
  await using t = testApp();
  for (
    const path of ["/nope", "/deno.json", "/static/index.html", "/main.ts"]
  ) {
    const response = await t.app.handler(req(path));
    assert.equal(response.status, 404, path);
    await response.body?.cancel();
  }
  const post = await t.app.handler(req("/", { method: "POST", body: "x" }));
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});

const TRAVERSALS = [
  "/../deno.json",
  "/%2e%2e/deno.json",
  "/%2e%2e%2fdeno.json",
  "/%2f",
  "/%2fetc%2fpasswd",
  "/static%5c..%5cdeno.json",
  "/..%5cdeno.json",
  "/.%2e/main.ts",
  "//etc/passwd",
  "/./../../etc/passwd",
  "/%00index.html",
  "/index.html%00.js",
  "/.git/config",
  "/%c0%ae%c0%ae/deno.json",
];

Deno.test("createStaticHandler(): traversal vectors never reach outside the asset table (handler)", async () => {
  await using t = testApp();
  for (const path of TRAVERSALS) {
    const response = await t.app.handler(req(path));
    assert.ok(
      [400, 404].includes(response.status),
      `${path}: ${response.status}`,
    );
    const text = await response.text();
    assert.doesNotMatch(text, /"tasks"|root:|\[core\]|import /, path);
  }
});

Deno.test("createStaticHandler(): traversal vectors never reach outside the asset table (raw TCP)", async () => {
  await using t = testApp();
  await using server = serve(t.app.handler);
  for (
    const path of [...TRAVERSALS, "/static\\..\\deno.json", "/..\\deno.json"]
  ) {
    const { status, head, body } = await rawRequest(
      { port: server.port },
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    assert.ok([400, 404].includes(status), `${path}: ${status}`);
    assert.doesNotMatch(
      `${head}\r\n\r\n${body}`,
      /"tasks"|root:|\[core\]|import /,
      path,
    );
  }
});
