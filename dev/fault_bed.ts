/**
 * The fault bed: a small deployment on real hosts (network namespaces, see
 * netns.ts). Redis on one host (or, with `store: "sentinel"`, a primary, a
 * replica and three sentinels from deploy/redis/sentinel.conf on three
 * hosts; with `store: "cluster"`, a Redis Cluster of three primaries and
 * three replicas, each node on a host of its own), three ws-time instances
 * on three more, HAProxy with the shipped config on another, and the
 * clients (the page's reconnecting client, fault_clients.ts) on the last.
 * The third instance's link runs through the link emulator, so it can be
 * made slow and lossy. Faults are real: SIGKILL, SIGSTOP, a link set down
 * at the switch, blackhole routes between an instance and a Redis node.
 *
 * @module
 */

import { renderHaproxyConfig } from "./haproxy_config.ts";
import { clusterNodeArgs, reshardArgs } from "./redis_args.ts";
import type { Child } from "./child.ts";
import type { DriverEvent } from "./fault_clients.ts";
import { type Host, ip, type LossyHost, Network } from "./netns.ts";
import { ROOT } from "./paths.ts";
import { SERVER_PERMISSIONS } from "./server_process.ts";
import { waitFor } from "./timing.ts";

const TEMPLATE = Deno.readTextFileSync(`${ROOT}deploy/haproxy.cfg`);
const WS_PORT = 8000;
const AGENT_PORT = 8081;
const LB_PORT = 8080;
const STATS_PORT = 8404;
const SENTINEL_PORTS = [26379, 26380, 26381];
// Sentinel beds run with authentication on, as the shipped sentinel.conf
// requires: the sentinels' own password and the data nodes'.
const SENTINEL_PASSWORD = `sentinel-${crypto.randomUUID()}`;
const DATA_PASSWORD = `data-${crypto.randomUUID()}`;
/**
 * The cluster's node timeout: short, so a test sees a failover within
 * seconds (Redis's default is 15 s, ElastiCache's similar).
 */
export const BED_CLUSTER_NODE_TIMEOUT_MS = 2000;

/** One ws-time instance of the bed. */
export interface BedInstance {
  readonly name: string;
  readonly host: Host;
  child: Child;
  /** Set once it was told to leave (SIGTERM) and exited. */
  stopped?: boolean;
}

/** A Redis node of the bed. */
export interface RedisNode {
  readonly name: string;
  readonly host: Host;
  child: Child;
  /** Its working folder (a cluster node keeps its nodes.conf there). */
  dir?: string;
}

/** How the bed is built. */
export interface BedOptions {
  /**
   * One Redis, a primary and a replica under three sentinels, or a Redis
   * Cluster of three shards.
   */
  readonly store?: "redis" | "sentinel" | "cluster";
  /** Clients started once the bed is up. */
  readonly clients: number;
  /** Spread the clients' first connections over this long (ms). */
  readonly rampMs?: number;
  /** Extra ws-time flags for every instance. */
  readonly instanceArgs?: readonly string[];
  /** HAProxy check interval (the shipped config says 2s). */
  readonly checkInterval?: string;
  /**
   * Hosts for instances started later (a scale-out, a deploy's new
   * instances), in HAProxy's config from the start as a target group or a
   * Service's endpoints are: a slot with nothing on it is DOWN. Default 0.
   */
  readonly spares?: number;
  /** Replaces the shipped config's `balance leastconn`. */
  readonly balance?: string;
  /** Replaces the shipped `hard-stop-after` (how long a reload lingers). */
  readonly hardStopAfter?: string;
}

/** A running bed. */
export class FaultBed implements AsyncDisposable {
  readonly instances: BedInstance[] = [];
  readonly #net: Network;
  readonly #lossy: LossyHost;
  readonly #redis: Host;
  /** The Redis data nodes; [0] is the first primary. */
  readonly redisNodes: RedisNode[] = [];
  readonly #sentinelHost: Host | undefined;
  readonly #replicaHost: Host | undefined;
  /** The cluster's six node hosts, in creation order. */
  readonly #clusterHosts: Host[] = [];
  #tempDir = "";
  #added = 0;
  /** Hosts not yet running an instance, in order. */
  readonly #spares: Array<{ name: string; host: Host }> = [];
  #haproxy: Child | undefined;
  #haproxyConfig = "";
  readonly #lb: Host;
  readonly #clients: Host;
  readonly #options: BedOptions;
  #driver: Child | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #parsed = 0;
  readonly #events: DriverEvent[] = [];

