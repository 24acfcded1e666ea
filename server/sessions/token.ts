/**
 * Session tokens: unguessable, signed, and carrying the session's start
 * time, so a valid token resumes with the right count even when the store
 * lost its record, and a forged one is rejected before any store round trip.
 *
 * Layout (base64url, 63 characters): version 2 (1 byte) | start ms (6) |
 * issued-at s (4) | session id (16 random bytes) | epoch (4) |
 * HMAC-SHA256 (16). The epoch orders the connections of one session: each
 * connection that takes a session over gets a higher one, so an older
 * handshake can never displace a newer connection. Version 1 tokens
 * (58 characters, no epoch) still verify, with epoch 0.
 *
 * @module
 */

import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

const VERSION = 2;
const BODY = 1 + 6 + 4 + 16 + 4;
const V1_BODY = 1 + 6 + 4 + 16;
const MAC = 16;
/** Length of every token this module issues, in characters. */
export const TOKEN_LENGTH = Math.ceil((BODY + MAC) * 4 / 3);
const V1_LENGTH = Math.ceil((V1_BODY + MAC) * 4 / 3);

/** What a verified token says. */
export interface TokenClaims {
  /** Session id: 22 base64url characters of 128 random bits. */
  readonly id: string;
  /** Session start time (ms since the epoch). */
  readonly start: number;
  /** When this token was issued (ms since the epoch, whole seconds). */
  readonly issued: number;
  /** The connection epoch it was issued to (0 for version 1 tokens). */
  readonly epoch: number;
}

/** Issues and verifies session tokens with one secret. */
export class TokenSigner {
  readonly #mac: (message: Uint8Array) => Buffer;

  /** Uses `secret`, or a random one (tokens then die with the process). */
  constructor(secret = "") {
    this.#mac = hmacSha256(
      secret === ""
        ? randomBytes(32)
        : Buffer.from(`ws-time token v1\0${secret}`),
    );
  }

  /**
   * Issues a token for a new session (fresh id) or an existing one, for the
   * connection of `epoch` (default 1, a session's first).
   */
  issue(
    start: number,
    now: number,
    id?: string,
    epoch = 1,
  ): { token: string; id: string } {
    const body = Buffer.alloc(BODY);
    body.writeUInt8(VERSION, 0);
    body.writeUIntBE(Math.max(0, Math.floor(start)), 1, 6);
    body.writeUInt32BE(Math.floor(now / 1000) >>> 0, 7);
    const idBytes = id === undefined ? randomBytes(16) : decodeId(id);
    idBytes.copy(body, 11);
    body.writeUInt32BE(Math.max(0, Math.min(epoch, 0xffffffff)) >>> 0, 27);
    const mac = this.#mac(body).subarray(0, MAC);
    const token = Buffer.concat([body, mac]).toString("base64url");
    return { token, id: idBytes.toString("base64url") };
  }

  /** Returns the claims of an authentic token, or null for anything else. */
  verify(token: string): TokenClaims | null {
    const bodyLength = token.length === TOKEN_LENGTH
      ? BODY
      : token.length === V1_LENGTH
      ? V1_BODY
      : 0;
    if (bodyLength === 0 || !/^[\w-]+$/.test(token)) return null;
    const raw = Buffer.from(token, "base64url");
    const version = bodyLength === BODY ? VERSION : 1;
    if (raw.length !== bodyLength + MAC || raw[0] !== version) return null;
    // One token, one spelling: the last character's spare bits must be 0.
    if (raw.toString("base64url") !== token) return null;
    const body = raw.subarray(0, bodyLength);
    const mac = this.#mac(body).subarray(0, MAC);
    if (!timingSafeEqual(raw.subarray(bodyLength), mac)) return null;
    return {
      start: body.readUIntBE(1, 6),
      issued: body.readUInt32BE(7) * 1000,
      id: body.subarray(11, 27).toString("base64url"),
      epoch: bodyLength === BODY ? body.readUInt32BE(27) : 0,
    };
  }
}

/**
 * HMAC-SHA256 (RFC 2104) with `key`, from two one-shot hashes: Deno's
 * createHmac builds a stream object per call and took 18.5 us here against
 * 10.7 us for this, on every connection.
 */
export function hmacSha256(key: Uint8Array): (message: Uint8Array) => Buffer {
  const block = Buffer.alloc(64);
  Buffer.from(key.length > 64 ? sha256(key) : key).copy(block);
  const inner = Buffer.from(block.map((b) => b ^ 0x36));
  const outer = Buffer.from(block.map((b) => b ^ 0x5c));
  return (message) =>
    sha256(Buffer.concat([outer, sha256(Buffer.concat([inner, message]))]));
}

function sha256(data: Uint8Array): Buffer {
  return hash("sha256", data, "buffer") as unknown as Buffer;
}

function decodeId(id: string): Buffer {
  const bytes = Buffer.from(id, "base64url");
  if (bytes.length !== 16) throw new RangeError(`Invalid session id "${id}"`);
  return bytes;
}

const logMac = hmacSha256(Buffer.from("ws-time log"));

/** A short, non-reversible label of a token or id, safe for logs. */
export function logLabel(secretish: string): string {
  return logMac(Buffer.from(secretish)).toString("base64url").slice(0, 8);
}
