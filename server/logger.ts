/**
 * A tiny leveled logger writing one line per event. It is the only place
 * that writes to the console, so tests can pass a silent or recording one.
 *
 * @module
 */

/** Severity of a log line, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** What every module receives to report events. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * Formats `key=value` pairs, quoting values that contain spaces. A function
 * value is called here, so a costly field is only computed for a line that
 * is printed.
 */
export function formatFields(fields: Record<string, unknown> = {}): string {
  return Object.entries(fields).map(([key, value]): [string, unknown] => [
    key,
    typeof value === "function" ? value() : value,
  ]).filter(([, value]) => value !== undefined).map(
    ([key, value]) => {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      return ` ${key}=${
        /[\s"=]/.test(text ?? "") ? JSON.stringify(text) : text
      }`;
    },
  ).join("");
}

/** A logger that prints lines at or above `level` to stderr/stdout. */
export function consoleLogger(level: LogLevel = "info"): Logger {
  const line =
    (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
      if (RANK[lvl] < RANK[level]) return;
      const text = `${new Date().toISOString()} ${lvl} ${message}${
        formatFields(fields)
      }`;
      // deno-lint-ignore no-console
      (lvl === "error" || lvl === "warn" ? console.error : console.log)(text);
    };
  return {
    debug: line("debug"),
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
  };
}

/** A logger that keeps its lines in memory, for tests. */
export function memoryLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  const line =
    (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
      lines.push(`${lvl} ${message}${formatFields(fields)}`);
    };
  return {
    lines,
    debug: line("debug"),
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
  };
}
