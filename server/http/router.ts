/**
 * The route table. Every request passes the URL guards first (length,
 * parseability, one spelling per path), then goes to exactly one route: a
 * WebSocket upgrade on `/`, the health and metrics endpoints, or the
 * static client. Routes are passed in, so the table can be read (and
 * tested) without any of the machinery behind them. The operator table
 * ({@link createOperatorRouter}) serves only the endpoints an operator
 * scrapes, for a listener of its own (`--metrics-port`).
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
  /** The Prometheus text of `/metrics`; null when served elsewhere. */
  readonly metrics: (() => string) | null;
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
    const url = guardUrl(request);
    if (url instanceof Response) return url;
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
        if (routes.metrics) return metricsResponse(request, routes.metrics);
    }
    return routes.assets(request, url) ?? plain(404, "not found");
  };
}

/** What the operator listener serves. */
export interface OperatorRoutes {
  /** `/healthcheck`, JSON details included. */
  readonly healthcheck: (request: Request) => Response;
  /** The Prometheus text of `/metrics`. */
  readonly metrics: () => string;
}

/** Builds the operator listener's handler: health and metrics only. */
export function createOperatorRouter(routes: OperatorRoutes): Handler {
  return createRouter({
    ...routes,
    upgrade: () => plain(404, "no WebSocket endpoint here"),
    assets: () => null,
  });
}

/**
 * The parsed URL of a request, or the refusal. A path must arrive in the
 * one spelling the WHATWG parser gives it: `/x\..\metrics`, `/%2e%2e/metrics`
 * and `/a/./b` are other spellings of paths a balancer's rules may guard,
 * and a balancer that reads them as written (nginx treats `\` as a plain
 * byte) would let them past its rule to a route it meant to hide.
 */
function guardUrl(request: Request): URL | Response {
  if (request.url.length > MAX_URL) return plain(414, "URL too long");
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return plain(400, "bad request URL");
  }
  if (rawPath(request.url) !== url.pathname) {
    return plain(400, "bad path: not in canonical form");
  }
  return url;
}

/**
 * The path of a request URL as the client wrote it: Deno.serve keeps the
 * request target verbatim in `request.url`, and only `new URL` rewrites it.
 */
function rawPath(href: string): string {
  const start = href.indexOf("/", href.indexOf("://") + 3);
  if (start < 0) return "/";
  const end = href.slice(start).search(/[?#]/);
  return end < 0 ? href.slice(start) : href.slice(start, start + end);
}

function metricsResponse(request: Request, text: () => string): Response {
  return onlyGet(request) ??
    plain(200, text(), { ...NO_STORE, "content-type": METRICS_TYPE });
}
