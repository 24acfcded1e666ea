/**
 * Unit tests of the reconnecting client's decisions: backoff with full
 * jitter, the attempt counter, server hints, final close codes and stop.
 * Time, randomness and sockets are injected (the client takes them as
 * options), so every delay is checked exactly and nothing waits.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  backoffDelay,
  type ClientOptions,
  MAX_MOVE_HOPS,
  parseRetryAfter,
  type RetryDetail,
  type StateDetail,
  WsTimeClient,
} from "./ws_time_client.js";
import { seededRandom } from "../dev/random.ts";

/** Timers on a hand-driven clock. */
class FakeTimers {
  now = 0;
  #next = 1;
  readonly #due = new Map<number, { at: number; run: () => void }>();

  setTimeout = (run: () => void, ms: number): number => {
    const id = this.#next++;
    this.#due.set(id, { at: this.now + ms, run });
    return id;
  };

  clearTimeout = (id: number): void => {
    this.#due.delete(id);
  };

  get pending(): number {
    return this.#due.size;
  }

  /** Time passes while the page runs no timer at all (a starved loop). */
  stall(ms: number): void {
    this.now += ms;
  }

  /** Runs every timer due within `ms`, in time order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const [id, timer] = [...this.#due].sort((a, b) => a[1].at - b[1].at)[0] ??
        [];
      if (id === undefined || !timer || timer.at > end) break;
      this.#due.delete(id);
      this.now = Math.max(this.now, timer.at);
      timer.run();
    }
    this.now = end;
  }
}

/** A socket driven by the test, standing in for the server's side. */
class FakeSocket {
  readyState = 0;
  protocol = "";
  closedWith: [number | undefined, string | undefined] | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onclose:
    | ((event: { code: number; reason: string; wasClean: boolean }) => void)
    | null = null;

  constructor(readonly url: string, readonly protocols?: string | string[]) {}

  open(protocol = "ws-time.v1"): void {
    this.readyState = 1;
    this.protocol = protocol;
    this.onopen?.({});
  }

  /** What the client sent (heartbeats). */
  readonly sent: string[] = [];

  /** The server sends `message`. */
  receive(message: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  send(data: string): void {
    this.sent.push(data);
  }

  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code, reason, wasClean: false });
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
    if (this.readyState === 0) return;
    this.drop(code ?? 1005, reason ?? "");
  }
}

/** A client wired to fake timers and sockets, recording its events. */
function harness(options: ClientOptions = {}) {
  const timers = new FakeTimers();
  const sockets: FakeSocket[] = [];
  const client = new WsTimeClient("ws://example.test/", {
    random: seededRandom(1),
    now: () => timers.now,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    // One handshake at a time, unless a test is about the hedge.
    hedgeMs: 0,
    WebSocket: class extends FakeSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        sockets.push(this);
      }
    },
    ...options,
  });
  const retries: RetryDetail[] = [];
  const states: StateDetail[] = [];
  client.on("retry", (detail) => retries.push(detail));
  client.on("state", (detail) => states.push(detail));
  const last = () => sockets.at(-1)!;
  return { client, timers, sockets, retries, states, last };
}

const flush = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

Deno.test("backoffDelay() stays within full-jitter bounds for each attempt", () => {
  const random = seededRandom(42);
  for (let n = 0; n <= 12; n++) {
    const ceiling = Math.min(30_000, 500 * 2 ** n);
    const draws = Array.from(
      { length: 4000 },
      () => backoffDelay(n, 500, 30_000, random),
    );
    assert.ok(draws.every((d) => d >= 0 && d <= ceiling), `attempt ${n}`);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `mean at ${n}`);
    // Full jitter: both ends of the range are reached, not a band near it.
    assert.ok(Math.min(...draws) < ceiling * 0.02, `low end at ${n}`);
    assert.ok(Math.max(...draws) > ceiling * 0.98, `high end at ${n}`);
  }
});

