/**
 * The one home of ws-time's options: the typed {@link Config} every part is
 * built from, and the {@link OPTIONS} table that gives each option its flag,
 * environment variable, default, bounds and documentation. Parsing, `--help`
 * and docs/configuration.md are all derived from this table, so a default is
 * written here and nowhere else.
 *
 * @module
 */

import {
  FORWARDED_HEADERS,
  type ForwardedHeader,
} from "../http/client_address.ts";
import {
  GATE_MODES,
  type GateMode,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
} from "../logger.ts";

/**
 * The fully resolved configuration. Each field's default, bounds and flag
 * are in {@link OPTIONS}; durations are in ms unless the name says otherwise.
 */
export interface Config {
  /** TCP port to listen on. */
  readonly port: number;
  /** Interface to bind. */
  readonly hostname: string;
  /** Server name shown to clients (random when empty). */
  readonly name: string;
  /** Grace period of a closed session, in ms. */
  readonly sessionTtlMs: number;
  /** Hard cap of open WebSocket connections. */
  readonly maxConnections: number;
  /** Capacity share above which /healthcheck fails. */
  readonly healthThreshold: number;
  /** Capacity share below which an unhealthy instance recovers. */
  readonly healthRecover: number;
  /** Redis URL; empty selects the in-memory store (unless sentinels). */
  readonly redisUrl: string;
  /** Sentinels (host:port) of a Sentinel-managed Redis; empty for none. */
  readonly redisSentinels: readonly string[];
  /** The primary's name the sentinels know it by. */
  readonly redisMasterName: string;
  /** Seed nodes (host:port) of a Redis Cluster; empty for none. */
  readonly redisCluster: readonly string[];
  /** Password of the sentinels (their `requirepass`); empty for none. */
  readonly redisSentinelPassword: string;
  /** Speak TLS to the sentinels. */
  readonly redisSentinelTls: boolean;
  /** Prefix of every Redis key and channel. */
  readonly redisPrefix: string;
  /** Secret that signs session tokens; shared by all instances. */
  readonly sessionSecret: string;
  /** Older (or announced) secrets whose tokens still verify. */
  readonly sessionSecretPrevious: readonly string[];
  /** File holding the secret (line 1) and previous ones (later lines). */
  readonly sessionSecretFile: string;
  /** Timeout of one store call, in ms. */
  readonly storeTimeoutMs: number;
  /** Link capacity in Mbit/s; 0 reads it from the interface. */
  readonly linkMbps: number;
  /** Memory limit in MiB for the capacity monitor; 0 = 80% of RAM. */
  readonly memoryLimitMb: number;
  /** TCP port of the HAProxy agent-check listener; 0 disables it. */
  readonly agentPort: number;
  /** Interface of the agent listener; empty = `hostname`. */
  readonly agentHostname: string;
  /** Port of the operator listener (/metrics, health JSON); 0 = none. */
  readonly metricsPort: number;
  /** Interface of the operator listener. */
  readonly metricsHostname: string;
  /** Time between SIGTERM and the first drain close, in ms. */
  readonly drainDelayMs: number;
  /** Window over which drain closes are spread, in ms. */
  readonly drainPeriodMs: number;
  /** How long a client asked to move may keep its old connection, ms. */
  readonly moveWindowMs: number;
  /** How long a drain waits for a younger instance with room, ms. */
  readonly drainHandoverMs: number;
  /** Move clients towards the fleet's mean (needs a shared store). */
  readonly rebalance: boolean;
  /** Share above the fleet's mean tolerated before rebalancing. */
  readonly rebalanceTolerance: number;
  /** Clients asked to move per second while rebalancing. */
  readonly rebalanceRate: number;
  /** A client that arrived less than this ago is not moved, ms. */
  readonly rebalanceMinStayMs: number;
  /** Extra origins allowed to open WebSockets; "*" allows any. */
  readonly allowedOrigins: readonly string[];
  /** Refuse upgrades without an Origin header. */
  readonly requireOrigin: boolean;
  /** Peers whose X-Forwarded-For / Forwarded headers are believed. */
  readonly trustedProxies: readonly string[];
  /** The one header trusted proxies name the client in. */
  readonly forwardedHeader: ForwardedHeader;
  /** Open connections allowed per client address; 0 = no limit. */
  readonly maxPerAddress: number;
  /** New connections per second allowed per client address; 0 = no limit. */
  readonly ratePerAddress: number;
  /** Largest client message in bytes. */
  readonly maxMessageBytes: number;
  /** Bytes queued for a client that stops reading before it is closed. */
  readonly maxBufferedBytes: number;
  /** Client messages allowed per second. */
  readonly maxMessagesPerSecond: number;
  /** Deno's ping/idle timeout in seconds; 0 disables it. */
  readonly idleTimeoutS: number;
  /** Silence after which a heartbeating client counts as gone; 0 = off. */
  readonly peerTimeoutMs: number;
  /** PEM certificate file for TLS; needs `keyFile`. */
  readonly certFile: string;
  /** PEM private key file for TLS; needs `certFile`. */
  readonly keyFile: string;
  /** Share the port with sibling processes (SO_REUSEPORT). */
  readonly reusePort: boolean;
  /** Listening sockets on the port; more than 1 implies SO_REUSEPORT. */
  readonly listeners: number;
  /** Wake the ticker from a worker thread instead of Deno's timers. */
  readonly preciseTicks: boolean;
  /** Least severe log level printed. */
  readonly logLevel: LogLevel;
  /** Text lines, or one JSON object per line. */
  readonly logFormat: LogFormat;
  /** Lines about single connections: all, none or sampled. */
  readonly logConnections: GateMode;
}

