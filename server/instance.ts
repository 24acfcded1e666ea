/**
 * One running instance: the store, the capacity sampler, the app, the
 * optional agent-check listener and the HTTP listeners on the port, started
 * in that order and stopped by one {@link Instance.close} whatever got
 * started. Signals stay with `main.ts`; anything that keeps the instance
 * from starting is a {@link StartupError} whose message names the flag.
 *
 * @module
 */

import { type App, buildApp } from "./app.ts";
import {
  connectionsThatFit,
  descriptorHeadroom,
  DescriptorReserve,
  probeDescriptors,
} from "./http/descriptors.ts";
import { ListenerGroup } from "./http/listeners.ts";
import { systemClock } from "./clock.ts";
import { parseHostPort } from "./config/parse.ts";
import type { Config } from "./config/schema.ts";
import { type Agent, startAgent } from "./health/agent.ts";
import { createHostSampler } from "./health/host_sampler.ts";
import type { Logger } from "./logger.ts";
import { openStore } from "./sessions/open_store.ts";
import type { SessionStore } from "./sessions/store.ts";
import { describeAddressLimits } from "./ws/address_limits.ts";
import { PreciseClock } from "./ws/precise_clock.ts";

/** Where the tasks and the compiled binary may read TLS files from. */
export const TLS_DIR = "/etc/ws-time";

/** Descriptors held back for when the process runs out. */
export const RESERVE_SIZE = 32;

/**
 * `config` with a --max-connections that fits the `available` descriptors
 * (null: plenty). A default that does not fit is lowered, with a warning;
 * an explicit value that does not fit stops startup, since the instance
 * would run out of descriptors before it reached its own cap.
 */
export function fitDescriptors(
  config: Config,
  available: number | null,
  explicit: boolean,
  logger: Logger,
): Config {
  if (available === null) return config;
  const fit = connectionsThatFit(available, RESERVE_SIZE);
  if (config.maxConnections <= fit) return config;
  if (explicit) {
    throw new StartupError(
      `Cannot fit --max-connections ${config.maxConnections} in the ${available} descriptors this process may still open (ulimit -n, systemd LimitNOFILE=): at most ${fit} fit beside what the instance needs for handshakes, listeners and the store; raise the limit or lower --max-connections`,
    );
  }
  logger.warn(
    "--max-connections lowered to fit the descriptor limit; raise the limit (LimitNOFILE=) for more",
    { available, maxConnections: fit, default: config.maxConnections },
  );
  return Object.freeze({ ...config, maxConnections: fit });
}

/** A descriptor that costs nothing: /dev/null, read-only. */
const openNull = () => Deno.openSync("/dev/null");

/** The descriptor reserve, or null where /dev/null cannot be opened. */
function openReserve(): DescriptorReserve | null {
  try {
    openNull().close();
  } catch {
    return null;
  }
  return new DescriptorReserve(RESERVE_SIZE, openNull);
}

/** Why an instance could not start; the message names the flag. */
export class StartupError extends Error {
  override name = "StartupError";
}

/** A started instance. */
export interface Instance {
  /** The config it runs with (--max-connections fitted to the limit). */
  readonly config: Config;
  readonly app: App;
  readonly store: SessionStore;
  /** The port the listeners share. */
  readonly port: number;
  /**
   * SIGTERM's path: fails the health check, waits the drain delay for the
   * balancer to notice, closes every client with a reconnect hint over the
   * drain period, then stops. Resolves once stopped; a second call waits
   * for the same stop.
   */
  drain(): Promise<void>;
  /**
   * SIGINT's path: fails the health check, closes every client now (each
   * with a jittered hint), then stops.
   */
  closeNow(): Promise<void>;
  /** Stops whatever was started: listeners, agent, sampler, app, store. */
  close(): Promise<void>;
}

/**
 * Starts an instance with `config`; `given` names the options set
 * explicitly. Throws StartupError when it cannot start.
 */