Deno.test("backoffDelay() keeps the whole spread at the cap", () => {
  const random = seededRandom(7);
  const draws = Array.from(
    { length: 4000 },
    () => backoffDelay(40, 500, 30_000, random),
  );
  const tenths = new Array(10).fill(0);
  for (const d of draws) tenths[Math.min(9, Math.floor(d / 3000))]++;
  // Uniform over [0, cap]: every tenth of the range holds about 10%.
  assert.ok(tenths.every((count) => count > 300 && count < 500), `${tenths}`);
  assert.equal(backoffDelay(10_000, 500, 30_000, () => 0.5), 15_000);
});

Deno.test("WsTimeClient retries with growing jittered delays, then gives up after maxAttempts", () => {
  const { client, timers, sockets, retries, states, last } = harness();
  client.start();
  for (let i = 0; i < 60 && client.state !== "gave-up"; i++) {
    last().drop();
    timers.advance(60_000);
  }
  assert.equal(retries.length, 50);
  retries.forEach((retry, n) => {
    assert.equal(retry.attempt, n + 1);
    assert.equal(retry.maxAttempts, 50);
    assert.ok(retry.delayMs <= Math.min(30_000, 500 * 2 ** n), `attempt ${n}`);
  });
  assert.equal(sockets.length, 51);
  assert.equal(client.state, "gave-up");
  assert.equal(states.at(-1)!.reason, "gave up after 50 attempts");
  assert.equal(timers.pending, 0);
});

Deno.test("WsTimeClient resets the attempt counter only after a stable connection", () => {
  // No ticks in this test: the silence watchdog would end the connections.
  const { client, timers, retries, last } = harness({
    random: () => 0.999,
    silenceMs: 0,
  });
  client.start();
  for (let i = 0; i < 4; i++) {
    last().drop();
    timers.advance(60_000);
  }
  assert.equal(retries.at(-1)!.attempt, 4);
  last().open();
  timers.advance(2_000); // up, but not for long: the counter stays
  last().drop();
  assert.equal(retries.at(-1)!.attempt, 5);
  assert.ok(retries.at(-1)!.delayMs > 500 * 2 ** 4 * 0.99);
  timers.advance(60_000);
  last().open();
  timers.advance(10_000); // stableMs: the next drop starts over
  last().drop();
  assert.equal(retries.at(-1)!.attempt, 1);
  assert.ok(retries.at(-1)!.delayMs < 500);
  void client.stop();
});

Deno.test("WsTimeClient presents the newest session token and its id on reconnect", () => {
  const { client, timers, sockets, last } = harness({ id: "tab-1" });
  client.start();
  assert.equal(sockets[0]!.url, "ws://example.test/?id=tab-1");
  assert.equal(sockets[0]!.protocols, "ws-time.v1");
  last().open();
  last().receive({ type: "welcome", server: "a", session: "T1", seconds: 0 });
  last().receive({ type: "tick", server: "a", seconds: 1 });
  last().receive({ type: "tick", server: "a", seconds: 2, session: "T2" });
  assert.equal(client.session, "T2");
  last().drop();
  timers.advance(1_000);
  assert.equal(sockets[1]!.url, "ws://example.test/?id=tab-1&session=T2");
  void client.stop();
});

Deno.test("WsTimeClient honours a drain message's reconnectAfterMs", () => {
  const { client, timers, sockets, retries, last } = harness({
    random: () => 0.999,
  });
  client.start();
  last().open();
  last().receive({ type: "drain", reconnectAfterMs: 2345 });
  last().drop(1001, "server shutting down");
  assert.equal(retries.at(-1)!.delayMs, 2345);
  assert.equal(retries.at(-1)!.hintMs, 2345);
  timers.advance(2344);
  assert.equal(sockets.length, 1);
  timers.advance(1);
  assert.equal(sockets.length, 2);
  // The hint was for that one close only.
  last().drop();
  assert.equal(retries.at(-1)!.hintMs, undefined);
  void client.stop();
});

Deno.test("WsTimeClient waits as long as the probe says after a failed handshake", async () => {
  const probed: string[] = [];
  const { client, retries, last } = harness({
    random: () => 0.5,
    probe: (url) => {
      probed.push(url);
      return Promise.resolve(7_000);
    },
  });
  client.start();
  last().drop();
  await flush();
  assert.deepEqual(probed, ["ws://example.test/"]);
  assert.equal(retries.at(-1)!.delayMs, 7_000);
  // A connection that did open is not a refusal: no probe.
  await client.stop();
  client.start();
  last().open();
  last().drop();
  await flush();
  assert.equal(probed.length, 1);
  assert.ok(retries.at(-1)!.delayMs < 500);
  await client.stop();
});

