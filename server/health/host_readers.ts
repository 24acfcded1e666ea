/**
 * Where the capacity sampler's traffic and link figures come from. The
 * host's view is `/proc/net/dev` (every non-loopback interface) and
 * `/sys/class/net/<if>/speed`; Deno only lets a program read those with
 * `--allow-all`, so under ws-time's narrow permissions the fallback is this
 * process's own WebSocket traffic plus an estimate of the framing and
 * TCP/IP bytes around each message. File access is passed in, so every
 * parser here runs in tests on fixed text.
 *
 * @module
 */

import type { Traffic, TrafficReader } from "./capacity_sampler.ts";

/** Reads a text file synchronously (Deno.readTextFileSync in production). */
export type ReadText = (path: string) => string;

/** Cumulative counts of this process's WebSocket traffic. */
export interface ProcessCounts {
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
}

/**
 * Bytes on the wire around one small WebSocket message: frame header (2-8),
 * TCP/IP with timestamps (52), Ethernet framing (38), and the peer's ACK
 * (an estimate: delayed ACKs often cover two segments).
 */
export const WIRE_OVERHEAD_BYTES = 100;

/** Per-interface byte counters parsed from `/proc/net/dev` text. */
export function parseProcNetDev(
  text: string,
): Map<string, Traffic> {
  const interfaces = new Map<string, Traffic>();
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // Receive bytes is the first column, transmit bytes the ninth.
    const bytesIn = fields[0];
    const bytesOut = fields[8];
    if (bytesIn === undefined || bytesOut === undefined) continue;
    if (!Number.isFinite(bytesIn) || !Number.isFinite(bytesOut)) continue;
    interfaces.set(name, { bytesIn, bytesOut });
  }
  return interfaces;
}

/** Sums every interface but loopback, which never leaves the host. */
export function externalTraffic(interfaces: Map<string, Traffic>): Traffic {
  let bytesIn = 0;
  let bytesOut = 0;
  for (const [name, traffic] of interfaces) {
    if (name === "lo") continue;
    bytesIn += traffic.bytesIn;
    bytesOut += traffic.bytesOut;
  }
  return { bytesIn, bytesOut };
}

/**
 * A reader of the host's traffic from `/proc/net/dev`, or null when the
 * file cannot be read (not Linux, or Deno's permissions forbid it).
 */
export function hostTrafficReader(read: ReadText): TrafficReader | null {
  try {
    parseProcNetDev(read("/proc/net/dev"));
  } catch {
    return null;
  }
  return () => externalTraffic(parseProcNetDev(read("/proc/net/dev")));
}

/**
 * The link speed the interfaces report, in Mbit/s: the sum over non-loopback
 * interfaces that report one (virtual NICs often say -1), else 0.
 */
export function reportedLinkMbps(read: ReadText): number {
  let names: string[];
  try {
    names = [...parseProcNetDev(read("/proc/net/dev")).keys()];
  } catch {
    return 0;
  }
  let total = 0;
  for (const name of names) {
    if (name === "lo" || !/^[\w.-]+$/.test(name)) continue;
    try {
      const mbps = Number(read(`/sys/class/net/${name}/speed`).trim());
      if (Number.isFinite(mbps) && mbps > 0) total += mbps;
    } catch {
      // Down or virtual interfaces refuse the read; they add nothing.
    }
  }
  return total;
}

/** This process's WebSocket traffic with the wire overhead estimated. */
export function processTrafficReader(
  counts: () => ProcessCounts,
): TrafficReader {
  return () => {
    const c = counts();
    return {
      bytesIn: c.bytesIn + c.messagesIn * WIRE_OVERHEAD_BYTES,
      bytesOut: c.bytesOut + c.messagesOut * WIRE_OVERHEAD_BYTES,
    };
  };
}
