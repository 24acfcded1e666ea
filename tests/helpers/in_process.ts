/**
 * The app built in this process, exactly as production builds it
 * ({@link buildApp}), on the memory store; and a loopback server for a
 * handler, for tests that need real sockets but no separate process.
 *
 * @module
 */

import { type App, type AppOptions, buildApp } from "../../server/app.ts";
import { systemClock } from "../../server/clock.ts";
import { parseConfig } from "../../server/config/parse.ts";
import type { Config } from "../../server/config/schema.ts";
import { memoryLogger } from "../../server/logger.ts";
import { MemoryStore, type SessionStore } from "../../server/sessions/store.ts";

/** An app built in-process on the memory store, closed on dispose. */
export interface TestApp extends AsyncDisposable {
  readonly app: App;
  readonly config: Config;
  readonly store: SessionStore;
  readonly logger: ReturnType<typeof memoryLogger>;
}

/** Builds the app as production does, on a memory store, with `flags`. */
export function testApp(
  flags: string[] = [],
  deps: Partial<AppOptions> = {},
): TestApp {
  const parsed = parseConfig(["--name", "test-app", ...flags], {});
  if (parsed.help) throw new Error("unexpected --help");
  const config = parsed.config;
  const clock = deps.clock ?? systemClock;
  const store = deps.store ?? new MemoryStore(clock, config.sessionTtlMs);
  const logger = memoryLogger();
  // A handshake made here has no connection behind it, so its socket never
  // opens: the opening gate would fill after 64. The gate is tested alone
  // (server/ws/opening_gate_test.ts) and by every real-process test.
  const app = buildApp({
    config,
    store,
    clock,
    logger,
    openingLimit: Infinity,
    ...deps,
  });
  return {
    app,
    config,
    store,
    logger,
    async [Symbol.asyncDispose]() {
      app.close();
      await store.close();
    },
  };
}

/** Serves `handler` on a free loopback port; aborts and awaits on dispose. */
export function serve(
  handler: Deno.ServeHandler,
): { port: number; url: string } & AsyncDisposable {
  const controller = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen() {},
  }, handler);
  const port = server.addr.port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      controller.abort();
      await server.finished;
    },
  };
}
