/**
 * Hosts on one machine: Linux network namespaces joined by veth pairs to a
 * bridge that lives in a namespace of its own (the "switch"), so nothing is
 * added to the machine's own network. Every address is in a random
 * 10.77.x.0/24 that only these namespaces know; everything is deleted on
 * dispose. Needs root (CAP_NET_ADMIN) and iproute2; {@link netnsUnavailable}
 * says why not, so a test can skip with the reason instead of passing.
 *
 * @module
 */

import { Child } from "./child.ts";
import { ROOT } from "./paths.ts";
import { SERVER_PERMISSIONS } from "./server_process.ts";

/** Runs `ip args...`; throws with its error output when it fails. */
export async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** Why namespaces cannot be made here, or null when they can. */
export function netnsUnavailable(): string | null {
  const name = `wstprobe${Deno.pid}`;
  try {
    const add = new Deno.Command("ip", {
      args: ["netns", "add", name],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (!add.success) {
      return `ip netns add failed: ${
        new TextDecoder().decode(add.stderr).trim()
      }`;
    }
    new Deno.Command("ip", { args: ["netns", "del", name] }).outputSync();
    return null;
  } catch (error) {
    return `cannot run ip: ${(error as Error).message}`;
  }
}

/** One host: a namespace with one interface on the switch. */
export interface Host {
  readonly ns: string;
  readonly address: string;
  /** The switch's side of its link (set it down for a partition). */
  readonly port: string;
}

/** A switch and the hosts on it. */
export class Network implements AsyncDisposable {
  /** Namespace name prefix, unique per network. */
  readonly id: string;
  /** The /24, as "10.77.x". */
  readonly subnet: string;
  readonly switchNs: string;
  readonly #namespaces: string[] = [];
  readonly #children: Child[] = [];

  private constructor(id: string, subnet: string) {
    this.id = id;
    this.subnet = subnet;
    this.switchNs = `${id}-sw`;
  }

  /** Creates the switch namespace and its bridge (10.77.x.1). */
  static async create(): Promise<Network> {
    const id = `wst${
      crypto.getRandomValues(new Uint16Array(1))[0]!.toString(16)
    }`;
    const subnet = `10.77.${2 + Math.floor(Math.random() * 250)}`;
    const net = new Network(id, subnet);
    try {
      await net.#namespace(net.switchNs);
      const sw = ["-n", net.switchNs];
      await ip(...sw, "link", "add", "br0", "type", "bridge");
      await ip(...sw, "addr", "add", `${subnet}.1/24`, "dev", "br0");
      await ip(...sw, "link", "set", "br0", "up");
      // The switch routes to hosts behind a link emulator (TUN, no ARP)
      // and answers ARP for them on the bridge.
      await net.sysctl(net.switchNs, "net.ipv4.ip_forward=1");
      await net.sysctl(net.switchNs, "net.ipv4.conf.br0.proxy_arp=1");
    } catch (error) {
      await net[Symbol.asyncDispose]();
      throw error;
    }
    return net;
  }

  /** A host `name` at 10.77.x.`octet`, wired to the bridge by a veth. */
  async addHost(name: string, octet: number): Promise<Host> {
    const ns = `${this.id}-${name}`;
    const port = `p-${name}`.slice(0, 15);
    await this.#namespace(ns);
    await ip(
      "link",
      "add",
      "eth0",
      "netns",
      ns,
      "type",
      "veth",
      "peer",
      "name",
      port,
      "netns",
      this.switchNs,
    );
    await ip("-n", this.switchNs, "link", "set", port, "master", "br0");
    await ip("-n", this.switchNs, "link", "set", port, "up");
    const address = `${this.subnet}.${octet}`;
    await ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
    await ip("-n", ns, "link", "set", "eth0", "up");
    return { ns, address, port };
  }

  /**
   * A host `name` whose only link runs through `link_emulator.py`: every
   * packet either way can be delayed and dropped (see {@link LossyHost}).
   */
  async addLossyHost(name: string, octet: number): Promise<LossyHost> {
    const ns = `${this.id}-${name}`;
    const port = `t-${name}`.slice(0, 15);
    const inner = `u-${name}`.slice(0, 15);
    await this.#namespace(ns);
    const emulator = this.spawn(this.switchNs, "python3", [
      new URL("./link_emulator.py", import.meta.url).pathname,
      port,
      inner,
    ], { stdin: "piped" });
    await emulator.waitForLine(/^ready$/);
    // Made in the switch namespace, one end moves to the host; the
    // emulator keeps its descriptor across the move.
    await ip("-n", this.switchNs, "link", "set", inner, "netns", ns);
    const address = `${this.subnet}.${octet}`;
    await ip("-n", this.switchNs, "link", "set", port, "up");
    await ip("-n", this.switchNs, "route", "add", `${address}/32`, "dev", port);
    await ip("-n", ns, "addr", "add", `${address}/24`, "dev", inner);
    await ip("-n", ns, "link", "set", inner, "up");
    const writer = emulator.process.stdin.getWriter();
    let answers = 0;
    return {
      ns,
      address,
      port,
      async set(delayMs: number, lossPercent: number) {
        await writer.write(
          new TextEncoder().encode(`set ${delayMs} ${lossPercent}\n`),
        );
        answers++;
        await waitForCount(emulator, /^ok$/, answers);
      },
      async close() {
        await writer.close().catch(() => {});
      },
    };
  }

  /** Sets a sysctl inside namespace `ns` (namespaced keys only). */
  async sysctl(ns: string, setting: string): Promise<void> {
    await ip("netns", "exec", ns, "sysctl", "-qw", setting);
  }

  /** Loads the shipped deploy/nftables/ws-time.nft into `ns`'s kernel. */
  async loadShippedNftables(ns: string): Promise<void> {
    await ip(
      "netns",
      "exec",
      ns,
      "nft",
      "-f",
      `${ROOT}deploy/nftables/ws-time.nft`,
    );
  }

  /**
   * Starts main.ts inside `ns` as `deno task start` runs it, on
   * `hostname`:8000 with `args`, and waits until it listens.
   */
  async startServer(
    ns: string,
    hostname: string,
    args: readonly string[] = [],
  ): Promise<Child> {
    const server = this.spawn(ns, Deno.execPath(), [
      "run",
      ...SERVER_PERMISSIONS,
      `${ROOT}main.ts`,
      "--hostname",
      hostname,
      "--port",
      "8000",
      ...args,
    ], { env: { NO_COLOR: "1" } });
    await server.waitForLine(/listening on/, 20_000);
    return server;
  }

  /** Starts `command` inside `ns`; killed (SIGKILL) on dispose. */
  spawn(
    ns: string,
    command: string,
    args: string[],
    options: { env?: Record<string, string>; stdin?: "null" | "piped" } = {},
  ): Child {
    const child = new Child("ip", ["netns", "exec", ns, command, ...args], {
      ...options,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...options.env },
    });
    this.#children.push(child);
    return child;
  }

  async #namespace(ns: string): Promise<void> {
    await ip("netns", "add", ns);
    this.#namespaces.push(ns);
    await ip("-n", ns, "link", "set", "lo", "up");
  }

  /** Kills every process started here, then deletes every namespace. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#children.map((c) => c[Symbol.asyncDispose]()));
    for (const ns of this.#namespaces.reverse()) {
      await ip("netns", "del", ns).catch(() => {});
    }
  }
}

/** A host behind the link emulator. */
export interface LossyHost extends Host {
  /** Delay every packet, either way, by `delayMs` and drop `lossPercent`. */
  set(delayMs: number, lossPercent: number): Promise<void>;
  close(): Promise<void>;
}

async function waitForCount(
  child: Child,
  pattern: RegExp,
  count: number,
): Promise<void> {
  const deadline = Date.now() + 5000;
  while (child.lines.filter((l) => pattern.test(l)).length < count) {
    if (Date.now() > deadline) {
      throw new Error(
        `link emulator did not answer: ${child.lines.join("\n")}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
