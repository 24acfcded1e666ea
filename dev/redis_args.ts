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
 * the shards independent of each other, and a password it requires of
 * clients and gives its primary.
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
  ];
}

/**
 * redis-cli's `--cluster` arguments that move `slots` slots from the
 * primary `fromId` (reached at `address`) to the primary `toId`.
 */
export function reshardArgs(
  address: string,
  fromId: string,
  toId: string,
  slots: number,
): string[] {
  return [
    "reshard",
    address,
    "--cluster-from",
    fromId,
    "--cluster-to",
    toId,
    "--cluster-slots",
    String(slots),
    "--cluster-yes",
  ];
}
