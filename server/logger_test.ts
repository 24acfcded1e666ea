import assert from "node:assert/strict";
import { consoleLogger, formatFields } from "./logger.ts";

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
