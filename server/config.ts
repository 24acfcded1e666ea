/**
 * Flags and environment variables resolved once into a complete, frozen,
 * validated {@link Config}. Every option and its default lives in
 * {@link OPTIONS}; `--help` is generated from the same table, so the two can
 * never disagree. Flags win over environment variables.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { AddressSet } from "./client_address.ts";

/** The fully resolved configuration every other module receives. */
export interface Config {
  /** TCP port to listen on. Default 8000. */
  readonly port: number;
  /** Interface to bind. Default "0.0.0.0". */
  readonly hostname: string;
  /** Server name shown to clients. Default: a random adjective-animal. */
  readonly name: string;
  /** Grace period of a closed session, in ms. Default 5 min. */
  readonly sessionTtlMs: number;
  /** Hard cap of open WebSocket connections. Default 10000. */
  readonly maxConnections: number;
  /** Capacity share above which /healthcheck fails. Default 0.6. */
  readonly healthThreshold: number;
  /** Capacity share below which an unhealthy instance recovers. Default 0.5. */
  readonly healthRecover: number;
  /** Redis URL; empty selects the in-memory store. Default "". */
  readonly redisUrl: string;
  /** Prefix of every Redis key and channel. Default "ws-time:". */
  readonly redisPrefix: string;
  /** Secret that signs session tokens; shared by all instances. */
  readonly sessionSecret: string;
  /** Timeout of one store call, in ms. Default 500. */
  readonly storeTimeoutMs: number;
  /** Link capacity in Mbit/s; 0 reads it from the interface. Default 0. */
  readonly linkMbps: number;
  /** Memory limit in MiB for the capacity monitor; 0 = 80% of RAM. */
  readonly memoryLimitMb: number;
  /** TCP port of the HAProxy agent-check listener; 0 disables it. */
  readonly agentPort: number;
  /** Time between SIGTERM and the first drain close, in ms. Default 10 s. */
  readonly drainDelayMs: number;
  /** Window over which drain closes are spread, in ms. Default 30 s. */
  readonly drainPeriodMs: number;
  /** Extra origins allowed to open WebSockets; "*" allows any. */
  readonly allowedOrigins: readonly string[];
  /** Refuse upgrades without an Origin header. Default false. */
  readonly requireOrigin: boolean;
  /** Peers whose X-Forwarded-For / Forwarded headers are believed. */
  readonly trustedProxies: readonly string[];
  /** Open connections allowed per client address. Default 100. */
  readonly maxPerAddress: number;
  /** New connections per second allowed per client address. Default 20. */
  readonly ratePerAddress: number;
  /** Largest client message in bytes. Default 4096. */
  readonly maxMessageBytes: number;
  /** Bytes queued for a client that stops reading before it is closed. */
  readonly maxBufferedBytes: number;
  /** Client messages allowed per second. Default 5. */
  readonly maxMessagesPerSecond: number;
  /**
   * Deno's ping/idle timeout in seconds; 0 disables it. Default 0: a tick
   * every second already lets TCP end a vanished peer, and at 19.5k
   * connections the per-socket ping cost ~7 KB each and 5x the tick p99
   * (bench/README.md).
   */
  readonly idleTimeoutS: number;
  /** PEM certificate file for TLS; needs `key`. Default "". */
  readonly certFile: string;
  /** PEM private key file for TLS; needs `cert`. Default "". */
  readonly keyFile: string;
  /** Share the port with sibling processes (SO_REUSEPORT). */
  readonly reusePort: boolean;
  /**
   * Listening sockets on the port, each with Deno's fixed accept queue of
   * 511; more than 1 implies SO_REUSEPORT. Default 1.
   */
  readonly listeners: number;
  /**
   * Wake the ticker from a worker thread instead of Deno's millisecond
   * timers: ticks leave about 0.5 ms sooner, for up to 15% more CPU at
   * 19.5k connections (bench/README.md). Default false.
   */
  readonly preciseTicks: boolean;
  /** Least severe log level printed. Default "info". */
  readonly logLevel: "debug" | "info" | "warn" | "error";
}

