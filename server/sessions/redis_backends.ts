/**
 * The connections behind the Redis link, one "generation" at a time: for a
 * single Redis (a URL, which may be a DNS name a managed service moves on
 * failover) a command client and a subscriber; for a Sentinel-managed
 * primary, node-redis's own Sentinel client, which asks the sentinels where
 * the primary is and follows a promotion; for a Redis Cluster, node-redis's
 * cluster client, which routes each command to its slot's primary,
 * follows MOVED and ASK, and subscribes to each takeover channel on its
 * slot's shard. All offer the same raw commands
 * ({@link RedisCommander}), so the store never knows which it talks to.
 * node-redis's reconnect loops are off for the URL backend: the link
 * rebuilds a whole generation instead, which also re-resolves the name.
 *
 * @module
 */

import {
  createClient,
  createCluster,
  createSentinel,
  ErrorReply,
  RootNodesUnavailableError,
} from "@redis/client";
import keySlot from "cluster-key-slot";

/** Raw commands, whatever connections carry them. */
export interface RedisCommander {
  /** One command; resolves with its reply, rejects with its error. */
  send(args: string[]): Promise<unknown>;
  /** Commands in one round trip; their replies in order. */
  pipeline(commands: readonly string[][]): Promise<unknown[]>;
  /**
   * The command that publishes a takeover: SPUBLISH where the takeover
   * channels are sharded (a cluster that has sharded pub/sub), else
   * PUBLISH.
   */
  readonly publishCommand: "PUBLISH" | "SPUBLISH";
  /**
   * The node that serves `key`, as last learned: keys of one node may
   * share a script call. "" where one node serves every key.
   */
  shardOf(key: string): string;
}