for (
  const [code, reason] of [[1008, "too many messages"], [1009, ""]] as const
) {
  Deno.test(`WsTimeClient does not reconnect after close code ${code}`, () => {
    const { client, timers, sockets, retries, states, last } = harness();
    client.start();
    last().open();
    last().drop(code, reason);
    timers.advance(600_000);
    assert.equal(sockets.length, 1);
    assert.equal(retries.length, 0);
    assert.equal(client.state, "closed");
    assert.equal(states.at(-1)!.code, code);
    assert.notEqual(states.at(-1)!.reason, "");
  });
}

Deno.test("WsTimeClient refuses a server that does not speak ws-time.v1", () => {
  const { client, sockets, states, last } = harness();
  client.start();
  last().open("");
  assert.equal(client.state, "closed");
  assert.match(states.at(-1)!.reason, /does not speak ws-time\.v1/);
  assert.deepEqual(sockets[0]!.closedWith, [1000, ""]);
});

Deno.test("WsTimeClient.stop() cancels a pending retry at once", () => {
  const { client, timers, sockets, last } = harness();
  client.start();
  last().drop();
  assert.equal(client.state, "retrying");
  void client.stop();
  assert.equal(client.state, "stopped");
  assert.equal(timers.pending, 0);
  timers.advance(600_000);
  assert.equal(sockets.length, 1);
});

Deno.test("WsTimeClient.stop() closes an open socket, and a connecting one once it opens", async () => {
  const { client, timers, sockets, last } = harness();
  client.start();
  last().open();
  await client.stop();
  assert.deepEqual(sockets[0]!.closedWith, [1000, "client stopped"]);
  client.start();
  const stopped = client.stop();
  assert.equal(sockets[1]!.closedWith, undefined);
  last().open();
  await stopped;
  assert.deepEqual(sockets[1]!.closedWith, [1000, "client stopped"]);
  assert.equal(client.state, "stopped");
  assert.equal(timers.pending, 0);
});

Deno.test("WsTimeClient gives up on a handshake that never completes", () => {
  const { client, timers, retries, last } = harness({
    connectTimeoutMs: 5_000,
  });
  client.start();
  timers.advance(4_999);
  assert.equal(client.state, "connecting");
  last().readyState = 0;
  const socket = last();
  socket.close = (code, reason) => {
    socket.closedWith = [code, reason];
    socket.drop();
  };
  timers.advance(1);
  assert.equal(client.state, "retrying");
  assert.equal(retries.length, 1);
  void client.stop();
});

Deno.test("WsTimeClient rejects addresses and options it cannot use", () => {
  assert.throws(
    () => new WsTimeClient("http://example.test/"),
    /must start with ws:\/\/ or wss:\/\//,
  );
  assert.throws(
    () => new WsTimeClient("ws://example.test/", { baseMs: 0 }),
    /baseMs must be a positive number/,
  );
  assert.throws(
    () => new WsTimeClient("ws://example.test/", { maxAttempts: 1.5 }),
    /maxAttempts must be a whole number/,
  );
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("7", 0), 7000);
  assert.equal(parseRetryAfter(null, 0), undefined);
  assert.equal(parseRetryAfter("soon", 0), undefined);
  const now = Date.parse("Wed, 25 Nov 2026 12:00:00 GMT");
  assert.equal(parseRetryAfter("Wed, 25 Nov 2026 12:00:09 GMT", now), 9000);
});

Deno.test("WsTimeClient.stop() called from inside its own events schedules nothing", () => {
  for (const event of ["close", "state", "retry"] as const) {
    const { client, timers, sockets, last } = harness();
    client.start();
    last().open();
    client.on(event, () => void client.stop());
    last().drop();
    assert.equal(client.state, "stopped", event);
    assert.equal(timers.pending, 0, event);
    timers.advance(600_000);
    assert.equal(sockets.length, 1, event);
  }
});

