// The architecture ws-time replaces, rebuilt for side-by-side measurement:
// the AWS ws-time sample's shape on Node.js with the `ws` library and one
// setInterval per connection. It keeps what the bench needs to measure it
// like ws-time (the ws-time.v1 welcome and ticks, a token whose bytes 1-6
// carry the session start, /healthz) and nothing else: no store, no drain.
// Usage: node original.mjs <port>
import http from "node:http";
import { WebSocketServer } from "ws";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  // deno-lint-ignore no-console
  console.error("usage: node original.mjs <port>");
  process.exit(2);
}
const NAME = "original";

/** A token laid out like ws-time's (version, 6-byte start), unsigned. */
function token(start) {
  const bytes = Buffer.alloc(43);
  bytes[0] = 1;
  bytes.writeUIntBE(start, 1, 6);
  return bytes.toString("base64url");
}

const server = http.createServer((request, response) => {
  response.writeHead(request.url === "/healthz" ? 200 : 404);
  response.end(request.url === "/healthz" ? "ok" : "not found");
});
const wss = new WebSocketServer({
  server,
  handleProtocols: (offered) =>
    offered.has("ws-time.v1") ? "ws-time.v1" : false,
});
wss.on("connection", (ws) => {
  const start = Date.now();
  ws.send(
    `{"type":"welcome","server":"${NAME}","session":"${
      token(start)
    }","resumed":false,"seconds":0}`,
  );
  const timer = setInterval(() => {
    const seconds = Math.floor((Date.now() - start) / 1000);
    ws.send(`{"type":"tick","server":"${NAME}","seconds":${seconds}}`);
  }, 1000);
  ws.on("close", () => clearInterval(timer));
  ws.on("error", () => clearInterval(timer));
});
server.listen(port, "127.0.0.1");
process.on("SIGINT", () => process.exit(0));
