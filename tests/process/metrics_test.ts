/**
 * /metrics as Prometheus and its tools read it: valid for promtool, every
 * family documented in docs/operating.md, histograms filled, label values
 * from fixed sets whatever clients send.
 *
 * @module
 */

import assert from "node:assert/strict";
import { VERSION } from "../../server/version.ts";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startServer } from "../../dev/server_process.ts";

/** Runs `promtool check metrics` on `text`; returns its output and code. */
async function promtoolCheck(text: string): Promise<[number, string]> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return [out.code, decode(out.stdout) + decode(out.stderr)];
}

Deno.test("/metrics passes promtool, fills its histograms and buckets close codes into a fixed set", async () => {
  await using server = await startServer();
  for (const code of [4999, 3999, 1000]) {
    await using socket = new RecordingSocket(server.ws, "ws-time.v1");
    await socket.waitForMessages(2);
    socket.socket.close(code, "bye");
    await socket.closed;
  }
  const refused = await fetch(`${server.http}/`, {
    headers: { upgrade: "websocket", connection: "upgrade" },
  });
  await refused.body?.cancel();
  // The server counts the closes as it sees them.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const text = await (await fetch(`${server.http}/metrics`)).text();
  const [code, output] = await promtoolCheck(text);
  assert.equal(code, 0, output);
  assert.equal(output.trim(), "", `promtool complains:\n${output}`);
  assert.match(text, /^wstime_disconnects_total\{code="other"\} 2$/m);
  assert.match(text, /^wstime_disconnects_total\{code="1000"\} 1$/m);
  assert.doesNotMatch(text, /code="4999"|code="3999"/);
  assert.match(text, /^wstime_tick_lateness_seconds_count [1-9]\d*$/m);
  assert.match(
    text,
    /^wstime_tick_lateness_seconds_bucket\{le="\+Inf"\} [1-9]/m,
  );
  assert.match(text, /^wstime_upgrade_duration_seconds_count [4-9]$/m);
  assert.match(
    text,
    new RegExp(
      `^wstime_build_info\\{version="${VERSION}",deno="[\\d.]+"\\} 1$`,
      "m",
    ),
  );
  for (
    const name of [
      "process_cpu_seconds_total",
      "process_start_time_seconds",
      "process_resident_memory_bytes",
      "process_open_fds",
    ]
  ) {
    assert.match(text, new RegExp(`^${name} [\\d.e+]+$`, "m"), name);
  }
  // Every family is in the documented list, and the other way round.
  const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  const docs = Deno.readTextFileSync(`${ROOT}docs/operating.md`);
  const documented = [...docs.matchAll(/^\| `(\w+)`/gm)].map((m) => m[1]!)
    .filter((name) => /^(wstime|process|deno)_/.test(name));
  assert.deepEqual(families.toSorted(), documented.toSorted());
});

Deno.test("main.ts --version prints the version, with no permission granted", async () => {
  await using version = new Child(Deno.execPath(), [
    "run",
    `${ROOT}main.ts`,
    "--version",
  ]);
  assert.equal((await version.finished()).code, 0);
  assert.match(
    version.lines.join("\n"),
    new RegExp(`^ws-time ${VERSION} \\(deno `),
  );
});
