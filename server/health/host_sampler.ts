/**
 * The capacity sampler as an instance runs it: the host's traffic counters
 * when Deno may read them (only under `--allow-all`), else this process's
 * own WebSocket traffic; the link speed from the flag or the interfaces;
 * the memory limit from the flag or 80% of RAM. Probes it cannot feed are
 * switched off with a warning rather than guessed.
 *
 * @module
 */

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
  let memoryLimit = options.memoryLimitMb * 1024 * 1024;
  if (memoryLimit === 0) {
    try {
      memoryLimit = Math.floor(Deno.systemMemoryInfo().total * 0.8);
    } catch (error) {
      logger.warn("memory probe off: set --memory-limit-mb", {
        error: String(error),
      });
    }
  }
  const sampler = new CapacitySampler({
    clock: options.clock,
    traffic: host ?? processTrafficReader(options.ownTraffic),
    linkBytesPerSecond: linkMbps * 1e6 / 8,
    memory: () => Deno.memoryUsage().rss,
    memoryLimitBytes: memoryLimit,
  });
  return { sampler, source: host ? "host" : "process" };
}
