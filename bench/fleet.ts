/**
 * A fleet of load-generator processes (`generator.ts`), each with its own
 * share of the connections and of the source addresses. The fleet merges
 * their progress into one line on the terminal and their reports into one.
 *
 * @module
 */

import { Child } from "../dev/child.ts";
import { ROOT } from "../dev/paths.ts";
import { waitFor } from "../dev/timing.ts";
import type { GeneratorEvent, GeneratorPlan } from "./generator.ts";
import { Histogram, type LatencySummary } from "./histogram.ts";
import { openFileLimit } from "../dev/proc.ts";
import { ChildEvents } from "./child_events.ts";

/** How to spread the load. */
export interface FleetOptions {
  readonly port: number;
  readonly connections: number;
  /** Connections per second over the whole fleet; 0 = as fast as possible. */
  readonly rate: number;
  readonly generators: number;
  /** Number of source addresses, 127.0.0.2 upwards. */
  readonly sources: number;
  /** Clients' heartbeat period in ms; 0 = none. */
  readonly heartbeatMs: number;
  /** Called with a one-line progress summary during the ramp. */
  readonly onProgress?: (line: string) => void;
}

/** What the ramp achieved. */
export interface RampResult {
  readonly open: number;
  readonly failed: number;
  readonly rampMs: number;
  readonly handshake: LatencySummary;
  readonly errors: Record<string, number>;
}

/** What the fleet saw during a measured window. */
export interface WindowResult {
  readonly open: number;
  readonly dropped: number;
  readonly messagesPerSecond: number;
  readonly gaps: number;
  readonly lateness: LatencySummary;
  readonly loopDelay: LatencySummary;
}

type Report = Extract<GeneratorEvent, { type: "report" }>;
type Ramped = Extract<GeneratorEvent, { type: "ramped" }>;

/** Running generators. */
export class Fleet implements AsyncDisposable {
  readonly children: Child[];
  /** Open files each generator may hold (`ulimit -n`). */
  readonly fileLimit: number;
  readonly #options: FleetOptions;
  readonly #writers: WritableStreamDefaultWriter<Uint8Array>[];
  readonly #logs: ChildEvents<GeneratorEvent>[];

  /** Spawns the generators; they start opening connections at once. */
  constructor(options: FleetOptions) {
    this.#options = options;
    const g = Math.max(1, options.generators);
    // Generators inherit this process's limit of open files.
    const limit = openFileLimit(Deno.pid);
    if (Math.ceil(options.connections / g) + 64 > limit) {
      throw new Error(
        `a process may hold ${limit} open files here (ulimit -n): ` +
          `${options.connections} connections need more than ${g} generators`,
      );
    }
    this.fileLimit = limit;
    const sources = Array.from(
      { length: Math.max(1, options.sources) },
      (_, i) => `127.0.0.${i + 2}`,
    );
    this.children = Array.from({ length: g }, (_, i) => {
      const plan: GeneratorPlan = {
        host: "127.0.0.1",
        port: options.port,
        count: Math.floor(options.connections / g) +
          (i < options.connections % g ? 1 : 0),
        rate: options.rate / g,
        maxPending: 200,
        // Disjoint address sets when there are enough, else shared.
        sources: sources.length >= g
          ? sources.filter((_, s) => s % g === i)
          : [sources[i % sources.length]!],
        label: `g${i}`,
        heartbeatMs: options.heartbeatMs,
      };
      return new Child(Deno.execPath(), [
        "run",
        // Net access to the server and to bind the source addresses only.
        `--allow-net=127.0.0.1,${plan.sources.join(",")}`,
        `${ROOT}bench/generator.ts`,
        JSON.stringify(plan),
      ], { cwd: ROOT, stdin: "piped" });
    });
    this.#writers = this.children.map((c) => c.process.stdin.getWriter());
    this.#logs = this.children.map((c) => new ChildEvents(c));
  }

  /** Process ids of the generators, for CPU measurement. */
  get pids(): number[] {
    return this.children.map((c) => c.process.pid);
  }

