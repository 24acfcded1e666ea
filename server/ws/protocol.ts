/**
 * The wire protocol in one place: the `ws-time.v1` subprotocol, the close
 * codes with their reasons and metric labels, and every message a
 * connection receives (welcome, tick, drain). The browser client
 * (static/ws_time_client.js) keeps its own copy of the names it needs, and
 * `server/ws/protocol_test.ts` pins the two together.
 *
 * Tick texts are built from prefixes computed once per server, since a tick
 * is the one message sent every second to every connection.
 *
 * @module
 */

/** The JSON subprotocol. */
export const PROTOCOL = "ws-time.v1";

/** Close codes of ours (RFC 6455 leaves 4000-4999 to applications). */
export const CLOSE = {
  goingAway: 1001,
  unsupported: 1003,
  policy: 1008,
  tooBig: 1009,
  /** Sent by the client: no message from the server for too long. */
  clientSilent: 4000,
  /** A newer connection of the session took it over. */
  takenOver: 4001,
  /** This handshake is older than the session's live connection. */
  superseded: 4002,
  /** A client that had sent heartbeats went silent. */
  peerSilent: 4003,
  /**
   * A moving client's new connection, closed at once: a better place for
   * it exists (server/fleet/steer.ts); try the balancer again.
   */
  handedOn: 4004,
} as const;

/** The reason sent with each close of ours that has a fixed one. */
export const CLOSE_REASON = {
  draining: "server draining",
  shuttingDown: "server shutting down",
  takenOver: "session resumed elsewhere",
  superseded: "a newer connection holds this session",
  peerSilent: "no heartbeat",
  handedOn: "try another instance",
  notReading: "client is not reading",
  binary: "binary messages not accepted",
} as const;

/** Every value the `code` label of wstime_disconnects_total can take. */
export const CLOSE_CODE_LABELS: readonly string[] = [
  "1000",
  "1001",
  "1002",
  "1003",
  "1005",
  "1006",
  "1007",
  "1008",
  "1009",
  "1010",
  "1011",
  "1012",
  "4000",
  "4001",
  "4002",
  "4003",
  "4004",
  "other",
];

const KNOWN_CODES = new Set(
  CLOSE_CODE_LABELS.filter((c) => c !== "other").map(Number),
);

/**
 * A close code as a metric label from a fixed set, so a client cannot make
 * up new label values (every code it sends would be a new series).
 */
export function closeCodeLabel(code: number): string {
  if (KNOWN_CODES.has(code)) return String(code);
  // Deno reports a connection that ended without a close frame as 0.
  if (code === 0) return "1006";
  return "other";
}

/** Whether a `Sec-WebSocket-Protocol` header offers {@link PROTOCOL}. */
export function offersProtocol(header: string | null): boolean {
  return (header ?? "").split(",").some((p) => p.trim() === PROTOCOL);
}

/** What a welcome tells a client, once per connection. */
export interface Welcome {
  readonly server: string;
  /** The token to present on the next reconnect. */
  readonly session: string;
  readonly resumed: boolean;
  readonly seconds: number;
  /** How often to send a heartbeat, ms (only with `--peer-timeout`). */
  readonly heartbeatMs?: number;
}

/** The `welcome` message. */
export function welcomeMessage(welcome: Welcome): string {
  return JSON.stringify({ type: "welcome", ...welcome });
}

/** Why a client is asked to move; a metric label, so a fixed set. */
export const MOVE_REASONS = ["drain", "deploy", "rebalance"] as const;

/** Why a client is asked to move. */
export type MoveReason = typeof MOVE_REASONS[number];

/**
 * The `drain` message: the client should reconnect after
 * `reconnectAfterMs`. With `moveWithinMs` the server keeps this connection
 * ticking that much longer, so the client can open its new one first
 * (make before break); without it a 1001 close follows at once.
 */
export function drainMessage(
  reconnectAfterMs: number,
  reason: MoveReason,
  moveWithinMs?: number,
): string {
  return JSON.stringify({
    type: "drain",
    reconnectAfterMs,
    reason,
    ...(moveWithinMs === undefined ? {} : { moveWithinMs }),
  });
}

/** Builds the tick texts of one server. */
export interface TickTexts {
  /** The original line: `<name>: you have been connected for N seconds`. */
  text(seconds: number): string;
  /** A `tick` object, with a refreshed token when one is given. */
  json(seconds: number, token?: string): string;
}

/** The tick texts of the server named `name`. */
export function tickTexts(name: string): TickTexts {
  const nameJson = JSON.stringify(name);
  const textPrefix = `${name}: you have been connected for `;
  const jsonPrefix = `{"type":"tick","server":${nameJson},"seconds":`;
  return {
    text: (seconds) =>
      `${textPrefix}${seconds} second${seconds === 1 ? "" : "s"}`,
    json: (seconds, token) =>
      token === undefined
        ? `${jsonPrefix}${seconds}}`
        : `${jsonPrefix}${seconds},"session":"${token}"}`,
  };
}
