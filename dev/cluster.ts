/**
 * `deno task cluster`: a whole deployment on loopback. Starts N ws-time
 * instances (default 3) sharing one token secret, Redis when `redis-server`
 * is installed, and HAProxy running `deploy/haproxy.cfg` (rendered with
 * local ports), then prints the URL. Open it, kill an instance (`kill -9`
 * or, for a graceful drain, `kill -TERM` on a printed pid) and watch the
 * session carry on elsewhere. Ctrl-C stops everything.
 *
 * Ports, from `--port` P (default 8080): HAProxy P, its stats page P+1,
 * instance i (1..N) on P+10+i with its agent on P+20+i and its operator
 * port (/metrics, health details) on P+40+i, Redis on P+30.
 * Arguments after `--` go to every instance. Stop it with Ctrl-C or SIGTERM:
 * a SIGKILLed cluster cannot stop its children.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { renderHaproxyConfig } from "./haproxy_config.ts";
import { loopbackRedisArgs } from "./redis_args.ts";

const ROOT = new URL("../", import.meta.url);
const encoder = new TextEncoder();

/** Permission flags of an instance: exactly those of `deno task start`. */
async function serverPermissions(): Promise<string[]> {
  const tasks = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  ).tasks;
  return (tasks.start as string).split(" ").filter((word) =>
    word.startsWith("--allow-")
  );
}

interface Proc {
  readonly label: string;
  readonly process: Deno.ChildProcess;
  /** Signal that stops it politely. */
  readonly stopSignal: Deno.Signal;
  readonly done: Promise<void>;
}

interface SpawnOptions {
  /** Signal that stops the process politely. */
  readonly stop: Deno.Signal;
  /** Written to stdin, if given. */
  readonly input?: string;
  /** Relay stdout (default true). */
  readonly stdout?: boolean;
}

/** Spawns `command`, prefixing each output line with `[label]`. */
function spawn(
  label: string,
  command: string,
  args: string[],
  options: SpawnOptions,
): Proc {
  const { input } = options;
  const process = new Deno.Command(command, {
    args,
    cwd: ROOT,
    stdin: input === undefined ? "null" : "piped",
    stdout: options.stdout === false ? "null" : "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const writer = process.stdin.getWriter();
    writer.write(encoder.encode(input)).then(() => writer.close()).catch(
      () => {},
    );
  }
  const relay = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) say(`[${label}] ${line}`);
    }
    if (rest !== "") say(`[${label}] ${rest}`);
  };
  const done = Promise.all([
    options.stdout === false ? null : relay(process.stdout),
    relay(process.stderr),
    process.status,
  ]).then(() => {});
  return { label, process, stopSignal: options.stop, done };
}

function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/** Polls `url` until it answers, at most `timeoutMs`. */
async function waitForHttp(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return false;
}

function redisAvailable(): boolean {
  try {
    new Deno.Command("redis-server", { args: ["--version"] }).outputSync();
    return true;
  } catch {
    return false;
  }
}

/** Runs the cluster until Ctrl-C or SIGTERM; returns the exit code. */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      instances: { type: "string", default: "3" },
      port: { type: "string", default: "8080" },
    },
    allowPositionals: true,
  });
  const count = Number(values.instances);
  const base = Number(values.port);
  if (!Number.isInteger(count) || count < 1 || count > 9) {
    say(`cluster: Invalid --instances "${values.instances}": expected 1-9`);
    return 2;
  }
  if (!Number.isInteger(base) || base < 1 || base > 65500) {
    say(`cluster: Invalid --port "${values.port}": expected 1-65500`);
    return 2;
  }
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const procs: Proc[] = [];
  const redisArgs: string[] = [];
  if (redisAvailable()) {
    const port = base + 30;
    procs.push(spawn("redis", "redis-server", [
      ...loopbackRedisArgs(port),
      "--loglevel",
      "warning",
    ], { stop: "SIGTERM" }));
    redisArgs.push("--redis", `redis://127.0.0.1:${port}`);
  } else {
    say("cluster: redis-server not found; sessions resume by token alone");
  }
  const backends = Array.from({ length: count }, (_, i) => ({
    name: `ws${i + 1}`,
    port: base + 11 + i,
    agentPort: base + 21 + i,
    metricsPort: base + 41 + i,
  }));
  const permissions = await serverPermissions();
  for (const b of backends) {
    procs.push(spawn(b.name, "deno", [
      "run",
      ...permissions,
      "main.ts",
      "--hostname",
      "127.0.0.1",
      "--port",
      String(b.port),
      "--agent-port",
      String(b.agentPort),
      // As the shipped units run it: metrics off the public port.
      "--metrics-port",
      String(b.metricsPort),
      "--name",
      b.name,
      "--session-secret",
      secret,
      // HAProxy on loopback is the peer; clients come from X-Forwarded-For.
      "--trusted-proxies",
      "127.0.0.1",
      // Loopback has no speed to read; this keeps the network probe on.
      "--link-mbps",
      "1000",
      ...redisArgs,
      ...positionals,
    ], { stop: "SIGINT" }));
  }
  const stop = Promise.withResolvers<void>();
  const onSignal = () => stop.resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    // HAProxy starts once the instances answer, so the URL works at once.
    const up = await Promise.race([
      Promise.all(
        backends.map((b) =>
          waitForHttp(`http://127.0.0.1:${b.port}/healthz`, 20_000)
        ),
      ),
      stop.promise.then((): boolean[] => []),
    ]);
    if (up.length === 0) return 0;
    if (up.includes(false)) {
      say("cluster: an instance did not start; see above");
    }
    const config = renderHaproxyConfig(
      await Deno.readTextFile(new URL("deploy/haproxy.cfg", ROOT)),
      { port: base, statsPort: base + 1, backends },
    );
    // The config goes in through stdin: the cluster needs no write access.
    // Its stderr carries the same server state changes as its log.
    procs.push(spawn("haproxy", "haproxy", ["-db", "-f", "/dev/stdin"], {
      stop: "SIGTERM",
      input: config,
      stdout: false,
    }));
    if (!await waitForHttp(`http://127.0.0.1:${base + 1}/stats`, 10_000)) {
      say("cluster: haproxy did not start; see above");
      return 1;
    }
    for (const [i, b] of backends.entries()) {
      const proc = procs.find((p) => p.label === b.name)!;
      say(
        `cluster: ${b.name} pid ${proc.process.pid} on :${b.port} (agent :${b.agentPort}, metrics :${b.metricsPort})${
          up[i] ? "" : " NOT UP"
        }`,
      );
    }
    say(`cluster: open http://127.0.0.1:${base}/`);
    say(`cluster: HAProxy stats at http://127.0.0.1:${base + 1}/stats`);
    say(
      "cluster: kill -9 <pid> loses an instance, kill -TERM <pid> drains it; Ctrl-C stops all",
    );
    await stop.promise;
    return 0;
  } catch (error) {
    say(`cluster: ${(error as Error).message}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await stopAll(procs);
  }
}

/** Asks every process to stop, then kills what is left after 5 s. */
async function stopAll(procs: Proc[]): Promise<void> {
  for (const proc of procs) signal(proc, proc.stopSignal);
  const timer = setTimeout(() => {
    for (const proc of procs) signal(proc, "SIGKILL");
  }, 5000);
  await Promise.all(procs.map((p) => p.done));
  clearTimeout(timer);
  say("cluster: stopped");
}

function signal(proc: Proc, name: Deno.Signal): void {
  try {
    proc.process.kill(name);
  } catch {
    // Already gone (Ctrl-C reached it first).
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
