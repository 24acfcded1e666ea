/**
 * Session tokens: unguessable, signed, and carrying the session's start
 * time, so a valid token resumes with the right count even when the store
 * lost its record, and a forged one is rejected before any store round trip.
 *
 * Layout (base64url, 66 characters): version 3 (1 byte) | key id (2) |
 * start ms (6) | issued-at s (4) | session id (16 random bytes) |
 * epoch (4) | HMAC-SHA256 (16). The epoch orders the connections of one
 * session: each connection that takes a session over gets a higher one, so
 * an older handshake can never displace a newer connection. The key id
 * names the secret that signed the token, so a signer that still accepts
 * previous secrets (a rotation) computes one MAC per token, not one per
 * secret. Version 2 (63 characters, no key id) and version 1 tokens
 * (58 characters, no epoch: epoch 0) still verify, under any secret.
 *
 * @module
 */

import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

const VERSION = 3;
const KID = 2;
const BODY = 1 + KID + 6 + 4 + 16 + 4;
const V2_BODY = 1 + 6 + 4 + 16 + 4;
const V1_BODY = 1 + 6 + 4 + 16;
const MAC = 16;
const chars = (bytes: number) => Math.ceil((bytes + MAC) * 4 / 3);
/** Length of every token this module issues, in characters. */
export const TOKEN_LENGTH = chars(BODY);
/** Body length (bytes) and version of each token length accepted. */
const LAYOUTS = new Map([
  [TOKEN_LENGTH, { body: BODY, version: VERSION, at: 1 + KID }],
  [chars(V2_BODY), { body: V2_BODY, version: 2, at: 1 }],
  [chars(V1_BODY), { body: V1_BODY, version: 1, at: 1 }],
]);

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
  /** Signed with one of the previous secrets, not the current one. */
  readonly previous: boolean;
}

interface Key {
  readonly mac: (message: Uint8Array) => Buffer;
  readonly previous: boolean;
}

/**
 * Issues session tokens with one secret and verifies them under it or any
 * of the previous secrets, so a secret can be rotated without a reset.
 */
export class TokenSigner {
  readonly #kid: Buffer;
  readonly #mac: (message: Uint8Array) => Buffer;
  /** Every accepted key, current first, by key id. */
  readonly #byKid = new Map<number, Key[]>();
  readonly #all: Key[] = [];

  /**
   * Signs with `secret`, or a random one (tokens then die with the
   * process); also accepts tokens signed with any of `previous`.
   */
  constructor(secret = "", previous: readonly string[] = []) {
    const current = secret === "" ? randomBytes(32).toString("hex") : secret;
    this.#kid = keyId(current);
    this.#mac = hmacSha256(keyBytes(current));
    for (const [i, s] of [current, ...previous].entries()) {
      if (i > 0 && s === current) continue;
      const key = { mac: hmacSha256(keyBytes(s)), previous: i > 0 };
      const kid = keyId(s).readUInt16BE(0);
      this.#byKid.set(kid, [...this.#byKid.get(kid) ?? [], key]);
      this.#all.push(key);
    }
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
    this.#kid.copy(body, 1);
    const at = 1 + KID;
    body.writeUIntBE(Math.max(0, Math.floor(start)), at, 6);
    body.writeUInt32BE(Math.floor(now / 1000) >>> 0, at + 6);
    const idBytes = id === undefined ? randomBytes(16) : decodeId(id);
    idBytes.copy(body, at + 10);
    body.writeUInt32BE(
      Math.max(0, Math.min(epoch, 0xffffffff)) >>> 0,
      at + 26,
    );
    const mac = this.#mac(body).subarray(0, MAC);
    const token = Buffer.concat([body, mac]).toString("base64url");
    return { token, id: idBytes.toString("base64url") };
  }

  /** Returns the claims of an authentic token, or null for anything else. */
  verify(token: string): TokenClaims | null {
    const layout = LAYOUTS.get(token.length);
    if (layout === undefined || !/^[\w-]+$/.test(token)) return null;
    const raw = Buffer.from(token, "base64url");
    if (raw.length !== layout.body + MAC || raw[0] !== layout.version) {
      return null;
    }
    // One token, one spelling: the last character's spare bits must be 0.
    if (raw.toString("base64url") !== token) return null;
    const body = raw.subarray(0, layout.body);
    const candidates = layout.version === VERSION
      ? this.#byKid.get(body.readUInt16BE(1)) ?? []
      : this.#all;
    const key = candidates.find((k) =>
      timingSafeEqual(raw.subarray(layout.body), k.mac(body).subarray(0, MAC))
    );
    if (key === undefined) return null;
    const { at } = layout;
    return {
      start: body.readUIntBE(at, 6),
      issued: body.readUInt32BE(at + 6) * 1000,
      id: body.subarray(at + 10, at + 26).toString("base64url"),
      epoch: layout.version === 1 ? 0 : body.readUInt32BE(at + 26),
      previous: key.previous,
    };
  }
}

/** The HMAC key of a secret (unchanged since version 1 tokens). */
function keyBytes(secret: string): Buffer {
  return Buffer.from(`ws-time token v1\0${secret}`);
}

/**
 * Two bytes naming a secret. They tell a guesser nothing the MAC does not
 * already let them check offline, and a collision only costs a second MAC.
 */
function keyId(secret: string): Buffer {
  return sha256(Buffer.from(`ws-time key id\0${secret}`)).subarray(0, KID);
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
