import assert from "node:assert/strict";
import { RecordingSocket, startServer } from "./support.ts";

Deno.test("main.ts serves ticks to two clients with their own counts", async () => {
  await using server = await startServer();
  await using a = new RecordingSocket(server.ws, "ws-time.v1");
  await a.waitForMessages(2, 5000);
  await using b = new RecordingSocket(server.ws + "?id=second", "ws-time.v1");
  await b.waitForMessages(2, 5000);
  const [welcomeA, welcomeB] = [a.json[0]!, b.json[0]!];
  assert.equal(welcomeA.type, "welcome");
  assert.notEqual(welcomeA.session, welcomeB.session);
  assert.ok((a.json.at(-1)!.seconds as number) >= 1);
  assert.equal(b.json[1]!.seconds, 1);
});
