import assert from "node:assert/strict";
import { agentReply, startAgent } from "./agent.ts";
import type { HealthReport } from "./monitor.ts";
import { memoryLogger } from "../logger.ts";

function report(
  usage: number,
  state: HealthReport["state"] = "ok",
): HealthReport {
  return {
    healthy: state === "ok",
    state,
    reason: state,
    usage,
    ratios: { connections: usage },
  };
}

Deno.test("agentReply() gives a weight that falls as capacity use rises", () => {
  assert.equal(agentReply(report(0)), "ready up 100%\n");
  assert.equal(agentReply(report(0.6)), "ready up 40%\n");
  assert.equal(agentReply(report(0.999)), "ready up 1%\n");
  assert.equal(agentReply(report(0.7, "overloaded")), "ready up 0%\n");
  assert.equal(agentReply(report(0, "draining")), "drain\n");
});

Deno.test("startAgent() answers each connection with one line and closes it", async () => {
  let current = report(0.25);
  await using agent = startAgent({
    hostname: "127.0.0.1",
    port: 0,
    report: () => current,
    logger: memoryLogger(),
  });
  const ask = async () => {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: agent.port,
    });
    const text = await new Response(conn.readable).text();
    return text;
  };
  assert.equal(await ask(), "ready up 75%\n");
  current = report(0, "draining");
  assert.equal(await ask(), "drain\n");
});
