import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import { Metrics } from "../metrics.ts";
import type { Connection } from "./connections.ts";
import {
  createSocketLifecycle,
  type ServedSession,
} from "./socket_lifecycle.ts";

/** Enough of a WebSocket for the lifecycle: events, send, close. */
class FakeSocket extends EventTarget {
  readyState = 0;
  bufferedAmount = 0;
  readonly sent: string[] = [];
  closed: { code: number; reason: string } | undefined;

  send(text: string): void {
    this.sent.push(text);
  }

  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }

  hangUp(code = 1006): void {
    this.readyState = 3;
    this.dispatchEvent(new CloseEvent("close", { code }));
  }

  /** The code it was closed with, if any. */
  closeCode(): number | undefined {
    return this.closed?.code;
  }

  get json(): Array<Record<string, unknown>> {
    return this.sent.map((text) => JSON.parse(text));
  }
}

function setup(moveWindowMs = 0) {
  const clock = new ManualClock(1_000_000);
  const metrics = new Metrics();
  for (
    const name of [
      "slow_readers_closed",
      "takeovers",
      "disconnects",
      "superseded",
      "silent_peers_closed",
      "moves",
      "move_window_expired",
    ]
  ) {
    metrics.counter(`wstime_${name}_total`, name);
  }
  const ended: Array<[string, boolean]> = [];
  const lifecycle = createSocketLifecycle({
    name: "unit",
    clock,
    maxBufferedBytes: 1000,
    maxMessageBytes: 16,
    maxMessagesPerSecond: 2,
    peerTimeoutMs: 3000,
    moveWindowMs,
    tokenEverySeconds: 3,
    refreshToken: (conn) => `fresh-${conn.sessionId}`,
    sessionLabel: (id) => id,
    metrics,
    logger: memoryLogger(),
    onEnded: (conn, held) => ended.push([conn.sessionId, held]),
  });
  const accept = (
    id: string,
    options: { json?: boolean; start?: number; epoch?: number } = {},
  ): [FakeSocket, Connection | null] => {
    const socket = new FakeSocket();
    const session: ServedSession = {
      id,
      start: options.start ?? clock.now(),
      epoch: options.epoch ?? 1,
      token: `token-${id}`,
      resumed: false,
    };
    const conn = lifecycle.accept(socket as unknown as WebSocket, session, {
      json: options.json ?? true,
      address: "192.0.2.1",
      label: "",
      id: `cid-${id}`,
    });
    return [socket, conn];
  };
  return { clock, metrics, ended, lifecycle, accept };
}

Deno.test("createSocketLifecycle() welcomes on open, then ticks each second with a token every third", () => {
  const { clock, lifecycle, accept } = setup();
  const [socket] = accept("s1", { start: clock.now() - 2_000 });
  socket.open();
  clock.advance(2_000);
  assert.deepEqual(socket.json, [
    {
      type: "welcome",
      server: "unit",
      session: "token-s1",
      resumed: false,
      seconds: 2,
      // --peer-timeout 3 s asks for a heartbeat every second.
      heartbeatMs: 1000,
    },
    { type: "tick", server: "unit", seconds: 3, session: "fresh-s1" },
    { type: "tick", server: "unit", seconds: 4 },
  ]);
  assert.equal(lifecycle.traffic().ticks, 2);
  lifecycle.stop();
  assert.deepEqual(socket.closed, {
    code: 1001,
    reason: "server shutting down",
  });
});

Deno.test("createSocketLifecycle() welcomes with the count at open, not at the upgrade, so a moving client's count never goes back", () => {
  const { clock, lifecycle, accept } = setup();
  // Accepted at 4.990 s into the session; the open comes 20 ms later, when
  // the old connection elsewhere may already have shown 5.
  const [socket] = accept("s1", { start: clock.now() - 4_990 });
  clock.jump(20);
  socket.open();
  assert.equal(socket.json[0]!.seconds, 5);
  clock.advance(1_000);
  assert.deepEqual(socket.json.map((m) => m.seconds), [5, 6]);
  lifecycle.stop();
});

Deno.test("createSocketLifecycle() sends text clients the original lines", () => {
  const { clock, lifecycle, accept } = setup();
  const [socket] = accept("t1", { json: false });
  socket.open();
  clock.advance(2_000);
  assert.deepEqual(socket.sent, [
    "unit: you have been connected for 1 second",
    "unit: you have been connected for 2 seconds",
  ]);
  lifecycle.stop();
});