  private constructor(
    net: Network,
    hosts: {
      redis: Host;
      lb: Host;
      clients: Host;
      lossy: LossyHost;
      sentinels?: Host;
      replica?: Host;
    },
    options: BedOptions,
  ) {
    this.#net = net;
    this.#redis = hosts.redis;
    this.#lb = hosts.lb;
    this.#clients = hosts.clients;
    this.#lossy = hosts.lossy;
    this.#options = options;
    this.#sentinelHost = hosts.sentinels;
    this.#replicaHost = hosts.replica;
  }

  /** Builds the network, starts every process and the clients. */
  static async start(options: BedOptions): Promise<FaultBed> {
    const net = await Network.create();
    let bed: FaultBed | undefined;
    try {
      const redis = await net.addHost("redis", 2);
      const lb = await net.addHost("lb", 3);
      const clients = await net.addHost("clients", 4);
      const hosts = [
        await net.addHost("ws1", 11),
        await net.addHost("ws2", 12),
      ];
      const lossy = await net.addLossyHost("ws3", 13);
      hosts.push(lossy);
      const spares: Array<{ name: string; host: Host }> = [];
      for (let k = 0; k < (options.spares ?? 0); k++) {
        const name = `ws${4 + k}`;
        spares.push({ name, host: await net.addHost(name, 14 + k) });
      }
      const sentinel = options.store === "sentinel";
      const replica = sentinel ? await net.addHost("replica", 5) : undefined;
      const sentinels = sentinel ? await net.addHost("sentinel", 6) : undefined;
      bed = new FaultBed(net, {
        redis,
        lb,
        clients,
        lossy,
        ...(replica ? { replica } : {}),
        ...(sentinels ? { sentinels } : {}),
      }, options);
      bed.#spares.push(...spares);
      if (options.store === "cluster") {
        for (let k = 0; k < 6; k++) {
          bed.#clusterHosts.push(await net.addHost(`c${k + 1}`, 21 + k));
        }
      }
      bed.#tempDir = await Deno.makeTempDir({ prefix: "ws-time-bed-" });
      await bed.#startRedis();
      for (const [i, host] of hosts.entries()) {
        const instance = { name: `ws${i + 1}`, host } as BedInstance;
        instance.child = await bed.#startInstance(instance);
        bed.instances.push(instance);
      }
      await bed.#startHaproxy();
      await bed.#startDriver();
      return bed;
    } catch (error) {
      if (bed) await bed[Symbol.asyncDispose]();
      else await net[Symbol.asyncDispose]();
      throw error;
    }
  }

  /** The URL clients connect to (HAProxy's frontend). */
  get url(): string {
    return `ws://${this.#lb.address}:${LB_PORT}/`;
  }

  /** Every event the clients reported so far. */
  events(): DriverEvent[] {
    const lines = this.#driver?.lines ?? [];
    for (; this.#parsed < lines.length; this.#parsed++) {
      const line = lines[this.#parsed]!;
      if (line.startsWith("{")) this.#events.push(JSON.parse(line));
    }
    return this.#events;
  }

  /** The clients' view now: connected, ticking, ended, per server. */
  async status(): Promise<Extract<DriverEvent, { type: "status" }>> {
    const before = this.events().length;
    await this.#command("status");
    return await waitFor(
      () =>
        this.events().slice(before).find((e) => e.type === "status") as
          | Extract<DriverEvent, { type: "status" }>
          | undefined,
      5000,
      "the clients' status",
    );
  }

  /** Open connections per instance, from each one's /metrics. */
  async connections(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const instance of this.instances) {
      if (instance.stopped) continue;
      const { status, body } = await this.fetch(
        `http://${instance.host.address}:${WS_PORT}/metrics`,
      );
      const value = /^wstime_connections (\d+)/m.exec(body)?.[1];
      out[instance.name] = status === 200 ? Number(value) : NaN;
    }
    return out;
  }

