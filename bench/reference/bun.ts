// Bun.serve with its native WebSocket, one setInterval per connection: the
// issue's second reference, rebuilt for side-by-side measurement with the
// same generator. Like original.mjs it keeps only the ws-time.v1 welcome
// and ticks, a token carrying the start, and /healthz.
// Usage: bun bun.ts <port>
import { Buffer } from "node:buffer";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  // deno-lint-ignore no-console
  console.error("usage: bun bun.ts <port>");
  process.exit(2);
}
const NAME = "bun";

/** The part of Bun's API this file uses (Deno has no types for it). */
declare const Bun: {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      idleTimeout: number;
      open(ws: BunSocket): void;
      message(): void;
      close(ws: BunSocket): void;
    };
  }): unknown;
};
interface BunServer {
  upgrade(
    request: Request,
    options: { data: Data; headers?: Record<string, string> | undefined },
  ): boolean;
}
interface BunSocket {
  data: Data;
  send(text: string): void;
}

interface Data {
  start: number;
  timer: ReturnType<typeof setInterval> | undefined;
}

/** A token laid out like ws-time's (version, 6-byte start), unsigned. */
function token(start: number): string {
  const bytes = Buffer.alloc(43);
  bytes[0] = 1;
  bytes.writeUIntBE(start, 1, 6);
  return bytes.toString("base64url");
}

Bun.serve({
  port,
  hostname: "127.0.0.1",
  fetch(request, server) {
    const offered = request.headers.get("sec-websocket-protocol") ?? "";
    const headers = offered.includes("ws-time.v1")
      ? { "Sec-WebSocket-Protocol": "ws-time.v1" }
      : undefined;
    const data: Data = { start: 0, timer: undefined };
    if (server.upgrade(request, { data, headers })) {
      return undefined;
    }
    const health = new URL(request.url).pathname === "/healthz";
    return new Response(health ? "ok" : "not found", {
      status: health ? 200 : 404,
    });
  },
  websocket: {
    idleTimeout: 0,
    open(ws) {
      const data = ws.data;
      data.start = Date.now();
      ws.send(
        `{"type":"welcome","server":"${NAME}","session":"${
          token(data.start)
        }","resumed":false,"seconds":0}`,
      );
      data.timer = setInterval(() => {
        const seconds = Math.floor((Date.now() - data.start) / 1000);
        ws.send(`{"type":"tick","server":"${NAME}","seconds":${seconds}}`);
      }, 1000);
    },
    message() {},
    close(ws) {
      clearInterval(ws.data.timer);
    },
  },
});
process.on("SIGINT", () => process.exit(0));
