import assert from "node:assert/strict";
import { MARKERS, withTable } from "../docs/options_table.ts";
import { defaultText, optionsMarkdown } from "../server/config/help.ts";
import { OPTIONS } from "../server/config/schema.ts";
import { DEFAULTS } from "../static/ws_time_client.js";
import { ROOT } from "../dev/paths.ts";

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
      "hedgeMs",
      "maxHintMs",
    ] as const
  ) {
    assert.equal(rows.get(`\`${key}\``), String(DEFAULTS[key]), key);
  }
});

/** Every Markdown file of the repository, relative to ROOT. */
function markdownFiles(dir = ""): string[] {
  const skip = new Set([".git", "node_modules", "dist", "bench/results"]);
  return [...Deno.readDirSync(`${ROOT}${dir}`)].flatMap((entry) => {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory) {
      return skip.has(path) || path.endsWith("node_modules")
        ? []
        : markdownFiles(`${path}/`);
    }
    return entry.name.endsWith(".md") ? [path] : [];
  });
}

/** The anchors GitHub gives the headings of a Markdown text. */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of text.split("\n")) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!.trim().toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** Each relative link of `text` (in `file`) that does not resolve. */
function brokenLinks(file: string, text: string): string[] {
  const broken: string[] = [];
  const withoutCode = text.replace(/```[\s\S]*?```/g, "");
  for (const [, target] of withoutCode.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/i.test(target!)) continue;
    const [path, anchor] = target!.split("#") as [string, string | undefined];
    const resolved = path === ""
      ? file
      : new URL(path, `file:///${file}`).pathname.slice(1);
    let stat: Deno.FileInfo;
    try {
      stat = Deno.statSync(`${ROOT}${resolved}`);
    } catch {
      broken.push(`${file}: ${target} (no such file)`);
      continue;
    }
    if (anchor && stat.isFile && resolved.endsWith(".md")) {
      if (!headingAnchors(read(resolved)).has(anchor)) {
        broken.push(`${file}: ${target} (no such heading)`);
      }
    }
  }
  return broken;
}

Deno.test("every relative link in the docs, notes included, reaches a file and its heading", () => {
  const files = markdownFiles();
  assert.ok(files.includes("bench/README.md") && files.length > 15);
  assert.ok(files.some((f) => f.startsWith("bench/notes/")), "notes found");
  assert.deepEqual(files.flatMap((f) => brokenLinks(f, read(f))), []);
});

Deno.test("brokenLinks() reports a missing file, a missing heading and nothing else", () => {
  const text = [
    "[ok](ARCHITECTURE.md) [ok](#layers-and-wings) [web](https://x.test/a)",
    "[gone](bench/results/old.json) [anchor](README.md#no-such-heading)",
    "```sh",
    "[in code](nowhere.md)",
    "```",
  ].join("\n");
  const file = "ARCHITECTURE.md";
  assert.deepEqual(brokenLinks(file, text), [
    "ARCHITECTURE.md: bench/results/old.json (no such file)",
    "ARCHITECTURE.md: README.md#no-such-heading (no such heading)",
  ]);
  assert.ok(
    headingAnchors("# Chaos: faults on real hosts").has(
      "chaos-faults-on-real-hosts",
    ),
  );
});

/** The manuals: what describes the tree as it is now (notes are history). */
const MANUALS = () =>
  markdownFiles().filter((f) =>
    !f.startsWith("bench/notes/") && !f.includes("node_modules")
  );

Deno.test("every repository path the manuals name in code spans exists", () => {
  const pattern =
    /`((?:server|static|tests|dev|bench|deploy|docs|\.ci)\/[\w./@-]*)`/g;
  // Output folders (bench/results/, dist/) exist only once something ran.
  const ignored = read(".gitignore").split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && l.endsWith("/"));
  const missing: string[] = [];
  let checked = 0;
  for (const file of MANUALS()) {
    for (const [, path] of read(file).matchAll(pattern)) {
      if (ignored.some((dir) => path!.startsWith(dir))) continue;
      checked++;
      try {
        Deno.statSync(`${ROOT}${path}`);
      } catch {
        missing.push(`${file}: ${path}`);
      }
    }
  }
  assert.ok(checked > 40, `only ${checked} paths checked`);
  assert.deepEqual(missing, []);
});

Deno.test("README's test command is what .ci/run runs, and it checks formatting, lint, types and doc examples before the suite", () => {
  const block = /## The two commands\s+```sh\n([\s\S]*?)```/.exec(
    read("README.md"),
  );
  assert.ok(block, "README has the two commands");
  const commands = block[1]!.trim().split("\n").map((l) =>
    l.replace(/#.*$/, "").trim()
  );
  assert.equal(commands.length, 2);
  assert.equal(commands[0], "deno task start");
  const test = commands[1]!;
  assert.ok(
    read(".ci/run").split("\n").some((l) =>
      !l.trim().startsWith("#") && l.includes(` ${test} `)
    ),
    `.ci/run runs ${test}`,
  );
  const tasks = JSON.parse(read("deno.json")).tasks as Record<string, string>;
  const task = tasks[test.replace("deno task ", "")]!;
  for (
    const step of [
      "deno fmt --check",
      "deno lint",
      "deno task check",
      "deno task check:doc",
      "deno task test",
    ]
  ) {
    assert.ok(task.includes(step), `${test} runs ${step}`);
  }
});

Deno.test("commit subjects since the house was put in order are under 72 characters", async () => {
  // 30465fc: the last commit before subjects were held to 72 characters.
  const log = await new Deno.Command("git", {
    args: ["log", "--format=%s", "30465fc..HEAD"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(log.success, new TextDecoder().decode(log.stderr));
  const subjects = new TextDecoder().decode(log.stdout).split("\n")
    .filter((s) => s !== "");
  assert.ok(subjects.length >= 20, `only ${subjects.length} commits read`);
  assert.deepEqual(subjects.filter((s) => s.length >= 72), []);
});
