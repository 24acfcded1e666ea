/**
 * The connections behind the Redis link, one "generation" at a time: for a
 * single Redis (a URL, which may be a DNS name a managed service moves on
 * failover) a command client and a subscriber; for a Sentinel-managed
 * primary, node-redis's own Sentinel client, which asks the sentinels where
 * the primary is and follows a promotion. Both offer the same raw commands
 * ({@link RedisCommander}), so the store never knows which it talks to.
 * node-redis's reconnect loops are off for the URL backend: the link
 * rebuilds a whole generation instead, which also re-resolves the name.
 *
 * @module
 */

import {
  createClient,
  createSentinel,
  type RedisClientType,
  type RedisSentinelType,
} from "@redis/client";

/** Raw commands, whatever connections carry them. */
export interface RedisCommander {
  /** One command; resolves with its reply, rejects with its error. */
  send(args: string[]): Promise<unknown>;
  /** Commands in one round trip; their replies in order. */
  pipeline(commands: readonly string[][]): Promise<unknown[]>;
}

/** One generation of connections. */
export interface Backend extends RedisCommander {
  /** Connects and subscribes; rejects when it cannot. */
  readonly connected: Promise<void>;
  /** Where writes go (host:port), for logs. */
  target(): string;
  /** Lets commands in flight finish, then closes. */
  close(): Promise<void>;
  /** Closes at once. */
  destroy(): void;
}

/** What a backend tells the link. */
export interface BackendHooks {
  /** A connection failed: the generation is done. */
  readonly onError: (error: unknown) => void;
  /** A message on the takeover channel. */
  readonly onMessage: (message: string) => void;
  /** The primary moved (Sentinel promoted another node). */
  readonly onFailover: (to: string) => void;
}

/** A Sentinel deployment: where the sentinels are, and the primary's name. */
export interface SentinelTarget {
  readonly sentinels: ReadonlyArray<{ host: string; port: number }>;
  readonly masterName: string;
  /**
   * User, password, database and TLS (rediss:) of the data nodes, as a URL
   * whose host is ignored; "" for none.
   */
  readonly url: string;
  /**
   * The sentinels' `requirepass` ("" for none): an open sentinel lets
   * anyone name the primary, and so receive the data nodes' password.
   */
  readonly sentinelPassword: string;
  /** Speak TLS to the sentinels. */
  readonly sentinelTls: boolean;
}

/** What to connect to. */
export type RedisTarget =
  | { readonly kind: "url"; readonly url: string }
  | ({ readonly kind: "sentinel" } & SentinelTarget);

/** Options shared by every backend. */
export interface BackendOptions {
  readonly channel: string;
  /** Bound of one connection attempt, ms. */
  readonly connectTimeoutMs: number;
  readonly hooks: BackendHooks;
}

/** Starts connecting a generation to `target`. */
export function createBackend(
  target: RedisTarget,
  options: BackendOptions,
): Backend {
  return target.kind === "url"
    ? urlBackend(target.url, options)
    : sentinelBackend(target, options);
}

/** Settings every node-redis client here shares. */
function commonOptions(connectTimeout: number) {
  return {
    socket: { connectTimeout, reconnectStrategy: false as const },
    disableOfflineQueue: true,
    // Bounds memory if Redis accepts commands but stops answering.
    commandsQueueMaxLength: 100_000,
    disableClientInfo: true,
    maintNotifications: "disabled" as const,
  };
}

