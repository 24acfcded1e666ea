/**
 * A real Redis Cluster for tests and the bench: three primaries and
 * three replicas, each a redis-server on its own loopback port, joined by
 * `redis-cli --cluster create`, with a password on every node and a short
 * `cluster-node-timeout` so a failover happens within seconds. The faults
 * (each node on a host of its own) are the fault bed's: dev/fault_bed.ts.
 *
 * @module
 */

import {
  clusterNodeArgs,
  loopbackRedisArgs,
  reshardArgs,
} from "./redis_args.ts";
import { Child } from "./child.ts";
import { freePort } from "./ports.ts";
import { redisCall } from "./redis.ts";
import { waitFor } from "./timing.ts";

/** One node of a test cluster. */
export interface ClusterNode {
  readonly port: number;
  /** `redis://:password@127.0.0.1:port`. */
  readonly url: string;
  child: Child;
}

/** A running test cluster. */
export interface RedisClusterProcess extends AsyncDisposable {
  readonly nodes: readonly ClusterNode[];
  /** The nodes' password. */
  readonly password: string;
  /** `host:port,...` of every node, as `--redis-cluster` takes it. */
  readonly seeds: string;
  /** A URL carrying only the password, for `--redis` beside the seeds. */
  readonly credentials: string;
  /** The node at `port` now acting as a primary, by CLUSTER NODES. */
  primaries(): Promise<number[]>;
  /** Waits until every live node reports `cluster_state:ok`. */
  healthy(timeoutMs?: number): Promise<void>;
  /**
   * Moves `slots` slots from the primary at `from` to the primary at `to`
   * with redis-cli's resharding (key by key, by MIGRATE).
   */
  reshard(from: number, to: number, slots: number): Promise<void>;
}

/** Options of {@link startRedisCluster}. */
export interface ClusterOptions {
  /** The nodes' password. */
  readonly password?: string;
  /** More redis-server arguments for every node. */
  readonly args?: readonly string[];
}

/** The node timeout of test clusters: a failover within a few seconds. */
export const CLUSTER_NODE_TIMEOUT_MS = 1000;

async function cli(...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`redis-cli ${args[0]}: ${text}`);
  return text;
}

/** Starts six nodes and joins them as three shards of a primary and a replica. */
export async function startRedisCluster(
  options: ClusterOptions = {},
): Promise<RedisClusterProcess> {
  const password = options.password ?? "cluster-test-password-0123456789";
  const dir = await Deno.makeTempDir({ prefix: "ws-time-cluster-" });
  const nodes: ClusterNode[] = [];
  const start = (port: number) =>
    new Child("redis-server", [
      ...loopbackRedisArgs(port),
      ...clusterNodeArgs(
        `${dir}/nodes-${port}.conf`,
        CLUSTER_NODE_TIMEOUT_MS,
        password,
      ),
      "--dir",
      dir,
      ...options.args ?? [],
    ], { cwd: dir });
  const stop = async () => {
    for (const node of nodes) await node.child[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    for (let i = 0; i < 6; i++) {
      const port = freePort();
      const child = start(port);
      nodes.push({
        port,
        url: `redis://:${password}@127.0.0.1:${port}`,
        child,
      });
    }
    for (const node of nodes) {
      await node.child.waitForLine(/Ready to accept connections/, 10_000);
    }
    await cli(
      "-a",
      password,
      "--no-auth-warning",
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const cluster: RedisClusterProcess = {
    nodes,
    password,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(","),
    credentials: `redis://:${password}@127.0.0.1`,
    async primaries() {
      for (const node of nodes) {
        try {
          const text = String(
            await redisCall(node.url, "CLUSTER", "NODES"),
          );
          return text.split("\n").flatMap((line) => {
            const [, address, flags] = line.split(" ");
            const set = (flags ?? "").split(",");
            const live = set.includes("master") && !set.includes("fail") &&
              !set.includes("fail?");
            return live ? [Number(/:(\d+)@/.exec(address ?? "")?.[1])] : [];
          });
        } catch {
          // A dead or frozen node: ask the next.
        }
      }
      return [];
    },
    async healthy(timeoutMs = 20_000) {
      await waitFor(
        async () => {
          for (const node of nodes) {
            let timer: ReturnType<typeof setTimeout> | undefined;
            const info = await Promise.race([
              redisCall(node.url, "CLUSTER", "INFO").catch(() => ""),
              new Promise<string>((r) => {
                timer = setTimeout(() => r("frozen"), 500);
              }),
            ]).finally(() => clearTimeout(timer));
            if (info === "" || info === "frozen") continue;
            if (!/cluster_state:ok/.test(String(info))) return false;
          }
          return true;
        },
        timeoutMs,
        "the cluster to report ok",
      );
    },
    async reshard(from, to, slots) {
      const id = async (port: number) =>
        String(
          await redisCall(
            `redis://:${password}@127.0.0.1:${port}`,
            "CLUSTER",
            "MYID",
          ),
        );
      await cli(
        "-a",
        password,
        "--no-auth-warning",
        "--cluster",
        ...reshardArgs(
          `127.0.0.1:${from}`,
          await id(from),
          await id(to),
          slots,
        ),
      );
    },
    [Symbol.asyncDispose]: stop,
  };
  await cluster.healthy();
  return cluster;
}