  #checkErrors(): void {
    for (const log of this.#logs) {
      log.check("generator");
      if (log.child.status && !log.latest("ramped")) {
        throw new Error(`generator exited before its ramp ended`);
      }
    }
  }

  /** Waits until every generator finished its ramp. */
  async ramp(timeoutMs: number): Promise<RampResult> {
    const began = performance.now();
    const ramped = await waitFor(
      () => {
        this.#checkErrors();
        const done = this.#logs.map((l) => l.latest("ramped"));
        if (done.every((d) => d)) return done as Ramped[];
        this.#progress(began);
        return null;
      },
      timeoutMs,
      "the ramp",
    );
    const handshake = new Histogram();
    const errors: Record<string, number> = {};
    for (const r of ramped) {
      handshake.merge(new Histogram(r.handshake));
      for (const [k, v] of Object.entries(r.errors)) {
        errors[k] = (errors[k] ?? 0) + v;
      }
    }
    return {
      open: sum(ramped.map((r) => r.open)),
      failed: sum(ramped.map((r) => r.failed)),
      rampMs: Math.max(...ramped.map((r) => r.rampMs)),
      handshake: handshake.summary(),
      errors,
    };
  }

  #progress(began: number): void {
    const latest = this.#logs.map((l) => l.latest("progress"));
    const open = sum(latest.map((p) => p?.open ?? 0));
    const failed = sum(latest.map((p) => p?.failed ?? 0));
    const seconds = (performance.now() - began) / 1000;
    this.#options.onProgress?.(
      `ramp ${open}/${this.#options.connections} open, ${failed} failed, ` +
        `${Math.round(open / Math.max(seconds, 0.001))}/s`,
    );
  }

  /** Sends `command` to every generator. */
  async send(command: string): Promise<void> {
    const bytes = new TextEncoder().encode(command + "\n");
    await Promise.all(this.#writers.map((w) => w.write(bytes)));
  }

  /** Starts a measured window on every generator. */
  mark(): Promise<void> {
    return this.send("mark");
  }

  /** Ends the window: merged figures since `mark`. */
  async report(): Promise<WindowResult> {
    const before = this.#logs.map((l) => l.all().length);
    await this.send("report");
    const reports = await waitFor(
      () => {
        const got = this.#logs.map((l, i) => l.latest("report", before[i]));
        return got.every((r) => r) ? got as Report[] : null;
      },
      30_000,
      "generator reports",
    );
    const lateness = new Histogram(), loopDelay = new Histogram();
    for (const r of reports) {
      lateness.merge(new Histogram(r.lateness));
      loopDelay.merge(new Histogram(r.loopDelay));
    }
    const windowMs = Math.max(...reports.map((r) => r.windowMs));
    return {
      open: sum(reports.map((r) => r.open)),
      dropped: sum(reports.map((r) => r.dropped)),
      messagesPerSecond: Math.round(
        sum(reports.map((r) => r.messages)) / (windowMs / 1000),
      ),
      gaps: sum(reports.map((r) => r.gaps)),
      lateness: lateness.summary(),
      loopDelay: loopDelay.summary(),
    };
  }

  /** Churn totals of every generator since the churn began. */
  async churnReport(): Promise<Record<string, number>> {
    const before = this.#logs.map((l) => l.all().length);
    await this.send("churn-report");
    const reports = await waitFor(
      () => {
        const got = this.#logs.map((l, i) => l.latest("churn", before[i]));
        return got.every((r) => r) ? got : null;
      },
      30_000,
      "churn reports",
    );
    const total: Record<string, number> = {};
    for (const report of reports) {
      for (const [key, value] of Object.entries(report!)) {
        if (typeof value === "number") total[key] = (total[key] ?? 0) + value;
      }
    }
    return total;
  }

  /** Closes every connection and waits for the generators to exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.send("close");
    } catch {
      // A generator that already exited cannot take commands.
    }
    await Promise.all(this.#writers.map((w) => w.close().catch(() => {})));
    const timer = setTimeout(
      () => this.children.forEach((c) => c.kill("SIGKILL")),
      15_000,
    );
    await Promise.all(this.children.map((c) => c.finished()));
    clearTimeout(timer);
  }
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
