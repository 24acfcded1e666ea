/**
 * `/healthcheck`: the load balancer's readiness answer. 200 `ok` while the
 * {@link CapacityMonitor} sees spare capacity; 503 with the reason (and a
 * jittered `Retry-After`) when overloaded or draining. `Accept:
 * application/json` adds every ratio, the marks and the figures behind
 * them. It reads cached figures only, so it costs the same at the cap.
 *
 * @module
 */

import { NO_STORE, onlyGet, plain, retryAfter } from "../http/response.ts";
import type { CapacityMonitor } from "./monitor.ts";

/** What the endpoint shows besides the monitor's verdict. */
export interface HealthEndpointOptions {
  readonly monitor: CapacityMonitor;
  /** The marks, shown in the JSON details. */
  readonly threshold: number;
  readonly recover: number;
  /** The server name. */
  readonly name: string;
  /** Open connections now, and the cap. */
  readonly connections: () => number;
  readonly maxConnections: number;
  /** Figures behind the probes (bytes per second, lag, memory...). */
  readonly figures: () => object;
  /** The session store's state and figures. */
  readonly store: () => object;
  /** Random numbers in [0, 1), for the Retry-After jitter. */
  readonly random: () => number;
  /**
   * Whether `Accept: application/json` gets the details (figures, the
   * store's target): not on a public port when an operator port serves
   * them.
   */
  readonly details: boolean;
}

/** Builds the `/healthcheck` handler. */
export function createHealthEndpoint(
  options: HealthEndpointOptions,
): (request: Request) => Response {
  return (request) => {
    const refused = onlyGet(request);
    if (refused) return refused;
    const report = options.monitor.report();
    const status = report.healthy ? 200 : 503;
    const wantsJson = options.details &&
      (request.headers.get("accept") ?? "").includes("application/json");
    const body = wantsJson
      ? JSON.stringify({
        ...report,
        threshold: options.threshold,
        recover: options.recover,
        server: options.name,
        connections: options.connections(),
        maxConnections: options.maxConnections,
        figures: options.figures(),
        store: options.store(),
      })
      : report.reason;
    const response = plain(status, body, {
      ...NO_STORE,
      // WebSocket clients cannot read the Retry-After of a refused upgrade;
      // this one they can fetch (see healthcheckProbe in the client).
      ...(report.healthy ? {} : retryAfter(options.random)),
      "content-type": wantsJson ? "application/json" : "text/plain",
    });
    return request.method === "HEAD"
      ? new Response(null, { status, headers: response.headers })
      : response;
  };
}
