/**
 * Raw TCP clients for wire-level tests: they send bytes exactly as written
 * (no URL normalisation, no header validation, as `fetch` would do) and can
 * pick their source address among 127.0.0.0/8, so tests can play several
 * client addresses. Every socket is closed before its promise settles.
 *
 * @module
 */

import net from "node:net";
import { Buffer } from "node:buffer";

/** A response as read off the wire. */
export interface RawResponse {
  /** Status code, or 0 when the server closed without answering. */
  readonly status: number;
  /** The status line and headers, as text. */
  readonly head: string;
  readonly headers: Headers;
  readonly body: string;
}

/** Where and how to connect. */
export interface RawOptions {
  readonly port: number;
  /** Destination, default 127.0.0.1. */
  readonly host?: string;
  /** Source address, e.g. 127.0.0.2. */
  readonly localAddress?: string;
  /** Gives up (and closes) after this long, default 5 s. */
  readonly timeoutMs?: number;
}

/**
 * Sends `request` on a fresh connection and reads one response (head, and a
 * body of Content-Length bytes), then closes. A 101 ends at the head.
 */
export function rawRequest(
  options: RawOptions,
  request: string | Uint8Array,
): Promise<RawResponse> {
  const { promise, resolve, reject } = Promise.withResolvers<RawResponse>();
  const socket = connect(options);
  const chunks: Buffer[] = [];
  // A HEAD response announces a length but carries no body.
  const noBody = Buffer.from(request.slice(0, 5)).toString() === "HEAD ";
  let result: RawResponse | null = null;
  let failure: Error | null = null;
  const timer = setTimeout(() => {
    failure = new Error(`no response within ${options.timeoutMs ?? 5000} ms`);
    socket.destroy();
  }, options.timeoutMs ?? 5000);
  socket.on("connect", () => socket.write(request));
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    result = parseResponse(Buffer.concat(chunks), noBody);
    if (result) socket.destroy();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    clearTimeout(timer);
    if (failure) return reject(failure);
    resolve(result ?? partial(Buffer.concat(chunks)));
  });
  return promise;
}

/** A WebSocket connection opened by hand that then never says anything. */
export interface SilentSocket extends AsyncDisposable {
  /** The handshake's status code. */
  readonly status: Promise<number>;
  /** Resolves with the ms from handshake to the server closing TCP. */
  readonly closedAfter: Promise<number>;
}

/**
 * Completes a WebSocket handshake on `path`, then goes silent: it reads but
 * never answers a ping nor sends a frame, like a vanished peer.
 */
export function silentWebSocket(
  options: RawOptions,
  path = "/",
  headers: Record<string, string> = {},
): SilentSocket {
  const socket = connect(options);
  const status = Promise.withResolvers<number>();
  const closed = Promise.withResolvers<number>();
  let head = "";
  let openedAt = 0;
  socket.on("connect", () => {
    socket.write(upgradeRequest(path, options.port, headers));
  });
  socket.on("data", (chunk: Buffer) => {
    if (openedAt !== 0) return;
    head += chunk.toString("latin1");
    const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (match && head.includes("\r\n\r\n")) {
      openedAt = Date.now();
      status.resolve(Number(match[1]));
    }
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    status.resolve(0);
    closed.resolve(openedAt === 0 ? 0 : Date.now() - openedAt);
  });
  return {
    status: status.promise,
    closedAfter: closed.promise,
    async [Symbol.asyncDispose]() {
      socket.destroy();
      await closed.promise;
    },
  };
}

/**
 * A valid upgrade request, with `headers` added or overriding (null drops
 * one) and another `method` when a test needs it.
 */
export function upgradeRequest(
  path: string,
  port: number,
  headers: Record<string, string | null> = {},
  method = "GET",
): string {
  const all: Record<string, string | null> = {
    host: `127.0.0.1:${port}`,
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    ...lowerKeys(headers),
  };
  const lines = Object.entries(all).filter(([, v]) => v !== null).map((
    [k, v],
  ) => `${k}: ${v}\r\n`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join("")}\r\n`;
}

function lowerKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(
    Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]),
  );
}

function connect(options: RawOptions): net.Socket {
  return net.connect({
    host: options.host ?? "127.0.0.1",
    port: options.port,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
}

function parseResponse(data: Buffer, noBody: boolean): RawResponse | null {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const head = data.subarray(0, end).toString("latin1");
  const [statusLine = "", ...lines] = head.split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
  }
  const length = noBody ? 0 : Number(headers.get("content-length") ?? 0);
  const body = data.subarray(end + 4);
  if (status !== 101 && body.length < length) return null;
  return {
    status,
    head,
    headers,
    body: body.subarray(0, length).toString("utf8"),
  };
}

function partial(data: Buffer): RawResponse {
  return {
    status: 0,
    head: data.toString("latin1"),
    headers: new Headers(),
    body: "",
  };
}
