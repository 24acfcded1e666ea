/**
 * One running instance: the store, the capacity sampler, the app, the
 * optional agent-check listener and the HTTP listeners on the port, started
 * in that order and stopped by one {@link Instance.close} whatever got
 * started. Signals stay with `main.ts`; anything that keeps the instance
 * from starting is a {@link StartupError} whose message names the flag.
 *
 * @module
 */

import { type App, buildApp, describeAddressLimits } from "./app.ts";
import { systemClock } from "./clock.ts";
import type { Config } from "./config/schema.ts";
import { type Agent, startAgent } from "./health/agent.ts";
import { createHostSampler } from "./health/host_sampler.ts";
import type { Logger } from "./logger.ts";
import { openStore } from "./sessions/open_store.ts";
import type { SessionStore } from "./sessions/store.ts";
import { PreciseClock } from "./ws/precise_clock.ts";

/** Where the tasks and the compiled binary may read TLS files from. */
export const TLS_DIR = "/etc/ws-time";

/** Why an instance could not start; the message names the flag. */
export class StartupError extends Error {
  override name = "StartupError";
}

/** A started instance. */
export interface Instance {
  readonly app: App;
  readonly store: SessionStore;
  /** The port the listeners share. */
  readonly port: number;
  /** Stops whatever was started: listeners, agent, sampler, app, store. */
  close(): Promise<void>;
}

/** Starts an instance with `config`; throws StartupError when it cannot. */
export async function startInstance(
  config: Config,
  logger: Logger,
): Promise<Instance> {
  const tls = readTls(config);
  requireUnstableNet(config);
  const store = await openStore({
    redisUrl: config.redisUrl,
    prefix: config.redisPrefix,
    ttlMs: config.sessionTtlMs,
    timeoutMs: config.storeTimeoutMs,
    clock: systemClock,
    logger,
  });
  // The sampler is built first (the app takes its probes) but reads the
  // app's traffic counters later.
  const late: { app?: App } = {};
  const { sampler, source } = createHostSampler({
    linkMbps: config.linkMbps,
    memoryLimitMb: config.memoryLimitMb,
    clock: systemClock,
    logger,
    ownTraffic: () =>
      late.app?.traffic() ??
        { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 },
  });
  let tickClock: PreciseClock | undefined;
  if (config.preciseTicks) {
    tickClock = new PreciseClock();
    // Now rather than at the first tick: its isolate is part of idle RSS.
    tickClock.start();
  }
  const app = buildApp({
    config,
    store,
    clock: systemClock,
    logger,
    ...(tickClock ? { tickClock } : {}),
    probes: sampler.probes,
    capacityFigures: () => ({ ...sampler.figures, trafficSource: source }),
  });
  late.app = app;
  let agent: Agent | undefined;
  const servers: Deno.HttpServer[] = [];
  const close = async () => {
    app.close();
    sampler.stop();
    await agent?.close();
    await Promise.all(servers.map((server) => server.shutdown()));
    await store.close();
  };
  try {
    agent = config.agentPort > 0
      ? startAgent({
        hostname: config.hostname,
        port: config.agentPort,
        report: () => app.monitor.report(),
        logger,
      })
      : undefined;
  } catch (error) {
    await close();
    throw new StartupError(
      `Cannot listen on --agent-port ${config.agentPort}: ${
        (error as Error).message
      }`,
    );
  }
  sampler.start();
  try {
    // Each Deno listener has an accept queue of 511 (not configurable);
    // a storm of resuming clients overflows it and waits for SYN
    // retransmissions (1 s, 3 s, 7 s). More listeners on the port multiply
    // the queue; the kernel spreads new connections over them.
    for (let i = 0; i < config.listeners; i++) {
      servers.push(Deno.serve({
        // With --port 0 the first listener picks the port the others share.
        port: i === 0 ? config.port : (servers[0]!.addr as Deno.NetAddr).port,
        hostname: config.hostname,
        reusePort: config.reusePort || config.listeners > 1,
        ...(tls ?? {}),
        onListen({ hostname, port }) {
          if (i > 0) return;
          const host = hostname.includes(":") ? `[${hostname}]` : hostname;
          logger.info(
            `ws-time listening on ${tls ? "https" : "http"}://${host}:${port}/`,
            { name: config.name, store: store.kind },
          );
        },
      }, app.handler));
    }
  } catch (error) {
    await close();
    throw new StartupError(listenError(error, config));
  }
  logger.info(...describeAddressLimits(config));
  const port = (servers[0]!.addr as Deno.NetAddr).port;
  return { app, store, port, close };
}

function readTls(config: Config): { cert: string; key: string } | undefined {
  if (config.certFile === "") return undefined;
  const read = (flag: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      const why = error instanceof Deno.errors.NotCapable ||
          error instanceof Deno.errors.PermissionDenied &&
            /allow-read/.test((error as Error).message)
        ? `not allowed by this build's --allow-read (the tasks and the binary may read ${TLS_DIR}/)`
        : (error as Error).message;
      throw new StartupError(`Cannot read --${flag} "${path}": ${why}`);
    }
  };
  return {
    cert: read("cert", config.certFile),
    key: read("key", config.keyFile),
  };
}

/**
 * SO_REUSEPORT is behind Deno's unstable net API, and Deno kills a process
 * that asks for it without `--unstable-net` (exit 70, no way to catch it):
 * refuse the flag first, by name. deno.json and `deno task compile` carry
 * the API; the bundle needs the flag on its command line.
 */
function requireUnstableNet(config: Config): void {
  const wanted = config.listeners > 1
    ? `--listeners ${config.listeners}`
    : config.reusePort
    ? "--reuse-port"
    : "";
  // Unstable APIs are absent from the namespace unless enabled.
  if (wanted === "" || "listenDatagram" in Deno) return;
  throw new StartupError(
    `${wanted} needs Deno's unstable net API: run with --unstable-net ` +
      `(deno task start and the compiled binary already carry it)`,
  );
}

/** A startup failure of Deno.serve explained in terms of our flags. */
function listenError(error: unknown, config: Config): string {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.AddrInUse) {
    return `Cannot listen on --hostname ${config.hostname} --port ${config.port}: address in use`;
  }
  if (
    config.certFile !== "" && !(error instanceof Deno.errors.PermissionDenied)
  ) {
    return `Cannot use --cert "${config.certFile}" and --key "${config.keyFile}": ${message}`;
  }
  return `Cannot listen on --hostname ${config.hostname} --port ${config.port}: ${message}`;
}
