/**
 * ws-time entry point: parses flags and environment, starts an instance and
 * wires the signals (SIGTERM drains, SIGINT closes at once). The only
 * module that reads `Deno.args` and `Deno.env`.
 *
 * @module
 */

import { helpText } from "./server/config/help.ts";
import { ConfigError, parseConfig } from "./server/config/parse.ts";
import { randomName } from "./server/config/random_name.ts";
import { type Config, OPTIONS } from "./server/config/schema.ts";
import {
  type Instance,
  startInstance,
  StartupError,
} from "./server/instance.ts";
import { consoleLogger, type Logger } from "./server/logger.ts";
import { VERSION } from "./server/version.ts";

/** Runs the server until a signal stops it; returns the exit code. */
export async function main(
  args: string[],
  env: Record<string, string>,
): Promise<number> {
  if (args.includes("--version")) {
    // deno-lint-ignore no-console
    console.log(
      `ws-time ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8})`,
    );
    return 0;
  }
  let config: Config;
  let given: ReadonlySet<keyof Config>;
  try {
    const parsed = parseConfig(args, env, randomName);
    if (parsed.help) {
      // deno-lint-ignore no-console
      console.log(helpText());
      return 0;
    }
    ({ config, given } = parsed);
  } catch (error) {
    return startupFailed(error);
  }
  const logger = consoleLogger(config.logLevel, config.logFormat);
  let instance: Instance;
  try {
    instance = await startInstance(config, logger, given);
  } catch (error) {
    return startupFailed(error);
  }
  await untilStopped(instance, logger);
  logger.info("stopped");
  return 0;
}

/** Exit code 2 with one line naming the flag; anything else is a bug. */
function startupFailed(error: unknown): number {
  if (!(error instanceof ConfigError || error instanceof StartupError)) {
    throw error;
  }
  // deno-lint-ignore no-console
  console.error(`ws-time: ${error.message}`);
  return 2;
}

/**
 * Resolves once a signal has stopped the instance: SIGTERM (systemd,
 * orchestrators, deploys) drains gracefully, SIGINT (Ctrl-C at a terminal)
 * closes everyone now; a second signal exits at once.
 */
async function untilStopped(instance: Instance, logger: Logger): Promise<void> {
  const stopped = Promise.withResolvers<void>();
  let stoppingSince = -1;
  const stop = (signal: Deno.Signal) => {
    if (stoppingSince >= 0) {
      // `deno task` forwards a terminal's Ctrl-C that the process group
      // already delivered: a copy within a moment is not a second request.
      if (performance.now() - stoppingSince < 250) return;
      logger.warn("second signal: exiting now", { signal });
      Deno.exit(1);
    }
    stoppingSince = performance.now();
    logger.info("signal", { signal });
    const stopping = signal === "SIGTERM"
      ? instance.drain()
      : instance.closeNow();
    stopping.then(stopped.resolve, stopped.reject);
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const listeners = signals.map((signal) => {
    const listener = () => stop(signal);
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  try {
    await stopped.promise;
  } finally {
    for (const [signal, listener] of listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  }
}

if (import.meta.main) {
  // Only the variables ws-time declares are read: the permission flags name
  // exactly these (`--allow-env=PORT,HOST,...`), nothing else is exposed.
  // --version needs no permission at all, so it reads none.
  const env: Record<string, string> = {};
  for (const { env: name } of Deno.args.includes("--version") ? [] : OPTIONS) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  Deno.exit(await main(Deno.args, env));
}
