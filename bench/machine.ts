/**
 * The machine a result was measured on, recorded in every result file so
 * figures from different hosts are never compared blindly.
 *
 * @module
 */

import { readProc } from "../dev/proc.ts";

/** CPU model and count, memory, kernel, Deno and V8 versions, and now. */
export function machine(): Record<string, unknown> {
  const cpu = readProc("/proc/cpuinfo") ?? "";
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpu)?.[1] ?? "unknown",
    cores: (cpu.match(/^processor\s*:/gm) ?? []).length,
    memoryMb: Math.round(Deno.systemMemoryInfo().total / 1048576),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    date: new Date().toISOString(),
    commit: commit(),
  };
}

/**
 * The tree measured: the short commit, with "+changes" when files differ
 * from it, so a figure in the docs can name the code it came from.
 */
export function commit(): string {
  const git = (...args: string[]) => {
    try {
      const out = new Deno.Command("git", { args, stderr: "null" })
        .outputSync();
      return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
    } catch {
      return null;
    }
  };
  const head = git("rev-parse", "--short", "HEAD");
  if (head === null) return "unknown";
  const changes = git("status", "--porcelain", "--untracked-files=no");
  return changes ? `${head}+changes` : head;
}
