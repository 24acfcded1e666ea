/**
 * Real redis-server processes for tests: one on a free loopback port, two
 * ws-time servers sharing one, and a one-shot command to look at (or wipe)
 * what the servers wrote.
 *
 * @module
 */

import { createClient } from "@redis/client";
import { loopbackRedisArgs } from "./redis_args.ts";
import { Child } from "./child.ts";
import { freePort } from "./ports.ts";
import { type ServerProcess, startServer } from "./server_process.ts";

/** A redis-server with no persistence on a free loopback port. */
export interface RedisProcess extends AsyncDisposable {
  readonly child: Child;
  readonly port: number;
  readonly url: string;
}

/**
 * Starts Debian's redis-server without persistence; stops on dispose.
 * `args` adds server options (say `["--requirepass", "pw"]`).
 */
export async function startRedis(
  port = freePort(),
  args: string[] = [],
): Promise<RedisProcess> {
  const child = new Child("redis-server", [
    ...loopbackRedisArgs(port),
    "--protected-mode",
    "no",
    ...args,
  ]);
  await child.waitForLine(/Ready to accept connections/, 10_000);
  return {
    child,
    port,
    url: `redis://127.0.0.1:${port}`,
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  };
}

/** Two ws-time servers sharing one redis-server, as in production. */
export interface SharedPair extends AsyncDisposable {
  readonly redis: RedisProcess;
  readonly a: ServerProcess;
  readonly b: ServerProcess;
}

/** Starts a redis-server and two servers using it with `secret`. */
export async function startSharedPair(secret: string): Promise<SharedPair> {
  const redis = await startRedis();
  const env = { REDIS_URL: redis.url, SESSION_SECRET: secret };
  const started: AsyncDisposable[] = [redis];
  const stop = async () => {
    for (const item of started.reverse()) await item[Symbol.asyncDispose]();
  };
  try {
    const a = await startServer({ env });
    started.push(a);
    const b = await startServer({ env });
    started.push(b);
    return { redis, a, b, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Sends one command to the Redis at `url` on a fresh connection and returns
 * the reply: how tests look at (or wipe) what the servers wrote.
 */
export async function redisCall(
  url: string,
  ...args: string[]
): Promise<unknown> {
  const client = createClient({
    url,
    socket: { reconnectStrategy: false },
    disableClientInfo: true,
    maintNotifications: "disabled",
  });
  client.on("error", () => {});
  await client.connect();
  try {
    return await client.sendCommand(args);
  } finally {
    client.destroy();
  }
}