for (const code of [4001, 4002]) {
  Deno.test(`WsTimeClient after close code ${code} retries slowly instead of giving up`, () => {
    const { client, timers, sockets, retries, states, last } = harness({
      supersededMs: 5000,
    });
    client.start();
    last().open();
    last().receive({ type: "welcome", server: "a", session: "T1", seconds: 0 });
    last().drop(code, "another connection holds this session");
    assert.equal(client.state, "retrying");
    assert.equal(states.at(-1)!.reason, "superseded");
    const delay = retries.at(-1)!.delayMs;
    assert.ok(delay >= 5000 && delay <= 10_000, `waits ${delay} ms`);
    timers.advance(delay - 1);
    assert.equal(sockets.length, 1, "not before the wait");
    timers.advance(1);
    assert.equal(sockets.length, 2);
    assert.match(last().url, /session=T1/);
    // Still held elsewhere: it keeps waiting, never fights, never stops.
    last().open();
    last().drop(4002, "a newer connection holds this session");
    assert.equal(client.state, "retrying");
    timers.advance(10_000);
    last().open();
    last().receive({
      type: "welcome",
      server: "b",
      session: "T9",
      seconds: 42,
    });
    assert.equal(client.state, "connected");
  });
}

Deno.test("WsTimeClient drops a connection that goes silent and reconnects with its token", () => {
  const { client, timers, sockets, retries, states, last } = harness({
    silenceMs: 3500,
  });
  const closes: Array<{ code: number; reason: string }> = [];
  client.on("close", (detail) => closes.push(detail));
  client.start();
  last().open();
  last().receive({ type: "welcome", server: "a", session: "T1", seconds: 0 });
  for (let k = 1; k <= 5; k++) {
    timers.advance(1000);
    last().receive({ type: "tick", server: "a", seconds: k });
  }
  assert.equal(client.state, "connected", "ticks keep it alive");
  // The host freezes: no FIN, no RST, just nothing.
  timers.advance(3499);
  assert.equal(client.state, "connected");
  timers.advance(1);
  assert.equal(client.state, "retrying");
  assert.equal(states.at(-1)!.reason, "silent");
  assert.deepEqual(closes, [{
    code: 4000,
    reason: "no message for 3.5 s",
    opened: true,
  }]);
  assert.deepEqual(sockets[0]!.closedWith, [
    4000,
    "no message from the server",
  ]);
  timers.advance(retries.at(-1)!.delayMs);
  assert.equal(sockets.length, 2);
  assert.match(last().url, /session=T1/);
  // A late event from the abandoned socket changes nothing.
  sockets[0]!.receive({ type: "tick", server: "a", seconds: 9 });
  sockets[0]!.drop(1006);
  assert.equal(client.state, "connecting");
});

Deno.test("WsTimeClient does not call a connection silent when its own watchdog fired late, but does after one more turn", () => {
  const { client, timers, last } = harness({ silenceMs: 3500 });
  client.start();
  last().open();
  // The page's thread is starved for 5 s right after the open: the welcome
  // is waiting unread when the watchdog finally runs, 1.5 s late.
  timers.stall(5000);
  timers.advance(0);
  assert.equal(client.state, "connected", "a late watchdog waits a turn");
  last().receive({ type: "welcome", server: "a", session: "T1", seconds: 0 });
  timers.advance(3499);
  assert.equal(client.state, "connected");
  // A real silence, watched on time, still ends it at 3.5 s.
  timers.advance(1);
  assert.equal(client.state, "retrying");
  // And a starved page with a dead connection gives up one turn later.
  const second = harness({ silenceMs: 3500 });
  second.client.start();
  second.last().open();
  second.timers.stall(5000);
  second.timers.advance(0);
  assert.equal(second.client.state, "connected");
  second.timers.advance(1000);
  assert.equal(second.client.state, "retrying");
});

Deno.test("WsTimeClient with silenceMs 0 waits for the close however long", () => {
  const { client, timers, last } = harness({ silenceMs: 0 });
  client.start();
  last().open();
  timers.advance(600_000);
  assert.equal(client.state, "connected");
});

