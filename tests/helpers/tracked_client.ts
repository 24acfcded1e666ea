/**
 * The page's reconnecting client with what it saw recorded, for tests of
 * failover, drains and balancers.
 *
 * @module
 */

import {
  type ClientOptions,
  WsTimeClient,
} from "../../static/ws_time_client.js";

/**
 * The page's reconnecting client ({@link WsTimeClient}) with what it saw
 * recorded: every welcome and every close of an open connection (with the
 * drain hint that preceded it), for load-balancer tests.
 */
export class TrackedClient {
  readonly client: WsTimeClient;
  /** Every welcome, with its arrival time. */
  readonly welcomes: Array<
    { server: string; seconds: number; resumed: boolean; at: number }
  > = [];
  /** Every drain message (an ask to move), with its arrival time. */
  readonly drains: Array<{ at: number; hint: number }> = [];
  /** Every move the server asked for and the client completed. */
  readonly moves: Array<
    { reason: string; from: string; to: string; at: number }
  > = [];
  /** Every close of an opened connection. */
  readonly closes: Array<
    { code: number; at: number; server: string; hint: number | null }
  > = [];
  /** Latest count seen (-1 before the first welcome). */
  seconds = -1;
  /** Server of the latest welcome. */
  server = "";
  /**
   * Longest time between two updates of the count (welcome or tick) since
   * {@link markGaps}, ms: what a user watching the count would notice.
   */
  longestGapMs = 0;
  /** When that longest gap ended (Date.now()). */
  longestGapAt = 0;
  #updatedAt = 0;
  #hint: number | null = null;

  /** Starts a client on `url`; `options` go to {@link WsTimeClient}. */
  constructor(url: string, options: ClientOptions = {}) {
    this.client = new WsTimeClient(url, options);
    this.client.on("message", (message) => {
      if (message.type === "welcome" || message.type === "tick") {
        const now = performance.now();
        if (this.#updatedAt > 0 && now - this.#updatedAt > this.longestGapMs) {
          this.longestGapMs = now - this.#updatedAt;
          this.longestGapAt = Date.now();
        }
        this.#updatedAt = now;
      }
      if (message.type === "welcome") {
        this.server = String(message.server);
        this.seconds = Number(message.seconds);
        this.welcomes.push({
          server: this.server,
          seconds: this.seconds,
          resumed: message.resumed === true,
          at: Date.now(),
        });
      } else if (message.type === "tick") {
        this.seconds = Number(message.seconds);
      } else if (message.type === "drain") {
        this.#hint = Number(message.reconnectAfterMs);
        this.drains.push({ at: Date.now(), hint: this.#hint });
      }
    });
    this.client.on("close", (detail) => {
      if (!detail.opened) return;
      this.closes.push({
        code: detail.code,
        at: Date.now(),
        server: this.server,
        hint: this.#hint,
      });
      this.#hint = null;
    });
    this.client.on("move", (detail) => {
      this.moves.push({ ...detail, at: Date.now() });
    });
    this.client.start();
  }

  /** Starts measuring {@link longestGapMs} afresh. */
  markGaps(): void {
    this.longestGapMs = 0;
  }

  /** Stops the client and waits until its socket is gone. */
  stop(): Promise<void> {
    return this.client.stop();
  }
}
