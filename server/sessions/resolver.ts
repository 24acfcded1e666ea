/**
 * From a presented token to the session a connection serves. An authentic,
 * fresh token resumes its session with the start the store holds; when the
 * store has forgotten it (flushed, or down), the token's own signed start
 * is the truth and is written back. Anything else starts a new session,
 * quietly: a bad token is never an error the user sees, and a forged,
 * altered or stale one never costs a store call.
 *
 * @example
 * ```ts
 * const resolve = createSessionResolver({ store, tokens, clock,
 *   ttlMs: 300_000, logger, onRejected: () => {} });
 * const session = await resolve(url.searchParams.get("session") ?? "");
 * ```
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { SessionRecord, SessionStore } from "./store.ts";
import type { TokenSigner } from "./token.ts";

/** Why a presented token could not resume anything. */
export type RejectedToken = "invalid" | "expired";

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
}

/** The session a connection will serve. */
export interface ResolvedSession {
  readonly id: string;
  /** Session start, ms since the epoch. */
  readonly start: number;
  /** A fresh token for the welcome. */
  readonly token: string;
  /** "" for a new session, else where its start came from. */
  readonly resumed: "" | "store" | "token";
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
    if (claims) {
      let record: SessionRecord | null = null;
      try {
        record = await store.get(claims.id);
      } catch (error) {
        logger.warn("store get failed", { error: String(error) });
      }
      if (record) {
        const { token } = tokens.issue(record.start, now, claims.id);
        return { id: claims.id, start: record.start, token, resumed: "store" };
      }
      if (claims.issued + ttlMs > now && claims.start <= now) {
        // The store forgot (flushed, or down) but the token is authentic and
        // fresh: its signed start time is the truth. Write it back.
        store.create(claims.id, { start: claims.start }).catch(() => {});
        const { token } = tokens.issue(claims.start, now, claims.id);
        return { id: claims.id, start: claims.start, token, resumed: "token" };
      }
    }
    const { token, id } = tokens.issue(now, now);
    store.create(id, { start: now }).catch((error) =>
      logger.warn("store create failed", { error: String(error) })
    );
    return { id, start: now, token, resumed: "" };
  };
}
