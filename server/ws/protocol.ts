/**
 * The wire protocol's names and texts: the `ws-time.v1` subprotocol, our
 * close codes, and the messages a connection receives. Tick texts are built
 * from prefixes computed once per server, since a tick is the one message
 * sent every second to every connection.
 *
 * @module
 */

/** The JSON subprotocol. */
export const PROTOCOL = "ws-time.v1";

/** Close codes of ours (RFC 6455 leaves 4000-4999 to applications). */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  unsupported: 1003,
  /** A newer connection of the session took it over. */
  takenOver: 4001,
  /** This handshake is older than the session's live connection. */
  superseded: 4002,
  /** A client that had sent heartbeats went silent. */
  peerSilent: 4003,
} as const;

/** Whether a `Sec-WebSocket-Protocol` header offers {@link PROTOCOL}. */
export function offersProtocol(header: string | null): boolean {
  return (header ?? "").split(",").some((p) => p.trim() === PROTOCOL);
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
