/**
 * The store scenario: N connections held on a server backed by Redis, and
 * the Redis commands they cost at steady state, counted by Redis itself
 * (INFO commandstats) over the window, per connection per minute.
 *
 * @module
 */

import { startRedis } from "../dev/redis.ts";
import { startRedisCluster } from "../dev/redis_cluster.ts";
import { sleep } from "../dev/timing.ts";
import { launchServer, requireRedisStore } from "./server_launcher.ts";
import { type LoadOptions, startFleet } from "./steady.ts";

/** What Redis saw. */
export interface StoreResult {
  readonly profile: string;
  /** "redis" (one node) or "cluster" (three shards). */
  readonly store: string;
  readonly serverArgs: readonly string[];
  readonly connections: number;
  readonly held: number;
  readonly holdS: number;
  /** Calls per command over the window. */
  readonly commands: Record<string, number>;
  readonly commandsPerConnPerMinute: number;
}

/** Calls per Redis command so far (INFO commandstats, through redis-cli). */
export async function commandStats(
  port: number,
  password = "",
): Promise<Record<string, number>> {
  const output = await new Deno.Command("redis-cli", {
    args: [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      ...(password ? ["--no-auth-warning", "-a", password] : []),
      "INFO",
      "commandstats",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `redis-cli failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  const stats: Record<string, number> = {};
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match) stats[match[1]!] = Number(match[2]);
  }
  return stats;
}

/**
 * Runs the store scenario on one Redis, or on a Redis Cluster of three
 * shards (every primary's commands summed; replicas only copy them).
 */
export async function runStore(
  options: LoadOptions,
  store: "redis" | "cluster" = "redis",
): Promise<StoreResult> {
  await using redis = store === "redis" ? await startRedis() : null;
  await using cluster = store === "cluster" ? await startRedisCluster() : null;
  await using server = await launchServer({
    settings: options.settings,
    connections: options.connections,
    args: [
      ...(redis ? ["--redis", redis.url] : []),
      ...(cluster
        ? ["--redis-cluster", cluster.seeds, "--redis", cluster.credentials]
        : []),
      "--session-secret",
      crypto.randomUUID() + crypto.randomUUID(),
    ],
  });
  await requireRedisStore(server);
  await using fleet = startFleet(options, server.port);
  await fleet.ramp(Math.max(60_000, options.connections * 20));
  // Session creation is not steady state: let its writes finish first.
  await sleep(5000);
  // A failover during the run would move the count: the primaries are
  // read once, before the window.
  const ports = redis ? [redis.port] : await cluster!.primaries();
  const password = cluster?.password ?? "";
  const stats = async () => {
    const sum: Record<string, number> = {};
    for (const port of ports) {
      for (
        const [name, calls] of Object.entries(
          await commandStats(port, password),
        )
      ) {
        sum[name] = (sum[name] ?? 0) + calls;
      }
    }
    return sum;
  };
  const before = await stats();
  for (let s = 0; s < options.holdS; s++) {
    await sleep(1000);
    options.onProgress?.(`store: hold ${s + 1}/${options.holdS} s`);
  }
  const after = await stats();
  const window = await fleet.report();
  const commands: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of Object.entries(after)) {
    // The bench's own INFO calls are not the server's traffic, nor are a
    // replica's acknowledgements of what it copied.
    if (name === "info" || name === "replconf") continue;
    const delta = calls - (before[name] ?? 0);
    if (delta > 0) {
      commands[name] = delta;
      total += delta;
    }
  }
  return {
    profile: options.settings.name,
    store,
    serverArgs: options.settings.serverArgs,
    connections: options.connections,
    held: window.open,
    holdS: options.holdS,
    commands,
    commandsPerConnPerMinute: Math.round(
      (total / Math.max(window.open, 1) / (options.holdS / 60)) * 1000,
    ) / 1000,
  };
}
