/**
 * How ws-time answers over HTTP: one-line `text/plain` responses with the
 * security headers every response carries, and {@link Refusal}, the value a
 * check returns when it turns a request away. A refusal keeps its reason
 * (a fixed word, used as a metric label and in logs) apart from the
 * response the client sees, so nothing internal travels in headers.
 *
 * @module
 */

/** The Content-Security-Policy of every response: self only, plus WebSockets. */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers of answers that must never be cached (health, metrics). */
export const NO_STORE: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
};

/**
 * Headers every response of ours carries. Cross-Origin-Opener-Policy only
 * when `secure`: over plain http browsers ignore it and log a console error
 * on every page load.
 */
export function securityHeaders(secure = true): Record<string, string> {
  return {
    "x-content-type-options": "nosniff",
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    ...(secure ? { "cross-origin-opener-policy": "same-origin" } : {}),
  };
}

/** A text/plain response with our security headers. */
export function plain(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(body.endsWith("\n") ? body : body + "\n", {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      ...securityHeaders(),
      ...headers,
    },
  });
}

/** 405 unless the request is a GET or HEAD; null when it is. */
export function onlyGet(request: Request): Response | null {
  if (request.method === "GET" || request.method === "HEAD") return null;
  return plain(405, "method not allowed", { allow: "GET, HEAD" });
}

/** A request turned away: why (a fixed word) and what the client gets. */
export interface Refusal {
  /** A short fixed word such as "origin" or "capacity" (a metric label). */
  readonly reason: string;
  readonly response: Response;
}

/** A refusal with a one-line text body. */
export function refusal(
  reason: string,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): Refusal {
  return { reason, response: plain(status, text, headers) };
}

/**
 * A `Retry-After` of 5-15 s, jittered so refused clients do not all come
 * back in the same second.
 */
export function retryAfter(random: () => number): Record<string, string> {
  return { "retry-after": String(5 + Math.floor(random() * 11)) };
}
