import assert from "node:assert/strict";
import { buildImage, IMAGE_USER } from "../../deploy/container/build.ts";
import { Child } from "../../dev/child.ts";
import {
  containerEnvironment,
  kitObject,
  kitObjects,
} from "../../dev/kubernetes_kit.ts";
import { freePort } from "../../dev/ports.ts";
import { redisCall, startRedis } from "../../dev/redis.ts";
import { waitFor } from "../../dev/timing.ts";
import { TokenSigner } from "../../server/sessions/token.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";

/** Why the image cannot be built or run here, or null when it can. */
function unavailable(): string | null {
  for (const tool of ["buildah", "podman"]) {
    try {
      new Deno.Command(tool, { args: ["--version"], stdout: "null" })
        .outputSync();
    } catch {
      return `${tool} is not installed`;
    }
  }
  return null;
}

const reason = unavailable();
if (reason !== null) {
  // deno-lint-ignore no-console
  console.error(`container image test ignored: ${reason}`);
}

/** Whether runc is installed: crun refuses hybrid cgroup hosts like CI's. */
function runtimeFlags(): string[] {
  try {
    new Deno.Command("runc", { args: ["--version"], stdout: "null" })
      .outputSync();
    return ["--runtime", "runc"];
  } catch {
    return [];
  }
}

async function podman(...args: string[]): Promise<string> {
  const out = await new Deno.Command("podman", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(
    out.success,
    `podman ${args[0]}: ${new TextDecoder().decode(out.stderr)}`,
  );
  return text;
}

/**
 * Another process's /proc file: Deno reads those only under --allow-all,
 * which the suite does not grant, so through cat.
 */
async function procFile(pid: string, name: string): Promise<string> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/${name}`] })
    .output();
  assert.ok(out.success, `cannot read /proc/${pid}/${name}`);
  return new TextDecoder().decode(out.stdout);
}

/**
 * Lays out a secret the way the kubelet mounts one: the file is a link
 * through `..data` to a timestamped folder, group-readable by fsGroup.
 */
async function kubeletSecretDir(content: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ws-time-secret-" });
  const stamp = `..2026_12_03_20_00_00.000000001`;
  await Deno.mkdir(`${dir}/${stamp}`);
  await Deno.writeTextFile(`${dir}/${stamp}/session-secret`, content);
  const [uid, gid] = IMAGE_USER.split(":").map(Number);
  await Deno.chown(`${dir}/${stamp}/session-secret`, 0, gid!);
  await Deno.chmod(`${dir}/${stamp}/session-secret`, 0o440);
  await Deno.symlink(stamp, `${dir}/..data`);
  await Deno.symlink("..data/session-secret", `${dir}/session-secret`);
  assert.notEqual(uid, 0);
  await Deno.chmod(dir, 0o755);
  return dir;
}

Deno.test({
  name:
    "deno task image: the image runs as the Deployment runs it, non-root on a read-only root, and drains on SIGTERM",
  ignore: reason !== null,
  fn: async () => {
    const tag = `localhost/ws-time-test:${Deno.pid}`;
    const name = `ws-time-test-${Deno.pid}`;
    await buildImage({ tag });
    await using redis = await startRedis();
    const current = "kubernetes-test-secret-0123456789abcdefghij";
    const previous = "kubernetes-old-secret-9876543210zyxwvutsrq";
    const secrets = await kubeletSecretDir(`${current}\n${previous}\n`);
    try {
      // The Deployment's own environment and security settings; only what
      // a cluster supplies (addresses, the store, the pod's name) and the
      // drain's length (to keep the test short) differ.
      const objects = kitObjects();
      const deployment = kitObject(objects, "Deployment");
      const env = containerEnvironment(
        deployment,
        kitObject(objects, "ConfigMap", "base/configmap.yaml"),
      );
      delete env.REDIS_SENTINELS;
      delete env.REDIS_MASTER_NAME;
      const port = freePort();
      const metricsPort = freePort();
      Object.assign(env, {
        NAME: "ws-time-7d9f-abcde",
        HOST: "127.0.0.1",
        PORT: String(port),
        METRICS_HOST: "127.0.0.1",
        METRICS_PORT: String(metricsPort),
        REDIS_URL: redis.url,
        DRAIN_DELAY: "1s",
        DRAIN_HANDOVER: "0s",
        DRAIN_PERIOD: "1s",
        MOVE_WINDOW: "1s",
      });
      const container = deployment.spec.template.spec.containers[0];
      const mount = container.volumeMounts[0].mountPath;
      await podman(
        ...runtimeFlags(),
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        container.resources.limits.memory.replace("Mi", "m"),
        // This machine's hard limits are below podman's defaults.
        "--ulimit",
        "nofile=16384:16384",
        "--ulimit",
        "nproc=4096:4096",
        "--volume",
        `${secrets}:${mount}:ro`,
        ...Object.entries(env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
        tag,
      );
      try {
        await using logs = new Child("podman", ["logs", "--follow", name]);
        await logs.waitForLine(/listening on/, 20_000);
        await logs.waitForLine(/redis connected/, 10_000);

        // Non-root, on a root file system mounted read-only.
        const pid = await podman("inspect", "--format", "{{.State.Pid}}", name);
        const status = await procFile(pid, "status");
        const uid = IMAGE_USER.split(":")[0];
        assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s`, "m"));
        const root = (await procFile(pid, "mountinfo"))
          .split("\n").find((l) => l.split(" ")[4] === "/");
        assert.match(root ?? "", /^\S+ \S+ \S+ \S+ \/ ro[, ]/, root);

        const page = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(page.status, 200);
        await page.body?.cancel();
        const ready = await fetch(`http://127.0.0.1:${port}/healthcheck`);
        assert.equal(ready.status, 200);
        assert.equal(await ready.text(), "ok\n");
        const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        assert.match(await metrics.text(), /^wstime_build_info\{/m);

        // Line 2 of the secret file still verifies: a session signed before
        // a rotation resumes with its count.
        const start = Date.now() - 100_000;
        const { token } = new TokenSigner(previous).issue(start, Date.now());
        await using resumed = new RecordingSocket(
          `ws://127.0.0.1:${port}/?session=${token}`,
          "ws-time.v1",
        );
        await resumed.waitForMessages(2);
        const welcome = resumed.json[0]!;
        assert.equal(welcome.server, env.NAME);
        assert.equal(welcome.resumed, true);
        assert.ok(Number(welcome.seconds) >= 99, JSON.stringify(welcome));
        const keys = await redisCall(redis.url, "KEYS", "*") as string[];
        assert.ok(keys.some((k) => k.includes(":session:")), keys.join(", "));

        // `podman stop` is the kubelet's SIGTERM: a hint, a 1001 close, exit 0.
        const stopped = Date.now();
        await podman("stop", "--time", "75", name);
        await waitFor(() => resumed.closeEvent, 5000, "the drain close");
        assert.equal(resumed.closeEvent!.code, 1001);
        assert.ok(resumed.json.some((m) => m.type === "drain"));
        assert.equal(
          await podman("inspect", "--format", "{{.State.ExitCode}}", name),
          "0",
        );
        assert.ok(Date.now() - stopped < 15_000, "stopped by the drain");
        await logs.waitForLine(/"msg":"drained"|drained/, 1000);
      } finally {
        await podman("rm", "--force", "--time", "0", name);
      }
    } finally {
      await Deno.remove(secrets, { recursive: true });
      await new Deno.Command("podman", { args: ["rmi", "--force", tag] })
        .output();
    }
  },
});
