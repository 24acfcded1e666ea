/**
 * A memory cgroup with a limit, made for one test and removed after it,
 * as a container runtime or systemd's MemoryMax= would set one up. Needs
 * root and a writable cgroup filesystem (v1 memory controller or v2 with
 * memory enabled at the root); otherwise says why it cannot. Deno answers
 * /proc/self and /sys with "requires --allow-all", so the test, which runs
 * with narrower flags, works on them through a shell.
 *
 * @module
 */

/** A cgroup a test process can be started in. */
export interface MemoryCgroup extends AsyncDisposable {
  /** Which hierarchy it lives in. */
  readonly version: 1 | 2;
  /** A command prefix that moves the process in before it execs. */
  readonly wrap: readonly string[];
  /** The most memory its processes held at once, in bytes. */
  peak(): Promise<number>;
  /** How many of its processes the kernel's OOM killer has ended. */
  oomKills(): Promise<number>;
}

/** Runs `script` in sh; its exit code and output. */
async function sh(script: string): Promise<{ ok: boolean; out: string }> {
  const { success, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { ok: success, out: text.decode(stdout) + text.decode(stderr) };
}

/** Creates a cgroup limited to `bytes`, or returns why it cannot. */
export async function memoryCgroup(
  bytes: number,
): Promise<MemoryCgroup | string> {
  const name = `ws-time-test-${crypto.randomUUID().slice(0, 8)}`;
  // The shell is in this process's cgroup: it reads the same membership.
  const own = (await sh("cat /proc/self/cgroup")).out;
  const v1 = own.split("\n").find((l) => /^\d+:memory:/.test(l));
  let dir: string;
  let version: 1 | 2;
  let limitFile: string;
  if (v1) {
    const path = v1.split(":")[2]!.replace(/\/$/, "");
    dir = `/sys/fs/cgroup/memory${path}/${name}`;
    version = 1;
    limitFile = "memory.limit_in_bytes";
  } else {
    const control = (await sh("cat /sys/fs/cgroup/cgroup.subtree_control"))
      .out;
    if (!control.split(/\s+/).includes("memory")) {
      return "no cgroup memory controller is available to this test";
    }
    dir = `/sys/fs/cgroup/${name}`;
    version = 2;
    limitFile = "memory.max";
  }
  const made = await sh(`mkdir '${dir}'`);
  if (!made.ok) {
    return `cannot create a cgroup (${made.out.trim()}); run as root`;
  }
  const set = await sh(`echo ${bytes} > '${dir}/${limitFile}'`);
  if (!set.ok) {
    await sh(`rmdir '${dir}'`);
    return `cannot set the cgroup's memory limit (${set.out.trim()})`;
  }
  const read = async (file: string) => (await sh(`cat '${dir}/${file}'`)).out;
  return {
    version,
    wrap: ["sh", "-c", `echo $$ > '${dir}/cgroup.procs' && exec "$@"`, "sh"],
    async peak() {
      return Number(
        await read(
          version === 1 ? "memory.max_usage_in_bytes" : "memory.peak",
        ),
      );
    },
    async oomKills() {
      // v1 kernels since 4.13 count kills in memory.oom_control.
      const text = await read(
        version === 1 ? "memory.oom_control" : "memory.events",
      );
      return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    },
    async [Symbol.asyncDispose]() {
      // A cgroup can be removed once its last process has exited.
      for (let i = 0; i < 50; i++) {
        if ((await sh(`rmdir '${dir}'`)).ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