Deno.test("WsTimeClient sends no heartbeat unless the welcome asks for one", () => {
  const { client, timers, sockets, last } = harness();
  client.start();
  last().open();
  last().receive({ type: "welcome", server: "a", session: "T1", seconds: 0 });
  for (let k = 1; k <= 60; k++) {
    timers.advance(1000);
    last().receive({ type: "tick", server: "a", seconds: k });
  }
  assert.deepEqual(sockets[0]!.sent, []);
});

Deno.test("WsTimeClient answers ticks with a heartbeat at most every heartbeatMs the welcome asks", () => {
  const { client, timers, sockets, last } = harness();
  client.start();
  last().open();
  last().receive({
    type: "welcome",
    server: "a",
    session: "T1",
    seconds: 0,
    heartbeatMs: 15_000,
  });
  assert.deepEqual(last().sent, [], "not for the welcome");
  for (let k = 1; k <= 31; k++) {
    timers.advance(1000);
    last().receive({ type: "tick", server: "a", seconds: k });
  }
  // The first tick, then every 15 s: ticks 1, 16 and 31.
  assert.deepEqual(sockets[0]!.sent, Array(3).fill('{"type":"heartbeat"}'));
});

/** A client connected to a first server that told it `welcome`. */
function connected(options: ClientOptions = {}) {
  const h = harness({ random: () => 0.5, ...options });
  const moves: Array<{ reason: string; from: string; to: string }> = [];
  h.client.on("move", (detail) => moves.push(detail));
  h.client.start();
  h.last().open();
  h.last().receive({
    type: "welcome",
    server: "a",
    session: "tok-1",
    resumed: false,
    seconds: 0,
  });
  return { ...h, moves, old: h.last() };
}

const moveAsk = {
  type: "drain",
  reconnectAfterMs: 300,
  reason: "drain",
  moveWithinMs: 5000,
};

Deno.test("WsTimeClient asked to move opens its new connection after the hint while the old one ticks, and drops the old one at the new welcome", () => {
  const { client, timers, sockets, retries, states, moves, old } = connected();
  old.receive(moveAsk);
  timers.advance(299);
  assert.equal(sockets.length, 1, "not before the hint");
  old.receive({ type: "tick", server: "a", seconds: 1 });
  timers.advance(1);
  assert.equal(sockets.length, 2, "the new connection, beside the old");
  const fresh = sockets[1]!;
  assert.match(fresh.url, /session=tok-1/);
  fresh.open();
  assert.equal(old.closedWith, undefined, "the old one still ticks");
  fresh.receive({
    type: "welcome",
    server: "b",
    session: "tok-2",
    resumed: true,
    seconds: 1,
  });
  assert.deepEqual(old.closedWith, [1000, "moved"]);
  assert.deepEqual(moves, [{ reason: "drain", from: "a", to: "b" }]);
  assert.equal(client.server, "b");
  assert.equal(client.session, "tok-2");
  assert.equal(retries.length, 0, "no reconnect: nothing was lost");
  assert.ok(states.every((s) => s.state !== "retrying"));
  // The new connection is the client's now: its close brings a retry.
  fresh.drop(1006);
  assert.equal(retries.length, 1);
  void client.stop();
});

Deno.test("WsTimeClient never shows a resumed session's count going back, even when a move's welcome is overtaken by the old connection's tick", () => {
  const { client, timers, sockets, old } = connected();
  const shown: number[] = [];
  client.on("message", (m) => {
    if (typeof m.seconds === "number") shown.push(m.seconds);
  });
  old.receive(moveAsk);
  timers.advance(300);
  const fresh = sockets[1]!;
  fresh.open();
  old.receive({ type: "tick", server: "a", seconds: 5 });
  // Counted at 4.99 s on the new instance, arriving after the old tick.
  fresh.receive({
    type: "welcome",
    server: "b",
    session: "t2",
    resumed: true,
    seconds: 4,
  });
  fresh.receive({ type: "tick", server: "b", seconds: 6 });
  assert.deepEqual(shown, [5, 5, 6]);
  // A new session starts from its own count.
  fresh.drop(1006);
  timers.advance(60_000);
  const next = sockets.at(-1)!;
  next.open();
  next.receive({
    type: "welcome",
    server: "c",
    session: "t3",
    resumed: false,
    seconds: 0,
  });
  assert.equal(shown.at(-1), 0);
  void client.stop();
});

