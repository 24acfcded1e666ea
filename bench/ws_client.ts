/**
 * A minimal WebSocket client over `node:net`, for the load generator only.
 * It exists because Deno's `WebSocket` cannot choose its source address, and
 * the bench spreads connections over 127.0.0.2, 127.0.0.3, ... so the
 * ephemeral port range (about 28k ports per source address) is not the
 * limit. It speaks just what ws-time sends: unmasked text frames from the
 * server, ping (answered), close; the only data frames it sends are the
 * client's heartbeats ({@link LoadSocket.send}).
 *
 * @module
 */

import net from "node:net";
import { Buffer } from "node:buffer";

/** Callbacks of one {@link LoadSocket}; one set is shared by all sockets. */
export interface LoadSocketEvents {
  /** The server answered 101. */
  open(socket: LoadSocket): void;
  /** One text message arrived. */
  message(socket: LoadSocket, text: string): void;
  /** The connection ended; `opened` says whether the handshake completed. */
  close(socket: LoadSocket, opened: boolean, reason: string): void;
}

/** Where and how to connect. */
export interface LoadTarget {
  readonly host: string;
  readonly port: number;
  /** Path and query, e.g. "/?id=g1-42". */
  readonly path: string;
  /** Source address to bind, e.g. "127.0.0.2". */
  readonly localAddress: string;
  /** Subprotocol to offer; "" offers none. */
  readonly protocol: string;
}

// The server only checks the key's shape, and this client never verifies
// Sec-WebSocket-Accept: one fixed key saves randomness per connection.
const KEY = "d3MtdGltZSBiZW5jaCAxNg==";
const HEADER_END = Buffer.from("\r\n\r\n");

/** One load-generator connection. */
export class LoadSocket {
  /** Free slot for the generator's per-connection bookkeeping. */
  start = 0;
  lastSeconds = -1;
  heartbeatAt = -Infinity;
  /** The session token of the welcome, for a later resume. */
  token = "";
  readonly #socket: net.Socket;
  readonly #events: LoadSocketEvents;
  #opened = false;
  #closed = false;
  #pending: Buffer | null = null;

  /** Sends one text message (a heartbeat) if the socket is open. */
  send(text: string): void {
    if (this.#opened && !this.#closed) {
      this.#socket.write(maskedFrame(0x1, Buffer.from(text)));
    }
  }

  /** Connects to `target`; events arrive through `events`. */
  constructor(target: LoadTarget, events: LoadSocketEvents) {
    this.#events = events;
    const socket = net.connect({
      host: target.host,
      port: target.port,
      localAddress: target.localAddress,
    });
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("connect", () => {
      socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n` +
          (target.protocol === ""
            ? ""
            : `Sec-WebSocket-Protocol: ${target.protocol}\r\n`) +
          "\r\n",
      );
    });
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (error: Error) => this.#finish(error.message));
    socket.on("close", () => this.#finish("connection closed"));
  }

  /** Whether the handshake completed and the socket is still up. */
  get open(): boolean {
    return this.#opened && !this.#closed;
  }

  /** Drops the connection without a closing handshake. */
  destroy(): void {
    this.#socket.destroy();
    this.#finish("destroyed");
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#events.close(this, this.#opened, reason);
  }

  #onData(chunk: Buffer): void {
    let data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = null;
    if (!this.#opened) {
      const end = data.indexOf(HEADER_END);
      if (end < 0) {
        this.#pending = data;
        return;
      }
      const status = data.subarray(0, data.indexOf("\r\n")).toString();
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        this.#finish(`handshake refused: ${status}`);
        return;
      }
      this.#opened = true;
      this.#events.open(this);
      data = data.subarray(end + 4);
    }
    this.#readFrames(data);
  }

  #readFrames(data: Buffer): void {
    let at = 0;
    while (data.length - at >= 2) {
      const opcode = data[at]! & 0x0f;
      let length = data[at + 1]! & 0x7f;
      let head = 2;
      if (length === 126) {
        if (data.length - at < 4) break;
        length = data.readUInt16BE(at + 2);
        head = 4;
      } else if (length === 127) {
        if (data.length - at < 10) break;
        length = Number(data.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (data.length - at < head + length) break;
      const payload = data.subarray(at + head, at + head + length);
      at += head + length;
      if (opcode === 0x1) {
        this.#events.message(this, payload.toString());
      } else if (opcode === 0x9) {
        this.#socket.write(maskedFrame(0xa, payload));
      } else if (opcode === 0x8) {
        this.#socket.write(maskedFrame(0x8, payload.subarray(0, 2)));
        this.#finish(`closed by server (${closeCode(payload)})`);
        return;
      }
    }
    if (at < data.length) this.#pending = Buffer.from(data.subarray(at));
  }
}

function closeCode(payload: Buffer): number {
  return payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
}

/** A client frame (clients must mask) with a zero mask: payload unchanged. */
function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  payload.copy(frame, 6);
  return frame;
}
