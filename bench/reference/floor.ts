// The least a Deno server can do for the bench's load: upgrade, a welcome
// with a token carrying the session start, then one tick per socket per
// second, nothing else (no store, no limits, no metrics). It measures what
// Deno 2 and the kernel cost on this machine, below which ws-time cannot
// go. Mode "ms": one shared ticker in 1 ms buckets by session start, as
// ws-time schedules. Mode "burst": one timer a second sending every tick
// at once, sessions aligned to it: the cheapest schedule, with lateness
// of up to the length of the burst. A presented `session` token resumes:
// its start is read back (unsigned, no store), so the bench's storm can
// measure the floor of a resume beside ws-time's.
// Usage: deno run --allow-net=127.0.0.1 floor.ts <port> <ms|burst>
const port = Number(Deno.args[0]);
const mode = Deno.args[1] ?? "ms";
if (!Number.isInteger(port) || port <= 0 || !["ms", "burst"].includes(mode)) {
  // deno-lint-ignore no-console
  console.error("usage: floor.ts <port> <ms|burst>");
  Deno.exit(2);
}

interface Item {
  readonly socket: WebSocket;
  readonly start: number;
  readonly resumed: boolean;
  last: number;
}

const buckets: Set<Item>[] = Array.from({ length: 1000 }, () => new Set());
const items = new Map<WebSocket, Item>();
let burstAt = Date.now();

/** The start a token of ours carries, or NaN. */
function startOf(token: string): number {
  if (token.length < 10 || token.length > 100 || !/^[\w-]+$/.test(token)) {
    return NaN;
  }
  const base64 = token.replaceAll("-", "+").replaceAll("_", "/");
  const bytes = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="));
  let start = 0;
  for (let i = 1; i <= 6; i++) start = start * 256 + bytes.charCodeAt(i);
  return start;
}

/** A token laid out like ws-time's (version, 6-byte start), unsigned. */
function token(start: number): string {
  const bytes = new Uint8Array(43);
  bytes[0] = 1;
  for (let i = 6, rest = start; i >= 1; i--, rest = Math.floor(rest / 256)) {
    bytes[i] = rest % 256;
  }
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-")
    .replaceAll("/", "_").replaceAll("=", "");
}

function tick(item: Item, now: number): void {
  const seconds = Math.floor((now - item.start) / 1000);
  if (seconds <= item.last) return;
  item.last = seconds;
  item.socket.send(`{"type":"tick","server":"floor","seconds":${seconds}}`);
}

function onOpen(this: WebSocket): void {
  const item = items.get(this)!;
  this.send(
    `{"type":"welcome","server":"floor","session":"${
      token(item.start)
    }","resumed":${item.resumed},"seconds":${
      Math.max(0, Math.floor((Date.now() - item.start) / 1000))
    }}`,
  );
  buckets[item.start % 1000]!.add(item);
}

function onClose(this: WebSocket): void {
  const item = items.get(this);
  if (!item) return;
  items.delete(this);
  buckets[item.start % 1000]!.delete(item);
}

Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, (request) => {
  if (new URL(request.url).pathname === "/healthz") return new Response("ok");
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: 0,
    protocol: "ws-time.v1",
  });
  const now = Date.now();
  const presented = startOf(
    new URL(request.url).searchParams.get("session") ?? "",
  );
  const resumed = presented > 0 && presented <= now;
  // In burst mode a session starts at the last burst, so its ticks are due
  // at the bursts.
  const start = resumed
    ? presented
    : mode === "ms"
    ? now
    : now - ((now - burstAt) % 1000);
  items.set(socket, {
    socket,
    start,
    resumed,
    last: Math.floor((now - start) / 1000),
  });
  socket.addEventListener("open", onOpen);
  socket.addEventListener("close", onClose);
  return response;
});

if (mode === "ms") {
  let served = Date.now();
  const run = () => {
    const now = Date.now();
    for (let t = served + 1; t <= now; t++) {
      for (const item of buckets[t % 1000]!) tick(item, now);
    }
    served = now;
    setTimeout(run, 1);
  };
  setTimeout(run, 1);
} else {
  const run = () => {
    burstAt += 1000;
    const now = Date.now();
    for (const bucket of buckets) for (const item of bucket) tick(item, now);
    setTimeout(run, Math.max(0, burstAt + 1000 - Date.now()));
  };
  setTimeout(run, 1000);
}
Deno.addSignalListener("SIGINT", () => Deno.exit(0));
