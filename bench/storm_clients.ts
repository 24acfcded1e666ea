/**
 * A process of storm clients: `count` instances of the real reconnecting
 * client module (static/ws_time_client.js), all on one server at first.
 * The load balancer is modelled by the socket constructor handed to the
 * module: on `failover` it aims every new socket at the survivor, as an LB
 * that noticed the loss at once would. Driven like the load generator:
 * commands on stdin (`failover`, `report`, `close`), JSON lines on stdout.
 *
 * @module
 */

import { WsTimeClient } from "../static/ws_time_client.js";
import { commands, emit as emitLine } from "./child_io.ts";
import { tokenStart } from "./generator.ts";

/** What one storm process is told (its only argument, as JSON). */
export interface StormPlan {
  /** ws:// origin of the first server, then of the survivor. */
  readonly first: string;
  readonly survivor: string;
  readonly count: number;
  /** "jitter": the module's defaults; "immediate": no backoff at all. */
  readonly mode: "jitter" | "immediate";
  /** Connections opened per second at the start. */
  readonly rate: number;
  /** The client's backoff base in ms (jitter mode); 0 = its default. */
  readonly baseMs: number;
  readonly label: string;
}

/** One client's story after the failover, in epoch ms. */
export interface StormClientReport {
  /** When its first welcome after the failover arrived (0 = never). */
  readonly resumedAt: number;
  /** Whether that welcome continued the count (same start within 1 s). */
  readonly continuous: boolean;
  /** Handshakes that failed after the failover. */
  readonly failedAttempts: number;
  /** When the server closed its first connection (0 = never). */
  readonly closedAt: number;
}

/** A message from a storm process. */
export type StormEvent =
  | { type: "progress"; welcomed: number; resumed: number }
  | { type: "ready"; welcomed: number }
  | {
    type: "report";
    clients: StormClientReport[];
    welcomes: number[];
    /** Closes after the failover by "opened|failed code reason". */
    closes: Record<string, number>;
    /** Retries after the failover by why ("" = plain backoff). */
    retries: Record<string, number>;
  }
  | { type: "error"; message: string };

const emit = (event: StormEvent) => emitLine(event);

/** The module's structural socket type; Deno's WebSocket fits it. */
type SocketConstructor = NonNullable<
  NonNullable<ConstructorParameters<typeof WsTimeClient>[1]>["WebSocket"]
>;

interface Tracked {
  client: WsTimeClient;
  start: number;
  report: {
    resumedAt: number;
    continuous: boolean;
    failedAttempts: number;
    closedAt: number;
  };
}

/** Runs the clients until told to close. */
export async function runStormClients(plan: StormPlan): Promise<void> {
  let target = plan.first;
  let failedOver = false;
  // Every socket of every client is built here: the modelled LB.
  class Balanced extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(String(url).replace(plan.first, target), protocols);
    }
  }
  const tracked: Tracked[] = [];
  const welcomes: number[] = [];
  const closes: Record<string, number> = {};
  const retries: Record<string, number> = {};
  let welcomed = 0, resumed = 0;
  const options = plan.mode === "immediate"
    ? { random: () => 0, maxAttempts: 100_000 }
    : plan.baseMs > 0
    ? { baseMs: plan.baseMs }
    : {};
  const started = Date.now();
  for (let i = 0; i < plan.count; i++) {
    const due = started + (i * 1000) / plan.rate;
    if (due > Date.now()) {
      await new Promise((r) => setTimeout(r, due - Date.now()));
    }
    const client = new WsTimeClient(`${plan.first}/`, {
      id: `${plan.label}-${i}`,
      WebSocket: Balanced as unknown as SocketConstructor,
      ...options,
    });
    const entry: Tracked = {
      client,
      start: NaN,
      report: {
        resumedAt: 0,
        continuous: false,
        failedAttempts: 0,
        closedAt: 0,
      },
    };
    client.on("message", (message) => {
      if (message.type !== "welcome") return;
      const at = Date.now();
      if (!failedOver) {
        if (Number.isNaN(entry.start)) welcomed++;
        entry.start = tokenStart(String(message.session));
        return;
      }
      welcomes.push(at);
      if (entry.report.resumedAt !== 0) return;
      entry.report.resumedAt = at;
      resumed++;
      // The count is continuous when the survivor kept the session's start:
      // its counts are then exactly the uninterrupted ones. (Comparing the
      // welcome's seconds with the arrival time would blame a busy
      // survivor's late welcome on the count.)
      entry.report.continuous = message.resumed === true &&
        Math.abs(tokenStart(String(message.session)) - entry.start) < 1000;
    });
    client.on("close", (detail) => {
      if (!failedOver) return;
      const key = `${detail.opened ? "opened" : "failed"} ${detail.code} ${
        detail.reason.slice(0, 40)
      }`;
      closes[key] = (closes[key] ?? 0) + 1;
      if (!detail.opened) entry.report.failedAttempts++;
      else if (entry.report.closedAt === 0) entry.report.closedAt = Date.now();
    });
    // A drain with a move window moves the client without a close: its
    // old connection ends once the new one is welcomed.
    client.on("move", (detail) => {
      if (!failedOver) return;
      const key = `moved (${detail.reason}), no close`;
      closes[key] = (closes[key] ?? 0) + 1;
      if (entry.report.closedAt === 0) entry.report.closedAt = Date.now();
    });
    client.on("retry", (retry) => {
      if (!failedOver) return;
      const why = retry.hintMs === undefined
        ? `backoff ${retry.delayMs > 4000 ? ">4s" : "<=4s"}`
        : `hint ${retry.hintMs > 4000 ? ">4s" : "<=4s"}`;
      retries[why] = (retries[why] ?? 0) + 1;
    });
    client.start();
    tracked.push(entry);
  }
  const progress = setInterval(
    () => emit({ type: "progress", welcomed, resumed }),
    250,
  );
  let readySent = false;
  const readyCheck = setInterval(() => {
    if (!readySent && welcomed === plan.count) {
      readySent = true;
      emit({ type: "ready", welcomed });
    }
  }, 50);
  try {
    for await (const command of commands()) {
      if (command === "failover") {
        target = plan.survivor;
        failedOver = true;
      } else if (command === "report") {
        emit({
          type: "report",
          clients: tracked.map((t) => t.report),
          welcomes,
          closes,
          retries,
        });
      } else if (command === "close") {
        return;
      }
    }
  } finally {
    clearInterval(progress);
    clearInterval(readyCheck);
    await Promise.all(tracked.map((t) => t.client.stop()));
  }
}

if (import.meta.main) {
  await runStormClients(JSON.parse(Deno.args[0] ?? "{}") as StormPlan);
  Deno.exit(0);
}