export async function startInstance(
  config: Config,
  logger: Logger,
  given: ReadonlySet<keyof Config> = new Set(),
): Promise<Instance> {
  const tls = readTls(config);
  requireUnstableNet(config);
  const reserve = openReserve();
  const need = config.maxConnections +
    descriptorHeadroom(config.maxConnections, RESERVE_SIZE);
  const available = reserve ? probeDescriptors(openNull, need) : null;
  config = fitDescriptors(
    config,
    available === need ? null : available,
    given.has("maxConnections"),
    logger,
  );
  // The listeners' state, read by the app's metrics and health probe.
  const acceptState = { accepting: true, acceptFailures: 0 };
  const store = await openStore({
    redisUrl: config.redisUrl,
    sentinels: config.redisSentinels.map((s) => parseHostPort(s)!),
    cluster: config.redisCluster.map((s) => parseHostPort(s)!),
    masterName: config.redisMasterName,
    sentinelPassword: config.redisSentinelPassword,
    sentinelTls: config.redisSentinelTls,
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
    probes: {
      ...sampler.probes,
      // Out of descriptors the listeners are closed: say so, too.
      descriptors: () => acceptState.accepting ? 0 : 1,
    },
    capacityFigures: () => ({ ...sampler.figures, trafficSource: source }),
    listeners: () => acceptState,
    ...(store.exchangePresence
      ? {
        fleetBoard: {
          exchangePresence: store.exchangePresence.bind(store),
        },
      }
      : {}),
  });
  late.app = app;
  let agent: Agent | undefined;
  const listeners = new ListenerGroup({
    hostname: config.hostname,
    port: config.port,
    count: config.listeners,
    reusePort: config.reusePort,
    ...(tls ? { tls } : {}),
    handler: app.handler,
    reserve,
    clock: systemClock,
    logger,
    onAccepting: (accepting) => {
      acceptState.accepting = accepting;
    },
    onAcceptFailure: () => {
      acceptState.acceptFailures++;
    },
    onListen({ hostname, port }) {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      logger.info(
        `ws-time listening on ${tls ? "https" : "http"}://${host}:${port}/`,
        { name: config.name, store: store.kind },
      );
    },
  });
  let operator: Deno.HttpServer | undefined;
  const close = async () => {
    app.close();
    sampler.stop();
    await agent?.close();
    await operator?.shutdown();
    await listeners.shutdown();
    await store.close();
  };
  try {
    operator = config.metricsPort > 0
      ? Deno.serve({
        hostname: config.metricsHostname,
        port: config.metricsPort,
        onListen({ hostname, port }) {
          logger.info("operator endpoints listening", { hostname, port });
        },
      }, app.operatorHandler)
      : undefined;
  } catch (error) {
    await close();
    throw new StartupError(
      `Cannot listen on --metrics-hostname ${config.metricsHostname} --metrics-port ${config.metricsPort}: ${
        (error as Error).message
      }`,
    );
  }
  try {
    agent = config.agentPort > 0
      ? startAgent({
        hostname: config.agentHostname || config.hostname,
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
    listeners.start();
  } catch (error) {
    await close();
    throw new StartupError(listenError(error, config));
  }
  logger.info("descriptors", {
    available: available === null
      ? "unknown"
      : available === need
      ? `>=${need}`
      : available,
    maxConnections: config.maxConnections,
    reserve: reserve?.held ?? 0,
  });
  logger.info(...describeAddressLimits(config));
  let stopping: Promise<void> | undefined;
  const drain = () =>
    stopping ??= (async () => {
      logger.info("draining", {
        connections: app.connections.size,
        delayMs: config.drainDelayMs,
        periodMs: config.drainPeriodMs,
        moveWindowMs: config.moveWindowMs,
      });
      // Each client is asked to move (JSON) or closed with a hint (text).
      const asked = await app.drain();
      logger.info("drained", { asked, left: app.connections.size });
      await close();
    })();
  const closeNow = () =>
    stopping ??= (async () => {
      logger.info("stopping", { connections: app.connections.size });
      app.closeNow();
      await close();
    })();
  return { config, app, store, port: listeners.port, drain, closeNow, close };
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
