import assert from "node:assert/strict";
import {
  cycles,
  harnessViolations,
  type ModuleGraph,
  moduleGraph,
  sourceImports,
  violations,
} from "./helpers/module_graph.ts";

Deno.test("main.ts's import graph has no cycle and every import points down the layers", async () => {
  const graph = await moduleGraph("main.ts");
  assert.ok(graph.size > 30, `only ${graph.size} modules found`);
  assert.deepEqual(cycles(graph), []);
  assert.deepEqual(violations(graph), []);
});

Deno.test("server/ws/ and server/sessions/ never import each other", async () => {
  const graph = await moduleGraph("main.ts");
  const crossing = [...graph].flatMap(([from, targets]) =>
    targets.filter((to) =>
      (from.startsWith("server/ws/") && to.startsWith("server/sessions/")) ||
      (from.startsWith("server/sessions/") && to.startsWith("server/ws/"))
    ).map((to) => `${from} -> ${to}`)
  );
  assert.deepEqual(crossing, []);
});

Deno.test("cycles() and violations() catch a cycle, an upward and a cross-wing import", () => {
  const graph: ModuleGraph = new Map([
    ["server/app.ts", ["server/ws/upgrade_guard.ts"]],
    ["server/ws/upgrade_guard.ts", ["server/sessions/token.ts"]],
    ["server/sessions/token.ts", ["server/config/schema.ts"]],
    ["server/config/schema.ts", ["server/app.ts"]],
    ["server/extra/new.ts", []],
  ]);
  assert.deepEqual(cycles(graph), [[
    "server/app.ts",
    "server/config/schema.ts",
    "server/sessions/token.ts",
    "server/ws/upgrade_guard.ts",
  ]]);
  assert.deepEqual(violations(graph), [
    "server/ws/upgrade_guard.ts -> server/sessions/token.ts (across wings)",
    "server/sessions/token.ts -> server/config/schema.ts (upward)",
    "server/config/schema.ts -> server/app.ts (upward)",
    "server/extra/new.ts: no layer covers this module",
  ]);
});

Deno.test("bench/ and tests/ never import each other; dev/ imports neither; the product imports none of them", () => {
  const graph = sourceImports();
  assert.ok(graph.has("dev/fault_bed.ts") && graph.has("bench/chaos.ts"));
  assert.ok(
    graph.get("bench/chaos.ts")!.includes("dev/fault_bed.ts"),
    "the scan resolves relative imports",
  );
  assert.deepEqual(harnessViolations(graph), []);
});

Deno.test("harnessViolations() catches bench and tests importing each other, and the product importing the harness", () => {
  const graph: ModuleGraph = new Map([
    ["bench/storm.ts", ["tests/helpers/child.ts", "dev/child.ts"]],
    ["tests/process/x_test.ts", ["bench/report.ts", "dev/paths.ts"]],
    ["dev/fault_bed.ts", ["tests/helpers/raw_http.ts", "server/app.ts"]],
    ["server/app.ts", ["dev/timing.ts"]],
    ["server/app_test.ts", ["dev/timing.ts"]],
  ]);
  assert.deepEqual(harnessViolations(graph), [
    "bench/storm.ts -> tests/helpers/child.ts (bench imports tests)",
    "tests/process/x_test.ts -> bench/report.ts (tests imports bench)",
    "dev/fault_bed.ts -> tests/helpers/raw_http.ts (dev imports tests)",
    "server/app.ts -> dev/timing.ts (product imports dev)",
  ]);
});
