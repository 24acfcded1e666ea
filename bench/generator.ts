/**
 * The load generator: one process opening `count` ws-time.v1 connections at
 * a controlled rate over several source addresses, measuring each tick's
 * lateness against its connection's ideal cadence (session start + k s; the
 * start is read from the session token, which carries it). It is driven by
 * the coordinator (`bench.ts`) through JSON lines: commands on stdin
 * (`mark`, `report`, `close`), events on stdout (`progress`, `ramped`,
 * `report`).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { commands, emit as emitLine } from "./child_io.ts";
import { Histogram } from "./histogram.ts";
import { LoadSocket, type LoadSocketEvents } from "./ws_client.ts";
import { HEARTBEAT } from "../static/ws_time_client.js";

/** What one generator is told to do (its only argument, as JSON). */
export interface GeneratorPlan {
  readonly host: string;
  readonly port: number;
  readonly count: number;
  /** New connections per second; 0 = as fast as `maxPending` allows. */
  readonly rate: number;
  /** Handshakes allowed in flight at once. */
  readonly maxPending: number;
  /** Source addresses, used round-robin. */
  readonly sources: readonly string[];
  /** Prefix of each connection's `id` label. */
  readonly label: string;
  /** Answer a tick with a heartbeat at most this often (ms); 0 = never. */
  readonly heartbeatMs: number;
}

/** A message from a generator to the coordinator. */
export type GeneratorEvent =
  | {
    type: "progress";
    open: number;
    failed: number;
    pending: number;
  }
  | {
    type: "ramped";
    open: number;
    failed: number;
    rampMs: number;
    handshake: ReturnType<Histogram["toJSON"]>;
    errors: Record<string, number>;
  }
  | {
    type: "report";
    open: number;
    dropped: number;
    messages: number;
    gaps: number;
    lateness: ReturnType<Histogram["toJSON"]>;
    loopDelay: ReturnType<Histogram["toJSON"]>;
    windowMs: number;
  }
  | { type: "error"; message: string };

const now = () => performance.timeOrigin + performance.now();

/** Session start (ms) carried in bytes 1-6 of a ws-time token. */
export function tokenStart(token: string): number {
  const raw = Buffer.from(token, "base64url");
  return raw.length > 7 ? raw.readUIntBE(1, 6) : NaN;
}

const emit = (event: GeneratorEvent) => emitLine(event);

/** Runs one generator until told to close. */
export async function runGenerator(plan: GeneratorPlan): Promise<void> {
  const sockets = new Set<LoadSocket>();
  const errors: Record<string, number> = {};
  const handshake = new Histogram();
  let lateness = new Histogram();
  let loopDelay = new Histogram();
  let open = 0, failed = 0, pending = 0, dropped = 0, messages = 0, gaps = 0;
  let windowStart = now();
  const began = now();
  const opening = new WeakMap<LoadSocket, number>();

  const events: LoadSocketEvents = {
    open(socket) {
      pending--;
      open++;
      handshake.add(now() - (opening.get(socket) ?? now()));
    },
    message(socket, text) {
      const at = now();
      messages++;
      if (text.startsWith('{"type":"welcome"')) {
        const token = /"session":"([\w-]+)"/.exec(text)?.[1] ?? "";
        socket.start = tokenStart(token);
        socket.lastSeconds = Number(/"seconds":(\d+)/.exec(text)?.[1] ?? -1);
        return;
      }
      const mark = text.indexOf('"seconds":');
      if (mark < 0) return;
      const seconds = parseInt(text.slice(mark + 10), 10);
      if (socket.lastSeconds >= 0 && seconds !== socket.lastSeconds + 1) gaps++;
      socket.lastSeconds = seconds;
      // As the page's client does: on a tick, at most every heartbeatMs.
      if (
        plan.heartbeatMs > 0 && at - socket.heartbeatAt >= plan.heartbeatMs
      ) {
        socket.heartbeatAt = at;
        socket.send(HEARTBEAT);
      }
      if (Number.isFinite(socket.start)) {
        lateness.add(at - (socket.start + seconds * 1000));
      }
    },
    close(socket, opened, reason) {
      sockets.delete(socket);
      if (opened) {
        open--;
        dropped++;
      } else {
        pending--;
        failed++;
      }
      const key = reason.replace(/\d+/g, "N").slice(0, 80);
      errors[key] = (errors[key] ?? 0) + 1;
    },
  };

  let started = 0;
  const rampDone = Promise.withResolvers<void>();
  const ramp = setInterval(() => {
    const due = plan.rate > 0
      ? Math.min(plan.count, Math.floor((now() - began) * plan.rate / 1000))
      : plan.count;
    while (started < due && pending < plan.maxPending) {
      const source = plan.sources[started % plan.sources.length]!;
      const socket = new LoadSocket({
        host: plan.host,
        port: plan.port,
        path: `/?id=${plan.label}-${started}`,
        localAddress: source,
        protocol: "ws-time.v1",
      }, events);
      opening.set(socket, now());
      sockets.add(socket);
      started++;
      pending++;
    }
    if (started === plan.count && pending === 0) {
      clearInterval(ramp);
      rampDone.resolve();
    }
  }, 5);

  const progress = setInterval(
    () => emit({ type: "progress", open, failed, pending }),
    250,
  );
  // Event-loop delay: how late a 50 ms timer fires, beside tick lateness.
  let lagTimer: ReturnType<typeof setTimeout> | undefined;
  const lagLoop = (expected: number) => {
    lagTimer = setTimeout(() => {
      const at = now();
      loopDelay.add(at - expected);
      lagLoop(at + 50);
    }, 50);
  };
  lagLoop(now() + 50);

  await rampDone.promise;
  clearInterval(progress);
  emit({
    type: "ramped",
    open,
    failed,
    rampMs: Math.round(now() - began),
    handshake: handshake.toJSON(),
    errors,
  });
  dropped = 0;

  for await (const command of commands()) {
    if (command === "mark") {
      lateness = new Histogram();
      loopDelay = new Histogram();
      messages = 0;
      dropped = 0;
      gaps = 0;
      windowStart = now();
    } else if (command === "report") {
      emit({
        type: "report",
        open,
        dropped,
        messages,
        gaps,
        lateness: lateness.toJSON(),
        loopDelay: loopDelay.toJSON(),
        windowMs: Math.round(now() - windowStart),
      });
    } else if (command === "close") {
      clearTimeout(lagTimer);
      for (const socket of [...sockets]) socket.destroy();
      return;
    }
  }
  clearTimeout(lagTimer);
  for (const socket of [...sockets]) socket.destroy();
}

if (import.meta.main) {
  await runGenerator(JSON.parse(Deno.args[0] ?? "{}") as GeneratorPlan);
  Deno.exit(0);
}
