import assert from "node:assert/strict";
import * as client from "../../static/ws_time_client.js";
import {
  CLOSE,
  CLOSE_CODE_LABELS,
  closeCodeLabel,
  drainMessage,
  PROTOCOL,
  tickTexts,
  welcomeMessage,
} from "./protocol.ts";

Deno.test("protocol: the browser client speaks the server's subprotocol and close codes", () => {
  assert.equal(client.PROTOCOL, PROTOCOL);
  assert.deepEqual(
    [...client.SUPERSEDED_CLOSE_CODES],
    [CLOSE.takenOver, CLOSE.superseded],
  );
  assert.equal(client.SILENT_CLOSE_CODE, CLOSE.clientSilent);
  assert.equal(client.HANDED_ON_CLOSE_CODE, CLOSE.handedOn);
  // What the server closes with for a bad message must end the client, and
  // nothing the server closes with on a move or drain may end it.
  for (const code of [CLOSE.unsupported, CLOSE.policy, CLOSE.tooBig]) {
    assert.ok(client.FINAL_CLOSE_CODES.includes(code), `${code} is final`);
  }
  for (
    const code of [
      CLOSE.goingAway,
      CLOSE.takenOver,
      CLOSE.superseded,
      CLOSE.peerSilent,
      CLOSE.handedOn,
    ]
  ) {
    assert.ok(!client.FINAL_CLOSE_CODES.includes(code), `${code} retries`);
  }
  const codes = [
    ...Object.values(CLOSE),
    ...client.FINAL_CLOSE_CODES,
    ...client.SUPERSEDED_CLOSE_CODES,
  ];
  for (const code of codes) {
    assert.equal(closeCodeLabel(code), String(code), "a labelled code");
  }
});

Deno.test("protocol: the messages carry the contract's fields", () => {
  assert.deepEqual(
    JSON.parse(welcomeMessage({
      server: "a",
      session: "t",
      resumed: true,
      seconds: 7,
    })),
    { type: "welcome", server: "a", session: "t", resumed: true, seconds: 7 },
  );
  assert.deepEqual(JSON.parse(drainMessage(1500, "drain")), {
    type: "drain",
    reconnectAfterMs: 1500,
    reason: "drain",
  });
  assert.deepEqual(JSON.parse(drainMessage(0, "drain", 5000)), {
    type: "drain",
    reconnectAfterMs: 0,
    reason: "drain",
    moveWithinMs: 5000,
  });
  const ticks = tickTexts('n"1');
  assert.deepEqual(JSON.parse(ticks.json(3, "tok")), {
    type: "tick",
    server: 'n"1',
    seconds: 3,
    session: "tok",
  });
  assert.equal(ticks.text(1), 'n"1: you have been connected for 1 second');
  assert.equal(ticks.text(2), 'n"1: you have been connected for 2 seconds');
});

Deno.test("closeCodeLabel() keeps the label set fixed whatever a client sends", () => {
  assert.equal(closeCodeLabel(4999), "other");
  assert.equal(closeCodeLabel(0), "1006");
  assert.ok(CLOSE_CODE_LABELS.includes(closeCodeLabel(3000)));
});
