/**
 * A bound on handshakes between their admission and their socket's open
 * event. Deno sends the 101 as soon as the handler returns, but the open
 * event (which sends the welcome) is a task queued behind every handshake
 * begun before it: in a reconnect storm of 10,000 that queue held seconds
 * of work, and clients whose welcome came more than their silence timeout
 * after the 101 gave up on a connection that had already claimed their
 * session. Holding the rest before the upgrade keeps the wait where the
 * client expects it (the connect timeout) and the welcome right after the
 * 101.
 *
 * @module
 */

/**
 * Handshakes allowed between admission and open at once: enough to keep
 * the store's round trips overlapped, few enough that a welcome follows
 * its 101 within milliseconds even in a storm.
 */
export const OPENING_LIMIT = 64;

/** How long a socket may keep its place without opening or closing, ms. */
export const STALE_MS = 2000;

/** Limits sockets upgraded but not yet open to `limit`. */
export class OpeningGate {
  readonly #limit: number;
  readonly #now: () => number;
  #inside = 0;
  readonly #queue: Array<() => void> = [];
  /** Watched sockets by when they were watched (oldest first). */
  readonly #unopened = new Map<WebSocket, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  // One listener shared by every socket: no closure per connection.
  readonly #onFirst = (event: Event): void => {
    this.#forget(event.target as WebSocket);
  };

  /** A gate letting `limit` handshakes through at once. */
  constructor(limit: number, now: () => number = Date.now) {
    this.#limit = limit;
    this.#now = now;
  }

  /** Handshakes inside the gate now. */
  get inside(): number {
    return this.#inside;
  }

  /** Handshakes waiting to enter. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves once the caller may upgrade; pair with leave() or watch(). */
  enter(): Promise<void> {
    if (this.#inside < this.#limit) {
      this.#inside++;
      return Promise.resolve();
    }
    const entered = new Promise<void>((resolve) => this.#queue.push(resolve));
    this.#expireLater();
    return entered;
  }

  /** Frees a place: the next waiter enters. */
  leave(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#inside--;
  }

  /** Leaves once `socket` opens (or closes without opening). */
  watch(socket: WebSocket): void {
    this.#unopened.set(socket, this.#now());
    socket.addEventListener("open", this.#onFirst);
    socket.addEventListener("close", this.#onFirst);
  }

  /** Stops the stale-place timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #forget(socket: WebSocket): void {
    socket.removeEventListener("open", this.#onFirst);
    socket.removeEventListener("close", this.#onFirst);
    if (this.#unopened.delete(socket)) this.leave();
  }

  // A socket that neither opens nor closes (its connection vanished in a
  // way Deno never reports) must not hold its place for ever: while anyone
  // waits, places older than STALE_MS are given up.
  #expireLater(): void {
    if (this.#timer !== undefined) return;
    const oldest = this.#unopened.values().next();
    const wait = oldest.done
      ? STALE_MS
      : Math.max(0, oldest.value + STALE_MS - this.#now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = this.#now();
      for (const [socket, at] of this.#unopened) {
        if (now - at < STALE_MS) break;
        this.#forget(socket);
      }
      if (this.#queue.length > 0) this.#expireLater();
    }, wait);
  }
}
