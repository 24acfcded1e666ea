/**
 * The browser client's assets, held in memory. They enter the module graph
 * as text imports, so `deno run`, the bundle and the compiled binary all
 * serve exactly the same bytes and nothing is read from disk at run time:
 * no path from a request ever reaches the file system.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { securityHeaders } from "./response.ts";
import { brotliCompressSync, gzipSync } from "node:zlib";
import indexHtml from "../../static/index.html" with { type: "text" };
import appJs from "../../static/app.js" with { type: "text" };
import clientJs from "../../static/ws_time_client.js" with { type: "text" };
import addressJs from "../../static/address.js" with { type: "text" };
import styleCss from "../../static/style.css" with { type: "text" };
import faviconSvg from "../../static/favicon.svg" with { type: "text" };

const SOURCES: ReadonlyArray<readonly [string, string, string]> = [
  ["/index.html", indexHtml, "text/html; charset=utf-8"],
  ["/app.js", appJs, "text/javascript; charset=utf-8"],
  ["/ws_time_client.js", clientJs, "text/javascript; charset=utf-8"],
  ["/address.js", addressJs, "text/javascript; charset=utf-8"],
  ["/style.css", styleCss, "text/css; charset=utf-8"],
  ["/favicon.svg", faviconSvg, "image/svg+xml"],
];

interface Variant {
  readonly body: Uint8Array;
  readonly etag: string;
}

interface Asset {
  readonly type: string;
  readonly identity: Variant;
  readonly br: Variant;
  readonly gzip: Variant;
}

/** Serves the embedded assets; answers null for paths it does not own. */
export type StaticHandler = (request: Request, url: URL) => Response | null;

/** Builds the in-memory asset table (compressed once) and its handler. */
export function createStaticHandler(): StaticHandler {
  const assets = new Map<string, Asset>();
  for (const [path, text, type] of SOURCES) {
    const body = new TextEncoder().encode(text);
    const hash = createHash("sha256").update(body).digest("base64url").slice(
      0,
      22,
    );
    assets.set(path, {
      type,
      identity: { body, etag: `"${hash}"` },
      br: {
        body: new Uint8Array(brotliCompressSync(body)),
        etag: `"${hash}-br"`,
      },
      gzip: { body: new Uint8Array(gzipSync(body)), etag: `"${hash}-gz"` },
    });
  }
  assets.set("/", assets.get("/index.html")!);
  return (request, url) => serveAsset(assets, request, url);
}

function serveAsset(
  assets: ReadonlyMap<string, Asset>,
  request: Request,
  url: URL,
): Response | null {
  const asset = assets.get(url.pathname);
  if (!asset) return null;
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", {
      status: 405,
      headers: { allow: "GET, HEAD", "content-type": "text/plain" },
    });
  }
  const encoding = pickEncoding(request.headers.get("accept-encoding") ?? "");
  const variant = encoding === "" ? asset.identity : asset[encoding];
  const headers = new Headers({
    "content-type": asset.type,
    etag: variant.etag,
    "cache-control": "no-cache",
    vary: "Accept-Encoding",
    ...securityHeaders(url.protocol === "https:"),
  });
  if (encoding !== "") {
    headers.set("content-encoding", encoding === "gzip" ? "gzip" : "br");
  }
  if (matchesEtag(request.headers.get("if-none-match"), asset)) {
    return new Response(null, { status: 304, headers });
  }
  headers.set("content-length", String(variant.body.length));
  const body = request.method === "HEAD" ? null : variant.body;
  return new Response(body as BodyInit | null, { status: 200, headers });
}

function pickEncoding(accept: string): "" | "br" | "gzip" {
  const offered = new Map<string, number>();
  for (const part of accept.toLowerCase().split(",")) {
    const [name = "", ...params] = part.trim().split(";");
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) =>
      v !== undefined
    );
    offered.set(name.trim(), q === undefined ? 1 : Number(q));
  }
  const quality = (name: string) => offered.get(name) ?? offered.get("*") ?? 0;
  if (quality("br") > 0) return "br";
  if (quality("gzip") > 0) return "gzip";
  return "";
}

function matchesEtag(header: string | null, asset: Asset): boolean {
  if (header === null) return false;
  if (header.trim() === "*") return true;
  const tags = header.split(",").map((t) => t.trim().replace(/^W\//, ""));
  return [asset.identity, asset.br, asset.gzip].some((v) =>
    tags.includes(v.etag)
  );
}