  /** An HTTP GET from the clients' host. */
  async fetch(url: string): Promise<{ status: number; body: string }> {
    const before = this.events().length;
    await this.#command(`fetch ${url}`);
    const reply = await waitFor(
      () =>
        this.events().slice(before).find((e) =>
          e.type === "fetched" && e.url === url
        ) as Extract<DriverEvent, { type: "fetched" }> | undefined,
      8000,
      `GET ${url}`,
    );
    return { status: reply.status, body: reply.body };
  }

  /** Instance `i` dies at once (SIGKILL). */
  async kill(i: number): Promise<void> {
    const instance = this.instances[i]!;
    instance.child.kill("SIGKILL");
    await instance.child.finished();
  }

  /** Starts an instance on the next spare host; resolves with its index. */
  async addInstance(): Promise<number> {
    const spare = this.#spares.shift();
    if (!spare) throw new Error("no spare host left");
    const instance = { ...spare } as BedInstance;
    instance.child = await this.#startInstance(instance);
    this.instances.push(instance);
    return this.instances.length - 1;
  }

  /** Tells instance `i` to leave (SIGTERM) and waits until it exits. */
  async stop(i: number): Promise<Deno.CommandStatus> {
    const instance = this.instances[i]!;
    instance.child.kill("SIGTERM");
    const status = await instance.child.finished();
    instance.stopped = true;
    return status;
  }

  /** Whether HAProxy has instance `i` UP. */
  async isUp(i: number): Promise<boolean> {
    const { body } = await this.fetch(
      `http://${this.#lb.address}:${STATS_PORT}/stats;csv`,
    );
    const name = this.instances[i]!.name;
    return body.split("\n").some((row) =>
      row.startsWith(`ws_time,${name},`) && /,UP[, ]/.test(row)
    );
  }

  /** Reloads HAProxy (SIGUSR2 to its master), as `systemctl reload` does. */
  reloadBalancer(): void {
    this.#haproxy!.kill("SIGUSR2");
  }

  /** Restarts every client's gap measurement. */
  async mark(): Promise<void> {
    await this.#command("mark");
  }

  /** Each client's longest wait for its count since {@link mark}, ms. */
  async gaps(): Promise<number[]> {
    const before = this.events().length;
    await this.#command("gaps");
    const reply = await waitFor(
      () =>
        this.events().slice(before).find((e) => e.type === "gaps") as
          | Extract<DriverEvent, { type: "gaps" }>
          | undefined,
      30_000,
      "the clients' gaps",
    );
    return reply.gaps;
  }

  /** Starts instance `i` again, as after a crash. */
  async restart(i: number): Promise<void> {
    const instance = this.instances[i]!;
    instance.child = await this.#startInstance(instance);
  }

  /** Instance `i` stops running (SIGSTOP), or runs again (SIGCONT). */
  freeze(i: number, frozen: boolean): void {
    this.instances[i]!.child.kill(frozen ? "SIGSTOP" : "SIGCONT");
  }

  /** Cuts (or restores) instance `i`'s link at the switch. */
  async partition(i: number, cut: boolean): Promise<void> {
    const port = this.instances[i]!.host.port;
    await ip(
      "-n",
      this.#net.switchNs,
      "link",
      "set",
      port,
      cut ? "down" : "up",
    );
  }

  /**
   * Cuts (or restores) the path between instance `i` and one Redis node
   * only (default: the first primary).
   */
  async cutRedis(
    i: number,
    cut: boolean,
    node: Host = this.#redis,
  ): Promise<void> {
    const host = this.instances[i]!.host;
    const verb = cut ? "add" : "del";
    await ip("-n", host.ns, "route", verb, "blackhole", `${node.address}/32`);
    await ip("-n", node.ns, "route", verb, "blackhole", `${host.address}/32`);
  }

