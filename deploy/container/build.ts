/**
 * Builds ws-time's OCI image with buildah, from scratch: the bundle, the
 * Deno runtime that runs it, the shared libraries both need (read off
 * `ldd`) and jemalloc, nothing else: no shell, no package manager, no
 * writable path. It needs no base image, so it builds where no registry
 * can be reached. Run as root or rootless buildah:
 *
 *   deno task image                       # ws-time:<version>
 *   deno task image --tag ws-time:test --archive dist/ws-time.oci.tar
 *
 * The entrypoint carries exactly the permission and V8 flags of
 * `deno task start`, and the environment the systemd unit sets for the
 * allocator, so the container runs what the tests prove.
 *
 * @module
 */

import { ROOT } from "../../dev/paths.ts";
import { taskPermissions } from "../../dev/server_process.ts";
import { productionAllocatorEnv } from "../../dev/systemd_unit.ts";
import { VERSION } from "../../server/version.ts";

/** The numeric user and group the image runs as: no name, no home. */
export const IMAGE_USER = "65532:65532";

/** Where the bundle sits inside the image. */
export const IMAGE_BUNDLE = "/app/ws-time.js";

/** Where the Deno runtime sits inside the image. */
export const IMAGE_DENO = "/usr/bin/deno";

/** Ports the image serves: the public one and the operator one. */
export const IMAGE_PORTS = { public: 8080, metrics: 9464 } as const;

/** The command line of `deno task start`, as deno.json has it. */
function startTask(): string {
  return String(
    JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.start,
  );
}

/** The container's entrypoint: the start task's flags on the bundle. */
export function imageEntrypoint(): string[] {
  const start = startTask();
  const v8 = start.split(/\s+/).filter((w) => w.startsWith("--v8-flags="));
  return [
    IMAGE_DENO,
    "run",
    "--no-config",
    // Several listeners on one port need it; without deno.json it is off.
    "--unstable-net",
    ...v8,
    ...taskPermissions("start"),
    IMAGE_BUNDLE,
  ];
}

/**
 * The image's environment: the unit's allocator, the start task's glibc
 * tunable, and ports that a non-root user may bind. The operator listener
 * stays on loopback unless the deployment opens it (the manifests do, for
 * Prometheus, with a NetworkPolicy in front).
 */
export function imageEnvironment(): Record<string, string> {
  const tunables = startTask().match(/GLIBC_TUNABLES=(\S+)/)?.[1];
  if (tunables === undefined) throw new Error("start task sets no tunables");
  return {
    ...productionAllocatorEnv(),
    GLIBC_TUNABLES: tunables,
    DENO_NO_UPDATE_CHECK: "1",
    // Deno finds no home for a numeric user; its caches stay in memory.
    DENO_DIR: "/nonexistent",
    PORT: String(IMAGE_PORTS.public),
    METRICS_PORT: String(IMAGE_PORTS.metrics),
    // A pod has no HAProxy beside it to read the agent.
    AGENT_PORT: "0",
  };
}

/** The shared objects an ELF file loads, as absolute host paths. */
async function sharedLibraries(file: string): Promise<string[]> {
  const out = await new Deno.Command("ldd", { args: [file] }).output();
  if (!out.success) throw new Error(`ldd ${file} failed`);
  return new TextDecoder().decode(out.stdout).split("\n").flatMap((line) => {
    const path = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x/)?.[1];
    return path === undefined ? [] : [path];
  });
}

async function run(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `${command} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** Options of {@link buildImage}. */
export interface BuildOptions {
  /** Image name and tag (default `ws-time:<version>`). */
  readonly tag?: string;
  /** Also write the image as an OCI archive to this path. */
  readonly archive?: string;
  /** Prints progress lines. */
  readonly log?: (line: string) => void;
}

/** Bundles main.ts and builds the image; returns its tag. */
export async function buildImage(options: BuildOptions = {}): Promise<string> {
  const log = options.log ?? (() => {});
  const tag = options.tag ?? `ws-time:${VERSION}`;
  const work = await Deno.makeTempDir({ prefix: "ws-time-image-" });
  let container = "";
  try {
    log("bundling main.ts");
    // By name, so the task's --allow-run=deno covers it.
    await run("deno", [
      "bundle",
      `--config=${ROOT}deno.json`,
      "--platform=deno",
      "--output",
      `${work}/ws-time.js`,
      `${ROOT}main.ts`,
    ]);
    const deno = await Deno.realPath(Deno.execPath());
    const env = imageEnvironment();
    const preload = env.LD_PRELOAD!;
    const libraries = new Set([
      ...await sharedLibraries(deno),
      preload,
      ...await sharedLibraries(preload),
    ]);
    container = await run("buildah", ["from", "scratch"]);
    log(`copying Deno ${Deno.version.deno} and ${libraries.size} libraries`);
    await run("buildah", [
      "copy",
      "--chmod",
      "0555",
      container,
      deno,
      IMAGE_DENO,
    ]);
    for (const library of libraries) {
      // The loader asks for the path ldd printed; keep it. The kernel
      // opens the ELF interpreter as it would a program: it must be
      // executable.
      await run("buildah", [
        "copy",
        "--chmod",
        "0555",
        container,
        library,
        library,
      ]);
    }
    await run("buildah", [
      "copy",
      "--chmod",
      "0444",
      container,
      `${work}/ws-time.js`,
      IMAGE_BUNDLE,
    ]);
    await run("buildah", [
      "config",
      "--user",
      IMAGE_USER,
      "--workingdir",
      "/app",
      "--entrypoint",
      JSON.stringify(imageEntrypoint()),
      "--cmd",
      "[]",
      "--stop-signal",
      "SIGTERM",
      "--port",
      String(IMAGE_PORTS.public),
      "--port",
      String(IMAGE_PORTS.metrics),
      ...Object.entries(env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
      "--label",
      `org.opencontainers.image.title=ws-time`,
      "--label",
      `org.opencontainers.image.version=${VERSION}`,
      container,
    ]);
    log(`committing ${tag}`);
    await run("buildah", ["commit", "--rm", container, tag]);
    container = "";
    if (options.archive !== undefined) {
      await run("buildah", [
        "push",
        tag,
        `oci-archive:${options.archive}:${tag}`,
      ]);
      log(`wrote ${options.archive}`);
    }
    return tag;
  } finally {
    if (container !== "") {
      await new Deno.Command("buildah", { args: ["rm", container] }).output();
    }
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) {
  const args = [...Deno.args];
  const value = (flag: string) => {
    const at = args.indexOf(flag);
    return at < 0 ? undefined : args[at + 1];
  };
  const tag = value("--tag");
  const archive = value("--archive");
  const built = await buildImage({
    ...(tag === undefined ? {} : { tag }),
    ...(archive === undefined ? {} : { archive }),
    // deno-lint-ignore no-console
    log: (line) => console.error(`image: ${line}`),
  });
  // deno-lint-ignore no-console
  console.log(built);
}
