/**
 * Free loopback ports for servers that tests start (never fixed ports).
 *
 * @module
 */

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
