/**
 * The HAProxy config a new user writes before reading our docs: long
 * timeouts, an HTTP health check, nothing about WebSockets, drains or
 * agents. Tests run ws-time behind it to show what the defaults must
 * survive without the shipped config's help.
 *
 * @module
 */

/** Options of {@link plainHaproxyConfig}. */
export interface PlainHaproxyOptions {
  /** Port of the frontend the clients use. */
  readonly port: number;
  /** Port of the stats frontend (CSV at /stats;csv). */
  readonly statsPort: number;
  readonly servers: ReadonlyArray<
    { readonly name: string; readonly port: number }
  >;
  /** Default roundrobin. */
  readonly balance?: "roundrobin" | "leastconn";
  /** The server lines' check settings; default HAProxy's (`check`). */
  readonly check?: string;
  /** Adds `option forwardfor`. */
  readonly forwardFor?: boolean;
}

/** A plain config on loopback with `timeout server 60s`. */
export function plainHaproxyConfig(options: PlainHaproxyOptions): string {
  return [
    "global",
    "    maxconn 4000",
    "defaults",
    "    mode http",
    "    timeout connect 5s",
    "    timeout client 60s",
    "    timeout server 60s",
    "    timeout tunnel 1h",
    ...(options.forwardFor ? ["    option forwardfor"] : []),
    "frontend stats",
    `    bind 127.0.0.1:${options.statsPort}`,
    "    stats enable",
    "    stats uri /stats",
    "frontend web",
    `    bind 127.0.0.1:${options.port}`,
    "    default_backend ws_time",
    "backend ws_time",
    `    balance ${options.balance ?? "roundrobin"}`,
    "    option httpchk GET /healthcheck",
    ...options.servers.map((s) =>
      `    server ${s.name} 127.0.0.1:${s.port} ${options.check ?? "check"}`
    ),
  ].join("\n") + "\n";
}