Deno.test("WsTimeClient asked to move waits for the new welcome when the old connection is taken over first (4001)", () => {
  const { client, timers, sockets, retries, moves, old } = connected();
  const closes: unknown[] = [];
  client.on("close", (detail) => closes.push(detail));
  old.receive(moveAsk);
  timers.advance(300);
  const fresh = sockets[1]!;
  fresh.open();
  // The new connection's claim evicts the old before its welcome arrives.
  old.drop(4001, "session resumed elsewhere");
  assert.equal(retries.length, 0, "no slow superseded retry");
  assert.deepEqual(closes, [], "part of the move, not a lost connection");
  fresh.receive({ type: "welcome", server: "b", session: "t2", seconds: 1 });
  assert.equal(client.state, "connected");
  assert.deepEqual(moves, [{ reason: "drain", from: "a", to: "b" }]);
  assert.equal(sockets.length, 2);
  void client.stop();
});

Deno.test("WsTimeClient whose move fails keeps the old connection, tries again after a pause, and reconnects the usual way when the old one ends", () => {
  const { client, timers, sockets, retries, old } = connected();
  old.receive(moveAsk);
  timers.advance(300);
  assert.match(sockets[1]!.url, /[?&]move=1(&|$)/);
  // The balancer sent the new connection to a full instance: 503.
  sockets[1]!.drop(1006);
  assert.equal(retries.length, 0);
  assert.equal(client.state, "connected", "the old one still serves");
  timers.advance(249);
  assert.equal(sockets.length, 2, "a failed try waits a moment");
  timers.advance(1);
  assert.equal(sockets.length, 3);
  assert.match(sockets[2]!.url, /[?&]move=2(&|$)/);
  sockets[2]!.drop(1006);
  old.drop(1001, "server draining");
  assert.equal(retries.length, 1);
  assert.equal(retries[0]!.hintMs, 300);
  void client.stop();
});

Deno.test("WsTimeClient handed on (4004) tries the balancer again at once, counting its tries, and moves once", () => {
  const { client, timers, sockets, retries, moves, old } = connected();
  old.receive(moveAsk);
  timers.advance(300);
  for (let hop = 1; hop <= 3; hop++) {
    const fresh = sockets[hop]!;
    assert.match(fresh.url, new RegExp(`[?&]move=${hop}(&|$)`));
    assert.match(fresh.url, /session=tok-1/);
    fresh.open();
    fresh.drop(4004, "try another instance");
    timers.advance(0);
  }
  const last = sockets[4]!;
  last.open();
  last.receive({ type: "welcome", server: "d", session: "t2", seconds: 1 });
  assert.deepEqual(moves, [{ reason: "drain", from: "a", to: "d" }]);
  assert.deepEqual(old.closedWith, [1000, "moved"]);
  assert.equal(retries.length, 0);
  // A later reconnect is no move: no move parameter.
  last.drop(1006);
  timers.advance(retries[0]!.delayMs);
  assert.doesNotMatch(sockets[5]!.url, /move=/);
  void client.stop();
});

Deno.test("WsTimeClient stops trying a move after MAX_MOVE_HOPS and waits for the old connection's end", () => {
  const { client, timers, sockets, retries, old } = connected();
  old.receive(moveAsk);
  timers.advance(300);
  for (let hop = 1; hop <= MAX_MOVE_HOPS; hop++) {
    sockets[hop]!.open();
    sockets[hop]!.drop(4004, "try another instance");
    timers.advance(0);
  }
  assert.equal(sockets.length, MAX_MOVE_HOPS + 1);
  old.drop(1001, "server draining");
  assert.equal(retries.length, 1);
  void client.stop();
});

Deno.test("WsTimeClient whose old and new connections both end reconnects at once with the hint", () => {
  const { client, timers, sockets, retries, old } = connected();
  old.receive(moveAsk);
  timers.advance(300);
  old.drop(1001, "server draining");
  assert.equal(retries.length, 0, "the new one may still make it");
  sockets[1]!.drop(1006);
  assert.equal(retries.length, 1);
  timers.advance(retries[0]!.delayMs);
  assert.equal(sockets.length, 3);
  void client.stop();
});

