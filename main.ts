/**
 * ws-time entry point: parses flags and environment, builds the store and
 * the app, serves them on one port and wires the signals. The only module
 * that reads `Deno.args` and `Deno.env`.
 *
 * @module
 */

import {
  adjectives,
  animals,
  uniqueNamesGenerator,
} from "unique-names-generator";
import { AddressLimits } from "./server/address_limits.ts";
import { type Agent, startAgent } from "./server/agent.ts";
import { type App, type AppDeps, CLOSE, createApp } from "./server/app.ts";
import { CapacitySampler } from "./server/capacity_sampler.ts";
import { AddressSet, createClientInfo } from "./server/client_address.ts";
import { type Clock, systemClock } from "./server/clock.ts";
import { PreciseClock } from "./server/precise_clock.ts";
import {
  type Config,
  ConfigError,
  helpText,
  OPTIONS,
  parseConfig,
} from "./server/config.ts";
import type { Connection } from "./server/connections.ts";
import { Drainer } from "./server/drain.ts";
import {
  hostTrafficReader,
  processTrafficReader,
  reportedLinkMbps,
} from "./server/host_readers.ts";
import { consoleLogger, type Logger } from "./server/logger.ts";
import { createOriginCheck } from "./server/origin.ts";
import { RedisStore } from "./server/redis_store.ts";
import { MemoryStore, type SessionStore } from "./server/sessions.ts";

/** A random readable server name such as "brave-otter". */
export function randomName(): string {
  return uniqueNamesGenerator({
    dictionaries: [adjectives, animals],
    separator: "-",
    length: 2,
  });
}

async function createStore(
  config: Config,
  logger: Logger,
): Promise<SessionStore> {
  if (config.redisUrl === "") {
    return new MemoryStore(systemClock, config.sessionTtlMs);
  }
  const store = new RedisStore({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    ttlMs: config.sessionTtlMs,
    timeoutMs: config.storeTimeoutMs,
    clock: systemClock,
    logger,
  });
  // One bounded attempt, so the log says whether Redis answered; the server
  // starts either way and the store keeps retrying.
  await store.firstAttempt;
  return store;
}

/** Where the tasks and the compiled binary may read TLS files from. */
const TLS_DIR = "/etc/ws-time";

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
      throw new ConfigError(`Cannot read --${flag} "${path}": ${why}`);
    }
  };
  return {
    cert: read("cert", config.certFile),
    key: read("key", config.keyFile),
  };
}

/**
 * The sampler behind the network, event-loop and memory probes. The host's
 * counters need --allow-all under Deno; without them the network probe
 * measures this process's own WebSocket traffic (`app` is read lazily).
 */
function createSampler(
  config: Config,
  logger: Logger,
  app: () => App | undefined,
): { sampler: CapacitySampler; source: string } {
  const read = (path: string) => Deno.readTextFileSync(path);
  const host = hostTrafficReader(read);
  const linkMbps = config.linkMbps > 0
    ? config.linkMbps
    : reportedLinkMbps(read);
  if (linkMbps === 0) {
    logger.warn(
      "network probe off: the link capacity is unknown, set --link-mbps",
    );
  }
  let memoryLimit = config.memoryLimitMb * 1024 * 1024;
  if (memoryLimit === 0) {
    try {
      memoryLimit = Math.floor(Deno.systemMemoryInfo().total * 0.8);
    } catch (error) {
      logger.warn("memory probe off: set --memory-limit-mb", {
        error: String(error),
      });
    }
  }
  const own = processTrafficReader(() =>
    app()?.traffic() ??
      { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 }
  );
  const sampler = new CapacitySampler({
    clock: systemClock,
    traffic: host ?? own,
    linkBytesPerSecond: linkMbps * 1e6 / 8,
    memory: () => Deno.memoryUsage().rss,
    memoryLimitBytes: memoryLimit,
  });
  return { sampler, source: host ? "host" : "process" };
}

/**
 * The app as production runs it: client addresses through the trusted
 * proxies, the Origin check and the per-address limits in front of every
 * upgrade; `extra` adds the capacity probes. Tests build it the same way.
 */
export function buildApp(
  config: Config,
  store: SessionStore,
  clock: Clock,
  logger: Logger,
  extra: Partial<AppDeps> = {},
): App {
  return createApp({
    config,
    store,
    clock,
    logger,
    clientInfo: createClientInfo(
      new AddressSet(config.trustedProxies),
      warnOnce(logger, 16),
    ),
    admissions: [createOriginCheck(config)],
    addressGate: new AddressLimits(config, clock),
    ...extra,
  });
}

