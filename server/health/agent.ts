/**
 * The HAProxy agent-check listener. HAProxy connects to this TCP port every
 * `agent-inter`, reads one line and closes. The line turns capacity use into
 * a weight (`ready up 40%` at 60% use), so HAProxy shifts new sessions away
 * from a busy instance gradually instead of on/off; `drain` while the
 * instance is leaving. The agent never reports `down`: liveness stays with
 * the HTTP health check.
 *
 * @module
 */

import type { HealthReport } from "./monitor.ts";
import type { Logger } from "../logger.ts";

/**
 * The agent's answer for a health report. `ready` cancels a drain an agent
 * reply set earlier (a restarted instance on the same address), so an
 * operator's manual drain must go through `disable agent` first.
 */
export function agentReply(report: HealthReport): string {
  if (report.state === "draining") return "drain\n";
  if (!report.healthy) return "ready up 0%\n";
  const spare = Math.round(100 * (1 - report.usage));
  return `ready up ${Math.min(100, Math.max(1, spare))}%\n`;
}

/** Options of {@link startAgent}. */
export interface AgentOptions {
  /** Interface to bind, as the HTTP server's. */
  readonly hostname: string;
  /** TCP port; 0 picks a free one (tests). */
  readonly port: number;
  /** The current health report. */
  readonly report: () => HealthReport;
  readonly logger: Logger;
}

/** A running agent listener. */
export interface Agent extends AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** Stops listening and waits for answers in flight. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/** Starts the agent-check listener. */
export function startAgent(options: AgentOptions): Agent {
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
  });
  const port = (listener.addr as Deno.NetAddr).port;
  const inFlight = new Set<Promise<void>>();
  const answer = async (conn: Deno.Conn) => {
    try {
      const bytes = encoder.encode(agentReply(options.report()));
      for (let sent = 0; sent < bytes.length;) {
        sent += await conn.write(bytes.subarray(sent));
      }
    } catch (error) {
      options.logger.debug("agent answer failed", { error: String(error) });
    } finally {
      try {
        conn.close();
      } catch {
        // The peer may already have gone.
      }
    }
  };
  // accept() fails while the process is out of descriptors (EMFILE): that
  // must cost the agent a pause, never the process. Only a closed listener
  // (BadResource) ends the loop.
  let closed = false;
  const loop = (async () => {
    let pauseMs = 100;
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        options.logger.debug("agent accept failed", { error: String(error) });
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
        pauseMs = Math.min(2000, pauseMs * 2);
        continue;
      }
      pauseMs = 100;
      const job = answer(conn);
      inFlight.add(job);
      job.finally(() => inFlight.delete(job));
    }
  })();
  options.logger.info("agent-check listening", {
    port,
    hostname: options.hostname,
  });
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      closed = true;
      listener.close();
      await loop;
      await Promise.all(inFlight);
    })();
    return closing;
  };
  return { port, close, [Symbol.asyncDispose]: close };
}
