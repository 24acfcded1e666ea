/**
 * The listening sockets of an instance, kept alive. Deno.serve's accept
 * loop ends for good when accept() fails (EMFILE when the process is out of
 * descriptors: a flood of half-open requests, a reconnect storm past the
 * limit) and rejects `finished`; left alone, that rejection ended the
 * process and every session with it. Here a failed listener is noted,
 * the descriptor reserve is released (see descriptors.ts), and the
 * listener is opened again on the same port, with a growing pause, once
 * the reserve and some headroom can be taken back. Established
 * connections never notice: they are not the listener's.
 *
 * @module
 */

import type { Clock, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { DescriptorReserve } from "./descriptors.ts";

/** What the listener group is built from. */
export interface ListenerGroupOptions {
  readonly hostname: string;
  /** The port; 0 picks one (every listener then shares the first's). */
  readonly port: number;
  /** Listening sockets on the port (more than 1 needs reusePort). */
  readonly count: number;
  readonly reusePort: boolean;
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly handler: Deno.ServeHandler;
  /** Held while accepting, released when a listener fails. */
  readonly reserve: DescriptorReserve | null;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Told when accepting stops (a listener failed) and when it resumes. */
  readonly onAccepting: (accepting: boolean) => void;
  /** Told of every failed accept loop. */
  readonly onAcceptFailure: (error: unknown) => void;
  /** Told once, when the first listener is up. */
  readonly onListen?: (addr: Deno.NetAddr) => void;
  /** Pauses between attempts to listen again, ms. Default 100 to 2000. */
  readonly retryMs?: { readonly min: number; readonly max: number };
}

/** Descriptors that must be free, beyond the reserve, to listen again. */
const RELISTEN_HEADROOM = 64;
/** At most one log line about failing accepts per this many ms. */
const LOG_EVERY_MS = 10_000;

/** Listening sockets that reopen themselves after an accept failure. */
export class ListenerGroup {
  readonly #options: ListenerGroupOptions;
  readonly #servers: Array<Deno.HttpServer | null>;
  #port = 0;
  #accepting = false;
  #closing = false;
  #timer: TimerHandle | undefined;
  #pauseMs: number;
  #stoppedAt = 0;
  #loggedAt = -Infinity;
  #failures = 0;

  /** A group that has not started listening. */
  constructor(options: ListenerGroupOptions) {
    this.#options = options;
    this.#servers = Array.from({ length: options.count }, () => null);
    this.#pauseMs = options.retryMs?.min ?? 100;
  }

  /** The port every listener shares. */
  get port(): number {
    return this.#port;
  }

  /** False while any listener is down. */
  get accepting(): boolean {
    return this.#accepting;
  }

  /** Listens on every socket; throws what Deno.serve throws at startup. */
  start(): void {
    this.#options.reserve?.take();
    for (let i = 0; i < this.#servers.length; i++) this.#serve(i, true);
    this.#accepting = true;
  }

  /** Stops listening and waits for the servers' requests in flight. */
  async shutdown(): Promise<void> {
    this.#closing = true;
    if (this.#timer !== undefined) {
      this.#options.clock.clearTimeout(this.#timer);
    }
    this.#timer = undefined;
    await Promise.all(this.#servers.map((server) => server?.shutdown()));
    this.#options.reserve?.release();
  }

  #serve(i: number, first: boolean): void {
    const { hostname, reusePort, tls, handler } = this.#options;
    const port = i === 0 && this.#port === 0 ? this.#options.port : this.#port;
    const server = Deno.serve({
      port,
      hostname,
      reusePort: reusePort || this.#servers.length > 1,
      ...(tls ?? {}),
      onListen: (addr) => {
        if (this.#port === 0) this.#port = addr.port;
        if (first && i === 0) this.#options.onListen?.(addr);
      },
    }, handler);
    this.#servers[i] = server;
    server.finished.catch((error) => this.#failed(i, server, error));
  }

  #failed(i: number, server: Deno.HttpServer, error: unknown): void {
    if (this.#closing || this.#servers[i] !== server) return;
    this.#servers[i] = null;
    // Give the runtime descriptors to work with, now.
    this.#options.reserve?.release();
    this.#failures++;
    this.#options.onAcceptFailure(error);
    const now = this.#options.clock.now();
    if (this.#accepting) {
      this.#accepting = false;
      this.#stoppedAt = now;
      this.#options.onAccepting(false);
    }
    if (now - this.#loggedAt >= LOG_EVERY_MS) {
      this.#loggedAt = now;
      this.#options.logger.warn(
        "cannot accept connections; listening again once descriptors free up",
        {
          error: error instanceof Error ? error.message : String(error),
          failures: this.#failures,
        },
      );
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closing) return;
    const { clock, retryMs } = this.#options;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#relisten();
    }, this.#pauseMs);
    this.#pauseMs = Math.min(retryMs?.max ?? 2000, this.#pauseMs * 2);
  }

  #relisten(): void {
    if (this.#closing) return;
    const reserve = this.#options.reserve;
    if (reserve && !reserve.take(RELISTEN_HEADROOM)) return this.#schedule();
    for (let i = 0; i < this.#servers.length; i++) {
      if (this.#servers[i] !== null) continue;
      try {
        this.#serve(i, false);
      } catch (error) {
        reserve?.release();
        this.#options.onAcceptFailure(error);
        return this.#schedule();
      }
    }
    this.#accepting = true;
    this.#pauseMs = this.#options.retryMs?.min ?? 100;
    this.#options.logger.info("accepting connections again", {
      pausedMs: this.#options.clock.now() - this.#stoppedAt,
    });
    this.#options.onAccepting(true);
  }
}
