/**
 * From a presented token to the session a connection serves. An authentic,
 * fresh token claims its session in the store, which fences it by epoch: a
 * stale handshake (its client has since moved to a newer connection) is
 * marked superseded instead of taking the session. When the store has
 * forgotten the session (flushed, or down), the token's own signed start
 * is the truth and is written back. Anything else starts a new session,
 * quietly: a bad token is never an error the user sees, and a forged,
 * altered or stale one never costs a store call.
 *
 * @example
 * ```ts
 * import { systemClock } from "../clock.ts";
 * import { memoryLogger } from "../logger.ts";
 * import { createSessionResolver } from "./resolver.ts";
 * import { MemoryStore } from "./store.ts";
 * import { TokenSigner } from "./token.ts";
 *
 * const ttlMs = 300_000;
 * const store = new MemoryStore(systemClock, ttlMs);
 * const resolve = createSessionResolver({
 *   store,
 *   tokens: new TokenSigner("a secret of at least 32 characters, shared"),
 *   clock: systemClock,
 *   ttlMs,
 *   logger: memoryLogger(),
 *   onRejected: () => {},
 *   undelivered: () => false,
 * });
 * const first = await resolve(""); // no token: a new session
 * const again = await resolve(first.token); // its token: the same session
 * if (again.id !== first.id || again.resumed !== "store") throw new Error();
 * await store.close();
 * ```
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { SessionStore } from "./store.ts";
import type { TokenSigner } from "./token.ts";

/** Why a presented token could not resume anything. */
export type RejectedToken = "invalid" | "expired" | "future";

/**
 * How far ahead of this instance's clock a token's issue time may be: the
 * skew between two NTP-synced hosts is milliseconds, so anything beyond
 * this was minted with a leaked secret to live forever, and is refused.
 */
export const MAX_CLOCK_SKEW_MS = 30_000;

/** What the resolver needs. */
export interface ResolverOptions {
  readonly store: SessionStore;
  readonly tokens: TokenSigner;
  readonly clock: Clock;
  /** The grace period of a closed session, in ms. */
  readonly ttlMs: number;
  readonly logger: Logger;
  /** Told of each presented token that resumes nothing, and why. */
  readonly onRejected: (reason: RejectedToken) => void;
  /** Told of each authentic token signed with a previous secret. */
  readonly onPreviousKey?: () => void;
  /**
   * Whether the connection of `epoch`, which holds session `id` live, never
   * handed its token to anyone (it is on this instance and was not welcomed,
   * or is closing). Such a connection cannot be the client's newer one, so
   * an older token may take the session from it instead of yielding.
   */
  readonly undelivered?: (id: string, epoch: number) => boolean;
}

/** The session a connection will serve. */
export interface ResolvedSession {
  readonly id: string;
  /** Session start, ms since the epoch. */
  readonly start: number;
  /** The connection's epoch (see store.ts); the session's newest. */
  readonly epoch: number;
  /** A fresh token for the welcome ("" when superseded). */
  readonly token: string;
  /** "" for a new session, else where its start came from. */
  readonly resumed: "" | "store" | "token";
  /**
   * A newer connection holds the session live: this handshake is stale
   * (it waited while its client moved on) and must not serve it.
   */
  readonly superseded: boolean;
}

/** Builds the resolver; it never throws for store trouble. */
export function createSessionResolver(
  options: ResolverOptions,
): (presented: string) => Promise<ResolvedSession> {
  const { store, tokens, clock, ttlMs, logger } = options;
  return async (presented) => {
    const now = clock.now();
    let claims = presented === "" ? null : tokens.verify(presented);
    if (presented !== "" && !claims) options.onRejected("invalid");
    // A client always holds a token at most half a grace period older than
    // its disconnect and must return within the grace period, so an older
    // token cannot name a resumable session: refuse it without a store trip.
    if (claims && claims.issued + 2 * ttlMs <= now) {
      options.onRejected("expired");
      claims = null;
    }
    if (claims && claims.issued > now + MAX_CLOCK_SKEW_MS) {
      options.onRejected("future");
      claims = null;
    }
    if (claims?.previous) options.onPreviousKey?.();
    if (claims) {
      const { id } = claims;
      let claim = await store.claim(id, claims.epoch).catch(() => null);
      if (claim?.superseded && options.undelivered?.(id, claim.epoch)) {
        // Its client gave up on that connection before the welcome (an
        // overloaded instance, the client's silence watchdog): take over.
        claim = await store.claim(id, claim.epoch).catch(() => null);
      }
      if (claim?.superseded) {
        const { start, epoch } = claim;
        return {
          id,
          start,
          epoch,
          token: "",
          resumed: "store",
          superseded: true,
        };
      }
      if (claim) {
        const { start, epoch } = claim;
        const { token } = tokens.issue(start, now, id, epoch);
        return { id, start, epoch, token, resumed: "store", superseded: false };
      }
      if (claims.issued + ttlMs > now && claims.start <= now) {
        // The store forgot (flushed, or down) but the token is authentic and
        // fresh: its signed start time is the truth. Write it back.
        const { start } = claims;
        const epoch = claims.epoch + 1;
        store.create(id, start, epoch).catch(() => {});
        const { token } = tokens.issue(start, now, id, epoch);
        return { id, start, epoch, token, resumed: "token", superseded: false };
      }
    }
    const { token, id } = tokens.issue(now, now, undefined, 1);
    store.create(id, now, 1).catch((error) =>
      logger.warn("store create failed", { error: String(error) })
    );
    return {
      id,
      start: now,
      epoch: 1,
      token,
      resumed: "",
      superseded: false,
    };
  };
}
