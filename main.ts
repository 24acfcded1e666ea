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
import { createApp } from "./server/app.ts";
import { systemClock } from "./server/clock.ts";
import {
  type Config,
  ConfigError,
  helpText,
  OPTIONS,
  parseConfig,
} from "./server/config.ts";
import { consoleLogger, type Logger } from "./server/logger.ts";
import { MemoryStore, type SessionStore } from "./server/sessions.ts";

/** A random readable server name such as "brave-otter". */
export function randomName(): string {
  return uniqueNamesGenerator({
    dictionaries: [adjectives, animals],
    separator: "-",
    length: 2,
  });
}

function createStore(config: Config, _logger: Logger): SessionStore {
  return new MemoryStore(systemClock, config.sessionTtlMs);
}

function readTls(config: Config): { cert: string; key: string } | undefined {
  if (config.certFile === "") return undefined;
  const read = (flag: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      throw new ConfigError(
        `Cannot read --${flag} "${path}": ${(error as Error).message}`,
      );
    }
  };
  return {
    cert: read("cert", config.certFile),
    key: read("key", config.keyFile),
  };
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
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // deno-lint-ignore no-console
    console.error(`ws-time: ${error.message}`);
    return 2;
  }
  const logger = consoleLogger(config.logLevel);
  const store = createStore(config, logger);
  const app = createApp({ config, store, clock: systemClock, logger });
  const finished = Promise.withResolvers<void>();
  const server = Deno.serve({
    port: config.port,
    hostname: config.hostname,
    reusePort: config.reusePort,
    ...(tls ?? {}),
    onListen({ hostname, port }) {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      logger.info(
        `ws-time listening on ${tls ? "https" : "http"}://${host}:${port}/`,
        { name: config.name, store: store.kind },
      );
    },
  }, app.handler);

  let stopping = false;
  const stop = (signal: Deno.Signal) => {
    if (stopping) {
      logger.warn("second signal: exiting now", { signal });
      Deno.exit(1);
    }
    stopping = true;
    logger.info("stopping", { signal, connections: app.connections.size });
    app.close();
    server.shutdown().then(() => store.close()).then(() => finished.resolve());
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
  // Only the documented variables are read, so --allow-env can name them.
  const env: Record<string, string> = {};
  for (const { env: name } of OPTIONS) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  Deno.exit(await main(Deno.args, env));
}
