/**
 * The redis-server command line for throwaway loopback instances (the local
 * cluster and the tests): no persistence, bound to 127.0.0.1 only.
 *
 * @module
 */

/** Arguments for a loopback redis-server on `port` that never writes to disk. */
export function loopbackRedisArgs(port: number): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ];
}

/**
 * The flags of a test cluster's node: its own nodes.conf, a node timeout,
 * the shards independent of each other, a password it requires of
 * clients and gives its primary, and a first sync that starts at once.
 */
export function clusterNodeArgs(
  configFile: string,
  nodeTimeoutMs: number,
  password: string,
): string[] {
  return [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    configFile,
    "--cluster-node-timeout",
    String(nodeTimeoutMs),
    // A shard without a primary must not stop the others (the managed
    // services run so too).
    "--cluster-require-full-coverage",
    "no",
    "--requirepass",
    password,
    "--masterauth",
    password,
    // Redis 7 waits 5 s before a diskless first sync, for more replicas to
    // join it; a replica not yet synced when its primary dies never stands
    // for election, so a fault soon after the start would wait forever.
    "--repl-diskless-sync-delay",
    "0",
  ];
}
