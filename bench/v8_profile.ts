/**
 * Turns a V8 tick log (`--v8-flags=--prof`) into a table of where the CPU
 * went, by the part of ws-time (or of Deno) that was running. The log is
 * first preprocessed by Node's tick processor (`node --prof-process
 * --preprocess`, Node comes with the npm that installs Deno); each sample
 * is then charged to the innermost frame of ws-time's own code on its
 * stack (server/<file>), else to the innermost Deno runtime frame
 * (ext:deno_http, ext:deno_websocket...), else to native code (Rust, V8's
 * runtime, the kernel via libc). Samples taken while the main thread ran
 * the garbage collector are GC, whoever allocated.
 *
 *     deno task bench --scenario storm ... "--v8-flags=--optimize-for-size,--prof,--logfile=/tmp/p/%p.log,--no-logfile-per-isolate"
 *     deno run --allow-run=node --allow-read bench/v8_profile.ts /tmp/p/<survivor pid>.log
 *
 * @module
 */

interface Preprocessed {
  readonly code: ReadonlyArray<{ name?: string; type?: string }>;
  readonly ticks: ReadonlyArray<{ vm: number; s: readonly number[] }>;
}

/** V8's StateTag values that matter here. */
const GC = 1;

/** One row: a part and its share of the samples. */
export interface ProfileRow {
  readonly part: string;
  readonly ticks: number;
  readonly share: number;
}

/** Where a sample's time goes, from its stack (innermost frame first). */
export function chargeOf(
  frames: ReadonlyArray<{ name?: string; type?: string } | undefined>,
  vm: number,
): string {
  if (vm === GC) return "GC (main thread)";
  for (const frame of frames) {
    const name = frame?.name ?? "";
    const own = /file:\/\/\S*?\/(server\/[\w/]+\.ts|main\.ts)/.exec(name);
    if (own) return own[1]!;
    const npm = /registry\.npmjs\.org\/(@[\w.-]+\/[\w.-]+|[\w.-]+)/.exec(name);
    if (npm) return `npm: ${npm[1]}`;
  }
  for (const frame of frames) {
    const ext = /ext:(deno_\w+|core)\//.exec(frame?.name ?? "");
    if (ext) return `Deno runtime (${ext[1]})`;
  }
  return "native only (Rust, V8 runtime, libc)";
}

/** The table of a preprocessed profile. */
export function profileTable(profile: Preprocessed): ProfileRow[] {
  const counts = new Map<string, number>();
  for (const tick of profile.ticks) {
    const frames = [];
    for (let i = 0; i < tick.s.length; i += 2) {
      const index = tick.s[i]!;
      frames.push(index >= 0 ? profile.code[index] : undefined);
    }
    const part = chargeOf(frames, tick.vm);
    counts.set(part, (counts.get(part) ?? 0) + 1);
  }
  const total = profile.ticks.length;
  return [...counts].map(([part, ticks]) => ({
    part,
    ticks,
    share: Math.round((ticks / total) * 1000) / 10,
  })).sort((a, b) => b.ticks - a.ticks);
}

/** Runs Node's tick processor on `log`; the preprocessed JSON. */
async function preprocess(log: string): Promise<Preprocessed> {
  const { success, stdout, stderr } = await new Deno.Command("node", {
    args: ["--prof-process", "--preprocess", log],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  const text = new TextDecoder().decode(stdout);
  // It may print a version warning before the JSON.
  return JSON.parse(text.slice(text.indexOf("{")));
}

if (import.meta.main) {
  const log = Deno.args[0];
  if (!log) {
    // deno-lint-ignore no-console
    console.error("usage: bench/v8_profile.ts <v8 log>");
    Deno.exit(2);
  }
  const rows = profileTable(await preprocess(log));
  const total = rows.reduce((sum, r) => sum + r.ticks, 0);
  // deno-lint-ignore no-console
  console.log(`${total} samples (about 1 ms each) on the main thread`);
  for (const row of rows) {
    // deno-lint-ignore no-console
    console.log(
      `${String(row.share).padStart(5)}%  ${
        String(row.ticks).padStart(6)
      }  ${row.part}`,
    );
  }
}
