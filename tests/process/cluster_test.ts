import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { waitFor } from "../../dev/timing.ts";
import { TrackedClient } from "../helpers/tracked_client.ts";

/**
 * A base port P whose cluster ports (P, P+1, P+11.., P+21.., P+30) are all
 * free right now.
 */
function freeBlock(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = [0, 1, 11, 12, 21, 22, 30, 41, 42].map((offset) =>
      base + offset
    );
    if (ports.every(isFree)) return base;
  }
  throw new Error("No free block of ports for the cluster");
}

function isFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("deno task cluster serves through HAProxy, survives losing an instance and stops everything on SIGTERM", async () => {
  const base = freeBlock();
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks;
  const [, ...args] = (tasks.cluster as string).split(" ");
  const cluster = new Child(Deno.execPath(), [
    ...args,
    "--instances",
    "2",
    "--port",
    String(base),
  ], { cwd: ROOT });
  let client: TrackedClient | undefined;
  try {
    const [, url] = await cluster.waitForLine(/open (http:\S+)/, 45_000)
      .catch((error) => {
        throw new Error(`${error.message}\n${cluster.lines.join("\n")}`);
      });
    const page = await fetch(url!);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    // Metrics on the operator ports, none through the balancer.
    const metrics = await fetch(`http://127.0.0.1:${base + 41}/metrics`);
    assert.match(await metrics.text(), /^wstime_connections /m);
    const hidden = await fetch(`${url}metrics`);
    assert.equal(hidden.status, 404);
    await hidden.body?.cancel();
    client = new TrackedClient(url!.replace(/^http/, "ws"));
    await waitFor(() => client!.seconds >= 1, 10_000, "a ticking client");
    const [, pid] = await cluster.waitForLine(
      new RegExp(`${client.server} pid (\\d+)`),
    );
    Deno.kill(Number(pid), "SIGKILL");
    await waitFor(() => client!.welcomes.length >= 2, 10_000, "a resume");
    assert.ok(client.welcomes[1]!.resumed);
    assert.notEqual(client.welcomes[1]!.server, client.welcomes[0]!.server);
    await client.stop();
    cluster.kill("SIGTERM");
    const status = await cluster.finished();
    assert.equal(status.code, 0, cluster.lines.join("\n"));
    assert.ok(cluster.lines.includes("cluster: stopped"));
  } finally {
    await client?.stop();
    // SIGTERM first: a SIGKILLed cluster could not stop its children.
    cluster.kill("SIGTERM");
    const timer = setTimeout(() => cluster.kill("SIGKILL"), 8000);
    await cluster.finished();
    clearTimeout(timer);
  }
});
