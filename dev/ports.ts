/**
 * Free loopback ports for servers that tests start (never fixed ports).
 *
 * The ports come from below the kernel's ephemeral range (Linux: 32768 up),
 * not from a bind to port 0. A port bound and released at once is free only
 * for a moment: the kernel hands the same low ephemeral ports to the next
 * bind to port 0 in any process (Prometheus, a server on port 0, another
 * test), and a suite run once lost a server's agent port that way between
 * the pick and the listen. Below the range only another pick can take it.
 * Redis Cluster nodes also bind their port + 10,000, which stays below the
 * range too.
 *
 * @module
 */

/** Lowest and one past the highest port handed out. */
const LOW = 10_000;
const HIGH = 22_700;

/** Ports this process has handed out: never twice. */
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(hostname = "127.0.0.1"): number {
  for (let tries = 0; tries < 500; tries++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    try {
      Deno.listen({ hostname, port }).close();
    } catch {
      // Taken: try another.
      continue;
    }
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port on ${hostname} in ${LOW}-${HIGH - 1}`);
}
