/**
 * Flags and environment variables resolved once into a complete, frozen,
 * validated {@link Config}, by the rules of the {@link OPTIONS} table.
 * Flags win over environment variables; every error names the flag (or the
 * variable and its flag), the value and what was expected.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { AddressSet } from "../http/client_address.ts";
import { redact } from "../redact.ts";
import { type Config, OPTIONS, type OptionSpec } from "./schema.ts";

/** Raised for any invalid option; the message names the flag and value. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Result of parsing: either a config or a request for help. */
export type ParseResult =
  | { readonly help: true }
  | {
    readonly help: false;
    readonly config: Config;
    /** The options set by a flag or a variable rather than by default. */
    readonly given: ReadonlySet<keyof Config>;
  };

/**
 * Resolves flags and environment into a frozen config; throws ConfigError
 * naming the flag, the value and what was expected.
 */
export function parseConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  makeName: () => string = () => "ws-time",
  readFile: (path: string) => string = Deno.readTextFileSync,
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
  const given = new Set<keyof Config>();
  for (const spec of OPTIONS) {
    const flagValue = parsed.values[spec.flag];
    if (typeof flagValue === "string" || env[spec.env] !== undefined) {
      given.add(spec.key);
    }
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
  if (out.sessionSecretFile !== "") {
    Object.assign(out, secretsFrom(out, readFile));
  }
  return {
    help: false,
    config: Object.freeze(validate(out as unknown as Config)),
    given,
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
    case "enum": {
      const choices = spec.choices ?? [];
      if (!choices.includes(raw)) fail(choiceList(choices));
      return raw;
    }
    case "string":
      return raw;
  }
}

/** "a, b or c": the values of an enum option, for messages and docs. */
export function choiceList(choices: readonly string[]): string {
  return choices.length < 2
    ? choices.join("")
    : `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`;
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
  }
  for (const sentinel of config.redisSentinels) {
    if (parseHostPort(sentinel) === null) {
      throw new ConfigError(
        `Invalid --redis-sentinels "${sentinel}": expected host:port`,
      );
    }
  }
  for (const node of config.redisCluster) {
    if (parseHostPort(node) === null) {
      throw new ConfigError(
        `Invalid --redis-cluster "${node}": expected host:port`,
      );
    }
  }
  if (config.redisCluster.length > 0 && config.redisSentinels.length > 0) {
    throw new ConfigError(
      "Invalid --redis-cluster: expected either --redis-cluster or --redis-sentinels, not both",
    );
  }
  if (config.redisCluster.length > 0 && /[{}]/.test(config.redisPrefix)) {
    // A brace in the prefix would become every key's hash tag: one slot,
    // one shard for the whole store.
    throw new ConfigError(
      `Invalid --redis-prefix "${config.redisPrefix}": expected no { or } with --redis-cluster`,
    );
  }
  if ((config.redisSentinels.length > 0) !== (config.redisMasterName !== "")) {
    throw new ConfigError(
      config.redisSentinels.length > 0
        ? "Missing --redis-master-name (REDIS_MASTER_NAME): expected the name the sentinels know the primary by"
        : "Invalid --redis-master-name: expected --redis-sentinels too",
    );
  }
  if (
    (config.redisUrl !== "" || config.redisSentinels.length > 0 ||
      config.redisCluster.length > 0) &&
    config.sessionSecret === ""
  ) {
    throw new ConfigError(
      "Missing --session-secret (SESSION_SECRET): expected a secret shared by every instance when --redis, --redis-sentinels or --redis-cluster is set",
    );
  }
  if (config.reusePort && config.sessionSecret === "") {
    // The kernel hands a reconnect to any process on the port; with a
    // random secret each, a sibling cannot read the other's token and the
    // client's count would restart at 0.
    throw new ConfigError(
      "Missing --session-secret (SESSION_SECRET): expected a secret shared by every process when --reuse-port is set",
    );
  }
  const flag = config.sessionSecretFile === ""
    ? "--session-secret"
    : `--session-secret-file ${config.sessionSecretFile}`;
  if (config.sessionSecret !== "") {
    const weak = secretWeakness(config.sessionSecret);
    if (weak) throw new ConfigError(`Invalid ${flag}: ${weak}`);
  } else if (config.sessionSecretPrevious.length > 0) {
    throw new ConfigError(
      "Invalid --session-secret-previous: expected --session-secret too (previous secrets only verify)",
    );
  }
  for (const [i, previous] of config.sessionSecretPrevious.entries()) {
    const weak = secretWeakness(previous);
    if (weak) {
      throw new ConfigError(
        `Invalid --session-secret-previous (secret ${i + 1}): ${weak}`,
      );
    }
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

/**
 * The secret and previous secrets of `--session-secret-file`: line 1 and
 * any further non-blank lines. The file replaces --session-secret, and its
 * previous secrets join --session-secret-previous.
 */
function secretsFrom(
  out: Record<string, unknown>,
  readFile: (path: string) => string,
): { sessionSecret: string; sessionSecretPrevious: string[] } {
  const path = out.sessionSecretFile as string;
  if (out.sessionSecret !== "") {
    throw new ConfigError(
      "Invalid --session-secret-file: expected it or --session-secret, not both",
    );
  }
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    // The message says what failed (missing, permission) without content.
    throw new ConfigError(
      `Cannot read --session-secret-file ${path}: ${
        (error as Error).message.split("\n")[0]
      }`,
    );
  }
  const [secret = "", ...previous] = text.split("\n").map((l) => l.trim())
    .filter((l) => l !== "");
  if (secret === "") {
    throw new ConfigError(
      `Invalid --session-secret-file ${path}: the file is empty`,
    );
  }
  return {
    sessionSecret: secret,
    sessionSecretPrevious: [
      ...(out.sessionSecretPrevious as string[]),
      ...previous,
    ],
  };
}

/** Shortest secret accepted: 32 characters of base64 are 192 bits. */
export const MIN_SECRET_LENGTH = 32;

/**
 * Why a token secret is obviously weak, or null. Every client gets a token
 * signed with it, so a guessable secret can be cracked offline and then
 * mints any session: refuse the short, the repetitive and placeholders.
 */
export function secretWeakness(secret: string): string | null {
  const advice = "generate one with `openssl rand -base64 32`";
  if (secret.length < MIN_SECRET_LENGTH) {
    return `expected at least ${MIN_SECRET_LENGTH} characters (got ${secret.length}); ${advice}`;
  }
  const distinct = new Set(secret).size;
  if (distinct < 12) {
    return `only ${distinct} distinct characters, too predictable; ${advice}`;
  }
  if (/^(changeme|change-me|secret|password|example|xxx)/i.test(secret)) {
    return `looks like a placeholder; ${advice}`;
  }
  return null;
}

/** `host:port` split, or null when it is not one (IPv6 in brackets). */
export function parseHostPort(
  text: string,
): { host: string; port: number } | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})$/.exec(text.trim());
  if (!match) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

function isOrigin(text: string): boolean {
  try {
    return new URL(text).origin === text;
  } catch {
    return false;
  }
}
