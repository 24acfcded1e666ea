// deno-lint-ignore-file no-console -- the one module that writes to the console
/**
 * The one place that writes to the console. Lines are text
 * (`time level message key=value`) or JSON, one object per line with
 * `time`, `level`, `msg` and the fields, for log pipelines that should not
 * need a parser. Each level goes to its console method (debug, log, warn,
 * error), which is also what Deno's OpenTelemetry export maps to severity.
 *
 * Lines about single connections can outnumber everything else by far (a
 * reconnect storm makes 10,000 a second), so they pass through a gate of
 * their own ({@link gatedLogger}): all, none, or sampled (a steady trickle
 * and a count of what was left out), while lifecycle lines stay visible.
 *
 * No logging library: this is about eighty lines on the accept path's hot
 * side (a line's fields can be functions, computed only for a line that is
 * printed), and @logtape/logtape, the best-kept candidate, would add an
 * async sink pipeline for no feature used here.
 *
 * @module
 */

/** Severity names, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** Severity of a log line. */
export type LogLevel = typeof LOG_LEVELS[number];

/** How lines can be written. */
export const LOG_FORMATS = ["text", "json"] as const;

/** How lines are written. */
export type LogFormat = typeof LOG_FORMATS[number];

/** What a gated logger can do with lines about single connections. */
export const GATE_MODES = ["on", "off", "sampled"] as const;

/** What every module receives to report events. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** The fields with function values called and undefined ones dropped. */
function resolve(
  fields: Record<string, unknown> = {},
): Array<[string, unknown]> {
  return Object.entries(fields).map(([key, value]): [string, unknown] => [
    key,
    typeof value === "function" ? value() : value,
  ]).filter(([, value]) => value !== undefined);
}

/**
 * Formats `key=value` pairs, quoting values that contain spaces. A function
 * value is called here, so a costly field is only computed for a line that
 * is printed.
 */
export function formatFields(fields: Record<string, unknown> = {}): string {
  return resolve(fields).map(([key, value]) => {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return ` ${key}=${/[\s"=]/.test(text ?? "") ? JSON.stringify(text) : text}`;
  }).join("");
}

/** One line in `format`. */
export function formatLine(
  format: LogFormat,
  time: Date,
  level: LogLevel,
  message: string,
  fields?: Record<string, unknown>,
): string {
  if (format === "text") {
    return `${time.toISOString()} ${level} ${message}${formatFields(fields)}`;
  }
  const record: Record<string, unknown> = {
    time: time.toISOString(),
    level,
    msg: message,
  };
  for (const [key, value] of resolve(fields)) {
    // The three names are the record's own; a field cannot replace them.
    record[key in record ? `field_${key}` : key] = value;
  }
  return JSON.stringify(record);
}

/** A logger that prints lines at or above `level` to the console. */
export function consoleLogger(
  level: LogLevel = "info",
  format: LogFormat = "text",
): Logger {
  const sinks = {
    debug: console.debug,
    info: console.log,
    warn: console.warn,
    error: console.error,
  };
  const line =
    (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
      if (RANK[lvl] < RANK[level]) return;
      sinks[lvl](formatLine(format, new Date(), lvl, message, fields));
    };
  return Object.fromEntries(
    LOG_LEVELS.map((l) => [l, line(l)]),
  ) as unknown as Logger;
}

/** A logger that keeps its lines (text, without time) in memory, for tests. */
export function memoryLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  const line =
    (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
      lines.push(`${lvl} ${message}${formatFields(fields)}`);
    };
  return {
    lines,
    ...Object.fromEntries(
      LOG_LEVELS.map((l) => [l, line(l)]),
    ) as unknown as Logger,
  };
}

/** What passes a gate: everything, nothing, or a sample. */
export type GateMode = typeof GATE_MODES[number];

/** What the gate needs. */
export interface GateOptions {
  readonly mode: GateMode;
  /** Lines per second a sampled gate lets through (a second's burst). */
  readonly perSecond: number;
  /** The current time, ms. */
  readonly now: () => number;
  /** What the summary line of left-out lines is called. */
  readonly what: string;
}

/**
 * `logger` behind a gate: in `sampled` mode at most `perSecond` lines a
 * second pass (a token bucket); the first line after lines were left out
 * says how many, so the count is never lost.
 */
export function gatedLogger(logger: Logger, options: GateOptions): Logger {
  if (options.mode === "on") return logger;
  const { perSecond, now } = options;
  let tokens = perSecond;
  let at = now();
  let skipped = 0;
  const pass = (): boolean => {
    if (options.mode === "off") return false;
    const t = now();
    tokens = Math.min(perSecond, tokens + (t - at) / 1000 * perSecond);
    at = t;
    if (tokens < 1) {
      skipped++;
      return false;
    }
    tokens -= 1;
    if (skipped > 0) {
      logger.info(`${options.what} left out`, { count: skipped });
      skipped = 0;
    }
    return true;
  };
  const line =
    (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
      // Errors always pass: they are rare and must never be sampled away.
      if (lvl === "error" || pass()) logger[lvl](message, fields);
    };
  return Object.fromEntries(
    LOG_LEVELS.map((l) => [l, line(l)]),
  ) as unknown as Logger;
}
