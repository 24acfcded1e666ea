import assert from "node:assert/strict";
import {
  consoleLogger,
  formatFields,
  formatLine,
  gatedLogger,
  memoryLogger,
} from "./logger.ts";

Deno.test("consoleLogger(): a function field is computed only for a line that is printed", () => {
  let calls = 0;
  const costly = () => {
    calls++;
    return "abc def";
  };
  assert.equal(
    formatFields({ a: 1, b: costly, c: undefined }),
    ' a=1 b="abc def"',
  );
  assert.equal(calls, 1);
  const quiet = consoleLogger("warn");
  quiet.info("connect", { session: costly });
  quiet.debug("disconnect", { session: costly });
  assert.equal(calls, 1);
});

Deno.test("formatLine() writes JSON with time, level, msg and the fields, and never lets a field replace them", () => {
  const line = formatLine(
    "json",
    new Date(Date.UTC(2026, 11, 2, 4, 5, 6)),
    "warn",
    "redis connection lost",
    { error: "ECONNRESET", msg: "sneaky", retryInMs: 120, gone: undefined },
  );
  assert.deepEqual(JSON.parse(line), {
    time: "2026-12-02T04:05:06.000Z",
    level: "warn",
    msg: "redis connection lost",
    error: "ECONNRESET",
    field_msg: "sneaky",
    retryInMs: 120,
  });
  assert.equal(
    formatLine("text", new Date(0), "info", "connect", { cid: "a b" }),
    '1970-01-01T00:00:00.000Z info connect cid="a b"',
  );
});

Deno.test("consoleLogger() sends each level to its console method, so OpenTelemetry sees the right severity", () => {
  const seen: string[] = [];
  const saved = { ...console };
  for (const method of ["debug", "log", "warn", "error"] as const) {
    // deno-lint-ignore no-console
    console[method] = (text: string) => seen.push(`${method}: ${text}`);
  }
  try {
    const logger = consoleLogger("debug", "json");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
  } finally {
    Object.assign(console, saved);
  }
  assert.deepEqual(
    seen.map((s) => s.replace(/"time":"[^"]+",/, "")),
    [
      'debug: {"level":"debug","msg":"d"}',
      'log: {"level":"info","msg":"i"}',
      'warn: {"level":"warn","msg":"w"}',
      'error: {"level":"error","msg":"e"}',
    ],
  );
});

Deno.test("gatedLogger() passes all, none, or a sample with a count of what it left out", () => {
  let now = 0;
  const sampled = memoryLogger();
  const gate = gatedLogger(sampled, {
    mode: "sampled",
    perSecond: 10,
    now: () => now,
    what: "connection lines",
  });
  for (let i = 0; i < 1000; i++) gate.info("connect", { i });
  now += 1000;
  gate.info("connect", { i: "late" });
  gate.error("broken");
  assert.equal(
    sampled.lines.filter((l) => l.startsWith("info connect i=")).length,
    11,
  );
  assert.ok(sampled.lines.includes("info connection lines left out count=990"));
  assert.ok(sampled.lines.includes("error broken"), "errors are never sampled");
  const none = memoryLogger();
  const off = gatedLogger(none, {
    mode: "off",
    perSecond: 10,
    now: () => 0,
    what: "x",
  });
  off.info("connect");
  off.warn("connect");
  assert.deepEqual(none.lines, []);
  const all = memoryLogger();
  const on = gatedLogger(all, {
    mode: "on",
    perSecond: 1,
    now: () => 0,
    what: "x",
  });
  for (let i = 0; i < 5; i++) on.info("connect");
  assert.equal(all.lines.length, 5);
});
