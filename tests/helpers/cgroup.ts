/**
 * A memory cgroup with a limit, made for one test and removed after it,
 * as a container runtime or systemd's MemoryMax= would set one up. Needs
 * root and a writable cgroup filesystem (v1 memory controller or v2 with
 * memory enabled at the root); otherwise says why it cannot.
 *
 * @module
 */

/** A cgroup a test process can be started in. */
export interface MemoryCgroup extends AsyncDisposable {
  /** Which hierarchy it lives in. */
  readonly version: 1 | 2;
  /** A command prefix that moves the process in before it execs. */
  readonly wrap: readonly string[];
}

/** Creates a cgroup limited to `bytes`, or returns why it cannot. */
export async function memoryCgroup(
  bytes: number,
): Promise<MemoryCgroup | string> {
  const name = `ws-time-test-${crypto.randomUUID().slice(0, 8)}`;
  let dir: string;
  let version: 1 | 2;
  let limitFile: string;
  const own = await readOr("/proc/self/cgroup");
  const v1 = own.split("\n").find((l) => /^\d+:memory:/.test(l));
  if (v1) {
    dir = `/sys/fs/cgroup/memory${
      v1.split(":")[2]!.replace(/\/$/, "")
    }/${name}`;
    version = 1;
    limitFile = "memory.limit_in_bytes";
  } else {
    const control = await readOr("/sys/fs/cgroup/cgroup.subtree_control");
    if (!control.split(/\s+/).includes("memory")) {
      return "no cgroup memory controller is available to this test";
    }
    dir = `/sys/fs/cgroup/${name}`;
    version = 2;
    limitFile = "memory.max";
  }
  try {
    await Deno.mkdir(dir);
  } catch (error) {
    return `cannot create a cgroup (${(error as Error).message}); run as root`;
  }
  try {
    await Deno.writeTextFile(`${dir}/${limitFile}`, `${bytes}\n`);
  } catch (error) {
    await Deno.remove(dir).catch(() => {});
    return `cannot set the cgroup's memory limit (${(error as Error).message})`;
  }
  return {
    version,
    wrap: ["sh", "-c", `echo $$ > ${dir}/cgroup.procs && exec "$@"`, "sh"],
    async [Symbol.asyncDispose]() {
      // A cgroup can be removed once its last process has exited.
      for (let i = 0; i < 50; i++) {
        try {
          await Deno.remove(dir);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

async function readOr(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}
