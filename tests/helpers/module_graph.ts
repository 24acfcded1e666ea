/**
 * The project's own import graph, read from `deno info --json`, and the
 * rules it must keep (see ARCHITECTURE.md): no cycle, and every import
 * points down the layers, never from one wing into another.
 *
 * @module
 */

import { ROOT } from "../../dev/paths.ts";

/** Repository-relative path to the paths it imports (code and types). */
export type ModuleGraph = ReadonlyMap<string, readonly string[]>;

/** The graph of the project's files reachable from `entry`. */
export async function moduleGraph(entry: string): Promise<ModuleGraph> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(new TextDecoder().decode(output.stderr));
  }
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: Array<{
      specifier: string;
      dependencies?: Array<{
        code?: { specifier: string };
        type?: { specifier: string };
      }>;
    }>;
  };
  const root = new URL(`file://${ROOT}`).href;
  const local = (specifier: string) =>
    specifier.startsWith(root) ? specifier.slice(root.length) : null;
  const graph = new Map<string, string[]>();
  for (const module of info.modules) {
    const from = local(module.specifier);
    if (from === null) continue;
    const targets = new Set<string>();
    for (const dep of module.dependencies ?? []) {
      for (const target of [dep.code?.specifier, dep.type?.specifier]) {
        const to = target === undefined ? null : local(target);
        if (to !== null) targets.add(to);
      }
    }
    graph.set(from, [...targets]);
  }
  return graph;
}

/** Every cycle's members, one list per strongly connected component. */
export function cycles(graph: ModuleGraph): string[][] {
  // Tarjan's algorithm: components of more than one module are cycles, as
  // is a module that imports itself.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    onStack.add(node);
    for (const to of graph.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) {
      found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

/** A module's place: its layer (higher imports lower) and its folder. */
export interface Place {
  readonly layer: number;
  readonly folder: string;
}

/**
 * The layers of ws-time, top down: main.ts; the wiring (server/app*.ts,
 * server/instance.ts); config/; the wings ws/, sessions/, health/; http/;
 * the leaves (server/*.ts) and the static assets. Null for a module no
 * rule covers, which is itself a violation: a new folder needs a place.
 */
export function placeOf(path: string): Place | null {
  const folder = path.slice(0, path.lastIndexOf("/") + 1);
  if (path === "main.ts") return { layer: 6, folder };
  if (/^server\/(app\w*|instance)\.ts$/.test(path)) {
    return { layer: 5, folder: "server/wiring" };
  }
  if (folder === "server/config/") return { layer: 4, folder };
  if (/^server\/(ws|sessions|health|fleet)\/$/.test(folder)) {
    return { layer: 3, folder };
  }
  if (folder === "server/http/") return { layer: 2, folder };
  if (folder === "server/" || folder === "static/") return { layer: 1, folder };
  return null;
}

/** Each import that breaks the layering, as "from -> to (why)". */
export function violations(
  graph: ModuleGraph,
  place: (path: string) => Place | null = placeOf,
): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const a = place(from);
    if (a === null) {
      found.push(`${from}: no layer covers this module`);
      continue;
    }
    for (const to of targets) {
      const b = place(to);
      if (b === null) continue; // Reported as a module of its own.
      if (a.folder === b.folder) continue;
      if (a.layer > b.layer) continue;
      found.push(
        `${from} -> ${to} (${a.layer === b.layer ? "across wings" : "upward"})`,
      );
    }
  }
  return found;
}

/**
 * Every project file's relative imports, read from the source text: the
 * tests, the bench and the harness have many entry points, and a regular
 * expression over `from "./x"` and `import("./x")` sees them all at once.
 */
export function sourceImports(root: string = ROOT): ModuleGraph {
  const graph = new Map<string, string[]>();
  const specifier = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(`${root}${dir}`)) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) {
        if (!SKIPPED_DIRS.has(path)) walk(`${path}/`);
        continue;
      }
      if (!/\.(ts|js|mjs)$/.test(entry.name)) continue;
      const text = Deno.readTextFileSync(`${root}${path}`);
      const targets = [...text.matchAll(specifier)].map((m) =>
        new URL(m[1]!, `file:///${path}`).pathname.slice(1)
      );
      graph.set(path, targets);
    }
  };
  walk("");
  return graph;
}

const SKIPPED_DIRS = new Set([
  ".git",
  "node_modules",
  "dist",
  "bench/results",
  "bench/reference/node_modules",
  "tests/output",
]);

/**
 * Which part of the tree a file belongs to, for the harness rules: the
 * product ships, its unit tests sit beside it, `dev/` is the harness that
 * tests, bench and the demo share, `docs/` holds doc generators.
 */
export function zoneOf(path: string): string {
  const top = path.includes("/") ? path.slice(0, path.indexOf("/")) : path;
  if (path === "main.ts" || top === "server" || top === "static") {
    return /_test\.ts$/.test(path) ? "product-test" : "product";
  }
  return ["dev", "tests", "bench", "docs", "deploy"].includes(top)
    ? top
    : "other";
}

/** The zones each zone must not import. */
export const FORBIDDEN: Readonly<Record<string, readonly string[]>> = {
  // What ships never loads test or bench code.
  product: ["dev", "tests", "bench", "docs", "deploy"],
  "product-test": ["tests", "bench"],
  // The harness serves both and knows neither.
  dev: ["tests", "bench"],
  bench: ["tests"],
  tests: ["bench"],
  docs: ["dev", "tests", "bench"],
};

/** Each import that crosses a harness rule, as "from -> to". */
export function harnessViolations(graph: ModuleGraph): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const banned = FORBIDDEN[zoneOf(from)] ?? [];
    for (const to of targets) {
      if (banned.includes(zoneOf(to))) {
        found.push(`${from} -> ${to} (${zoneOf(from)} imports ${zoneOf(to)})`);
      }
    }
  }
  return found;
}
