import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { redisCall, startRedis } from "../../dev/redis.ts";
import { SERVER_PERMISSIONS } from "../../dev/server_process.ts";

async function build(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(
    output.code,
    0,
    new TextDecoder().decode(output.stderr),
  );
}

// With Redis, so the artifact proves node-redis travels inside it and runs
// under the task's exact permission flags.
async function serveAndCheck(command: string, args: string[], cwd: string) {
  const port = freePort();
  await using redis = await startRedis();
  await using child = new Child(command, [
    ...args,
    "--hostname",
    "127.0.0.1",
    "--port",
    String(port),
    "--name",
    "artifact",
  ], {
    cwd,
    env: {
      REDIS_URL: redis.url,
      SESSION_SECRET: "artifact-test-secret-0123456789abcdef",
    },
  });
  await child.waitForLine(/listening on/, 20_000);
  await child.waitForLine(/redis connected/);
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>ws-time<\/title>/);
  const script = await fetch(`http://127.0.0.1:${port}/ws_time_client.js`);
  assert.equal(script.status, 200);
  await script.body?.cancel();
  await using socket = new RecordingSocket(
    `ws://127.0.0.1:${port}/`,
    "ws-time.v1",
  );
  await socket.waitForMessages(2);
  assert.equal(socket.json[0]!.server, "artifact");
  assert.equal(socket.json[1]!.seconds, 1);
  const keys = await redisCall(redis.url, "KEYS", "*") as string[];
  assert.equal(keys.filter((k) => k.includes(":session:")).length, 1);
  // The instance also tells the fleet it is there.
  assert.ok(keys.includes("ws-time:fleet"), keys.join(", "));
}

Deno.test("deno task bundle: the bundle runs alone from an empty directory and serves client and WebSockets", async () => {
  const work = await Deno.makeTempDir({ prefix: "ws-time-bundle-" });
  const empty = await Deno.makeTempDir({ prefix: "ws-time-empty-" });
  try {
    await build([
      "bundle",
      "--platform=deno",
      "--output",
      `${work}/ws-time.js`,
      "main.ts",
    ]);
    await Deno.copyFile(`${work}/ws-time.js`, `${empty}/ws-time.js`);
    assert.deepEqual([...Deno.readDirSync(empty)].map((e) => e.name), [
      "ws-time.js",
    ]);
    await serveAndCheck(Deno.execPath(), [
      "run",
      "--no-config",
      ...SERVER_PERMISSIONS,
      "ws-time.js",
    ], empty);
    // Outside deno.json the unstable net API is off: SO_REUSEPORT flags
    // get a startup error naming them, not Deno's exit 70.
    const bundle = (flags: string[]) =>
      new Child(Deno.execPath(), [
        "run",
        "--no-config",
        ...flags,
        ...SERVER_PERMISSIONS,
        "ws-time.js",
        "--hostname",
        "127.0.0.1",
        "--port",
        String(freePort()),
        "--listeners",
        "2",
      ], { cwd: empty });
    await using refused = bundle([]);
    assert.equal((await refused.finished()).code, 2);
    assert.ok(
      refused.lines.some((l) =>
        /--listeners 2 needs Deno's unstable net API: run with --unstable-net/
          .test(l)
      ),
      refused.lines.join("\n"),
    );
    await using shared = bundle(["--unstable-net"]);
    await shared.waitForLine(/listening on/, 20_000);
  } finally {
    await Deno.remove(work, { recursive: true });
    await Deno.remove(empty, { recursive: true });
  }
});

const denort = Deno.env.get("DENORT_BIN") ?? "";

Deno.test({
  name: denort === ""
    ? "deno task compile: the binary serves client and WebSockets (skipped: DENORT_BIN is not set; deno compile must download denort, unreachable here)"
    : "deno task compile: the binary serves client and WebSockets",
  ignore: denort === "",
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "ws-time-compile-" });
    try {
      const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
      const task: string = config.tasks.compile;
      const flags = task.split(" ").filter((w) => w.startsWith("--allow-"));
      await build([
        "compile",
        ...flags,
        "--output",
        `${work}/ws-time`,
        "main.ts",
      ], { DENORT_BIN: denort });
      await serveAndCheck(`${work}/ws-time`, [], work);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