Deno.test("createSocketLifecycle() closes the older local connection of a resumed session with 4001", () => {
  const { metrics, ended, lifecycle, accept } = setup();
  const [older] = accept("same", { epoch: 1 });
  older.open();
  const [newer] = accept("same", { epoch: 2 });
  newer.open();
  assert.deepEqual(older.closed, {
    code: 4001,
    reason: "session resumed elsewhere",
  });
  assert.equal(metrics.value("wstime_takeovers_total", { where: "local" }), 1);
  older.hangUp(4001);
  assert.deepEqual(ended, [["same", false]], "the older no longer held it");
  assert.equal(lifecycle.connections.bySession("same")?.socket, newer);
  newer.hangUp(1000);
  assert.deepEqual(ended.at(-1), ["same", true]);
  assert.equal(lifecycle.connections.size, 0);
  lifecycle.stop();
});

Deno.test("createSocketLifecycle().evict() ends a session taken over on another instance, never a newer one", () => {
  const { metrics, ended, lifecycle, accept } = setup();
  const [socket] = accept("moved", { epoch: 3 });
  socket.open();
  lifecycle.evict("moved", 3);
  lifecycle.evict("moved", 2);
  assert.equal(socket.closeCode(), undefined, "an announcement as old");
  lifecycle.evict("moved", 4);
  lifecycle.evict("unknown", 9);
  assert.equal(socket.closeCode(), 4001);
  assert.deepEqual(ended, [["moved", false]]);
  assert.equal(metrics.value("wstime_takeovers_total", { where: "remote" }), 1);
  socket.hangUp(4001);
  assert.equal(ended.length, 1, "ended once, not again on the close event");
  lifecycle.stop();
});

Deno.test("createSocketLifecycle() closes for binary, oversized and flooding messages on the next turn", () => {
  const { clock, lifecycle, accept } = setup();
  const cases: Array<[unknown[], number]> = [
    [[new ArrayBuffer(2)], 1003],
    [["x".repeat(17)], 1009],
    [["a", "b", "c"], 1008],
  ];
  for (const [messages, code] of cases) {
    const [socket] = accept(`m${code}`);
    socket.open();
    for (const data of messages) {
      socket.dispatchEvent(new MessageEvent("message", { data }));
    }
    assert.equal(socket.closeCode(), undefined, "not inside the handler");
    clock.advance(0);
    assert.equal(socket.closeCode(), code);
  }
  lifecycle.stop();
});

Deno.test("createSocketLifecycle() closes a client that stopped reading with 1008", () => {
  const { clock, metrics, lifecycle, accept } = setup();
  const [socket] = accept("slow");
  socket.open();
  socket.bufferedAmount = 1001;
  clock.advance(1_000);
  assert.deepEqual(socket.closed, {
    code: 1008,
    reason: "client is not reading",
  });
  assert.equal(metrics.value("wstime_slow_readers_closed_total"), 1);
  lifecycle.stop();
});

Deno.test("createSocketLifecycle() closes with 4002 a handshake older than the session's local connection", () => {
  const { metrics, ended, lifecycle, accept } = setup();
  const [newer] = accept("s", { epoch: 6 });
  newer.open();
  const [stale, conn] = accept("s", { epoch: 5 });
  assert.equal(conn, null);
  stale.open();
  assert.deepEqual(stale.closed, {
    code: 4002,
    reason: "a newer connection holds this session",
  });
  assert.deepEqual(stale.sent, [], "no welcome, no tick");
  assert.equal(newer.closeCode(), undefined);
  assert.equal(metrics.value("wstime_superseded_total"), 1);
  assert.deepEqual(ended, []);
  lifecycle.stop();
});

Deno.test("createSocketLifecycle() drops a heartbeating client that goes silent and releases its session at once", () => {
  const { clock, metrics, ended, lifecycle, accept } = setup();
  const [quiet] = accept("never-sends");
  quiet.open();
  const [beating] = accept("heartbeats");
  beating.open();
  for (let i = 0; i < 5; i++) {
    beating.dispatchEvent(
      new MessageEvent("message", { data: "beat" }),
    );
    clock.advance(1000);
  }
  assert.deepEqual(beating.closed, undefined, "alive while it beats");
  // Its host vanishes: no close frame, no FIN, only silence.
  clock.advance(3000);
  assert.deepEqual(beating.closed, { code: 4003, reason: "no heartbeat" });
  assert.deepEqual(ended, [["heartbeats", true]], "released without a close");
  assert.equal(metrics.value("wstime_silent_peers_closed_total"), 1);
  clock.advance(60_000);
  assert.equal(quiet.closeCode(), undefined, "a client that never sent stays");
  beating.hangUp(1006);
  assert.equal(ended.length, 1);
  lifecycle.stop();
});

