import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { rawRequest } from "../helpers/raw_http.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { SERVER_PERMISSIONS, startServer } from "../../dev/server_process.ts";

function run(args: string[], env: Record<string, string> = {}): Child {
  return new Child(Deno.execPath(), [
    "run",
    ...SERVER_PERMISSIONS,
    `${ROOT}main.ts`,
    ...args,
  ], { env });
}

Deno.test("main.ts: startup prints one line with the URL, the name and the store", async () => {
  await using server = await startServer();
  const [line] = server.child.lines.filter((l) => /listening on/.test(l));
  assert.match(
    line!,
    new RegExp(
      `listening on http://127\\.0\\.0\\.1:${server.port}/ name=${server.name} store=memory`,
    ),
  );
  const page = await fetch(server.http + "/");
  assert.match(await page.text(), /ws-time/);
});

Deno.test("main.ts: an invalid flag stops startup with one line naming it", async () => {
  await using child = run(["--port", "eighty"]);
  const status = await child.finished();
  assert.equal(status.code, 2);
  assert.deepEqual(child.lines.filter((l) => l !== ""), [
    'ws-time: Invalid --port "eighty": expected a whole number',
  ]);
});

Deno.test("main.ts: an invalid environment variable names the variable and its flag", async () => {
  await using child = run([], { MAX_CONNECTIONS: "lots" });
  assert.equal((await child.finished()).code, 2);
  assert.match(
    child.lines.join("\n"),
    /MAX_CONNECTIONS \(--max-connections\) "lots"/,
  );
});

Deno.test("main.ts --help lists the options and exits 0", async () => {
  await using child = run(["--help"]);
  assert.equal((await child.finished()).code, 0);
  const text = child.lines.join("\n");
  assert.match(text, /--session-ttl <duration>.*\[default: 5m\]/);
  assert.match(text, /--max-connections/);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`main.ts on ${signal} closes every connection with 1001 and exits 0`, async () => {
    await using server = await startServer({
      args: ["--drain-delay", "0", "--drain-period", "0"],
    });
    await using a = new RecordingSocket(server.ws, "ws-time.v1");
    await using b = new RecordingSocket(server.ws);
    await a.waitForMessages(2);
    await b.waitForMessages(1);
    server.child.kill(signal);
    const [closeA, closeB] = await Promise.all([a.closed, b.closed]);
    assert.equal(closeA.code, 1001);
    assert.equal(closeB.code, 1001);
    const status = await server.child.finished();
    assert.equal(status.code, 0);
    assert.match(server.child.lines.join("\n"), /stopped/);
  });
}

Deno.test("main.ts: --agent-hostname puts the agent on that interface only", async () => {
  const agentPort = freePort();
  await using server = await startServer({
    args: ["--agent-port", String(agentPort), "--agent-hostname", "127.0.0.2"],
  });
  const reply = await rawRequest({ port: agentPort, host: "127.0.0.2" }, "");
  assert.match(reply.head, /^ready up \d+%/);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: agentPort }),
    Deno.errors.ConnectionRefused,
  );
  assert.ok(
    server.child.lines.some((l) =>
      /agent-check listening.*127\.0\.0\.2/.test(l)
    ),
  );
});

Deno.test("main.ts: the secret comes from --session-secret-file as the task's permissions allow, and a weak one stops startup", async () => {
  // The tasks may read /etc/ws-time and /run/credentials (the units'
  // LoadCredential=); a secret file elsewhere is refused by name.
  const dir = "/run/credentials/ws-time-test";
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.writeTextFile(
      `${dir}/session-secret`,
      "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e\nPz8Yw1Xc4Vb7Nm0Qa3Sd6Fg9Hj2Kl5Ro\n",
    );
    await using server = await startServer({
      env: { SESSION_SECRET_FILE: `${dir}/session-secret` },
    });
    await using client = new RecordingSocket(server.ws, "ws-time.v1");
    await client.waitForMessages(1);
    await Deno.writeTextFile(`${dir}/weak`, "changeme\n");
    await using weak = run(["--session-secret-file", `${dir}/weak`]);
    assert.equal((await weak.finished()).code, 2);
    assert.match(
      weak.lines.join("\n"),
      /^ws-time: Invalid --session-secret-file \/run\/credentials\/ws-time-test\/weak: expected at least 32 characters .*openssl rand/m,
    );
    assert.ok(!weak.lines.join("\n").includes("changeme"), "secret echoed");
    await using elsewhere = run(["--session-secret-file", "/tmp/secret"]);
    assert.equal((await elsewhere.finished()).code, 2);
    assert.match(
      elsewhere.lines.join("\n"),
      /^ws-time: Cannot read --session-secret-file \/tmp\/secret: .*read access/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts: an operator port that cannot be bound stops startup with one line naming the flags", async () => {
  await using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  await using child = run(["--port", "0", "--metrics-port", String(port)]);
  assert.equal((await child.finished()).code, 2);
  assert.match(
    child.lines.join("\n"),
    new RegExp(
      `^ws-time: Cannot listen on --metrics-hostname 127\\.0\\.0\\.1 --metrics-port ${port}: `,
      "m",
    ),
  );
});

Deno.test("main.ts: a client coming and going leaves no runtime warning on stderr", async () => {
  await using server = await startServer();
  {
    await using client = new RecordingSocket(server.ws);
    await client.waitForMessages(2);
  }
  // The ticker's next wake-up, computed for the client that just left,
  // can lie a few ms in the past: Deno printed a TimeoutNegativeWarning.
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(server.child.lines.filter((l) => /Warning/.test(l)), []);
});
