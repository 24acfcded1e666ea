/**
 * Who is on the other end of a request. The socket peer is the truth,
 * unless the peer is one of `--trusted-proxies`: then, and only then, the
 * one header `--forwarded-header` names (`X-Forwarded-For`, or RFC 7239
 * `Forwarded`) says who the client is (the rightmost entry not itself a
 * trusted proxy, since everything left of it was written by the client and
 * can be forged) and `X-Forwarded-Proto` / `proto=` says whether the
 * client's page was served over TLS. The other header is never read: a
 * balancer that writes one passes the other through from the client.
 *
 * @module
 */

import { BlockList, isIP } from "node:net";
import type { Logger } from "../logger.ts";

/** Headers a trusted proxy may name the client in. */
export const FORWARDED_HEADERS = ["x-forwarded-for", "forwarded"] as const;
/** One of {@link FORWARDED_HEADERS}. */
export type ForwardedHeader = typeof FORWARDED_HEADERS[number];

/** Where a request came from, as far as the handler is concerned. */
export interface ClientInfo {
  /** The client's address (the socket peer unless a trusted proxy said). */
  readonly address: string;
  /** The scheme the client used, when a trusted proxy said so. */
  readonly proto?: "http" | "https";
}

/** Maps a request and its socket to the client it came from. */
export type ClientInfoFn = (
  request: Request,
  info: Deno.ServeHandlerInfo | undefined,
) => ClientInfo;

/** Whether the socket peer of a request is one of the trusted proxies. */
export function peerTrusted(
  trusted: AddressSet,
  info: Deno.ServeHandlerInfo | undefined,
): boolean {
  return trusted.has(normalize(peerAddress(info)));
}

/** A set of addresses and CIDR ranges ("10.0.0.0/8", "::1", "fd00::/8"). */
export class AddressSet {
  readonly #list = new BlockList();
  readonly size: number;

  /** Parses every entry; throws a RangeError naming the first bad one. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = "", bits, ...rest] = entry.split("/");
      const family = isIP(address);
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (
        family === 0 || rest.length > 0 ||
        (bits !== undefined && !/^\d{1,3}$/.test(bits)) || prefix > max
      ) {
        throw new RangeError(
          `"${entry}" is not an IP address or CIDR range such as 10.0.0.0/8`,
        );
      }
      this.#list.addSubnet(address, prefix, family === 4 ? "ipv4" : "ipv6");
    }
    this.size = entries.length;
  }

  /** Whether `address` (an IP literal) falls in the set. */
  has(address: string): boolean {
    const family = isIP(address);
    if (this.size === 0 || family === 0) return false;
    return this.#list.check(address, family === 4 ? "ipv4" : "ipv6");
  }
}

/**
 * The client of a request: the socket peer, or the forwarded client
 * when the peer is a trusted proxy. `onIgnored` hears of each peer that
 * sent forwarding headers without being trusted (a missing
 * --trusted-proxies behind a load balancer makes every client share the
 * balancer's address and its per-address limits).
 */
export function createClientInfo(
  trusted: AddressSet,
  header: ForwardedHeader = "x-forwarded-for",
  onIgnored: (peer: string) => void = () => {},
): ClientInfoFn {
  return (request, info) => {
    const peer = normalize(
      (info?.remoteAddr as Deno.NetAddr | undefined)?.hostname ?? "",
    );
    if (peer === "" || !trusted.has(peer)) {
      if (
        peer !== "" && (request.headers.has("x-forwarded-for") ||
          request.headers.has("forwarded"))
      ) {
        onIgnored(peer);
      }
      return { address: peer === "" ? "unknown" : peer };
    }
    const hops = header === "forwarded"
      ? forwardedHops(request.headers)
      : xForwardedHops(request.headers);
    let address = peer;
    let proto: string | undefined;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalize(hops[i]!.for);
      if (isIP(hop) === 0) break;
      address = hop;
      proto = hops[i]!.proto;
      if (!trusted.has(hop)) break;
    }
    return proto === "http" || proto === "https"
      ? { address, proto }
      : { address };
  };
}

interface Hop {
  readonly for: string;
  /** The scheme the proxy that recorded this hop was spoken to with. */
  readonly proto: string | undefined;
}

/** The hops of `Forwarded` (RFC 7239), leftmost (client) first. */
function forwardedHops(headers: Headers): Hop[] {
  return (headers.get("forwarded") ?? "").split(",").map((element) => ({
    for: param(element, "for") ?? "",
    proto: param(element, "proto")?.toLowerCase(),
  }));
}

/** The hops of `X-Forwarded-For`, leftmost (client) first. */
function xForwardedHops(headers: Headers): Hop[] {
  const hops = (headers.get("x-forwarded-for") ?? "").split(",");
  const protos = (headers.get("x-forwarded-proto") ?? "").split(",").map((p) =>
    p.trim().toLowerCase()
  );
  return hops.map((hop, i) => ({
    for: hop.trim(),
    proto: protos.length === hops.length ? protos[i] : protos.at(-1),
  }));
}

function param(element: string, name: string): string | undefined {
  const pattern = new RegExp(`(?:^|;)\\s*${name}=("?)([^";]*)\\1`, "i");
  return pattern.exec(element)?.[2];
}

/** Strips brackets and ports, and unwraps IPv4-mapped IPv6 addresses. */
function normalize(address: string): string {
  let text = address.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) text = bracketed[1]!;
  else if (/^[\d.]+:\d+$/.test(text)) text = text.slice(0, text.indexOf(":"));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return (mapped ? mapped[1]! : text).toLowerCase();
}

/** The socket peer's address, for requests refused before it was read. */
export function peerAddress(info?: Deno.ServeHandlerInfo): string {
  return (info?.remoteAddr as Deno.NetAddr | undefined)?.hostname ??
    "unknown";
}

/** Warns once per peer (at most `limit` peers) about ignored forwarding. */
export function warnUntrustedForwarding(
  logger: Logger,
  limit: number,
): (peer: string) => void {
  const seen = new Set<string>();
  return (peer) => {
    if (seen.has(peer) || seen.size >= limit) return;
    seen.add(peer);
    logger.warn(
      "ignoring X-Forwarded-For/Forwarded from a peer not in --trusted-proxies; behind a load balancer, list it so logs and per-address limits see the client",
      { peer },
    );
  };
}
