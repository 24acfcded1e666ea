/**
 * Turns `deploy/haproxy.cfg` into a config for a local cluster: the same
 * frontends, timeouts, checks and balancing, with local addresses (loopback,
 * or a test's own network namespaces) and
 * free ports, logs on stdout, a connection limit an unprivileged shell can
 * grant, no privilege drop (chroot, user) and no admin socket. Only
 * addresses, ports, process settings and (optionally) check intervals
 * change, so the tests exercise the config that ships.
 *
 * @module
 */

/** One ws-time instance behind the local HAProxy. */
export interface Backend {
  readonly name: string;
  /** Its address; default 127.0.0.1. */
  readonly host?: string;
  readonly port: number;
  /** Agent-check port of the instance. */
  readonly agentPort: number;
}

/** Options of {@link renderHaproxyConfig}. */
export interface RenderOptions {
  /** Address the frontends bind; default 127.0.0.1. */
  readonly host?: string;
  /** Port of the ws_time frontend. */
  readonly port: number;
  /** Port of the stats frontend. */
  readonly statsPort: number;
  readonly backends: readonly Backend[];
  /** Replaces every check interval (inter, agent-inter...), e.g. "500ms". */
  readonly checkInterval?: string;
  /** Global connection limit; default 4000 (an unprivileged shell's). */
  readonly maxconn?: number;
  /** Also log every request (info), as the deploy config can; default off. */
  readonly trafficLog?: boolean;
  /** Replaces `hard-stop-after` (how long a reloaded process lingers). */
  readonly hardStopAfter?: string;
  /** Replaces the template's `balance` algorithm (e.g. "roundrobin"). */
  readonly balance?: string;
  /** Replaces the per-source limits (open and new per 10 s), for a test. */
  readonly perSourceLimit?: number;
}

const DROPPED_GLOBALS = /^(user|group|chroot|daemon|stats socket)\b/;
const INTERVALS = /\b(inter|fastinter|downinter|agent-inter) \S+/g;

/** The local variant of the deploy config. */
export function renderHaproxyConfig(
  template: string,
  options: RenderOptions,
): string {
  const out: string[] = [];
  let section = "";
  let serversWritten = false;
  for (const line of template.split("\n")) {
    const trimmed = line.trim();
    if (/^\S/.test(line)) section = trimmed;
    if (section === "global" && DROPPED_GLOBALS.test(trimmed)) continue;
    if (section === "global" && trimmed.startsWith("log ")) {
      // Server state changes (notice) to stdout; traffic logs on request.
      out.push(
        `    log stdout format raw local0 ${
          options.trafficLog ? "info" : "notice"
        }`,
      );
      continue;
    }
    if (
      section === "global" && trimmed.startsWith("hard-stop-after ") &&
      options.hardStopAfter
    ) {
      out.push(`    hard-stop-after ${options.hardStopAfter}`);
      continue;
    }
    if (section === "global" && trimmed.startsWith("maxconn ")) {
      // Within the process's file limit (two descriptors a connection).
      out.push(`    maxconn ${options.maxconn ?? 4000}`);
      continue;
    }
    if (/sc0_conn_(cur|rate) gt \d+/.test(trimmed) && options.perSourceLimit) {
      out.push(line.replace(/ gt \d+/, ` gt ${options.perSourceLimit}`));
      continue;
    }
    if (trimmed.startsWith("balance ") && options.balance) {
      out.push(`    balance ${options.balance}`);
      continue;
    }
    if (trimmed.startsWith("bind ")) {
      const port = section === "frontend stats"
        ? options.statsPort
        : options.port;
      out.push(`    bind ${options.host ?? "127.0.0.1"}:${port}`);
      continue;
    }
    if (trimmed.startsWith("server ")) {
      if (!serversWritten) out.push(...serverLines(options.backends));
      serversWritten = true;
      continue;
    }
    out.push(
      options.checkInterval && trimmed.startsWith("default-server ")
        ? line.replace(INTERVALS, `$1 ${options.checkInterval}`)
        : line,
    );
  }
  if (!serversWritten) throw new Error("The template has no server lines");
  return out.join("\n");
}

function serverLines(backends: readonly Backend[]): string[] {
  return backends.map((b) =>
    `    server ${b.name} ${
      b.host ?? "127.0.0.1"
    }:${b.port} agent-port ${b.agentPort}`
  );
}
