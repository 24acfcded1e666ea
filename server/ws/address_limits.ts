/**
 * Per-address connection limits, an opt-in protection: how many WebSockets
 * one client address may hold open (`--max-per-address`) and how many it
 * may open per second (`--rate-per-address`, a token bucket holding one
 * second's worth); 0 turns either off. A refused upgrade gets 429 with
 * `Retry-After`, so one noisy address cannot take the instance's capacity
 * from everyone else. They are off by default because one address is often
 * many people: everyone behind a NAT, or every client of a balancer that
 * sends no forwarding header (or is not in `--trusted-proxies`).
 *
 * IPv6 clients are counted by their /64, the smallest block a subscriber
 * gets: otherwise one host could pick a fresh address per connection.
 * Memory stays bounded: an address is forgotten once it has no open
 * connection and its bucket has refilled, checked by a sweep that runs at
 * most once per refill time.
 *
 * @module
 */

import { isIP } from "node:net";
import { type Refusal, refusal } from "../http/response.ts";
import type { Clock } from "../clock.ts";

/** The two limits, as in the config. */
export interface AddressLimitOptions {
  /** Open connections allowed per address; 0 = no limit. */
  readonly maxPerAddress: number;
  /** New connections per second allowed per address; 0 = no limit. */
  readonly ratePerAddress: number;
}

interface Entry {
  open: number;
  tokens: number;
  updated: number;
}

/** Whether `options` limit anything at all. */
export function limitsEnabled(options: AddressLimitOptions): boolean {
  return options.maxPerAddress > 0 || options.ratePerAddress > 0;
}

/**
 * The startup line about per-address limits: whether they are on, and what
 * a client's address is taken from, so an operator behind a balancer sees
 * at once whether every user would share one address's limits.
 */
export function describeAddressLimits(
  config: AddressLimitOptions & { readonly trustedProxies: readonly string[] },
): [string, Record<string, unknown>] {
  const keyedOn = config.trustedProxies.length === 0
    ? "the socket peer (no --trusted-proxies)"
    : `Forwarded/X-Forwarded-For from ${
      config.trustedProxies.join(",")
    }, else the socket peer`;
  if (!limitsEnabled(config)) {
    return ["per-address limits off", {
      enable: "--max-per-address N, --rate-per-address N",
    }];
  }
  return ["per-address limits on", {
    open: config.maxPerAddress > 0 ? config.maxPerAddress : "off",
    perSecond: config.ratePerAddress > 0 ? config.ratePerAddress : "off",
    keyedOn,
  }];
}

/** Open-connection counts and new-connection buckets, by address. */
export class AddressLimits {
  readonly #entries = new Map<string, Entry>();
  readonly #clock: Clock;
  readonly #max: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #sweepEveryMs: number;
  #lastSweep: number;

  /** Limits from `options`, timed by `clock`. */
  constructor(options: AddressLimitOptions, clock: Clock) {
    this.#clock = clock;
    this.#max = options.maxPerAddress > 0 ? options.maxPerAddress : Infinity;
    this.#rate = options.ratePerAddress;
    this.#burst = Math.max(1, options.ratePerAddress);
    this.#sweepEveryMs = this.#rate > 0
      ? Math.max(1000, 1000 * this.#burst / this.#rate)
      : 1000;
    this.#lastSweep = clock.now();
  }

  /** Addresses currently remembered (open connections or a draining bucket). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The 429 refusal when `address` is at either limit, else null. Changes
   * nothing the caller could notice: an upgrade that passes is held by
   * {@link reserve}.
   */
  check(address: string): Refusal | null {
    const now = this.#clock.now();
    this.#maybeSweep(now);
    const entry = this.#refilled(addressKey(address), now);
    if (entry.open >= this.#max) {
      return refuse(
        `too many open connections from your address (limit ${this.#max})`,
        5,
        "address-open",
      );
    }
    if (this.#rate > 0 && entry.tokens < 1) {
      const wait = Math.ceil((1 - entry.tokens) / this.#rate);
      return refuse(
        `too many new connections from your address (limit ${this.#rate}/s)`,
        wait,
        "address-rate",
      );
    }
    return null;
  }

  /**
   * Holds a connection slot for `address` (after {@link check} passed);
   * every reservation must be given back with {@link release}.
   */
  reserve(address: string): void {
    const entry = this.#refilled(addressKey(address), this.#clock.now());
    entry.tokens -= 1;
    entry.open++;
  }

  /** {@link check}, then {@link reserve} when it passes. */
  admit(address: string): Refusal | null {
    const refused = this.check(address);
    if (refused === null) this.reserve(address);
    return refused;
  }

  /** Gives back the slot of a connection from `address` that ended. */
  release(address: string): void {
    const key = addressKey(address);
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.open = Math.max(0, entry.open - 1);
  }

  #refilled(key: string, now: number): Entry {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { open: 0, tokens: this.#burst, updated: now };
      this.#entries.set(key, entry);
      return entry;
    }
    const elapsed = Math.max(0, now - entry.updated) / 1000;
    entry.tokens = this.#rate > 0
      ? Math.min(this.#burst, entry.tokens + elapsed * this.#rate)
      : this.#burst;
    entry.updated = now;
    return entry;
  }

  #maybeSweep(now: number): void {
    if (now - this.#lastSweep < this.#sweepEveryMs) return;
    this.#lastSweep = now;
    for (const [key, entry] of this.#entries) {
      const elapsed = Math.max(0, now - entry.updated) / 1000;
      if (
        entry.open === 0 &&
        (this.#rate <= 0 || entry.tokens + elapsed * this.#rate >= this.#burst)
      ) {
        this.#entries.delete(key);
      }
    }
  }
}

/** The unit an address is counted in: itself, or its /64 for IPv6. */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = "", tail] = address.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? left
    : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") +
    "::/64";
}

function refuse(text: string, seconds: number, reason: string): Refusal {
  return refusal(reason, 429, text, {
    "retry-after": String(Math.max(1, seconds)),
  });
}
