/**
 * A watch on Deno: its WebSocket assembles a message sent in continuation
 * frames with no total limit, which is why the shipped units carry
 * `MemoryMax=` (docs/security.md). When this test fails, Deno bounds the
 * assembled message (or offers an option to): adopt that, tie it to
 * `--max-message-bytes`, and update docs/security.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect } from "node:net";
import { upgradeRequest } from "../helpers/raw_http.ts";

const MiB = 1024 ** 2;

Deno.test("Deno still assembles a 64 MiB message of 1 MiB fragments whole, with no total limit", async () => {
  const received = Promise.withResolvers<number>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => {
        received.resolve(String(event.data).length);
        socket.close();
      };
      socket.onclose = () => received.resolve(0);
      return response;
    },
  );
  const { port } = server.addr;
  const payload = Buffer.alloc(MiB, 0x61);
  const header = (fin: boolean, opcode: number) => {
    const head = Buffer.alloc(14);
    head[0] = (fin ? 0x80 : 0) | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(MiB), 2);
    return head;
  };
  const socket = connect({ port, host: "127.0.0.1" });
  const closed = new Promise((resolve) => socket.on("close", resolve));
  socket.on("error", () => {});
  socket.on("connect", () => socket.write(upgradeRequest("/", port)));
  socket.once("data", async () => {
    for (let i = 0; i < 64; i++) {
      const more = socket.write(
        Buffer.concat([header(i === 63, i === 0 ? 1 : 0), payload]),
      );
      if (!more) await new Promise((r) => socket.once("drain", r));
    }
  });
  const length = await received.promise;
  socket.destroy();
  await closed;
  assert.equal(
    length,
    64 * MiB,
    "Deno no longer delivers it whole: it now limits messages; adopt the limit (see this file's header)",
  );
});
