/**
 * The clients of the fault bed: one process running `count` of the page's
 * reconnecting clients ({@link WsTimeClient}, default options) against one
 * URL, inside the clients' network namespace. It reports on stdout, one
 * JSON object per line, what a user would notice: every welcome (which
 * server, resumed or not, the count), every close, every move a server
 * asked for, a client that ends, and any count that went back or started
 * over. Commands on stdin, one per line: `start` (the clients connect,
 * spread over `rampMs`), `add <n>` (n more clients connect, with new
 * sessions), `status` (who is connected where), `mark` and `gaps` (each
 * client's longest wait for its count since the mark), `fetch <url>` (an
 * HTTP GET from inside the namespace, for the instances' metrics and
 * HAProxy's stats), `stop`.
 *
 * Usage: deno run --allow-net fault_clients.ts '{"url":...,"count":300}'
 *
 * @module
 */

import { type ClientOptions, WsTimeClient } from "../static/ws_time_client.js";

/** What the driver is told to do (its only argument, as JSON). */
export interface DriverPlan {
  readonly url: string;
  readonly count: number;
  /** Spread the first connections over this long (ms). */
  readonly rampMs: number;
  /** Client options beyond the defaults (none in the tests). */
  readonly options?: ClientOptions;
}

/** A line the driver prints. */
export type DriverEvent =
  | {
    type: "welcome";
    i: number;
    server: string;
    seconds: number;
    resumed: boolean;
    at: number;
  }
  | { type: "close"; i: number; code: number; opened: boolean; at: number }
  | { type: "ended"; i: number; state: string; reason: string; at: number }
  | {
    type: "violation";
    i: number;
    kind: "reset" | "back" | "skew";
    detail: string;
    at: number;
  }
  | {
    type: "status";
    connected: number;
    ticking: number;
    ended: number;
    servers: Record<string, number>;
    /** Clients by state, for the ones that are not connected. */
    states: Record<string, number>;
    at: number;
  }
  | {
    type: "move";
    i: number;
    reason: string;
    from: string;
    to: string;
    at: number;
  }
  | {
    type: "gaps";
    /** Each client's longest time between two count updates since the mark, ms. */
    gaps: number[];
  }
  | { type: "fetched"; url: string; status: number; body: string }
  | { type: "stopped" };

interface Tracked {
  readonly client: WsTimeClient;
  /** Session start as seen: the earliest arrival - its count (ms). */
  start: number;
  seconds: number;
  heardAt: number;
  server: string;
  /** Welcomes so far (1 while on the first connection). */
  welcomes: number;
  /** Longest time between two count updates since the last mark, ms. */
  gap: number;
  /** When the count last changed (performance.now()). */
  updatedAt: number;
}

const emit = (event: DriverEvent) =>
  // deno-lint-ignore no-console
  console.log(JSON.stringify(event));

