/**
 * The upgrade's Origin check, against cross-site WebSocket hijacking:
 * browsers apply no CORS to WebSockets, so any page could open one to us
 * with the visitor's cookies and network position. An upgrade is admitted
 * when its `Origin` is the page's own origin (the request's `Host`) or one
 * of `--allowed-origins` (exact scheme, host and port; `*` only if listed).
 * Everything else, look-alike hosts, other ports and `null` included, gets
 * 403 with the reason. Requests without `Origin` come from non-browser
 * clients and pass unless `--require-origin` is set.
 *
 * The scheme of the page's own origin: `https` when the request arrived
 * over TLS; what a trusted proxy's `X-Forwarded-Proto` / `Forwarded:
 * proto=` says; otherwise (plain HTTP from an untrusted peer, which is what
 * a TLS-terminating load balancer looks like) either `http` or `https` of
 * the same host, since both name that same host.
 *
 * @module
 */

import type { ClientInfo } from "../http/client_address.ts";
import { type Refusal, refusal } from "../http/response.ts";
import type { Admission } from "./upgrade_guard.ts";

/** What the origin check needs from the config. */
export interface OriginOptions {
  /** Extra exact origins; "*" admits any. */
  readonly allowedOrigins: readonly string[];
  /** Refuse upgrades that carry no Origin. */
  readonly requireOrigin: boolean;
}

const HOST_PATTERN =
  /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

/** Builds the admission that enforces the Origin policy. */
export function createOriginCheck(options: OriginOptions): Admission {
  const anyOrigin = options.allowedOrigins.includes("*");
  const allowed = new Set(options.allowedOrigins.filter((o) => o !== "*"));
  return (request, client) => {
    const origin = request.headers.get("origin");
    if (origin === null) {
      return options.requireOrigin ? refuse("Origin header is required") : null;
    }
    if (anyOrigin) return null;
    if (origin === "null") return refuse("Origin null is not allowed");
    const normal = normalizeOrigin(origin);
    if (normal === null) return refuse("Origin header is malformed");
    if (allowed.has(normal)) return null;
    if (ownOrigins(request, client).includes(normal)) return null;
    return refuse(`Origin ${normal} is not allowed`);
  };
}

/** The origins the request's own page may have, by the rules above. */
export function ownOrigins(request: Request, client: ClientInfo): string[] {
  const host = (request.headers.get("host") ?? "").toLowerCase();
  if (!HOST_PATTERN.test(host)) return [];
  const schemes = client.proto !== undefined
    ? [client.proto]
    : new URL(request.url).protocol === "https:"
    ? ["https"]
    : ["http", "https"];
  return schemes.flatMap((scheme) => {
    const origin = normalizeOrigin(`${scheme}://${host}`);
    return origin === null ? [] : [origin];
  });
}

/** The serialized origin of `text`, or null unless it is exactly one. */
function normalizeOrigin(text: string): string | null {
  if (text.length > 512) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  // Anything beyond scheme://host[:port] (a path, user info, a query) means
  // this is not an origin, whatever the URL parser makes of it.
  return url.origin === text.toLowerCase() ? url.origin : null;
}

function refuse(text: string): Refusal {
  return refusal("origin", 403, text);
}