/** Raised for any invalid option; the message names the flag and value. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Kind = "int" | "number" | "string" | "bool" | "duration" | "list";

interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  readonly key: keyof Config;
  readonly kind: Kind;
  readonly fallback: string;
  readonly help: string;
  readonly min?: number;
  readonly max?: number;
}

/** Every option: flag, environment variable, default (as text) and help. */
export const OPTIONS: readonly OptionSpec[] = [
  opt("port", "PORT", "port", "int", "8000", "TCP port", 0, 65535),
  opt("hostname", "HOST", "hostname", "string", "0.0.0.0", "interface"),
  opt("name", "NAME", "name", "string", "", "server name (random)"),
  opt(
    "session-ttl",
    "SESSION_TTL",
    "sessionTtlMs",
    "duration",
    "5m",
    "grace period of a closed session",
    1000,
    7 * 24 * 3600_000,
  ),
  opt(
    "max-connections",
    "MAX_CONNECTIONS",
    "maxConnections",
    "int",
    "10000",
    "hard cap of open connections",
    1,
    10_000_000,
  ),
  opt(
    "health-threshold",
    "HEALTH_THRESHOLD",
    "healthThreshold",
    "number",
    "0.6",
    "capacity share that fails /healthcheck",
    0.01,
    1,
  ),
  opt(
    "health-recover",
    "HEALTH_RECOVER",
    "healthRecover",
    "number",
    "0.5",
    "capacity share that heals it again",
    0,
    1,
  ),
  opt("redis", "REDIS_URL", "redisUrl", "string", "", "redis:// URL"),
  opt(
    "redis-prefix",
    "REDIS_PREFIX",
    "redisPrefix",
    "string",
    "ws-time:",
    "prefix of Redis keys",
  ),
  opt(
    "session-secret",
    "SESSION_SECRET",
    "sessionSecret",
    "string",
    "",
    "token signing secret (random)",
  ),
  opt(
    "store-timeout",
    "STORE_TIMEOUT",
    "storeTimeoutMs",
    "duration",
    "500ms",
    "timeout of one store call",
    1,
    60_000,
  ),
  opt(
    "link-mbps",
    "LINK_MBPS",
    "linkMbps",
    "number",
    "0",
    "link capacity, 0 = from the interface",
    0,
    1e7,
  ),
  opt(
    "memory-limit-mb",
    "MEMORY_LIMIT_MB",
    "memoryLimitMb",
    "int",
    "0",
    "memory limit, 0 = 80% of RAM",
    0,
    1e9,
  ),
  opt(
    "agent-port",
    "AGENT_PORT",
    "agentPort",
    "int",
    "0",
    "HAProxy agent-check port, 0 = off",
    0,
    65535,
  ),
  opt(
    "drain-delay",
    "DRAIN_DELAY",
    "drainDelayMs",
    "duration",
    "10s",
    "wait after SIGTERM before closing",
    0,
    3600_000,
  ),
  opt(
    "drain-period",
    "DRAIN_PERIOD",
    "drainPeriodMs",
    "duration",
    "30s",
    "window the drain closes spread over",
    0,
    3600_000,
  ),
  opt(
    "allowed-origins",
    "ALLOWED_ORIGINS",
    "allowedOrigins",
    "list",
    "",
    "extra origins, comma-separated",
  ),
  opt(
    "require-origin",
    "REQUIRE_ORIGIN",
    "requireOrigin",
    "bool",
    "false",
    "refuse upgrades without Origin",
  ),
  opt(
    "trusted-proxies",
    "TRUSTED_PROXIES",
    "trustedProxies",
    "list",
    "",
    "proxy addresses trusted for X-Forwarded-For",
  ),
  opt(
    "max-per-address",
    "MAX_PER_ADDRESS",
    "maxPerAddress",
    "int",
    "100",
    "open connections per client address",
    1,
    10_000_000,
  ),
  opt(
    "rate-per-address",
    "RATE_PER_ADDRESS",
    "ratePerAddress",
    "number",
    "20",
    "new connections/s per client address",
    0.01,
    1e7,
  ),
  opt(
    "max-message-bytes",
    "MAX_MESSAGE_BYTES",
    "maxMessageBytes",
    "int",
    "4096",
    "largest client message",
    1,
    16 * 1024 * 1024,
  ),
  opt(
    "max-buffered-bytes",
    "MAX_BUFFERED_BYTES",
    "maxBufferedBytes",
    "int",
    "65536",
    "bytes queued for a non-reading client",
    1024,
    1 << 30,
  ),
  opt(
    "max-messages-per-second",
    "MAX_MESSAGES_PER_SECOND",
    "maxMessagesPerSecond",
    "number",
    "5",
    "client messages allowed per second",
    0.01,
    1e6,
  ),
  opt(
    "idle-timeout",
    "IDLE_TIMEOUT",
    "idleTimeoutS",
    "int",
    "0",
    "ping/idle timeout in s, 0 = off",
    0,
    86400,
  ),
  opt("cert", "TLS_CERT", "certFile", "string", "", "PEM certificate file"),
  opt("key", "TLS_KEY", "keyFile", "string", "", "PEM private key file"),
  opt(
    "reuse-port",
    "REUSE_PORT",
    "reusePort",
    "bool",
    "false",
    "share the port with sibling processes",
  ),
  opt(
    "listeners",
    "LISTENERS",
    "listeners",
    "int",
    "1",
    "accept queues of 511 on the port, for reconnect storms",
    1,
    16,
  ),
  opt(
    "precise-ticks",
    "PRECISE_TICKS",
    "preciseTicks",
    "bool",
    "false",
    "sub-millisecond tick timers (a worker thread; more CPU)",
  ),
  opt(
    "log-level",
    "LOG_LEVEL",
    "logLevel",
    "string",
    "info",
    "debug, info, warn or error",
  ),
];