  /**
   * The node the sentinels name as primary now; in a cluster, the primary
   * of the shard that holds slot 0 (the shard the faults strike).
   */
  async primary(): Promise<RedisNode> {
    if (this.#options.store === "cluster") return await this.#primaryOfSlot(0);
    const reply = await this.redisCli(
      this.#sentinelHost!,
      26379,
      "SENTINEL",
      "get-master-addr-by-name",
      "wstime",
    );
    const address = reply.split("\n")[0]!.trim();
    const node = this.redisNodes.find((n) => n.host.address === address);
    if (!node) throw new Error(`unknown primary "${reply}"`);
    return node;
  }

  /**
   * The primary that holds `key` now (the one primary without a cluster):
   * in a cluster, cutting an instance from the shard of the fleet's
   * presence key makes the cut felt within a second, whatever sessions the
   * instance happens to write.
   */
  async primaryFor(key: string): Promise<RedisNode> {
    if (this.#options.store !== "cluster") return await this.primary();
    for (const node of this.redisNodes) {
      const slot = Number(
        await this.#clusterCli(node.host, "CLUSTER", "KEYSLOT", key),
      );
      if (Number.isInteger(slot) && slot >= 0) {
        return await this.#primaryOfSlot(slot);
      }
    }
    throw new Error(`no cluster node gave the slot of ${key}`);
  }

  async #primaryOfSlot(slot: number): Promise<RedisNode> {
    const address = (await this.#clusterLayout()).find((r) =>
      r.from <= slot && slot <= r.to
    )?.address;
    const node = this.redisNodes.find((n) => n.host.address === address);
    if (!node) throw new Error(`no primary holds slot ${slot} (${address})`);
    return node;
  }

  /** Every node acting as a primary now (the one primary without a cluster). */
  async primaries(): Promise<RedisNode[]> {
    if (this.#options.store !== "cluster") return [await this.primary()];
    const addresses = new Set(
      (await this.#clusterLayout()).map((r) => r.address),
    );
    return this.redisNodes.filter((n) => addresses.has(n.host.address));
  }

  /**
   * Session records each primary holds (one number without a cluster);
   * the fleet's presence hash is a key too, and not counted.
   */
  async sessionRecords(): Promise<number[]> {
    const out = [];
    for (const node of await this.primaries()) {
      out.push(Number(
        await this.redisCli(
          node.host,
          6379,
          "EVAL",
          "return #redis.call('KEYS', ARGV[1])",
          "0",
          "ws-time:session:*",
        ),
      ));
    }
    return out;
  }

  /**
   * What the first node that answers says of the cluster (CLUSTER NODES),
   * for a failure's message; "" without a cluster or an answer.
   */
  async clusterReport(): Promise<string> {
    if (this.#options.store !== "cluster") return "";
    for (const node of this.redisNodes) {
      const reply = await this.#clusterCli(node.host, "CLUSTER", "NODES");
      if (reply !== "") return `${node.name} sees:\n${reply}`;
    }
    return "";
  }

  /** The cluster's slot ranges and their primaries, asked of a live node. */
  async #clusterLayout(): Promise<
    Array<{ from: number; to: number; address: string }>
  > {
    for (const node of this.redisNodes) {
      const reply = await this.#clusterCli(node.host, "CLUSTER", "SLOTS");
      // redis-cli prints nested arrays one value a line: from, to, then the
      // primary's address and port.
      const lines = reply.split("\n").map((l) => l.trim()).filter((l) => l);
      const out: Array<{ from: number; to: number; address: string }> = [];
      for (let i = 0; i + 2 < lines.length; i++) {
        if (
          /^\d+$/.test(lines[i]!) && /^\d+$/.test(lines[i + 1]!) &&
          /^\d+\.\d+\.\d+\.\d+$/.test(lines[i + 2]!)
        ) {
          out.push({
            from: Number(lines[i]),
            to: Number(lines[i + 1]),
            address: lines[i + 2]!,
          });
          i += 2;
          // Skip the rest of the range's entry: port, id, replicas.
          while (i + 1 < lines.length && !/^\d+$/.test(lines[i + 1]!)) i++;
        }
      }
      if (out.length > 0) return out;
    }
    throw new Error("no cluster node answered CLUSTER SLOTS");
  }

  /** redis-cli on a cluster node, bounded: a frozen node answers nothing. */
  async #clusterCli(host: Host, ...args: string[]): Promise<string> {
    return await this.#redisCli(host, 6379, true, args, 1);
  }

  /**
   * Moves `slots` slots from the shard that holds slot 0 to another shard,
   * with redis-cli's resharding (MIGRATE, key by key, while clients write).
   */
  async reshard(slots: number): Promise<void> {
    const from = await this.primary();
    const to = (await this.primaries()).find((n) => n !== from)!;
    const id = async (node: RedisNode) =>
      (await this.redisCli(node.host, 6379, "CLUSTER", "MYID")).trim();
    await this.#clusterAdmin(
      from.host,
      reshardArgs(
        `${from.host.address}:6379`,
        await id(from),
        await id(to),
        slots,
      ),
    );
  }

  /**
   * Runs redis-cli against `host`:`port` from inside `host`'s namespace,
   * with the password the node requires (none with `anonymous`).
   */
  async redisCli(host: Host, port: number, ...args: string[]): Promise<string> {
    return await this.#redisCli(host, port, true, args);
  }

  /** The reply of a sentinel to a client without its password. */
  async anonymousSentinelReply(...args: string[]): Promise<string> {
    return await this.#redisCli(this.#sentinelHost!, 26379, false, args);
  }

  async #redisCli(
    host: Host,
    port: number,
    authenticate: boolean,
    args: string[],
    timeoutS?: number,
  ): Promise<string> {
    const password = this.#options.store === "redis" ||
        this.#options.store === undefined || !authenticate
      ? undefined
      : SENTINEL_PORTS.includes(port)
      ? SENTINEL_PASSWORD
      : DATA_PASSWORD;
    const out = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        host.ns,
        ...(timeoutS === undefined ? [] : ["timeout", String(timeoutS)]),
        "redis-cli",
        "-h",
        host.address,
        "-p",
        String(port),
        ...(password ? ["--no-auth-warning", "-a", password] : []),
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  }

  /** Starts a Redis node again (after a SIGKILL), empty, as a primary. */
  async restartRedis(node: RedisNode): Promise<void> {
    if (this.#options.store !== "cluster") {
      node.child = await this.#startRedisOn(node.host, []);
      return;
    }
    // With its nodes.conf: it rejoins, as a replica of its promoted one,
    // and is of use for the next failover only once it holds the data.
    node.child = await this.#startRedisOn(
      node.host,
      this.#clusterArgs(),
      node.dir,
    );
    await waitFor(
      async () =>
        /master_link_status:up/.test(
          await this.#clusterCli(node.host, "INFO", "replication"),
        ),
      30_000,
      `${node.name} to sync as a replica`,
    );
  }

