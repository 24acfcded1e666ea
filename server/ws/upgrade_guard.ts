/**
 * The upgrade guard: every precondition of a WebSocket upgrade, checked in
 * a fixed order before anything happens. It only looks: it bumps no
 * counter, reserves nothing and opens nothing, and returns either the
 * admitted client or a {@link Refusal} with its reason and response. The
 * caller acts on the verdict (counts the refusal, reserves the address
 * slot, upgrades), so the checks can be read and tested on their own.
 *
 * Order: the handshake itself (Upgrade, method, Connection, version, key),
 * the query, then the instance's state (draining, at capacity), then the
 * admissions (Origin, per-address limits). A malformed request never costs
 * more than a header read.
 *
 * @example
 * ```ts
 * import { AddressSet, createClientInfo } from "../http/client_address.ts";
 * import { createUpgradeGuard } from "./upgrade_guard.ts";
 *
 * const guard = createUpgradeGuard({
 *   maxConnections: 10,
 *   occupancy: () => 10,
 *   draining: () => false,
 *   clientInfo: createClientInfo(new AddressSet([])),
 *   admissions: [],
 *   random: Math.random,
 * });
 * const verdict = guard(
 *   new Request("http://localhost/", {
 *     headers: {
 *       upgrade: "websocket",
 *       connection: "Upgrade",
 *       "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
 *       "sec-websocket-version": "13",
 *     },
 *   }),
 * );
 * // Full: a 503 with Retry-After, before anything was upgraded.
 * if (verdict.refusal?.response.status !== 503) throw new Error();
 * ```
 *
 * @module
 */

import type { ClientInfo, ClientInfoFn } from "../http/client_address.ts";
import { type Refusal, refusal, retryAfter } from "../http/response.ts";
import { offersProtocol } from "./protocol.ts";

/**
 * A check beyond the handshake (Origin, per-address limits): a refusal, or
 * null to let the upgrade continue. It must not change any state.
 */
export type Admission = (request: Request, client: ClientInfo) =>
  | Refusal
  | null;

/** What the guard needs to know; each field is read at check time. */
export interface UpgradeGuardOptions {
  /** Hard cap of connections. */
  readonly maxConnections: number;
  /** Connections open or being opened now. */
  readonly occupancy: () => number;
  /** True once the instance is leaving. */
  readonly draining: () => boolean;
  /** Who the request comes from. */
  readonly clientInfo: ClientInfoFn;
  /** Further checks, in order; the first refusal wins. */
  readonly admissions: readonly Admission[];
  /** Random numbers in [0, 1), for the Retry-After jitter. */
  readonly random: () => number;
}

/** An upgrade that passed every check. */
export interface AdmittedUpgrade {
  readonly client: ClientInfo;
  /** Whether the client asked for the JSON subprotocol. */
  readonly json: boolean;
  /** The `id` label, or "". */
  readonly label: string;
  /** The presented resume token, or "". */
  readonly token: string;
  /**
   * Which try of a move this is (the `move` query parameter: 1 for the
   * first), or 0 for any other connection.
   */
  readonly hop: number;
}

/** The guard's answer: exactly one of the two. */
export type GuardVerdict =
  | { readonly admitted: AdmittedUpgrade; readonly refusal?: undefined }
  | {
    readonly refusal: Refusal;
    readonly admitted?: undefined;
    /** Who was refused, once the checks got that far. */
    readonly client?: ClientInfo;
  };

const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;
const LABEL_PATTERN = /^[\w.:-]{1,64}$/;
const HOP_PATTERN = /^[1-9][0-9]{0,2}$/;

/** Builds the guard. */
export function createUpgradeGuard(
  options: UpgradeGuardOptions,
): (request: Request, info?: Deno.ServeHandlerInfo) => GuardVerdict {
  const refuse = (...args: Parameters<typeof refusal>): GuardVerdict => ({
    refusal: refusal(...args),
  });
  return (request, info) => {
    const headers = request.headers;
    if (!/^websocket$/i.test(headers.get("upgrade") ?? "")) {
      return refuse("handshake", 400, "only WebSocket upgrades are served");
    }
    if (request.method !== "GET") {
      return refuse("method", 405, "WebSocket upgrades use GET", {
        allow: "GET, HEAD",
      });
    }
    if (!/\bupgrade\b/i.test(headers.get("connection") ?? "")) {
      return refuse("handshake", 400, "Connection header must include Upgrade");
    }
    if (headers.get("sec-websocket-version") !== "13") {
      return refuse("version", 426, "Sec-WebSocket-Version must be 13", {
        "sec-websocket-version": "13",
      });
    }
    if (!KEY_PATTERN.test(headers.get("sec-websocket-key") ?? "")) {
      return refuse(
        "handshake",
        400,
        "Sec-WebSocket-Key must be 16 bytes in base64",
      );
    }
    const query = new URL(request.url).searchParams;
    const label = query.get("id") ?? "";
    if (label !== "" && !LABEL_PATTERN.test(label)) {
      return refuse(
        "query",
        400,
        "id must be 1-64 letters, digits, '.', ':', '_' or '-'",
      );
    }
    const move = query.get("move");
    if (move !== null && !HOP_PATTERN.test(move)) {
      return refuse("query", 400, "move must be a whole number from 1 to 999");
    }
    const client = options.clientInfo(request, info);
    if (options.draining()) {
      const { refusal: refused } = refuse(
        "draining",
        503,
        "server is draining",
        retryAfter(options.random),
      );
      return { refusal: refused!, client };
    }
    if (options.occupancy() >= options.maxConnections) {
      const { refusal: refused } = refuse(
        "capacity",
        503,
        "server is at capacity",
        retryAfter(options.random),
      );
      return { refusal: refused!, client };
    }
    for (const check of options.admissions) {
      const refused = check(request, client);
      if (refused) return { refusal: refused, client };
    }
    return {
      admitted: {
        client,
        json: offersProtocol(headers.get("sec-websocket-protocol")),
        label,
        token: query.get("session") ?? "",
        hop: move === null ? 0 : Number(move),
      },
    };
  };
}