function opt(
  flag: string,
  env: string,
  key: keyof Config,
  kind: Kind,
  fallback: string,
  help: string,
  min?: number,
  max?: number,
): OptionSpec {
  const spec: OptionSpec = { flag, env, key, kind, fallback, help };
  return min === undefined ? spec : { ...spec, min, max: max ?? Infinity };
}

/** Result of parsing: either a config or a request for help. */
export type ParseResult =
  | { readonly help: true }
  | { readonly help: false; readonly config: Config };

/**
 * Resolves flags and environment into a frozen config; throws ConfigError
 * naming the flag, the value and what was expected.
 */
export function parseConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  makeName: () => string = () => "ws-time",
): ParseResult {
  const options: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
  };
  for (const spec of OPTIONS) options[spec.flag] = { type: "string" };
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true });
  } catch (error) {
    throw new ConfigError(
      `${(error as Error).message.split("\n")[0]} (see --help)`,
    );
  }
  if (parsed.values.help === true) return { help: true };
  const out: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const flagValue = parsed.values[spec.flag];
    const raw = typeof flagValue === "string"
      ? flagValue
      : env[spec.env] ?? spec.fallback;
    const source = typeof flagValue === "string"
      ? `--${spec.flag}`
      : env[spec.env] !== undefined
      ? `${spec.env} (--${spec.flag})`
      : `--${spec.flag}`;
    out[spec.key] = convert(spec, raw, source);
  }
  if (out.name === "") out.name = makeName();
  return {
    help: false,
    config: Object.freeze(validate(out as unknown as Config)),
  };
}