Deno.test("createSocketLifecycle().undelivered() is true until the welcome went out, and again once the socket closes", () => {
  const { lifecycle, accept } = setup();
  const [socket] = accept("s", { epoch: 4 });
  assert.equal(lifecycle.undelivered("s", 4), true, "not yet welcomed");
  assert.equal(lifecycle.undelivered("s", 3), false, "another epoch");
  assert.equal(lifecycle.undelivered("other", 4), false, "not held here");
  socket.open();
  assert.equal(socket.json[0]!.type, "welcome");
  assert.equal(lifecycle.undelivered("s", 4), false, "welcomed");
  socket.readyState = 2;
  assert.equal(lifecycle.undelivered("s", 4), true, "closing");
  lifecycle.stop();
});

Deno.test("createSocketLifecycle().drain() without a move window tells a JSON client when to come back, then closes with 1001", () => {
  const { lifecycle, accept } = setup(0);
  const [socket, conn] = accept("s1");
  socket.open();
  lifecycle.drain(conn!, 400);
  assert.deepEqual(socket.json.at(-1), {
    type: "drain",
    reconnectAfterMs: 400,
    reason: "drain",
  });
  assert.equal(socket.closeCode(), 1001);
});

Deno.test("createSocketLifecycle().drain() with a move window keeps a JSON client ticking until its new connection takes over", () => {
  const { clock, lifecycle, accept, metrics } = setup(5000);
  const [socket, conn] = accept("s1", { start: clock.now() });
  socket.open();
  lifecycle.drain(conn!, 400);
  assert.deepEqual(socket.json.at(-1), {
    type: "drain",
    reconnectAfterMs: 400,
    reason: "drain",
    moveWithinMs: 5000,
  });
  assert.equal(socket.closeCode(), undefined, "still open");
  assert.equal(lifecycle.moving(), 1);
  clock.advance(2000);
  assert.equal(socket.json.at(-1)!.type, "tick", "still ticking");
  // The client's new connection claimed the session on another instance:
  // the old one holds nothing now, but ticks until its client lets go.
  lifecycle.evict("s1", 2);
  assert.equal(socket.closeCode(), undefined);
  assert.equal(lifecycle.connections.size, 0, "holds no session");
  const sent = socket.sent.length;
  clock.advance(1000);
  assert.equal(socket.sent.length, sent + 1, "still ticking");
  // Welcomed elsewhere, the client closes it.
  socket.hangUp(1000);
  assert.equal(lifecycle.moving(), 0);
  clock.advance(10_000);
  assert.equal(socket.sent.length, sent + 1, "no tick after the close");
  assert.match(
    metrics.render(),
    /wstime_moves_total\{reason="drain",how="overlap"\} 1/,
  );
});

Deno.test("createSocketLifecycle().drain() closes with 1001 a JSON client still here when the move window ends, and a text client at once", () => {
  const { clock, lifecycle, accept, metrics } = setup(5000);
  const [json, jsonConn] = accept("s1", { start: clock.now() });
  const [text, textConn] = accept("s2", { start: clock.now(), json: false });
  json.open();
  text.open();
  lifecycle.drain(jsonConn!, 400);
  lifecycle.drain(textConn!, 400);
  assert.equal(text.closeCode(), 1001, "a text client cannot be told");
  clock.advance(5000);
  assert.equal(json.closeCode(), undefined, "within hint + window");
  clock.advance(1000);
  assert.equal(json.closeCode(), 1001);
  assert.equal(lifecycle.moving(), 0);
  const text_ = metrics.render();
  assert.match(text_, /wstime_move_window_expired_total 1/);
  assert.match(text_, /wstime_moves_total\{reason="drain",how="close"\} 1/);
});

Deno.test("createSocketLifecycle() closes a taken-over moving connection with 1001 when the move window ends, and at shutdown", () => {
  const { clock, lifecycle, accept, ended } = setup(5000);
  const [socket, conn] = accept("s1", { start: clock.now() });
  socket.open();
  lifecycle.drain(conn!, 0);
  lifecycle.evict("s1", 2);
  assert.deepEqual(ended, [["s1", false]], "released once, at the takeover");
  clock.advance(6000);
  assert.equal(socket.closeCode(), 1001);
  socket.hangUp(1001);
  assert.deepEqual(ended, [["s1", false]], "not released twice");
  const [other, otherConn] = accept("s2", { start: clock.now() });
  other.open();
  lifecycle.drain(otherConn!, 0);
  lifecycle.evict("s2", 2);
  lifecycle.stop();
  assert.equal(other.closeCode(), 1001);
});
