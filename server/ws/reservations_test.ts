import assert from "node:assert/strict";
import { ManualClock } from "../clock.ts";
import { AddressLimits } from "./address_limits.ts";
import { OpeningGate } from "./opening_gate.ts";
import { Reservations } from "./reservations.ts";

/** Enough of a WebSocket for the gate: an open event. */
class FakeSocket extends EventTarget {
  open(): void {
    this.dispatchEvent(new Event("open"));
  }
}

function setup(live = 0) {
  const gate = new OpeningGate(1);
  const limits = new AddressLimits(
    { maxPerAddress: 1, ratePerAddress: 0 },
    new ManualClock(),
  );
  const reservations = new Reservations({ gate, limits, live: () => live });
  return { gate, limits, reservations };
}

Deno.test("Reservations.occupancy() counts live connections and upgrades in flight", () => {
  const { reservations } = setup(5);
  assert.equal(reservations.occupancy(), 5);
  {
    using _a = reservations.reserve("10.0.0.1");
    using _b = reservations.reserve("10.0.0.2");
    assert.equal(reservations.occupancy(), 7);
  }
  assert.equal(reservations.occupancy(), 5);
});

Deno.test("Reservation gives back its address slot and gate place when disposed, e.g. after a throw", async () => {
  const { gate, limits, reservations } = setup();
  await assert.rejects(async () => {
    using slot = reservations.reserve("10.0.0.1");
    await slot.enterGate();
    assert.equal(gate.inside, 1);
    assert.notEqual(limits.check("10.0.0.1"), null, "the slot is held");
    throw new Error("the store failed");
  }, /store failed/);
  assert.equal(gate.inside, 0);
  assert.equal(limits.check("10.0.0.1"), null);
  assert.equal(reservations.pending, 0);
});

Deno.test("Reservation hands its gate place to the socket and its address slot to the live connection", async () => {
  const { gate, limits, reservations } = setup();
  const socket = new FakeSocket();
  {
    using slot = reservations.reserve("10.0.0.1");
    await slot.enterGate();
    slot.handGateTo(socket as unknown as WebSocket);
    slot.keepAddress();
  }
  assert.equal(reservations.pending, 0);
  assert.equal(gate.inside, 1, "the socket holds the place until it opens");
  assert.notEqual(limits.check("10.0.0.1"), null, "the connection holds it");
  socket.open();
  assert.equal(gate.inside, 0);
  limits.release("10.0.0.1");
  assert.equal(limits.check("10.0.0.1"), null);
});

Deno.test("Reservation of a superseded handshake keeps the gate with the socket but frees the address", async () => {
  const { gate, limits, reservations } = setup();
  const socket = new FakeSocket();
  {
    using slot = reservations.reserve("10.0.0.1");
    await slot.enterGate();
    slot.handGateTo(socket as unknown as WebSocket);
  }
  assert.equal(gate.inside, 1);
  assert.equal(limits.check("10.0.0.1"), null);
  socket.open();
  assert.equal(gate.inside, 0);
});