function convert(spec: OptionSpec, raw: string, source: string): unknown {
  const fail = (expected: string): never => {
    throw new ConfigError(
      `Invalid ${source} "${raw}": expected ${expected}`,
    );
  };
  const range = (n: number, unit = ""): number => {
    if (spec.min !== undefined && (n < spec.min || n > (spec.max ?? n))) {
      fail(`a value from ${spec.min}${unit} to ${spec.max}${unit}`);
    }
    return n;
  };
  switch (spec.kind) {
    case "int": {
      if (!/^\d+$/.test(raw)) fail("a whole number");
      return range(Number(raw));
    }
    case "number": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) fail("a number");
      return range(n);
    }
    case "duration": {
      const ms = parseDuration(raw);
      if (ms === null) fail("a duration such as 500ms, 10s or 5m");
      return range(ms as number, "ms");
    }
    case "bool": {
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off|)$/i.test(raw)) return false;
      return fail("true or false");
    }
    case "list":
      return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "string":
      return raw;
  }
}

/** Parses "500ms", "10s", "5m", "1h" or a bare number of seconds into ms. */
export function parseDuration(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[
    (match[2] ?? "s") as "ms" | "s" | "m" | "h"
  ];
  return Math.round(Number(match[1]) * unit);
}

function validate(config: Config): Config {
  if (!/^[\w.:-]{1,64}$/.test(config.name)) {
    throw new ConfigError(
      `Invalid --name "${config.name}": expected 1-64 letters, digits, '.', ':', '_' or '-'`,
    );
  }
  if (!["debug", "info", "warn", "error"].includes(config.logLevel)) {
    throw new ConfigError(
      `Invalid --log-level "${config.logLevel}": expected debug, info, warn or error`,
    );
  }
  if (config.healthRecover > config.healthThreshold) {
    throw new ConfigError(
      `Invalid --health-recover "${config.healthRecover}": expected at most --health-threshold (${config.healthThreshold})`,
    );
  }
  if ((config.certFile === "") !== (config.keyFile === "")) {
    throw new ConfigError(
      `Invalid --cert/--key: expected both PEM files or neither`,
    );
  }
  if (config.redisUrl !== "") {
    let url: URL | null = null;
    try {
      url = new URL(config.redisUrl);
    } catch { /* reported below */ }
    if (!url || !["redis:", "rediss:"].includes(url.protocol)) {
      throw new ConfigError(
        `Invalid --redis "${
          redact(config.redisUrl)
        }": expected a redis:// or rediss:// URL`,
      );
    }
    if (config.sessionSecret === "") {
      throw new ConfigError(
        "Missing --session-secret (SESSION_SECRET): expected a secret shared by every instance when --redis is set",
      );
    }
  }
  if (config.sessionSecret !== "" && config.sessionSecret.length < 16) {
    throw new ConfigError(
      "Invalid --session-secret: expected at least 16 characters",
    );
  }
  try {
    new AddressSet(config.trustedProxies);
  } catch (error) {
    throw new ConfigError(
      `Invalid --trusted-proxies: ${(error as Error).message}`,
    );
  }
  for (const origin of config.allowedOrigins) {
    if (origin !== "*" && !isOrigin(origin)) {
      throw new ConfigError(
        `Invalid --allowed-origins "${origin}": expected scheme://host[:port] or *`,
      );
    }
  }
  return config;
}

function isOrigin(text: string): boolean {
  try {
    return new URL(text).origin === text;
  } catch {
    return false;
  }
}

/** Hides the password of a URL so it can be logged. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparsable URL>";
  }
}

/** The `--help` text: every option with its variable and default. */
export function helpText(): string {
  const rows = OPTIONS.map((spec) => {
    const left = `  --${spec.flag} <${spec.kind}>`.padEnd(36);
    const fallback = spec.fallback === "" ? "" : ` [default: ${spec.fallback}]`;
    return `${left}${spec.help} (env ${spec.env})${fallback}`;
  });
  return [
    "ws-time: WebSocket sessions that survive instance loss, deploys and overload",
    "",
    "Usage: ws-time [options]   (flags win over environment variables)",
    "",
    ...rows,
    "  --help".padEnd(36) + "show this help",
  ].join("\n");
}
