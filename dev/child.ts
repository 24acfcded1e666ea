/**
 * A child process whose output lines are kept and can be awaited: how
 * tests run servers, redis-server, haproxy and other real programs.
 *
 * @module
 */

import { waitFor } from "./timing.ts";

/** A child process whose output lines are kept and can be awaited. */
export class Child implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly process: Deno.ChildProcess;
  readonly #done: Promise<void>;
  #status: Deno.CommandStatus | undefined;
  readonly #unfinished = ["", ""];

  /** Spawns `command args` with piped output (and stdin if asked). */
  constructor(command: string, args: string[], options: {
    env?: Record<string, string>;
    cwd?: string;
    stdin?: "null" | "piped";
  } = {}) {
    this.process = new Deno.Command(command, {
      args,
      env: options.env ?? {},
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#done = Promise.all([
      this.#collect(this.process.stdout, 0),
      this.#collect(this.process.stderr, 1),
      this.process.status.then((status) => {
        this.#status = status;
      }),
    ]).then(() => {});
  }

  async #collect(
    stream: ReadableStream<Uint8Array>,
    which: number,
  ): Promise<void> {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop() ?? "";
      this.lines.push(...parts);
      this.#unfinished[which] = buffer;
    }
    this.#unfinished[which] = "";
    if (buffer !== "") this.lines.push(buffer);
  }

  /**
   * Output not yet ended by a newline (stdout's, then stderr's): what a
   * program that prints without newlines, like jemalloc's statistics, has
   * said so far.
   */
  get unfinished(): string {
    return this.#unfinished.join("\n");
  }

  /** The exit status once the process ended, else undefined. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Waits for an output line matching `pattern` and returns its match. */
  waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
    return waitFor(
      () => {
        for (const line of this.lines) {
          const match = pattern.exec(line);
          if (match) return match;
        }
        if (this.#status) {
          throw new Error(
            `Process exited (${this.#status.code}) before printing ${pattern}:\n${
              this.lines.join("\n")
            }`,
          );
        }
        return null;
      },
      timeoutMs,
      `output ${pattern}`,
    );
  }

  /** Sends a signal if the process still runs. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status) return;
    try {
      this.process.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Waits for the process to end and its output to be read. */
  async finished(): Promise<Deno.CommandStatus> {
    await this.#done;
    return this.#status!;
  }

  /** Kills (SIGKILL) and reaps the process. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.#done;
  }
}