/** Warns once per peer (at most `limit` peers) about ignored forwarding. */
function warnOnce(logger: Logger, limit: number): (peer: string) => void {
  const seen = new Set<string>();
  return (peer) => {
    if (seen.has(peer) || seen.size >= limit) return;
    seen.add(peer);
    logger.warn(
      "ignoring X-Forwarded-For/Forwarded from a peer not in --trusted-proxies; behind a load balancer, list it or every client shares its address limits",
      { peer },
    );
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
  throw new ConfigError(
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

/** Runs the server until a signal stops it; returns the exit code. */
export async function main(
  args: string[],
  env: Record<string, string>,
): Promise<number> {
  let config: Config;
  let tls;
  try {
    const parsed = parseConfig(args, env, randomName);
    if (parsed.help) {
      // deno-lint-ignore no-console
      console.log(helpText());
      return 0;
    }
    config = parsed.config;
    tls = readTls(config);
    requireUnstableNet(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // deno-lint-ignore no-console
    console.error(`ws-time: ${error.message}`);
    return 2;
  }
  const logger = consoleLogger(config.logLevel);
  const store = await createStore(config, logger);
  // The sampler is built first (the app takes its probes) but reads the
  // app's traffic counters later.
  const late: { app?: App } = {};
  const { sampler, source } = createSampler(config, logger, () => late.app);
  let tickClock: PreciseClock | undefined;
  if (config.preciseTicks) {
    tickClock = new PreciseClock();
    // Now rather than at the first tick: its isolate is part of idle RSS.
    tickClock.start();
  }
  const app = buildApp(config, store, systemClock, logger, {
    ...(tickClock ? { tickClock } : {}),
    probes: sampler.probes,
    capacityFigures: () => ({ ...sampler.figures, trafficSource: source }),
  });
  late.app = app;
  let agent: Agent | undefined;
  const servers: Deno.HttpServer[] = [];
  // Stops whatever has been started so far; every exit path goes through it.
  const release = async () => {
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
    await release();
    // deno-lint-ignore no-console
    console.error(
      `ws-time: Cannot listen on --agent-port ${config.agentPort}: ${
        (error as Error).message
      }`,
    );
    return 2;
  }
  sampler.start();
  const drainer = new Drainer<Connection>({
    clock: systemClock,
    delayMs: config.drainDelayMs,
    periodMs: config.drainPeriodMs,
    connections: () => app.connections.values(),
    close(conn, reconnectAfterMs) {
      app.sendJson(conn, { type: "drain", reconnectAfterMs });
      app.closeConnection(conn, CLOSE.goingAway, "server draining");
    },
  });
  const finished = Promise.withResolvers<void>();
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
    await release();
    // deno-lint-ignore no-console
    console.error(`ws-time: ${listenError(error, config)}`);
    return 2;
  }

  let stoppingSince = -1;
  const shutdown = async () => {
    await release();
    finished.resolve();
  };
  // SIGTERM (systemd, orchestrators, deploys) drains gracefully; SIGINT
  // (Ctrl-C at a terminal) closes everyone now, with jittered hints.
  const stop = (signal: Deno.Signal) => {
    if (stoppingSince >= 0) {
      // `deno task` forwards a terminal's Ctrl-C that the process group
      // already delivered: a copy within a moment is not a second request.
      if (performance.now() - stoppingSince < 250) return;
      logger.warn("second signal: exiting now", { signal });
      Deno.exit(1);
    }
    stoppingSince = performance.now();
    app.monitor.startDraining();
    const connections = app.connections.size;
    if (signal === "SIGTERM") {
      logger.info("draining", {
        signal,
        connections,
        delayMs: config.drainDelayMs,
        periodMs: config.drainPeriodMs,
      });
      drainer.start().then(() => {
        logger.info("drained", { closed: drainer.closed });
        return shutdown();
      });
    } else {
      logger.info("stopping", { signal, connections });
      drainer.closeAllNow();
      shutdown();
    }
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const listeners = signals.map((signal) => {
    const listener = () => stop(signal);
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  await finished.promise;
  for (const [signal, listener] of listeners) {
    Deno.removeSignalListener(signal, listener);
  }
  logger.info("stopped");
  return 0;
}

if (import.meta.main) {
  // Only the variables ws-time declares are read: the permission flags name
  // exactly these (`--allow-env=PORT,HOST,...`), nothing else is exposed.
  const env: Record<string, string> = {};
  for (const { env: name } of OPTIONS) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  Deno.exit(await main(Deno.args, env));
}
