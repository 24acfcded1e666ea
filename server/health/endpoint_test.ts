import assert from "node:assert/strict";
import { createHealthEndpoint } from "./endpoint.ts";
import { CapacityMonitor } from "./monitor.ts";

function endpoint(load: { use: number }, details = true) {
  const monitor = new CapacityMonitor({
    threshold: 0.6,
    recover: 0.5,
    probes: { connections: () => load.use },
  });
  const handle = createHealthEndpoint({
    monitor,
    threshold: 0.6,
    recover: 0.5,
    name: "unit",
    connections: () => 3,
    maxConnections: 10,
    figures: () => ({ lagMs: 1 }),
    store: () => ({ kind: "memory", state: "up" }),
    random: () => 0.99,
    details,
  });
  return { monitor, handle };
}

Deno.test("createHealthEndpoint() answers 200 ok, or 503 with the reason and a Retry-After", async () => {
  const load = { use: 0.2 };
  const { handle } = endpoint(load);
  const ok = handle(new Request("http://h/healthcheck"));
  assert.deepEqual([ok.status, await ok.text()], [200, "ok\n"]);
  assert.equal(ok.headers.get("retry-after"), null);
  load.use = 0.7;
  const busy = handle(new Request("http://h/healthcheck"));
  assert.equal(busy.status, 503);
  assert.equal(
    await busy.text(),
    "server is overloaded (connections at 70%, limit 60%)\n",
  );
  assert.equal(busy.headers.get("retry-after"), "15");
  assert.equal(busy.headers.get("cache-control"), "no-store");
});

Deno.test("createHealthEndpoint() gives JSON details on request and an empty body to HEAD", async () => {
  const { monitor, handle } = endpoint({ use: 0.1 });
  monitor.startDraining();
  const json = handle(
    new Request("http://h/healthcheck", {
      headers: { accept: "application/json" },
    }),
  );
  const body = await json.json();
  assert.equal(json.status, 503);
  assert.equal(body.state, "draining");
  assert.deepEqual(
    [body.server, body.connections, body.maxConnections, body.store.kind],
    ["unit", 3, 10, "memory"],
  );
  assert.deepEqual(body.figures, { lagMs: 1 });
  const head = handle(new Request("http://h/healthcheck", { method: "HEAD" }));
  assert.deepEqual([head.status, await head.text()], [503, ""]);
  const post = handle(new Request("http://h/healthcheck", { method: "POST" }));
  assert.equal(post.status, 405);
});

Deno.test("createHealthEndpoint() without details answers JSON requests with the plain verdict only", async () => {
  const { handle } = endpoint({ use: 0.2 }, false);
  const response = handle(
    new Request("http://h/healthcheck", {
      headers: { accept: "application/json" },
    }),
  );
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain");
  assert.equal(await response.text(), "ok\n");
});