/** One generation of connections. */
export interface Backend extends RedisCommander {
  /** Connects and subscribes; rejects when it cannot. */
  readonly connected: Promise<void>;
  /**
   * Whether the addressed channels are subscribed (false until connected,
   * and when Redis refused them).
   */
  readonly addressed: boolean;
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
  /** A message on a takeover channel. */
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

/** A Redis Cluster: seed nodes, and the nodes' credentials. */
export interface ClusterTarget {
  /** Any nodes of the cluster: the shards are learned from them. */
  readonly nodes: ReadonlyArray<{ host: string; port: number }>;
  /**
   * User, password and TLS (rediss:) of the nodes, as a URL whose host is
   * ignored; "" for none.
   */
  readonly url: string;
}

/** What to connect to. */
export type RedisTarget =
  | { readonly kind: "url"; readonly url: string }
  | ({ readonly kind: "sentinel" } & SentinelTarget)
  | ({ readonly kind: "cluster" } & ClusterTarget);

/** Options shared by every backend. */
export interface BackendOptions {
  /**
   * The takeover channels to subscribe to: one, or in a cluster one per
   * hash tag, each in its tag's slot.
   */
  readonly channels: readonly string[];
  /**
   * The channels of takeovers addressed to this instance alone. A Redis
   * user refused them (an ACL written before they existed) leaves them
   * out: the generation still comes up, with {@link Backend.addressed}
   * false.
   */
  readonly addressed?: readonly string[];
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
    : target.kind === "sentinel"
    ? sentinelBackend(target, options)
    : clusterBackend(target, options);
}

/** Settings every node-redis client here shares. */
function commonOptions(connectTimeout: number) {
  return {
    socket: { connectTimeout, reconnectStrategy: false as const },
    ...CLIENT_SETTINGS,
  };
}

/**
 * What every connection is told, whatever its backend. RESP2, as the
 * documented ACL user allows (RESP3 would need HELLO). No command timeout
 * of node-redis's own: the link bounds every call by STORE_TIMEOUT, which
 * may be longer than node-redis's default.
 */
const CLIENT_SETTINGS = {
  RESP: 2 as const,
  commandOptions: { timeout: 0 },
  disableOfflineQueue: true,
  // Bounds memory if Redis accepts commands but stops answering.
  commandsQueueMaxLength: 100_000,
  disableClientInfo: true,
  maintNotifications: "disabled" as const,
};

/**
 * Subscribes to the common channels, then to the addressed ones, with
 * `subscribe` (one client's): whether it holds the addressed ones.
 */
async function subscribeBoth(
  options: BackendOptions,
  subscribe: (channels: string[]) => Promise<unknown>,
): Promise<boolean> {
  await subscribe([...options.channels]);
  return await subscribeAddressed(options, subscribe);
}

/**
 * Subscribes to the addressed channels with `subscribe`; false when there
 * are none or Redis refuses them (NOPERM), any other failure thrown.
 */
async function subscribeAddressed(
  options: BackendOptions,
  subscribe: (channels: string[]) => Promise<unknown>,
): Promise<boolean> {
  const channels = [...(options.addressed ?? [])];
  if (channels.length === 0) return false;
  try {
    await subscribe(channels);
    return true;
  } catch (error) {
    if (error instanceof ErrorReply && /^NOPERM/.test(error.message)) {
      return false;
    }
    throw error;
  }
}

function urlBackend(url: string, options: BackendOptions): Backend {
  const { hooks } = options;
  let addressed = false;
  const cmd = createClient({
    url,
    ...commonOptions(options.connectTimeoutMs),
  });
  const sub = createClient({
    url,
    ...commonOptions(options.connectTimeoutMs),
  });
  cmd.on("error", hooks.onError);
  sub.on("error", hooks.onError);
  const connected = Promise.all([
    cmd.connect(),
    sub.connect().then(() =>
      subscribeBoth(options, (c) => sub.subscribe(c, hooks.onMessage))
    ).then((ok) => {
      addressed = ok;
    }),
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
    get addressed() {
      return addressed;
    },
    target: () => where,
    publishCommand: "PUBLISH",
    shardOf: () => "",
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
  const { hooks, connectTimeoutMs } = options;
  const credentials = nodeCredentials(target.url, connectTimeoutMs);
  const sentinel = createSentinel({
    name: target.masterName,
    sentinelRootNodes: [...target.sentinels],
    nodeClientOptions: credentials,
    sentinelClientOptions: {
      socket: target.sentinelTls
        ? { connectTimeout: connectTimeoutMs, tls: true as const }
        : { connectTimeout: connectTimeoutMs },
      disableClientInfo: true,
      maintNotifications: "disabled" as const,
      ...(target.sentinelPassword !== ""
        ? { password: target.sentinelPassword }
        : {}),
    },
    masterPoolSize: 1,
    RESP: 2,
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
  let addressed = false;
  const connected = sentinel.connect().then(() =>
    subscribeBoth(options, (c) => sentinel.subscribe(c, hooks.onMessage))
  ).then((ok) => {
    addressed = ok;
  });
  return {
    connected,
    get addressed() {
      return addressed;
    },
    target() {
      const node = sentinel.getMasterNode();
      return node ? `${node.host}:${node.port}` : "";
    },
    publishCommand: "PUBLISH",
    shardOf: () => "",
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

/** Replies a cluster gives while a slot is moving or a shard has no primary. */
const CLUSTER_BUSY = /^(TRYAGAIN|CLUSTERDOWN)\b/;

/** While a cluster command is unanswered, the layout is checked this often. */
const STALL_MS = 500;

/** Tries of a command that met {@link CLUSTER_BUSY}, 100 ms apart. */
const BUSY_TRIES = 5;

/**
 * The key a command is routed by: the first key of a script, the channel
 * of SPUBLISH, none for commands that touch no key (any node answers
 * those).
 */
export function routingKey(args: readonly string[]): string | undefined {
  const name = (args[0] ?? "").toUpperCase();
  if (name === "EVAL" || name === "EVALSHA") {
    return Number(args[2]) > 0 ? args[3] : undefined;
  }
  if (name === "PUBLISH" || name === "PING" || name === "ROLE") {
    return undefined;
  }
  return args[1];
}

/**
 * The primaries a CLUSTER SLOTS reply names, as sorted "host:port" text.
 * Slots moving between primaries (a resharding) leave it alone: MOVED and
 * ASK steer those commands. A promotion changes it.
 */
export function primaryLayout(reply: unknown): string {
  if (!Array.isArray(reply)) return "";
  const primaries = new Set(reply.map((range) => {
    const primary = (range as unknown[])[2] as unknown[] | undefined;
    return `${primary?.[0]}:${primary?.[1]}`;
  }));
  return [...primaries].sort().join(",");
}

function clusterBackend(
  target: ClusterTarget,
  options: BackendOptions,
): Backend {
  const { hooks, channels, connectTimeoutMs } = options;
  // A cluster has one database; the rest of the URL applies to every node.
  const { database: _, ...node } = nodeCredentials(
    target.url,
    connectTimeoutMs,
  );
  const cluster = createCluster({
    rootNodes: target.nodes.map(({ host, port }) => ({
      socket: { host, port },
    })),
    defaults: {
      ...node,
      socket: {
        ...node.socket,
        // A node's connection comes back by itself, quickly; commands meant
        // for it fail at once meanwhile (no offline queue) and are kept by
        // the store.
        reconnectStrategy: (retries: number) =>
          Math.min(2000, 100 * 2 ** Math.min(retries, 5)),
      },
    },
    // Connect to a primary when a command needs it: a dead primary must not
    // stop the other shards' connections from coming up.
    minimizeConnections: true,
    RESP: 2,
    commandOptions: { timeout: 0 },
  });
  // Discovery reports a seed it could not ask (it goes on to the next) and
  // nodes report their connections failing: neither ends the generation by
  // itself; the layout check below decides. A connect that finds no seed
  // at all rejects `connected`.
  // The last error a seed gave: node-redis's own "All the root nodes are
  // unavailable" names no cause, and a wrong CA or password must be told
  // apart from a node that is down.
  let seedError: unknown;
  cluster.on("error", (error: unknown) => {
    seedError = error;
    checkSoon();
  });
  cluster.on("node-error", () => checkSoon());
  /**
   * The cluster's primaries as this generation learned them. The cluster
   * client follows MOVED by itself, but not a primary that died or froze:
   * its commands then fail or time out, no MOVED ever comes, and only a
   * fresh look at the layout shows the promoted replica. A changed layout
   * ends the generation; the link builds the next from the seeds.
   */
  let layout = "";
  const readLayout = async () =>
    primaryLayout(
      await cluster.sendCommand(undefined, true, ["CLUSTER", "SLOTS"]),
    );
  const check = async () => {
    const now = await readLayout();
    if (layout !== "" && now !== "" && now !== layout) {
      hooks.onError(new Error("the cluster's primaries changed"));
    }
  };
  let checkTimer: ReturnType<typeof setTimeout> | undefined;
  function checkSoon(): void {
    checkTimer ??= setTimeout(() => {
      checkTimer = undefined;
      check().catch(() => {});
    }, 250);
  }
  /**
   * Commands in flight and when each was sent, oldest first. A primary
   * that froze answers nothing and closes nothing: a command that hangs is
   * the only sign, so while one hangs the layout is looked at again and
   * again, to see its replica promoted at once. One timer for all, alive
   * only while commands are in flight: a timer per command would cost more
   * than the command.
   */
  const inflight = new Map<object, number>();
  let watch: ReturnType<typeof setInterval> | undefined;
  const track = (): object => {
    const token = {};
    inflight.set(token, Date.now());
    watch ??= setInterval(() => {
      const oldest = inflight.values().next().value;
      if (oldest === undefined) {
        clearInterval(watch);
        watch = undefined;
      } else if (Date.now() - oldest >= STALL_MS) {
        checkSoon();
      }
    }, STALL_MS);
    return token;
  };
  /**
   * The connected client of the primary that serves `key`'s slot, as the
   * cluster client last learned it; undefined while that client is not
   * ready. node-redis's own routing costs two to three times what the
   * command itself does (measured: 20-33 us a command, against 12-13 sent
   * straight), and in a storm every hash tag's claim is a command of its
   * own.
   */
  const masterOf = (slot: number) =>
    cluster.isOpen ? cluster.slots[slot]?.master : undefined;
  const primaryOf = (key: string | undefined) => {
    const node = key === undefined ? undefined : masterOf(keySlot(key));
    const client = node?.client;
    return client?.isReady && !node?.connectPromise ? client : undefined;
  };
  const send = async (args: readonly string[]): Promise<unknown> => {
    if (args[0] === "PING") {
      await check();
      return "PONG";
    }
    const key = routingKey(args);
    let direct = primaryOf(key);
    let busyReplies = 0;
    for (;;) {
      const token = track();
      try {
        return await (direct
          ? direct.sendCommand([...args])
          : cluster.sendCommand(key, false, [...args]));
      } catch (error) {
        if (
          direct && error instanceof ErrorReply &&
          /^(MOVED|ASK) /.test(error.message)
        ) {
          // The slot moved; the cluster client follows the redirect and
          // learns the new layout. The command was not run.
          direct = undefined;
          continue;
        }
        const busy = error instanceof ErrorReply &&
          CLUSTER_BUSY.test(error.message);
        if (!busy || ++busyReplies >= BUSY_TRIES) {
          if (!(error instanceof ErrorReply) || busy) checkSoon();
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        inflight.delete(token);
      }
    }
  };
  /**
   * Takeovers go on sharded pub/sub where the cluster has it (Redis 7 and
   * later): a takeover then costs only its shard's nodes, where a PUBLISH
   * is relayed to every node of the cluster. An older cluster answers
   * "unknown command"; its takeovers go by PUBLISH on the same channels.
   * A channel whose slot moves to another shard (a resharding) is followed
   * by the cluster client; if it cannot follow, the generation ends and
   * the next subscribes afresh.
   */
  let publishCommand: "PUBLISH" | "SPUBLISH" = "SPUBLISH";
  let addressed = false;
  // node-redis spells the event "shannel"; the right spelling too, should
  // a release correct it.
  for (
    const event of [
      "sharded-shannel-moved-error",
      "sharded-channel-moved-error",
    ]
  ) {
    cluster.on(event, (error: unknown) => hooks.onError(error));
  }
  async function subscribe(): Promise<void> {
    try {
      await Promise.all(
        channels.map((channel) => cluster.sSubscribe(channel, hooks.onMessage)),
      );
    } catch (error) {
      if (
        !(error instanceof ErrorReply) ||
        !/^ERR unknown command/i.test(error.message)
      ) throw error;
      publishCommand = "PUBLISH";
      await cluster.subscribe([...channels], hooks.onMessage);
    }
    addressed = await subscribeAddressed(
      options,
      (more) =>
        publishCommand === "SPUBLISH"
          ? Promise.all(
            more.map((channel) => cluster.sSubscribe(channel, hooks.onMessage)),
          )
          : cluster.subscribe(more, hooks.onMessage),
    );
  }
  const connected = cluster.connect()
    .catch((error: unknown) => {
      throw error instanceof RootNodesUnavailableError && seedError
        ? new Error(`${error.message}; the last said: ${errorText(seedError)}`)
        : error;
    })
    .then(subscribe)
    .then(async () => {
      layout = await readLayout();
    });
  return {
    connected,
    target: () =>
      cluster.isOpen
        ? cluster.masters.map((m) => m.address).sort().join(",")
        : "",
    get publishCommand() {
      return publishCommand;
    },
    get addressed() {
      return addressed;
    },
    shardOf(key) {
      // Before the layout is known, a slot is its own group.
      const slot = keySlot(key);
      return masterOf(slot)?.address ?? `slot ${slot}`;
    },
    send,
    pipeline: (commands) => Promise.all(commands.map(send)),
    async close() {
      clearTimeout(checkTimer);
      clearInterval(watch);
      await connected.catch(() => {});
      await cluster.close().catch(() => {});
      destroyQuietly(cluster);
    },
    destroy() {
      clearTimeout(checkTimer);
      clearInterval(watch);
      destroyQuietly(cluster);
    },
  };
}

/** The data nodes' client options: credentials, database and TLS. */
function nodeCredentials(url: string, connectTimeout: number) {
  const base = CLIENT_SETTINGS;
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

/** An error's message, whatever was thrown. */
function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