/** Runs the clients until told to stop. */
export async function runDriver(plan: DriverPlan): Promise<void> {
  const tracked: Tracked[] = [];
  const add = () => {
    const i = tracked.length;
    const client = new WsTimeClient(plan.url, plan.options ?? {});
    const t: Tracked = {
      client,
      start: NaN,
      seconds: -1,
      heardAt: 0,
      server: "",
      gap: 0,
      updatedAt: 0,
      welcomes: 0,
    };
    tracked.push(t);
    client.on("message", (message) => {
      const at = Date.now();
      t.heardAt = at;
      if (typeof message.server === "string") t.server = message.server;
      const seconds = Number(message.seconds);
      if (!Number.isFinite(seconds)) return;
      const now = performance.now();
      if (t.updatedAt > 0) t.gap = Math.max(t.gap, now - t.updatedAt);
      t.updatedAt = now;
      if (message.type === "welcome") {
        t.welcomes++;
        const resumed = message.resumed === true;
        emit({ type: "welcome", i, server: t.server, seconds, resumed, at });
        if (Number.isFinite(t.start)) {
          if (!resumed) {
            emit({
              type: "violation",
              i,
              kind: "reset",
              detail: `at ${seconds} s`,
              at,
            });
          }
          // The count follows the clock of the session's first connection.
          const expected = (at - t.start) / 1000;
          if (Math.abs(seconds - expected) > 2) {
            emit({
              type: "violation",
              i,
              kind: "skew",
              detail: `${seconds} s, expected about ${expected.toFixed(1)}`,
              at,
            });
          }
        } else {
          t.start = at - seconds * 1000;
        }
      }
      // The session's start as this client sees it: the earliest arrival
      // of a count on its first connection, less that count. A first
      // welcome that waited in a busy driver (3,000 clients connecting)
      // would otherwise place the start late and make every later welcome
      // look ahead of the clock. Later connections do not refine it, so a
      // count that really jumps ahead is still caught.
      if (t.welcomes === 1) t.start = Math.min(t.start, at - seconds * 1000);
      if (seconds < t.seconds) {
        emit({
          type: "violation",
          i,
          kind: "back",
          detail: `${t.seconds} -> ${seconds}`,
          at,
        });
      }
      t.seconds = seconds;
    });
    client.on("close", ({ code, opened }) => {
      emit({ type: "close", i, code, opened, at: Date.now() });
    });
    client.on("move", ({ reason, from, to }) => {
      emit({ type: "move", i, reason, from, to, at: Date.now() });
    });
    client.on("state", ({ state, reason }) => {
      if (state === "closed" || state === "gave-up") {
        emit({ type: "ended", i, state, reason, at: Date.now() });
      }
    });
    return client;
  };
  for (let i = 0; i < plan.count; i++) add();

  const start = () =>
    tracked.forEach((t, i) =>
      setTimeout(
        () => t.client.start(),
        Math.floor(plan.rampMs * i / plan.count),
      )
    );
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffer = "";
  for await (const chunk of lines) {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const [command = "", arg = ""] = buffer.slice(0, nl).trim().split(/\s+/);
      buffer = buffer.slice(nl + 1);
      if (command === "start") start();
      else if (command === "add") {
        for (let n = 0; n < Number(arg); n++) add().start();
      } else if (command === "status") status(tracked);
      else if (command === "mark") {
        for (const t of tracked) t.gap = 0;
      } else if (command === "gaps") {
        emit({ type: "gaps", gaps: tracked.map((t) => Math.round(t.gap)) });
      } else if (command === "fetch") await fetchOne(arg);
      else if (command === "stop") {
        await Promise.all(tracked.map((t) => t.client.stop()));
        emit({ type: "stopped" });
        return;
      }
    }
  }
}

function status(tracked: readonly Tracked[]): void {
  const now = Date.now();
  const servers: Record<string, number> = {};
  const states: Record<string, number> = {};
  let connected = 0, ticking = 0, ended = 0;
  for (const t of tracked) {
    const state = t.client.state;
    if (state === "closed" || state === "gave-up") ended++;
    if (state !== "connected") {
      states[state] = (states[state] ?? 0) + 1;
      continue;
    }
    connected++;
    servers[t.server] = (servers[t.server] ?? 0) + 1;
    if (now - t.heardAt < 2000) ticking++;
  }
  emit({
    type: "status",
    connected,
    ticking,
    ended,
    servers,
    states,
    at: now,
  });
}

async function fetchOne(url: string): Promise<void> {
  try {
    const response = await fetch(url, {
      // JSON where there is a choice (the health check's details).
      headers: { accept: "application/json, */*" },
      signal: AbortSignal.timeout(5000),
    });
    emit({
      type: "fetched",
      url,
      status: response.status,
      body: await response.text(),
    });
  } catch (error) {
    emit({ type: "fetched", url, status: 0, body: String(error) });
  }
}

if (import.meta.main) {
  await runDriver(JSON.parse(Deno.args[0] ?? "{}") as DriverPlan);
}