  /** The flags of every cluster node (its password comes with the rest). */
  #clusterArgs(): string[] {
    return clusterNodeArgs(
      "nodes.conf",
      BED_CLUSTER_NODE_TIMEOUT_MS,
      DATA_PASSWORD,
    );
  }

  /** `redis-cli --cluster <args>` from `host`, as an operator runs it. */
  async #clusterAdmin(host: Host, args: string[]): Promise<void> {
    const out = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        host.ns,
        "redis-cli",
        "--no-auth-warning",
        "-a",
        DATA_PASSWORD,
        "--cluster",
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const text = new TextDecoder().decode(out.stdout) +
        new TextDecoder().decode(out.stderr);
      throw new Error(`redis-cli --cluster ${args[0]}: ${text.slice(-800)}`);
    }
  }

  /** Six nodes joined as three shards of a primary and a replica. */
  async #startCluster(): Promise<void> {
    for (const [k, host] of this.#clusterHosts.entries()) {
      const dir = await Deno.makeTempDir({ dir: this.#tempDir });
      const child = await this.#startRedisOn(host, this.#clusterArgs(), dir);
      this.redisNodes.push({ name: `c${k + 1}`, host, child, dir });
    }
    await this.#clusterAdmin(this.#clusterHosts[0]!, [
      "create",
      ...this.#clusterHosts.map((h) => `${h.address}:6379`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    ]);
    await waitFor(
      async () => {
        for (const node of this.redisNodes) {
          const info = await this.#clusterCli(node.host, "CLUSTER", "INFO");
          if (!/cluster_state:ok/.test(info)) return false;
        }
        return true;
      },
      30_000,
      "every cluster node to report ok",
    );
    // A replica that never finished its first sync will not stand for
    // election when its primary dies (its data counts as too old), and a
    // fault test would then wait for a promotion that cannot come.
    await waitFor(
      async () => {
        for (const node of this.redisNodes) {
          const info = await this.#clusterCli(node.host, "INFO", "replication");
          if (/role:slave/.test(info) && !/master_link_status:up/.test(info)) {
            return false;
          }
        }
        return true;
      },
      30_000,
      "every replica to sync with its primary",
    );
  }

  /** Each instance's store as its health details report it. */
  async stores(): Promise<
    Array<{ state: string; figures: Record<string, number> }>
  > {
    const out = [];
    for (const instance of this.instances) {
      const { body } = await this.fetch(
        `http://${instance.host.address}:${WS_PORT}/healthcheck`,
      );
      try {
        out.push(JSON.parse(body).store);
      } catch {
        out.push({ state: "unreachable", figures: {} });
      }
    }
    return out;
  }

  /** Starts `n` more clients (new sessions). */
  async addClients(n: number): Promise<void> {
    this.#added += n;
    await this.#command(`add ${n}`);
  }

  /** Clients started so far. */
  get clients(): number {
    return this.#options.clients + this.#added;
  }

  /** Makes the third instance's link slow and lossy (0, 0 restores it). */
  async degrade(delayMs: number, lossPercent: number): Promise<void> {
    await this.#lossy.set(delayMs, lossPercent);
  }

  async #command(line: string): Promise<void> {
    await this.#writer!.write(new TextEncoder().encode(`${line}\n`));
  }

  async #startRedis(): Promise<void> {
    if (this.#options.store === "cluster") return await this.#startCluster();
    const primary = await this.#startRedisOn(this.#redis, []);
    this.redisNodes.push({ name: "redis", host: this.#redis, child: primary });
    if (this.#options.store !== "sentinel") return;
    const replica = await this.#startRedisOn(this.#replicaHost!, [
      "--replicaof",
      this.#redis.address,
      "6379",
    ]);
    this.redisNodes.push({
      name: "replica",
      host: this.#replicaHost!,
      child: replica,
    });
    await waitFor(
      async () =>
        /master_link_status:up/.test(
          await this.redisCli(this.#replicaHost!, 6379, "INFO", "replication"),
        ),
      15_000,
      "the replica in sync",
    );
    // Three sentinels from the shipped file, each with its own copy (they
    // rewrite it), on the sentinel host.
    const template = Deno.readTextFileSync(
      `${ROOT}deploy/redis/sentinel.conf`,
    );
    for (const port of SENTINEL_PORTS) {
      const file = `${this.#tempDir}/sentinel-${port}.conf`;
      await Deno.writeTextFile(
        file,
        template
          .replace(/^port \d+$/m, `port ${port}`)
          .replace(/^bind .*$/m, `bind ${this.#sentinelHost!.address}`)
          .replace(
            /^sentinel monitor wstime \S+ 6379 2$/m,
            `sentinel monitor wstime ${this.#redis.address} 6379 2`,
          )
          .replace("CHANGE-ME-sentinel-password", SENTINEL_PASSWORD)
          .replace("CHANGE-ME-data-password", DATA_PASSWORD),
      );
      const sentinel = this.#net.spawn(
        this.#sentinelHost!.ns,
        "redis-sentinel",
        [file],
      );
      await sentinel.waitForLine(/\+monitor master wstime/, 10_000);
    }
  }

  async #startRedisOn(
    host: Host,
    args: string[],
    // Its own folder: a replica's full sync writes the snapshot it
    // receives to disk, which must not land in the working directory.
    dir?: string,
  ): Promise<Child> {
    dir ??= await Deno.makeTempDir({ dir: this.#tempDir });
    const child = this.#net.spawn(host.ns, "redis-server", [
      "--dir",
      dir,
      "--bind",
      host.address,
      "--port",
      "6379",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
      // A replica's first sync starts at once, not after Redis 7's 5 s wait
      // for more replicas: the bed waits for it, and a replica that has not
      // synced cannot be promoted.
      "--repl-diskless-sync-delay",
      "0",
      ...(this.#options.store === "sentinel"
        ? ["--requirepass", DATA_PASSWORD, "--masterauth", DATA_PASSWORD]
        : []),
      ...args,
    ]);
    await child.waitForLine(/Ready to accept connections/);
    return child;
  }

  async #startInstance(instance: BedInstance): Promise<Child> {
    const child = this.#net.spawn(instance.host.ns, Deno.execPath(), [
      "run",
      ...SERVER_PERMISSIONS,
      `${ROOT}main.ts`,
      "--hostname",
      instance.host.address,
      "--port",
      String(WS_PORT),
      "--agent-port",
      String(AGENT_PORT),
      "--name",
      instance.name,
      ...(this.#options.store === "sentinel"
        ? [
          "--redis-sentinels",
          SENTINEL_PORTS.map((p) => `${this.#sentinelHost!.address}:${p}`)
            .join(","),
          "--redis-master-name",
          "wstime",
          "--redis-sentinel-password",
          SENTINEL_PASSWORD,
          "--redis",
          `redis://:${DATA_PASSWORD}@wstime`,
        ]
        : this.#options.store === "cluster"
        ? [
          "--redis-cluster",
          this.#clusterHosts.map((h) => `${h.address}:6379`).join(","),
          "--redis",
          `redis://:${DATA_PASSWORD}@cluster`,
        ]
        : ["--redis", `redis://${this.#redis.address}:6379`]),
      "--session-secret",
      "fault-bed-secret-0123456789abcdefgh",
      ...(this.#options.instanceArgs ?? []),
    ], { env: { NO_COLOR: "1" } });
    await child.waitForLine(/listening on/, 30_000);
    return child;
  }

  async #startHaproxy(): Promise<void> {
    const config = renderHaproxyConfig(TEMPLATE, {
      host: this.#lb.address,
      // A client that drops a dead connection leaves it to the balancer
      // until the instance answers or the tunnel times out: during a
      // freeze or partition HAProxy holds up to twice the clients. Two
      // descriptors each must fit the 20,000 a process may hold here.
      maxconn: 9000,
      port: LB_PORT,
      statsPort: STATS_PORT,
      ...(this.#options.checkInterval
        ? { checkInterval: this.#options.checkInterval }
        : {}),
      ...(this.#options.balance ? { balance: this.#options.balance } : {}),
      ...(this.#options.hardStopAfter
        ? { hardStopAfter: this.#options.hardStopAfter }
        : {}),
      backends: [...this.instances, ...this.#spares].map(({ name, host }) => ({
        name,
        host: host.address,
        port: WS_PORT,
        agentPort: AGENT_PORT,
      })),
    });
    const file = await Deno.makeTempFile({ suffix: ".cfg" });
    await Deno.writeTextFile(file, config);
    // Master-worker, as systemd runs it, so that it can be reloaded; the
    // file stays until the bed is gone (a reload reads it again).
    const child = this.#net.spawn(this.#lb.ns, "haproxy", [
      "-W",
      "-db",
      "-f",
      file,
    ]);
    this.#haproxy = child;
    this.#haproxyConfig = file;
    // HAProxy reads its config at once; the driver's wait for every
    // instance UP (below) is the real readiness check.
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (child.status !== undefined) {
      throw new Error(`haproxy exited:\n${child.lines.join("\n")}`);
    }
  }

  async #startDriver(): Promise<void> {
    const plan = {
      url: this.url,
      count: this.#options.clients,
      rampMs: this.#options.rampMs ?? 2000,
    };
    const driver = this.#net.spawn(this.#clients.ns, Deno.execPath(), [
      "run",
      "--allow-net",
      `${ROOT}dev/fault_clients.ts`,
      JSON.stringify(plan),
    ], { stdin: "piped", env: { NO_COLOR: "1" } });
    this.#driver = driver;
    this.#writer = driver.process.stdin.getWriter();
    // Every instance must be UP in HAProxy before clients arrive.
    await waitFor(
      async () => {
        const { body } = await this.fetch(
          `http://${this.#lb.address}:${STATS_PORT}/stats;csv`,
        );
        const up = body.split("\n").filter((row) =>
          row.startsWith("ws_time,ws") && /,UP[, ]/.test(row)
        );
        return up.length >= this.instances.length;
      },
      20_000,
      "every instance UP in haproxy",
    );
    await this.#command("start");
  }

  /** Stops the clients, every process, and deletes the network. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const instance of this.instances) instance.child.kill("SIGCONT");
    if (this.#writer) {
      await this.#command("stop").catch(() => {});
      await waitFor(
        () => this.events().some((e) => e.type === "stopped"),
        10_000,
        "the clients to stop",
      ).catch(() => {});
      await this.#writer.close().catch(() => {});
    }
    await this.#lossy.close();
    await this.#net[Symbol.asyncDispose]();
    if (this.#tempDir) {
      await Deno.remove(this.#tempDir, { recursive: true }).catch(() => {});
    }
    if (this.#haproxyConfig) {
      await Deno.remove(this.#haproxyConfig).catch(() => {});
    }
  }
}
