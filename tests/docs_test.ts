import assert from "node:assert/strict";
import { MARKERS, withTable } from "../docs/options_table.ts";
import { defaultText, optionsMarkdown } from "../server/config/help.ts";
import { OPTIONS } from "../server/config/schema.ts";
import { DEFAULTS } from "../static/ws_time_client.js";
import { ROOT } from "./helpers/paths.ts";

/** Rows of every Markdown table in `text`, cells trimmed, header first. */
function tables(text: string): string[][][] {
  const found: string[][][] = [];
  let current: string[][] = [];
  for (const line of [...text.split("\n"), ""]) {
    if (/^\s*\|/.test(line)) {
      const cells = line.trim().replace(/^\||\|$/g, "").split("|").map((c) =>
        c.trim()
      );
      if (!cells.every((c) => /^:?-+:?$/.test(c))) current.push(cells);
    } else if (current.length > 0) {
      found.push(current);
      current = [];
    }
  }
  return found;
}

const read = (path: string) => Deno.readTextFileSync(`${ROOT}${path}`);

Deno.test("docs/configuration.md holds the flag table generated from OPTIONS", () => {
  const text = read("docs/configuration.md");
  const [open, close] = MARKERS as [string, string];
  const between = text.slice(text.indexOf(open), text.indexOf(close));
  assert.deepEqual(
    tables(between),
    tables(optionsMarkdown()),
    "run deno task docs",
  );
  assert.equal(
    tables(withTable(text, optionsMarkdown()))[0]?.length,
    OPTIONS.length + 1,
  );
});

Deno.test("README.md and docs/ state every flag default as OPTIONS does", () => {
  const byFlag = new Map(OPTIONS.map((spec) => [`--${spec.flag}`, spec]));
  let checked = 0;
  for (const path of ["README.md", "docs/configuration.md"]) {
    for (const table of tables(read(path))) {
      const header = table[0]!.map((c) => c.toLowerCase());
      const flagCol = header.indexOf("flag");
      const defaultCol = header.indexOf("default");
      if (flagCol < 0 || defaultCol < 0) continue;
      for (const row of table.slice(1)) {
        const flags = [...row[flagCol]!.matchAll(/`(--[\w-]+)`/g)].map((m) =>
          m[1]!
        );
        const defaults = row[defaultCol]!.split(", ");
        assert.equal(defaults.length, flags.length, `${path}: ${row}`);
        flags.forEach((flag, i) => {
          const spec = byFlag.get(flag);
          assert.ok(spec, `${path} documents an unknown flag ${flag}`);
          assert.equal(defaults[i], defaultText(spec), `${path}: ${flag}`);
          checked++;
        });
      }
    }
  }
  assert.ok(checked >= OPTIONS.length + 5, `only ${checked} defaults checked`);
});

Deno.test("docs/configuration.md gives the browser client's DEFAULTS", () => {
  const table = tables(read("docs/configuration.md")).find((t) =>
    t[0]![0] === "option"
  );
  assert.ok(table, "the client options table");
  const rows = new Map(table.slice(1).map((row) => [row[0]!, row[1]!]));
  assert.equal(
    rows.get("`baseMs`, `capMs`"),
    `${DEFAULTS.baseMs}, ${DEFAULTS.capMs}`,
  );
  for (
    const key of [
      "maxAttempts",
      "stableMs",
      "connectTimeoutMs",
      "maxHintMs",
    ] as const
  ) {
    assert.equal(rows.get(`\`${key}\``), String(DEFAULTS[key]), key);
  }
});
