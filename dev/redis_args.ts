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