Deno.test("WsTimeClient without moveWithinMs in the drain waits for the close, as before", () => {
  const { client, timers, sockets, old } = connected({ silenceMs: 0 });
  old.receive({ type: "drain", reconnectAfterMs: 300 });
  timers.advance(10_000);
  assert.equal(sockets.length, 1);
  void client.stop();
});

Deno.test("WsTimeClient.stop() during a move closes both connections", async () => {
  const { client, timers, sockets, old } = connected();
  old.receive(moveAsk);
  timers.advance(300);
  const fresh = sockets[1]!;
  fresh.open();
  await client.stop();
  assert.deepEqual(old.closedWith?.[0], 1000);
  assert.deepEqual(fresh.closedWith?.[0], 1000);
  assert.equal(timers.pending, 0);
});

Deno.test("WsTimeClient races a second handshake beside one that hangs, and keeps whichever is welcomed first", () => {
  const { client, timers, sockets, retries } = harness({ hedgeMs: 3000 });
  client.start();
  timers.advance(2999);
  assert.equal(sockets.length, 1);
  timers.advance(1);
  assert.equal(sockets.length, 2, "a second handshake beside the first");
  const [hung, second] = [sockets[0]!, sockets[1]!];
  second.open();
  second.receive({ type: "welcome", server: "b", session: "t", seconds: 4 });
  assert.equal(client.state, "connected");
  assert.equal(client.server, "b");
  // The first never opened: it is closed the moment it does.
  hung.open();
  assert.deepEqual(hung.closedWith, [1000, "raced"]);
  assert.equal(retries.length, 0);
  void client.stop();
});

Deno.test("WsTimeClient whose first handshake completes after all drops the second, and hedges nothing once open", () => {
  const { client, timers, sockets } = harness({ hedgeMs: 3000, silenceMs: 0 });
  client.start();
  timers.advance(3000);
  const [first, second] = [sockets[0]!, sockets[1]!];
  first.open();
  assert.equal(client.state, "connected");
  second.open();
  assert.deepEqual(second.closedWith, [1000, "raced"]);
  timers.advance(60_000);
  assert.equal(sockets.length, 2, "no hedge for an open connection");
  void client.stop();
});

Deno.test("WsTimeClient retries only once both handshakes failed; with hedgeMs 0 it makes one", () => {
  const { client, timers, sockets, retries } = harness({
    hedgeMs: 3000,
    connectTimeoutMs: 15_000,
  });
  client.start();
  timers.advance(3000);
  sockets[0]!.drop(1006);
  assert.equal(retries.length, 0, "the second may still make it");
  sockets[1]!.drop(1006);
  assert.equal(retries.length, 1);
  void client.stop();
  const single = harness();
  single.client.start();
  single.timers.advance(10_000);
  assert.equal(single.sockets.length, 1);
  void single.client.stop();
});

Deno.test("WsTimeClient replaces a second handshake that hangs too, every hedgeMs / 2, until the connect timeout", () => {
  const { client, timers, sockets, retries } = harness({
    hedgeMs: 3000,
    connectTimeoutMs: 15_000,
  });
  client.start();
  timers.advance(3000);
  assert.equal(sockets.length, 2);
  timers.advance(1500);
  assert.equal(sockets.length, 3, "the hung second one is replaced");
  sockets[1]!.open();
  assert.deepEqual(sockets[1]!.closedWith, [1000, "raced"]);
  timers.advance(10_500);
  assert.equal(sockets.length, 9);
  timers.advance(3000);
  assert.equal(sockets.length, 9, "no hedge past the connect timeout");
  // A later try from the balancer reaches a live instance.
  sockets[8]!.open();
  sockets[8]!.receive({
    type: "welcome",
    server: "c",
    session: "t",
    seconds: 9,
  });
  assert.equal(client.state, "connected");
  assert.equal(client.server, "c");
  assert.equal(retries.length, 0);
  void client.stop();
});
