import assert from "node:assert/strict";
import { createRouter, MAX_URL } from "./router.ts";
import { plain } from "./response.ts";

function router() {
  const calls: string[] = [];
  const handler = createRouter({
    upgrade: () => {
      calls.push("upgrade");
      return plain(200, "upgrade route");
    },
    healthcheck: () => {
      calls.push("healthcheck");
      return plain(200, "ok");
    },
    metrics: () => "wstime_connections 0\n",
    assets: (_request, url) =>
      url.pathname === "/" ? plain(200, "the page") : null,
  });
  return { handler, calls };
}

async function answer(
  handler: ReturnType<typeof router>["handler"],
  req: Request,
) {
  const response = await handler(req);
  return `${response.status} ${(await response.text()).trim()}`;
}

Deno.test("createRouter() sends upgrades on / to the upgrade route and nowhere else", async () => {
  const { handler, calls } = router();
  const upgrade = { headers: { upgrade: "websocket" } };
  assert.equal(
    await answer(handler, new Request("http://h/?id=x", upgrade)),
    "200 upgrade route",
  );
  assert.equal(
    await answer(handler, new Request("http://h/healthcheck", upgrade)),
    "404 no WebSocket endpoint here",
  );
  assert.deepEqual(calls, ["upgrade"]);
});

Deno.test("createRouter() serves health, liveness, metrics and assets by path", async () => {
  const { handler, calls } = router();
  assert.equal(
    await answer(handler, new Request("http://h/healthcheck")),
    "200 ok",
  );
  assert.equal(
    await answer(handler, new Request("http://h/healthz")),
    "200 alive",
  );
  const metrics = await handler(new Request("http://h/metrics"));
  assert.equal(metrics.headers.get("cache-control"), "no-store");
  assert.match(metrics.headers.get("content-type")!, /version=0\.0\.4/);
  assert.equal(await metrics.text(), "wstime_connections 0\n");
  assert.equal(
    await answer(handler, new Request("http://h/metrics", { method: "POST" })),
    "405 method not allowed",
  );
  assert.equal(await answer(handler, new Request("http://h/")), "200 the page");
  assert.equal(
    await answer(handler, new Request("http://h/nope")),
    "404 not found",
  );
  assert.deepEqual(calls, ["healthcheck"]);
});

Deno.test("createRouter() refuses URLs that are too long; encoded NULs reach no asset", async () => {
  const { handler } = router();
  assert.equal(
    await answer(handler, new Request(`http://h/${"a".repeat(MAX_URL)}`)),
    "414 URL too long",
  );
  assert.equal(
    await answer(handler, new Request("http://h/a%00b")),
    "404 not found",
  );
});
