/**
 * What very large or fragmented WebSocket messages cost before ws-time's
 * own 4 KiB limit can act: Deno assembles a whole message (up to its fixed
 * 64 MiB cap) before the `message` event fires. For each case this starts a
 * fresh server process, sends one message by hand over raw TCP, and reports
 * how the connection ended and the growth of the process's peak RSS
 * (VmHWM). Run: `deno run -A bench/frame_memory.ts`.
 *
 * @module
 */

import { startServer } from "../dev/server_process.ts";

const CASES: ReadonlyArray<
  { name: string; mib: number; fragments: number; declared?: number }
> = [
  { name: "1 MiB, one frame", mib: 1, fragments: 1 },
  { name: "16 MiB, one frame", mib: 16, fragments: 1 },
  { name: "16 MiB, 4096 fragments", mib: 16, fragments: 4096 },
  { name: "63 MiB, one frame", mib: 63, fragments: 1 },
  { name: "63 MiB, 65536 fragments", mib: 63, fragments: 65536 },
  { name: "64 MiB, one frame", mib: 64, fragments: 1 },
  { name: "80 MiB, 80 fragments", mib: 80, fragments: 80 },
  { name: "256 MiB, 256 fragments", mib: 256, fragments: 256 },
  { name: "frame header claiming 9 GB", mib: 0, fragments: 1, declared: 9e9 },
];

function status(pid: number, field: string): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? 0) / 1024;
}

function frameHeader(fin: boolean, opcode: number, length: number) {
  const head = [(fin ? 0x80 : 0) | opcode];
  if (length < 126) head.push(0x80 | length);
  else if (length < 65536) head.push(0x80 | 126, length >> 8, length & 255);
  else {
    const big = new DataView(new ArrayBuffer(8));
    big.setBigUint64(0, BigInt(length));
    head.push(0x80 | 127, ...new Uint8Array(big.buffer));
  }
  head.push(0, 0, 0, 0); // a zero mask keeps the payload as written
  return new Uint8Array(head);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}

/** Reads until the server's close frame or EOF; returns how it ended. */
async function ending(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let seen = new Uint8Array(0);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return "connection closed without a close frame";
    seen = new Uint8Array([...seen, ...buffer.subarray(0, n)]);
    // Skip the 101 head, then look for a close frame (opcode 8).
    const text = new TextDecoder("latin1").decode(seen);
    const start = text.indexOf("\r\n\r\n");
    if (start < 0) continue;
    let i = start + 4;
    while (i + 2 <= seen.length) {
      const opcode = seen[i]! & 15;
      const length = seen[i + 1]! & 127;
      if (opcode === 8 && i + 4 <= seen.length) {
        const code = (seen[i + 2]! << 8) | seen[i + 3]!;
        const reason = new TextDecoder().decode(
          seen.subarray(i + 4, i + 2 + length),
        );
        return `close ${code} ${reason}`;
      }
      i += 2 + length;
    }
  }
}

async function run(item: typeof CASES[number]): Promise<string> {
  await using server = await startServer();
  const pid = server.child.process.pid;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    await writeAll(
      conn,
      new TextEncoder().encode(
        `GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n` +
          `connection: Upgrade\r\nsec-websocket-version: 13\r\n` +
          `sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      ),
    );
    const before = status(pid, "VmRSS");
    const result = ending(conn);
    const sending = (async () => {
      if (item.declared) {
        await writeAll(conn, frameHeader(true, 1, item.declared));
        return;
      }
      const per = Math.ceil(item.mib * 1048576 / item.fragments);
      const chunk = new Uint8Array(per).fill(97);
      for (let i = 0; i < item.fragments; i++) {
        const last = i === item.fragments - 1;
        await writeAll(conn, frameHeader(last, i === 0 ? 1 : 0, per));
        await writeAll(conn, chunk);
      }
    })().catch((error) => `send stopped: ${error.name}`);
    const how = await result;
    await sending;
    const peak = status(pid, "VmHWM");
    return `| ${item.name} | ${how} | ${before.toFixed(0)} | ${
      peak.toFixed(0)
    } | +${(peak - before).toFixed(0)} |`;
  } finally {
    conn.close();
  }
}

if (import.meta.main) {
  const rows = [
    "| message | how the connection ended | RSS before (MiB) | peak RSS (MiB) | growth |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const item of CASES) rows.push(await run(item));
  // deno-lint-ignore no-console
  console.log(rows.join("\n"));
}