/** How an option's text is read. */
export type OptionKind =
  | "int"
  | "number"
  | "string"
  | "bool"
  | "duration"
  | "list"
  | "enum";

/** One row of {@link OPTIONS}. */
export interface OptionSpec {
  /** The flag without its dashes. */
  readonly flag: string;
  /** The environment variable. */
  readonly env: string;
  /** The Config field it fills. */
  readonly key: keyof Config;
  readonly kind: OptionKind;
  /** The default, as text (parsed like any value). */
  readonly fallback: string;
  /** How the default reads in docs when the text alone would mislead. */
  readonly fallbackDoc?: string;
  /** One short line for `--help`. */
  readonly help: string;
  /** The meaning, in Markdown, for docs/configuration.md. */
  readonly doc: string;
  /** The values an "enum" option accepts, in the order docs list them. */
  readonly choices?: readonly string[];
  /** Inclusive bounds of numeric kinds (durations in ms). */
  readonly min?: number;
  readonly max?: number;
}

/** Every option, in the order `--help` and the docs list them. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    flag: "port",
    env: "PORT",
    key: "port",
    kind: "int",
    fallback: "8000",
    min: 0,
    max: 65535,
    help: "TCP port",
    doc: "TCP port",
  },
  {
    flag: "hostname",
    env: "HOST",
    key: "hostname",
    kind: "string",
    fallback: "0.0.0.0",
    help: "interface",
    doc: "interface to bind",
  },
  {
    flag: "name",
    env: "NAME",
    key: "name",
    kind: "string",
    fallback: "",
    fallbackDoc: "random adjective-animal",
    help: "server name (random)",
    doc: "server name shown to clients",
  },
  {
    flag: "session-ttl",
    env: "SESSION_TTL",
    key: "sessionTtlMs",
    kind: "duration",
    fallback: "5m",
    min: 1000,
    max: 7 * 24 * 3600_000,
    help: "grace period of a closed session",
    doc:
      "grace period of a closed session (`500ms`, `10s`, `5m`, `1h`; a bare number is seconds)",
  },
  {
    flag: "max-connections",
    env: "MAX_CONNECTIONS",
    key: "maxConnections",
    kind: "int",
    fallback: "10000",
    min: 1,
    max: 10_000_000,
    help: "hard cap of open connections",
    doc: "hard cap of open WebSockets; past it upgrades get 503",
  },
  {
    flag: "health-threshold",
    env: "HEALTH_THRESHOLD",
    key: "healthThreshold",
    kind: "number",
    fallback: "0.6",
    min: 0.01,
    max: 1,
    help: "capacity share that fails /healthcheck",
    doc: "capacity share at which `/healthcheck` fails",
  },
  {
    flag: "health-recover",
    env: "HEALTH_RECOVER",
    key: "healthRecover",
    kind: "number",
    fallback: "0.5",
    min: 0,
    max: 1,
    help: "capacity share that heals it again",
    doc: "capacity share below which it passes again",
  },
  {
    flag: "redis",
    env: "REDIS_URL",
    key: "redisUrl",
    kind: "string",
    fallback: "",
    fallbackDoc: "none (memory store)",
    help: "redis:// URL",
    doc:
      "`redis://` or `rediss://` URL of the shared session store ([sessions.md](sessions.md))",
  },
  {
    flag: "redis-sentinels",
    env: "REDIS_SENTINELS",
    key: "redisSentinels",
    kind: "list",
    fallback: "",
    fallbackDoc: "none",
    help: "Redis Sentinels host:port,... (needs --redis-master-name)",
    doc:
      "sentinels of a Redis that fails over, `host:port,host:port`: writes follow the primary they promote; with `--redis-master-name`. `--redis`, if set too, gives the data nodes' user, password, database and TLS (`rediss://`), and its host is ignored ([sessions.md](sessions.md#high-availability-sentinel))",
  },
  {
    flag: "redis-cluster",
    env: "REDIS_CLUSTER",
    key: "redisCluster",
    kind: "list",
    fallback: "",
    fallbackDoc: "none",
    help: "Redis Cluster seed nodes host:port,...",
    doc:
      "seed nodes of a Redis Cluster (self-run, ElastiCache with cluster mode or Serverless, MemoryDB), `host:port,host:port`: ws-time learns the shards from them and follows failovers and slot moves. `--redis`, if set too, gives the nodes' user, password and TLS (`rediss://`), and its host is ignored ([sessions.md](sessions.md#redis-cluster))",
  },
  {
    flag: "redis-master-name",
    env: "REDIS_MASTER_NAME",
    key: "redisMasterName",
    kind: "string",
    fallback: "",
    fallbackDoc: "none",
    help: "the primary's name in Sentinel",
    doc:
      "the name the sentinels know the primary by (`sentinel monitor <name> ...`)",
  },
  {
    flag: "redis-sentinel-password",
    env: "REDIS_SENTINEL_PASSWORD",
    key: "redisSentinelPassword",
    kind: "string",
    fallback: "",
    fallbackDoc: "none",
    help: "password of the sentinels (their requirepass)",
    doc:
      "password the sentinels require (`requirepass` in sentinel.conf): without one, anyone who reaches a sentinel can point ws-time at a Redis of their own ([sessions.md](sessions.md#high-availability-sentinel))",
  },
  {
    flag: "redis-sentinel-tls",
    env: "REDIS_SENTINEL_TLS",
    key: "redisSentinelTls",
    kind: "bool",
    fallback: "false",
    help: "speak TLS to the sentinels",
    doc:
      "speak TLS to the sentinels (`tls-port` in sentinel.conf); the data nodes' TLS follows `--redis rediss://`",
  },
  {
    flag: "redis-prefix",
    env: "REDIS_PREFIX",
    key: "redisPrefix",
    kind: "string",
    fallback: "ws-time:",
    help: "prefix of Redis keys",
    doc: "prefix of every Redis key and channel",
  },
  {
    flag: "session-secret",
    env: "SESSION_SECRET",
    key: "sessionSecret",
    kind: "string",
    fallback: "",
    fallbackDoc: "random per process",
    help: "token signing secret (random)",
    doc:
      "signs session tokens; share it between instances. At least 32 characters of random (`openssl rand -base64 32`); weak ones are refused at startup. Prefer `--session-secret-file`, which keeps it off command lines and out of the environment ([security.md](security.md#rotating-the-session-secret))",
  },
  {
    flag: "session-secret-previous",
    env: "SESSION_SECRET_PREVIOUS",
    key: "sessionSecretPrevious",
    kind: "list",
    fallback: "",
    fallbackDoc: "none",
    help: "secrets whose tokens still verify, comma-separated",
    doc:
      "secrets whose tokens still verify but that never sign: the previous ones during a rotation, so no count restarts; a resumed session gets a token under `--session-secret`. Remove them once `wstime_tokens_previous_key_total` stops rising ([security.md](security.md#rotating-the-session-secret))",
  },
  {
    flag: "session-secret-file",
    env: "SESSION_SECRET_FILE",
    key: "sessionSecretFile",
    kind: "string",
    fallback: "",
    fallbackDoc: "none",
    help: "file with the secret (line 1) and previous ones (more lines)",
    doc:
      "file read at startup instead of `--session-secret`: its first line is the secret, any further lines are previous secrets (as `--session-secret-previous`). The units pass it with systemd's `LoadCredential=`",
  },
  {
    flag: "store-timeout",
    env: "STORE_TIMEOUT",
    key: "storeTimeoutMs",
    kind: "duration",
    fallback: "500ms",
    min: 1,
    max: 60_000,
    help: "timeout of one store call",
    doc: "bound of one session store call",
  },
  {
    flag: "link-mbps",
    env: "LINK_MBPS",
    key: "linkMbps",
    kind: "number",
    fallback: "0",
    min: 0,
    max: 1e7,
    help: "link capacity, 0 = from the interface",
    doc:
      "link capacity for the network probe; 0 = the interface's speed if readable, else off",
  },
  {
    flag: "memory-limit-mb",
    env: "MEMORY_LIMIT_MB",
    key: "memoryLimitMb",
    kind: "int",
    fallback: "0",
    min: 0,
    max: 1e9,
    help: "memory limit, 0 = 80% of the cgroup's limit or of RAM",
    doc:
      "resident memory that counts as full; 0 = 80% of the container's memory limit (cgroup v1 or v2) or of RAM, whichever is lower",
  },
  {
    flag: "agent-port",
    env: "AGENT_PORT",
    key: "agentPort",
    kind: "int",
    fallback: "0",
    min: 0,
    max: 65535,
    help: "HAProxy agent-check port, 0 = off",
    doc: "TCP port of the HAProxy agent-check listener; 0 = off",
  },
  {
    flag: "agent-hostname",
    env: "AGENT_HOST",
    key: "agentHostname",
    kind: "string",
    fallback: "",
    fallbackDoc: "`--hostname`",
    help: "interface of the agent-check listener",
    doc:
      "interface of the agent-check listener: the private address the balancer reaches it on, so it is not on every interface",
  },
  {
    flag: "metrics-port",
    env: "METRICS_PORT",
    key: "metricsPort",
    kind: "int",
    fallback: "0",
    fallbackDoc: "0 (on the public port)",
    min: 0,
    max: 65535,
    help: "operator port for /metrics and health JSON, 0 = public port",
    doc:
      "TCP port of an operator listener serving `/metrics`, `/healthcheck` (with its JSON details) and `/healthz`; once set, the public port serves neither `/metrics` nor the JSON details. 0 = both on the public port, for a quick start; the shipped units and configs set it ([security.md](security.md#operator-endpoints))",
  },
  {
    flag: "metrics-hostname",
    env: "METRICS_HOST",
    key: "metricsHostname",
    kind: "string",
    fallback: "127.0.0.1",
    help: "interface of the operator listener",
    doc:
      "interface of the operator listener: loopback by default; a private address for a Prometheus on another host",
  },
  {
    flag: "drain-delay",
    env: "DRAIN_DELAY",
    key: "drainDelayMs",
    kind: "duration",
    fallback: "10s",
    min: 0,
    max: 3600_000,
    help: "wait after SIGTERM before closing",
    doc:
      "after SIGTERM, time for the load balancer to notice before the first close",
  },
  {
    flag: "drain-period",
    env: "DRAIN_PERIOD",
    key: "drainPeriodMs",
    kind: "duration",
    fallback: "30s",
    min: 0,
    max: 3600_000,
    help: "window the drain closes spread over",
    doc: "window the drain spreads its closes over",
  },
  {
    flag: "move-window",
    env: "MOVE_WINDOW",
    key: "moveWindowMs",
    kind: "duration",
    fallback: "5s",
    min: 0,
    max: 60_000,
    help: "how long a moving client keeps its old connection",
    doc:
      "make before break: a `ws-time.v1` client asked to leave (a drain) keeps its old connection, still ticking, for this long after the hint while it opens its new one through the balancer; then the old one is closed with 1001. 0 closes at once, as plain-text clients always are ([protocol.md](protocol.md#moving-without-missing-a-tick))",
  },
  {
    flag: "drain-handover",
    env: "DRAIN_HANDOVER",
    key: "drainHandoverMs",
    kind: "duration",
    fallback: "10s",
    min: 0,
    max: 120_000,
    help: "how long a drain waits for a replacement before moving clients",
    doc:
      "with a shared store, a drain waits at most this long after `--drain-delay` for a younger instance with room (a replacement started as this one stops) before it asks its clients to move, so they move once, onto an instance that stays; no wait when one is there already or the store is memory; 0 = never wait ([load_balancers.md](load_balancers.md#rolling-deploys))",
  },
  {
    flag: "rebalance",
    env: "REBALANCE",
    key: "rebalance",
    kind: "bool",
    fallback: "true",
    help: "even out connections across the fleet (shared store only)",
    doc:
      "with a shared store, instances publish their load once a second and one above the fleet's mean by more than the tolerance (or over its health threshold while others have room) asks its excess clients to move, a few a second, so a scale-out fills the new instance; paused while an instance drains or is lost, the store is unreachable or a storm is under way. Always off with the memory store, which has no fleet",
  },
  {
    flag: "rebalance-tolerance",
    env: "REBALANCE_TOLERANCE",
    key: "rebalanceTolerance",
    kind: "number",
    fallback: "0.1",
    min: 0,
    max: 1,
    help: "share above the fleet's mean before rebalancing",
    doc:
      "share above the fleet's mean an instance may hold before it moves anyone; it then moves down to the mean, never below",
  },
  {
    flag: "rebalance-rate",
    env: "REBALANCE_RATE",
    key: "rebalanceRate",
    kind: "int",
    fallback: "5",
    min: 1,
    max: 1000,
    help: "clients asked to move per second while rebalancing",
    doc:
      "clients one instance asks to move per second while rebalancing: slow enough that the balancer's view and the fleet's counts keep up",
  },
  {
    flag: "rebalance-min-stay",
    env: "REBALANCE_MIN_STAY",
    key: "rebalanceMinStayMs",
    kind: "duration",
    fallback: "30s",
    min: 0,
    max: 3600_000,
    help: "a client that arrived lately is not moved",
    doc:
      "a client connected for less than this is never asked to move, and the longest-connected go first, so nobody is moved twice in a row",
  },
  {
    flag: "allowed-origins",
    env: "ALLOWED_ORIGINS",
    key: "allowedOrigins",
    kind: "list",
    fallback: "",
    fallbackDoc: "none",
    help: "extra origins, comma-separated",
    doc:
      "extra origins (exact `scheme://host[:port]`, comma-separated) allowed to open WebSockets; `*` allows any",
  },
  {
    flag: "require-origin",
    env: "REQUIRE_ORIGIN",
    key: "requireOrigin",
    kind: "bool",
    fallback: "false",
    help: "refuse upgrades without Origin",
    doc: "refuse upgrades without an `Origin` header (non-browser clients)",
  },
  {
    flag: "trusted-proxies",
    env: "TRUSTED_PROXIES",
    key: "trustedProxies",
    kind: "list",
    fallback: "",
    fallbackDoc: "none",
    help: "proxy addresses trusted for X-Forwarded-For",
    doc:
      "addresses or CIDR ranges of the proxies whose `--forwarded-header` and `X-Forwarded-Proto` are believed: list the balancers' own addresses, not their whole network",
  },
  {
    flag: "forwarded-header",
    env: "FORWARDED_HEADER",
    key: "forwardedHeader",
    kind: "enum",
    choices: FORWARDED_HEADERS,
    fallback: "x-forwarded-for",
    help: "header trusted proxies name the client in",
    doc:
      "the one header a trusted proxy names the client in: `X-Forwarded-For` (with `X-Forwarded-Proto`), or RFC 7239 `Forwarded` for a proxy that writes that instead. The other is ignored, so a client cannot add an address the balancer did not see ([security.md](security.md#client-addresses))",
  },
  {
    flag: "max-per-address",
    env: "MAX_PER_ADDRESS",
    key: "maxPerAddress",
    kind: "int",
    fallback: "0",
    fallbackDoc: "0 (off)",
    min: 0,
    max: 10_000_000,
    help: "open connections per client address, 0 = off",
    doc:
      "opt-in abuse limit: open WebSockets per client address (IPv6: per /64), 429 above; 0 = off. Behind a balancer or a NAT many users share one address: see [security.md](security.md)",
  },
  {
    flag: "rate-per-address",
    env: "RATE_PER_ADDRESS",
    key: "ratePerAddress",
    kind: "number",
    fallback: "0",
    fallbackDoc: "0 (off)",
    min: 0,
    max: 1e7,
    help: "new connections/s per client address, 0 = off",
    doc:
      "opt-in abuse limit: new WebSockets per second per client address, 429 above; 0 = off",
  },
  {
    flag: "max-message-bytes",
    env: "MAX_MESSAGE_BYTES",
    key: "maxMessageBytes",
    kind: "int",
    fallback: "4096",
    min: 1,
    max: 16 * 1024 * 1024,
    help: "largest client message",
    doc: "largest client message (1009 above)",
  },
  {
    flag: "max-buffered-bytes",
    env: "MAX_BUFFERED_BYTES",
    key: "maxBufferedBytes",
    kind: "int",
    fallback: "65536",
    min: 1024,
    max: 1 << 30,
    help: "bytes queued for a non-reading client",
    doc:
      "bytes Deno may queue for a client that stopped reading before it is closed with 1008",
  },
  {
    flag: "max-messages-per-second",
    env: "MAX_MESSAGES_PER_SECOND",
    key: "maxMessagesPerSecond",
    kind: "number",
    fallback: "5",
    min: 0.01,
    max: 1e6,
    help: "client messages allowed per second",
    doc: "client message rate (1008 above)",
  },
  {
    flag: "idle-timeout",
    env: "IDLE_TIMEOUT",
    key: "idleTimeoutS",
    kind: "int",
    fallback: "0",
    min: 0,
    max: 86400,
    help: "ping/idle timeout in s, 0 = off",
    doc:
      "seconds without a pong before Deno closes a socket; 0 = off: at 19.5k connections Deno's pings cost about 7 KB each and 5x the tick p99 ([deploy/PRODUCTION.md](../deploy/PRODUCTION.md))",
  },
  {
    flag: "peer-timeout",
    env: "PEER_TIMEOUT",
    key: "peerTimeoutMs",
    kind: "duration",
    fallback: "0",
    fallbackDoc: "0 (off)",
    min: 0,
    max: 24 * 3600_000,
    help: "ask clients for heartbeats; silence this long ends one, 0 = off",
    doc:
      "asks each ws-time.v1 client for a heartbeat every third of this (in its welcome) and closes one that then stays silent this long with 4003, releasing its session; 0 = off, because heartbeats cost about 4 KB per connection and 4-7 points of a core at 19.5k connections; the kernel's retransmission timeout ends vanished peers at no cost ([deploy/PRODUCTION.md](../deploy/PRODUCTION.md))",
  },
  {
    flag: "cert",
    env: "TLS_CERT",
    key: "certFile",
    kind: "string",
    fallback: "",
    fallbackDoc: "none",
    help: "PEM certificate file",
    doc: "PEM certificate file: serve https/wss directly (needs `--key`)",
  },
  {
    flag: "key",
    env: "TLS_KEY",
    key: "keyFile",
    kind: "string",
    fallback: "",
    fallbackDoc: "none",
    help: "PEM private key file",
    doc: "PEM private key file of `--cert`",
  },
  {
    flag: "reuse-port",
    env: "REUSE_PORT",
    key: "reusePort",
    kind: "bool",
    fallback: "false",
    help: "share the port with sibling processes",
    doc: "let sibling processes share the port (SO_REUSEPORT)",
  },
  {
    flag: "listeners",
    env: "LISTENERS",
    key: "listeners",
    kind: "int",
    fallback: "1",
    min: 1,
    max: 16,
    help: "accept queues of 511 on the port, for reconnect storms",
    doc:
      "accept queues on the port (Deno fixes each at 511): hold a larger burst of reconnects, see [deploy/PRODUCTION.md](../deploy/PRODUCTION.md)",
  },
  {
    flag: "precise-ticks",
    env: "PRECISE_TICKS",
    key: "preciseTicks",
    kind: "bool",
    fallback: "false",
    help: "sub-millisecond tick timers (a worker thread; more CPU)",
    doc:
      "time ticks from a worker thread: lateness p50 about 0.5 ms lower, up to 15% more CPU at 19.5k connections ([bench note](../bench/notes/2026-11-25-figures.md))",
  },
  {
    flag: "log-level",
    env: "LOG_LEVEL",
    key: "logLevel",
    kind: "enum",
    choices: LOG_LEVELS,
    fallback: "info",
    help: "least severe line printed",
    doc: "least severe log line printed",
  },
  {
    flag: "log-format",
    env: "LOG_FORMAT",
    key: "logFormat",
    kind: "enum",
    choices: LOG_FORMATS,
    fallback: "text",
    help: "line format",
    doc:
      "`text` writes `time level message key=value`, `json` one object per line: `time`, `level`, `msg` and the fields",
  },
  {
    flag: "log-connections",
    env: "LOG_CONNECTIONS",
    key: "logConnections",
    kind: "enum",
    choices: GATE_MODES,
    fallback: "sampled",
    help: "lines about single connections",
    doc:
      "lines about single connections (connect, disconnect, superseded...); `sampled` prints at most 10 a second, then a count of those left out, so a reconnect storm cannot drown the lifecycle lines",
  },
];
