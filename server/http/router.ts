/**
 * The route table. Every request passes the URL guards first (length,
 * parseability, bytes no path of ours contains), then goes to exactly one
 * route: a WebSocket upgrade on `/`, the health and metrics endpoints, or
 * the static client. Routes are passed in, so the table can be read (and
 * tested) without any of the machinery behind them.
 *
 * @example
 * ```ts
 * import { createRouter } from "./router.ts";
 *
 * const handler = createRouter({
 *   upgrade: () => new Response("upgraded", { status: 101 }),
 *   healthcheck: () => new Response("ok"),
 *   metrics: () => "wstime_connections 0",
 *   assets: () => null,
 * });
 * const response = await handler(new Request("http://localhost/healthcheck"));
 * if (await response.text() !== "ok") throw new Error("not routed");
 * ```
 *
 * @module
 */

import { NO_STORE, onlyGet, plain } from "./response.ts";
import type { StaticHandler } from "./static.ts";

/** A Deno.serve handler that may be called without connection info. */
export type Handler = (
  request: Request,
  info?: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

/** What the router dispatches to. */
export interface Routes {
  /** Any request with an `Upgrade` header on `/`. */
  readonly upgrade: Handler;
  /** `/healthcheck`. */
  readonly healthcheck: (request: Request) => Response;
  /** The Prometheus text of `/metrics`. */
  readonly metrics: () => string;
  /** The embedded client; null for paths it does not own. */
  readonly assets: StaticHandler;
}

/** Longest request URL served; ours are short, a resume token is 58 chars. */
export const MAX_URL = 8192;

/** The Prometheus text exposition's content type. */
const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Builds the handler that guards URLs and dispatches to `routes`. */
export function createRouter(routes: Routes): Handler {
  return (request, info) => {
    if (request.url.length > MAX_URL) return plain(414, "URL too long");
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return plain(400, "bad request URL");
    }
    if (request.headers.get("upgrade") !== null) {
      if (url.pathname !== "/") return plain(404, "no WebSocket endpoint here");
      return routes.upgrade(request, info);
    }
    switch (url.pathname) {
      case "/healthcheck":
        return routes.healthcheck(request);
      case "/healthz":
        return onlyGet(request) ?? plain(200, "alive", NO_STORE);
      case "/metrics":
        return onlyGet(request) ??
          plain(200, routes.metrics(), {
            ...NO_STORE,
            "content-type": METRICS_TYPE,
          });
    }
    if (url.pathname.includes("\0") || url.pathname.includes("\\")) {
      return plain(400, "bad path");
    }
    return routes.assets(request, url) ?? plain(404, "not found");
  };
}
