/**
 * The fleet as one instance sees it. Every instance that shares a store
 * publishes a small presence record (name, build, start time, connections,
 * capacity, health, draining) once a second and reads everyone's in the
 * same round trip: one write and one read per instance per second, never
 * anything per connection. A record not refreshed within `staleMs` is an
 * instance gone; one that was seen lately and went stale counts as lost
 * for a while, which pauses anything that moves clients.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";

/** What an instance tells the fleet about itself. */
export interface PresenceRecord {
  readonly name: string;
  /** The build (server/version.ts). */
  readonly version: string;
  /** Process start, ms since the epoch. */
  readonly startedAt: number;
  /** Live connections. */
  readonly connections: number;
  /** Its hard cap (--max-connections). */
  readonly capacity: number;
  /** Its highest capacity ratio (the health monitor's), 0..1+. */
  readonly load: number;
  /** Whether /healthcheck answers 200. */
  readonly healthy: boolean;
  /** Whether it is leaving. */
  readonly draining: boolean;
  /** When it was written, ms since the epoch. */
  readonly at: number;
  /**
   * The session record format it reads (server/sessions/redis_scripts.ts);
   * absent from versions before formats, which read format 1.
   */
  readonly records?: number;
}

/** Where presence records meet: a store shared by the fleet. */
export interface PresenceBoard {
  /**
   * Writes this instance's record (`name` -> `record`), forgets `stale`
   * names, and returns every record on the board, in one round trip.
   */
  exchangePresence(
    name: string,
    record: string,
    stale: readonly string[],
  ): Promise<Record<string, string>>;
}

/** The fleet at the last exchange. */
export interface FleetView {
  /** Fresh records, this instance's included. */
  readonly instances: readonly PresenceRecord[];
  /** Instances seen within the last `lostForMs` whose records went stale. */
  readonly lost: readonly string[];
  /** Whether the last exchange reached the store. */
  readonly reachable: boolean;
  /**
   * Instances first seen within the last `settleMs`: a balancer takes a
   * few checks to send anything to a new instance.
   */
  readonly settling: readonly string[];
}

/** Options of {@link Fleet}; durations in ms. */
export interface FleetOptions {
  readonly board: PresenceBoard;
  readonly clock: Clock;
  readonly logger: Logger;
  /** This instance's record as of now (without `at`). */
  readonly self: () => Omit<PresenceRecord, "at">;
  /** Time between exchanges. Default 1000. */
  readonly everyMs?: number;
  /** A record older than this is an instance gone. Default 3500. */
  readonly staleMs?: number;
  /** How long a gone instance counts as lost. Default 30000. */
  readonly lostForMs?: number;
  /** How long a new instance counts as settling. Default 5000. */
  readonly settleMs?: number;
}

/** Reads a record written by any instance; null when it is not one. */
export function parsePresence(text: string): PresenceRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const r = value as Partial<Record<keyof PresenceRecord, unknown>>;
  if (
    typeof value !== "object" || value === null ||
    typeof r.name !== "string" || typeof r.version !== "string" ||
    typeof r.startedAt !== "number" || typeof r.connections !== "number" ||
    typeof r.capacity !== "number" || typeof r.load !== "number" ||
    typeof r.healthy !== "boolean" || typeof r.draining !== "boolean" ||
    typeof r.at !== "number"
  ) {
    return null;
  }
  return value as PresenceRecord;
}

/**
 * The oldest session record format an instance on the board reads: fresh
 * records and stale ones alike (a frozen instance may come back), since the
 * board keeps a record until it has been lost for a while. 0 for an empty
 * board; a record that is not one is left out.
 */
export function lowestRecordFormat(board: Record<string, string>): number {
  let lowest = Infinity;
  for (const text of Object.values(board)) {
    const record = parsePresence(text);
    if (!record) continue;
    const format = typeof record.records === "number" ? record.records : 1;
    lowest = Math.min(lowest, format);
  }
  return lowest === Infinity ? 0 : lowest;
}

/** Publishes this instance's presence and keeps the fleet's. */
export class Fleet {
  readonly #options: FleetOptions;
  #view: FleetView = {
    instances: [],
    lost: [],
    reachable: false,
    settling: [],
  };
  /** Names by when they were last fresh. */
  readonly #seen = new Map<string, number>();
  /** Names by when this instance first saw them fresh (its own clock). */
  readonly #firstSeen = new Map<string, number>();
  #timer: TimerHandle | undefined;
  #stopped = false;
  #warned = false;
  #exchanges = 0;

  /** A fleet view fed by `options.board`; call {@link start}. */
  constructor(options: FleetOptions) {
    this.#options = options;
  }

  /** The fleet at the last exchange. */
  get view(): FleetView {
    return this.#view;
  }

  /** Exchanges now, then every `everyMs`. */
  start(): void {
    this.#stopped = false;
    void this.#loop();
  }

  async #loop(): Promise<void> {
    await this.exchange();
    if (this.#stopped) return;
    this.#timer = this.#options.clock.setTimeout(
      () => void this.#loop(),
      this.#options.everyMs ?? 1000,
    );
  }

  /** Stops exchanging (the record then goes stale on its own). */
  stop(): void {
    this.#stopped = true;
    this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One exchange with the board; resolves with the new view. */
  async exchange(): Promise<FleetView> {
    const { board, clock, logger } = this.#options;
    const staleMs = this.#options.staleMs ?? 3500;
    const lostForMs = this.#options.lostForMs ?? 30_000;
    const now = clock.now();
    const self: PresenceRecord = { ...this.#options.self(), at: now };
    // Forgotten only long after it was lost, so every instance sees it.
    const forget = [...this.#seen].filter(([, at]) =>
      now - at > lostForMs + staleMs
    ).map(([name]) => name);
    try {
      const all = await board.exchangePresence(
        self.name,
        JSON.stringify(self),
        forget,
      );
      for (const name of forget) {
        this.#seen.delete(name);
        this.#firstSeen.delete(name);
      }
      const instances: PresenceRecord[] = [];
      for (const text of Object.values(all)) {
        const record = parsePresence(text);
        if (!record) continue;
        if (record.name === self.name) continue;
        if (now - record.at <= staleMs) {
          instances.push(record);
          this.#seen.set(record.name, record.at);
          if (!this.#firstSeen.has(record.name)) {
            this.#firstSeen.set(record.name, now);
          }
        } else if (!this.#seen.has(record.name)) {
          // Stale before we ever saw it fresh: remembered as lost.
          this.#seen.set(record.name, record.at);
        }
      }
      instances.push(self);
      this.#seen.set(self.name, now);
      const fresh = new Set(instances.map((r) => r.name));
      const lost = [...this.#seen].filter(([name, at]) =>
        !fresh.has(name) && now - at <= lostForMs + staleMs
      ).map(([name]) => name);
      const settleMs = this.#options.settleMs ?? 5000;
      // Instances already there when this one started are not new.
      const settling = this.#exchanges === 0
        ? []
        : instances.filter((r) =>
          r.name !== self.name &&
          now - (this.#firstSeen.get(r.name) ?? now) < settleMs
        ).map((r) => r.name);
      if (this.#exchanges === 0) {
        for (const r of instances) this.#firstSeen.set(r.name, -Infinity);
      }
      this.#exchanges++;
      this.#view = { instances, lost, reachable: true, settling };
      this.#warned = false;
    } catch (error) {
      this.#view = { ...this.#view, reachable: false };
      if (!this.#warned) {
        this.#warned = true;
        logger.warn("fleet presence not exchanged; rebalancing paused", {
          error: (error as Error).message,
        });
      }
    }
    return this.#view;
  }
}
