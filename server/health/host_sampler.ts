/**
 * The capacity sampler as an instance runs it: the host's traffic counters
 * when Deno may read them (only under `--allow-all`), else this process's
 * own WebSocket traffic; the link speed from the flag or the interfaces;
 * the memory limit from the flag, else 80% of the container's memory limit
 * (its cgroup) or of RAM, whichever is lower. Probes it cannot feed are
 * switched off with a warning rather than guessed.
 *
 * @module
 */

import process from "node:process";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { CapacitySampler } from "./capacity_sampler.ts";
import {
  hostTrafficReader,
  type ProcessCounts,
  processTrafficReader,
  reportedLinkMbps,
} from "./host_readers.ts";

/** What the host sampler is built from. */
export interface HostSamplerOptions {
  /** Link capacity in Mbit/s; 0 reads it from the interfaces. */
  readonly linkMbps: number;
  /** Memory that counts as full, in MiB; 0 = 80% of RAM. */
  readonly memoryLimitMb: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** This process's WebSocket traffic so far (read lazily). */
  readonly ownTraffic: () => ProcessCounts;
}

/** The sampler and which traffic source it reads ("host" or "process"). */
export function createHostSampler(
  options: HostSamplerOptions,
): { sampler: CapacitySampler; source: "host" | "process" } {
  const { logger } = options;
  const read = (path: string) => Deno.readTextFileSync(path);
  const host = hostTrafficReader(read);
  const linkMbps = options.linkMbps > 0
    ? options.linkMbps
    : reportedLinkMbps(read);
  if (linkMbps === 0) {
    logger.warn(
      "network probe off: the link capacity is unknown, set --link-mbps",
    );
  }
  const memory = resolveMemoryLimit(options.memoryLimitMb, {
    ram: () => Deno.systemMemoryInfo().total,
    constrained: () => process.constrainedMemory(),
  });
  if (memory.source === "none") {
    logger.warn("memory probe off: set --memory-limit-mb", {
      error: memory.error,
    });
  } else {
    logger.info("memory limit", {
      limitMb: Math.round(memory.bytes / 1048576),
      source: memory.source,
    });
  }
  const sampler = new CapacitySampler({
    clock: options.clock,
    traffic: host ?? processTrafficReader(options.ownTraffic),
    linkBytesPerSecond: linkMbps * 1e6 / 8,
    memory: () => Deno.memoryUsage().rss,
    memoryLimitBytes: memory.bytes,
  });
  return { sampler, source: host ? "host" : "process" };
}

/** Where the memory limit came from: the flag, the cgroup, RAM or nowhere. */
export type MemoryLimitSource = "flag" | "cgroup" | "ram" | "none";

/** What counts as full memory, in bytes, and where it came from. */
export interface MemoryLimit {
  readonly bytes: number;
  readonly source: MemoryLimitSource;
  /** Why no limit could be read, when source is "none". */
  readonly error?: string;
}

/** Share of the host's or container's memory that counts as full. */
const MEMORY_SHARE = 0.8;

/**
 * The memory that counts as full: `--memory-limit-mb` when set, else 80% of
 * the lower of RAM and the cgroup's limit. A container is killed at its
 * cgroup limit, not at the host's RAM, so reading RAM alone would report
 * spare memory right up to the OOM kill.
 */
export function resolveMemoryLimit(
  flagMb: number,
  read: {
    /** The host's RAM in bytes. */
    readonly ram: () => number;
    /** The cgroup's limit in bytes (v1 or v2); 0 or huge when unlimited. */
    readonly constrained: () => number;
  },
): MemoryLimit {
  if (flagMb > 0) return { bytes: flagMb * 1048576, source: "flag" };
  let ram: number;
  try {
    ram = read.ram();
  } catch (error) {
    return { bytes: 0, source: "none", error: String(error) };
  }
  let cgroup = 0;
  try {
    cgroup = read.constrained();
  } catch {
    // Unreadable cgroup: RAM is the only bound left.
  }
  // An unlimited cgroup reads as 2^63 rounded down to a page; anything at
  // or above RAM bounds nothing.
  if (Number.isFinite(cgroup) && cgroup > 0 && cgroup < ram) {
    return { bytes: Math.floor(cgroup * MEMORY_SHARE), source: "cgroup" };
  }
  return { bytes: Math.floor(ram * MEMORY_SHARE), source: "ram" };
}
