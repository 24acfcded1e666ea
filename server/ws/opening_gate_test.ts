import assert from "node:assert/strict";
import { OpeningGate, STALE_MS } from "./opening_gate.ts";

/** Enough of a WebSocket for the gate: open and close events. */
class FakeSocket extends EventTarget {
  emit(type: "open" | "close"): void {
    this.dispatchEvent(new Event(type));
  }
}

Deno.test("OpeningGate lets `limit` handshakes through and the next one in when a socket opens or closes unopened", async () => {
  const gate = new OpeningGate(2);
  const order: string[] = [];
  const enter = (name: string) =>
    gate.enter().then(() => {
      order.push(name);
    });
  const a = new FakeSocket();
  const b = new FakeSocket();
  await Promise.all([enter("a"), enter("b")]);
  const c = enter("c");
  const d = enter("d");
  await Promise.resolve();
  assert.deepEqual(order, ["a", "b"]);
  assert.deepEqual([gate.inside, gate.waiting], [2, 2]);
  gate.watch(a as unknown as WebSocket);
  gate.watch(b as unknown as WebSocket);
  a.emit("open");
  await c;
  assert.deepEqual(order, ["a", "b", "c"]);
  // A close after the open does not free a second place.
  a.emit("close");
  await Promise.resolve();
  assert.deepEqual(order, ["a", "b", "c"]);
  // A socket that closes without opening frees its place too.
  b.emit("close");
  await d;
  assert.deepEqual(order, ["a", "b", "c", "d"]);
  gate.leave();
  gate.leave();
  assert.deepEqual([gate.inside, gate.waiting], [0, 0]);
  gate.close();
});

Deno.test("OpeningGate gives up a place held longer than STALE_MS by a socket that never opened, once someone waits", async () => {
  let now = 0;
  const gate = new OpeningGate(1, () => now);
  await gate.enter();
  gate.watch(new FakeSocket() as unknown as WebSocket);
  now = STALE_MS + 1;
  const waited = performance.now();
  await gate.enter();
  // The timer was due at once: the stale place was older than STALE_MS.
  assert.ok(performance.now() - waited < 1000);
  assert.deepEqual([gate.inside, gate.waiting], [1, 0]);
  gate.close();
});