function urlBackend(url: string, options: BackendOptions): Backend {
  const { hooks, channel } = options;
  const cmd: RedisClientType = createClient({
    url,
    ...commonOptions(options.connectTimeoutMs),
  });
  const sub: RedisClientType = createClient({
    url,
    ...commonOptions(options.connectTimeoutMs),
  });
  cmd.on("error", hooks.onError);
  sub.on("error", hooks.onError);
  const connected = Promise.all([
    cmd.connect(),
    sub.connect().then(() => sub.subscribe(channel, hooks.onMessage)),
  ]).then(() => {});
  let where = "";
  try {
    const parsed = new URL(url);
    where = `${parsed.hostname}:${parsed.port || 6379}`;
  } catch {
    // Validated by the config; nothing to name otherwise.
  }
  return {
    connected,
    target: () => where,
    send: (args) => cmd.sendCommand(args),
    pipeline(commands) {
      const multi = cmd.multi();
      for (const args of commands) multi.addCommand(args);
      return multi.execAsPipeline();
    },
    async close() {
      await connected.catch(() => {});
      await cmd.close().catch(() => {});
      for (const client of [cmd, sub]) destroyQuietly(client);
    },
    destroy() {
      for (const client of [cmd, sub]) destroyQuietly(client);
    },
  };
}

function sentinelBackend(
  target: SentinelTarget,
  options: BackendOptions,
): Backend {
  const { hooks, channel, connectTimeoutMs } = options;
  const credentials = nodeCredentials(target.url, connectTimeoutMs);
  const sentinel: RedisSentinelType = createSentinel({
    name: target.masterName,
    sentinelRootNodes: [...target.sentinels],
    nodeClientOptions: credentials,
    sentinelClientOptions: {
      socket: target.sentinelTls
        ? { connectTimeout: connectTimeoutMs, tls: true as const }
        : { connectTimeout: connectTimeoutMs },
      disableClientInfo: true,
      ...(target.sentinelPassword !== ""
        ? { password: target.sentinelPassword }
        : {}),
    },
    masterPoolSize: 1,
  });
  sentinel.on("error", hooks.onError);
  // The first primary found is no failover; every change after it is.
  let primary = "";
  sentinel.on("topology-change", (event: { type?: string; node?: unknown }) => {
    if (event.type !== "MASTER_CHANGE") return;
    const node = event.node as { host?: string; port?: number } | undefined;
    const to = `${node?.host}:${node?.port}`;
    if (primary !== "" && primary !== to) hooks.onFailover(to);
    primary = to;
  });
  const connected = sentinel.connect().then(() =>
    sentinel.subscribe(channel, hooks.onMessage)
  ).then(() => {});
  return {
    connected,
    target() {
      const node = sentinel.getMasterNode();
      return node ? `${node.host}:${node.port}` : "";
    },
    send: (args) => sentinel.sendCommand(false, args),
    pipeline(commands) {
      const multi = sentinel.multi();
      for (const args of commands) multi.addCommand(false, args);
      return multi.execAsPipeline();
    },
    async close() {
      await connected.catch(() => {});
      await sentinel.close().catch(() => {});
      destroyQuietly(sentinel);
    },
    destroy() {
      destroyQuietly(sentinel);
    },
  };
}

/** The data nodes' client options: credentials, database and TLS. */
function nodeCredentials(url: string, connectTimeout: number) {
  const base = {
    disableOfflineQueue: true,
    commandsQueueMaxLength: 100_000,
    disableClientInfo: true,
    maintNotifications: "disabled" as const,
  };
  if (url === "") return { ...base, socket: { connectTimeout } };
  const parsed = new URL(url);
  const database = parsed.pathname.length > 1
    ? Number(parsed.pathname.slice(1))
    : undefined;
  return {
    ...base,
    ...(parsed.username
      ? { username: decodeURIComponent(parsed.username) }
      : {}),
    ...(parsed.password
      ? { password: decodeURIComponent(parsed.password) }
      : {}),
    ...(database !== undefined ? { database } : {}),
    socket: parsed.protocol === "rediss:"
      ? { connectTimeout, tls: true as const }
      : { connectTimeout },
  };
}

function destroyQuietly(client: { destroy(): unknown }): void {
  try {
    const done = client.destroy();
    if (done instanceof Promise) done.catch(() => {});
  } catch {
    // Already closed.
  }
}
