/**
 * A WebSocket client for tests that records every message, its arrival
 * time and the close event.
 *
 * @module
 */

import { waitFor } from "../../dev/timing.ts";

/** A WebSocket that records every message and its arrival time. */
export class RecordingSocket implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly messages: string[] = [];
  readonly times: number[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  closeEvent: CloseEvent | undefined;
  /** When the close event arrived (ms since the epoch). */
  closedAt: number | undefined;

  /** Connects to `url` offering `protocols`. */
  constructor(url: string, protocols?: string | string[]) {
    this.socket = new WebSocket(url, protocols);
    const opened = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<CloseEvent>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    // A failed handshake closes without opening; tests await `closed`.
    this.opened.catch(() => {});
    this.socket.onopen = () => opened.resolve();
    this.socket.onmessage = (event) => {
      this.messages.push(String(event.data));
      this.times.push(Date.now());
    };
    this.socket.onerror = () => {};
    this.socket.onclose = (event) => {
      this.closeEvent = event;
      this.closedAt = Date.now();
      opened.reject(new Error(`closed before open (${event.code})`));
      closed.resolve(event);
    };
  }

  /** Messages parsed as JSON. */
  get json(): Array<Record<string, unknown>> {
    return this.messages.map((m) => JSON.parse(m));
  }

  /** Waits until at least `n` messages arrived. */
  async waitForMessages(n: number, timeoutMs = 5000): Promise<string[]> {
    await waitFor(
      () => this.messages.length >= n || this.closeEvent !== undefined,
      timeoutMs,
      `${n} messages`,
    );
    if (this.messages.length < n) {
      throw new Error(
        `closed (${this.closeEvent?.code}) after ${this.messages.length} of ${n} messages`,
      );
    }
    return this.messages;
  }

  /** Waits for the close event, at most `timeoutMs`. */
  async waitForClose(timeoutMs = 5000): Promise<CloseEvent> {
    await waitFor(() => this.closeEvent, timeoutMs, "the socket to close");
    return this.closeEvent!;
  }

  /** Closes (if open) and waits for the close event. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState < WebSocket.CLOSING) this.socket.close();
    await this.closed;
  }
}
