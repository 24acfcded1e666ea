/**
 * The machine a result was measured on, recorded in every result file so
 * figures from different hosts are never compared blindly.
 *
 * @module
 */

import { readProc } from "./proc.ts";

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
  };
}
