/**
 * Process and kernel figures from /proc: resident memory, CPU time, open
 * file limits and the listen-queue overflow counters, for the bench and the
 * tests. Linux only. Deno refuses to read /proc/<pid> and /proc/net without
 * --allow-all, so the files are read through `cat` (the bench and the tests
 * already hold --allow-run) rather than granting -A.
 *
 * @module
 */

/** `bytes` shared by `n` connections, in KB with two decimals. */
export function kbPer(bytes: number, n: number): number {
  return Math.round(bytes / Math.max(n, 1) / 1024 * 100) / 100;
}

/** The text of a /proc file, or null when it cannot be read. */
export function readProc(path: string): string | null {
  const output = new Deno.Command("cat", {
    args: [path],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  return output.success ? new TextDecoder().decode(output.stdout) : null;
}

/** Open descriptors of `pid` (NaN once it is gone). */
export function fdCount(pid: number): number {
  const output = new Deno.Command("ls", {
    args: [`/proc/${pid}/fd`],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  if (!output.success) return NaN;
  return new TextDecoder().decode(output.stdout).split("\n").filter((l) =>
    l !== ""
  ).length;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 here). */
const USER_HZ = 100;

/** The `field:  N kB` line of a /proc file in bytes, or NaN. */
function kbField(path: string, field: string): number {
  const text = readProc(path) ?? "";
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Resident memory of `pid` in bytes (VmRSS), or NaN once it is gone. */
export function rssBytes(pid: number): number {
  return kbField(`/proc/${pid}/status`, "VmRSS");
}

/**
 * Anonymous resident memory of `pid` in bytes (smaps_rollup), or NaN: what
 * the process allocated itself, without the pages of the deno binary that
 * it shares with every other deno process (the load generators here).
 */
export function anonBytes(pid: number): number {
  return kbField(`/proc/${pid}/smaps_rollup`, "Anonymous");
}

/** User and system CPU seconds used by `pid` so far (NaN once it is gone). */
export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === null) return { user: NaN, system: NaN };
  // The command name may hold spaces; fields count from after its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    user: Number(fields[11]) / USER_HZ,
    system: Number(fields[12]) / USER_HZ,
  };
}

/** Measures the CPU share (1 = one full core) of processes over a window. */
export class CpuMeter {
  readonly #pids: readonly number[];
  #cpu: { user: number; system: number };
  #at: number;

  /** Starts measuring `pids` now. */
  constructor(pids: readonly number[]) {
    this.#pids = pids;
    this.#cpu = this.#total();
    this.#at = performance.now();
  }

  #total(): { user: number; system: number } {
    const times = this.#pids.map(cpuTimes);
    return {
      user: times.reduce((sum, t) => sum + t.user, 0),
      system: times.reduce((sum, t) => sum + t.system, 0),
    };
  }

  /** Core share since the start (or the last `restart`). */
  share(): number {
    const { user, system } = this.split();
    return user + system;
  }

  /** The same share as {@link share}, as user and system (kernel) parts. */
  split(): { user: number; system: number } {
    const seconds = (performance.now() - this.#at) / 1000;
    if (seconds <= 0) return { user: 0, system: 0 };
    const now = this.#total();
    return {
      user: (now.user - this.#cpu.user) / seconds,
      system: (now.system - this.#cpu.system) / seconds,
    };
  }

  /** Starts a new window. */
  restart(): void {
    this.#cpu = this.#total();
    this.#at = performance.now();
  }
}

/** Kernel counters of refused or dropped connection attempts. */
export interface ListenCounters {
  /** Times a listen queue was full (TcpExtListenOverflows). */
  readonly overflows: number;
  /** SYNs dropped at listen sockets (TcpExtListenDrops). */
  readonly drops: number;
}

/** The machine-wide listen-queue counters from /proc/net/netstat. */
export function listenCounters(): ListenCounters {
  const text = readProc("/proc/net/netstat") ?? "";
  const lines = text.split("\n");
  const header = lines.findIndex((l) => l.startsWith("TcpExt:"));
  const names = lines[header]?.split(/\s+/) ?? [];
  const values = lines[header + 1]?.split(/\s+/).map(Number) ?? [];
  const get = (name: string) => values[names.indexOf(name)] ?? 0;
  return { overflows: get("ListenOverflows"), drops: get("ListenDrops") };
}

/** Open files `pid` may hold (soft limit, as `ulimit -n` shows). */
export function openFileLimit(pid: number): number {
  const limits = readProc(`/proc/${pid}/limits`) ?? "";
  const match = /^Max open files\s+(\d+)/m.exec(limits);
  return match ? Number(match[1]) : Infinity;
}
