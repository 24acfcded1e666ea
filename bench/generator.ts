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
import net from "node:net";
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
  | {
    type: "churn";
    opened: number;
    closed: number;
    resumed: number;
    notResumed: number;
    bad: number;
    badAnswered: number;
    failed: number;
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
        socket.token = token;
        if (resuming.has(socket)) {
          resuming.delete(socket);
          if (text.includes('"resumed":true')) churn.resumed++;
          else churn.notResumed++;
        }
        socket.start = tokenStart(token);
        socket.lastSeconds = Number(/"seconds":(\d+)/.exec(text)?.[1] ?? -1);
        return;
      }
      const mark = text.indexOf('"seconds":');
      if (mark < 0) return;
      // Keep the newest token, as the page's client does: a welcome token
      // older than the session TTL no longer resumes.
      if (text.length > 80 && text.includes('"session":"')) {
        socket.token = /"session":"([\w-]+)"/.exec(text)?.[1] ?? socket.token;
      }
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
      if (churned.has(socket)) return;
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

  // Churn (the soak): connections closed on purpose, resumes asked for.
  const churned = new WeakSet<LoadSocket>();
  const resuming = new WeakSet<LoadSocket>();
  const churn = {
    opened: 0,
    closed: 0,
    resumed: 0,
    notResumed: 0,
    bad: 0,
    badAnswered: 0,
    failed: 0,
  };
  const tokens: string[] = [];
  let churnTimer: ReturnType<typeof setInterval> | undefined;
  let serial = plan.count;
  const openOne = (token: string) => {
    const source = plan.sources[serial % plan.sources.length]!;
    const socket = new LoadSocket({
      host: plan.host,
      port: plan.port,
      path: `/?id=${plan.label}-${serial++}${
        token === "" ? "" : `&session=${token}`
      }`,
      localAddress: source,
      protocol: "ws-time.v1",
    }, events);
    if (token !== "") resuming.add(socket);
    sockets.add(socket);
    pending++;
    churn.opened++;
  };
  /** Every 100 ms: a tenth of the per-second churn. */
  const churnStep = (perSecond: number, resumeShare: number, bad: number) => {
    const n = Math.max(1, Math.round(perSecond / 10));
    const live = [...sockets].filter((s) => s.token !== "");
    for (let i = 0; i < n && live.length > 0; i++) {
      const victim = live.splice(
        Math.floor(Math.random() * live.length),
        1,
      )[0]!;
      churned.add(victim);
      tokens.push(victim.token);
      if (tokens.length > 1000) tokens.shift();
      victim.destroy();
      open--;
      churn.closed++;
    }
    for (let i = 0; i < n; i++) {
      const resume = tokens.length > 0 && Math.random() < resumeShare;
      openOne(resume ? tokens.pop()! : "");
    }
    // A fraction of a handshake per step adds up instead of rounding to 0.
    badCredit += bad / 10;
    for (; badCredit >= 1; badCredit--) badHandshake();
  };
  let badCredit = 0;
  /** A malformed upgrade (an old WebSocket version): it must get 426. */
  const badHandshake = () => {
    churn.bad++;
    const source = plan.sources[churn.bad % plan.sources.length]!;
    const socket = net.connect({
      host: plan.host,
      port: plan.port,
      localAddress: source,
    });
    socket.on("connect", () =>
      socket.write(
        `GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n` +
          "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n" +
          "Sec-WebSocket-Key: d3MtdGltZSBiZW5jaCAxNg==\r\n\r\n",
      ));
    socket.once("data", (data) => {
      if (/^HTTP\/1\.1 426/.test(String(data))) churn.badAnswered++;
      socket.destroy();
    });
    socket.on("error", () => {
      churn.failed++;
      socket.destroy();
    });
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
    } else if (command.startsWith("churn ")) {
      const [perSecond = 0, resumeShare = 0, bad = 0] = command.slice(6)
        .split(" ").map(Number);
      clearInterval(churnTimer);
      if (perSecond > 0) {
        churnTimer = setInterval(
          () => churnStep(perSecond, resumeShare, bad),
          100,
        );
      }
    } else if (command === "churn-report") {
      emit({ type: "churn", ...churn });
    } else if (command === "close") {
      clearInterval(churnTimer);
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
