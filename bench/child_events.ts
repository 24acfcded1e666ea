/**
 * JSON-line events printed by a bench child process (generators, storm
 * clients), parsed once each and looked up by type.
 *
 * @module
 */

import type { Child } from "../dev/child.ts";

/** The events a child printed so far, typed by their `type` field. */
export class ChildEvents<E extends { type: string }> {
  readonly child: Child;
  readonly #events: E[] = [];
  #lines = 0;

  /** Reads the events of `child`. */
  constructor(child: Child) {
    this.child = child;
  }

  /** Every event so far; each line is parsed only once. */
  all(): E[] {
    const lines = this.child.lines;
    for (; this.#lines < lines.length; this.#lines++) {
      const line = lines[this.#lines]!;
      if (line.startsWith("{")) this.#events.push(JSON.parse(line));
    }
    return this.#events;
  }

  /** The newest event of `type`, from index `from` on. */
  latest<T extends E["type"]>(
    type: T,
    from = 0,
  ): Extract<E, { type: T }> | undefined {
    const events = this.all();
    for (let i = events.length - 1; i >= from; i--) {
      if (events[i]!.type === type) return events[i] as Extract<E, { type: T }>;
    }
    return undefined;
  }

  /** Throws with the child's output if it failed or reported an error. */
  check(what: string): void {
    const error = this.latest("error") as { message?: string } | undefined;
    if (error) throw new Error(`${what}: ${error.message}`);
    if (this.child.status && this.child.status.code !== 0) {
      throw new Error(
        `${what} exited (${this.child.status.code}):\n${
          this.child.lines.slice(-20).join("\n")
        }`,
      );
    }
  }
}
