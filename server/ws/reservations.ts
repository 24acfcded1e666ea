/**
 * What an admitted upgrade holds until its socket is live or gone: a slot
 * of its client's address (when per-address limits are on), a place in the
 * occupancy count, and a place in the {@link OpeningGate}. All three are
 * taken by one {@link Reservations.reserve} and given back by disposing the
 * {@link Reservation} (`using`), except what was handed on: the gate place
 * to the upgraded socket (freed when it opens), the address slot to the
 * live connection (freed when it ends). One place for all three means no
 * path (a store error, a stale handshake, a throw from Deno) can forget one.
 *
 * @module
 */

import type { AddressLimits } from "./address_limits.ts";
import type { OpeningGate } from "./opening_gate.ts";

/** What the reservations count against. */
export interface ReservationOptions {
  /** The opening gate whose places upgrades take. */
  readonly gate: OpeningGate;
  /** Per-address limits, or null when they are off. */
  readonly limits: AddressLimits | null;
  /** Connections already live. */
  readonly live: () => number;
}

/** The upgrades in flight on one instance. */
export class Reservations {
  readonly #options: ReservationOptions;
  #pending = 0;

  /** Reservations against `options`' gate, limits and live count. */
  constructor(options: ReservationOptions) {
    this.#options = options;
  }

  /**
   * Live connections plus upgrades admitted and not yet live: what the
   * connection cap and the capacity monitor both compare.
   */
  occupancy(): number {
    return this.#options.live() + this.#pending;
  }

  /** Upgrades admitted and not yet live (or refused). */
  get pending(): number {
    return this.#pending;
  }

  /** Holds `address`'s slot and an occupancy place now. */
  reserve(address: string): Reservation {
    this.#options.limits?.reserve(address);
    this.#pending++;
    return new Reservation(this.#options, address, () => this.#pending--);
  }
}

/** One upgrade's holdings; dispose it when the handler returns. */
export class Reservation implements Disposable {
  readonly #options: ReservationOptions;
  readonly #address: string;
  readonly #endPending: () => void;
  /** "out": no gate place; "in": holding one; "socket": handed on. */
  #gate: "out" | "in" | "socket" = "out";
  #addressHeld = true;
  #disposed = false;

  /** Use {@link Reservations.reserve}. */
  constructor(
    options: ReservationOptions,
    address: string,
    endPending: () => void,
  ) {
    this.#options = options;
    this.#address = address;
    this.#endPending = endPending;
  }

  /** Waits for a place in the opening gate. */
  async enterGate(): Promise<void> {
    await this.#options.gate.enter();
    this.#gate = "in";
  }

  /** The gate place now ends when `socket` opens or closes. */
  handGateTo(socket: WebSocket): void {
    if (this.#gate !== "in") return;
    this.#options.gate.watch(socket);
    this.#gate = "socket";
  }

  /** The address slot now belongs to the live connection, not to this. */
  keepAddress(): void {
    this.#addressHeld = false;
  }

  /** Gives back whatever was not handed on; safe to call twice. */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#endPending();
    if (this.#gate === "in") this.#options.gate.leave();
    if (this.#addressHeld) this.#options.limits?.release(this.#address);
  }
}
