/**
 * TLS without a load balancer: `--cert` and `--key` serve https and wss
 * with a certificate made by openssl for this run, and every way the files
 * can be wrong stops startup with a line naming the flag.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Child } from "../../dev/child.ts";
import { ROOT } from "../../dev/paths.ts";
import { SERVER_PERMISSIONS, startServer } from "../../dev/server_process.ts";

/** A self-signed certificate for 127.0.0.1 in a fresh temporary directory. */
async function selfSigned(): Promise<
  { dir: string; cert: string; key: string } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "ws-time-tls-" });
  const { code, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      // rustls refuses a CA certificate as the server's own.
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return {
    dir,
    cert: `${dir}/cert.pem`,
    key: `${dir}/key.pem`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** The start task's flags, with `dir` added to what may be read. */
function permissionsReading(dir: string): string[] {
  return SERVER_PERMISSIONS.map((flag) =>
    flag.startsWith("--allow-read=") ? `${flag},${dir}` : flag
  );
}

/** Runs main.ts expecting it to refuse to start; returns code and output. */
async function failedStart(
  dir: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  await using child = new Child(Deno.execPath(), [
    "run",
    ...permissionsReading(dir),
    `${ROOT}main.ts`,
    "--hostname",
    "127.0.0.1",
    "--port",
    "0",
    ...args,
  ], { cwd: ROOT });
  const status = await child.finished();
  return { code: status.code, output: child.lines.join("\n") };
}

Deno.test("--cert and --key serve https and wss with a self-signed certificate", async () => {
  await using tls = await selfSigned();
  await using server = await startServer({
    args: ["--cert", tls.cert, "--key", tls.key],
    permissions: permissionsReading(tls.dir),
  });
  assert.match(server.child.lines.join("\n"), /listening on https:\/\//);
  const caCert = await Deno.readTextFile(tls.cert);
  using client = Deno.createHttpClient({ caCerts: [caCert] });
  const response = await fetch(`https://127.0.0.1:${server.port}/healthz`, {
    client,
  });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "alive\n");

  // A wss client in its own process, trusting the certificate via --cert.
  const script = `
    const ws = new WebSocket("wss://127.0.0.1:${server.port}/", "ws-time.v1");
    ws.onmessage = (e) => { console.log(e.data); ws.close(); };
    ws.onerror = (e) => { console.log("error", e.message); Deno.exit(1); };
  `;
  await using wss = new Child(Deno.execPath(), [
    "eval",
    "--cert",
    tls.cert,
    script,
  ]);
  const status = await wss.finished();
  assert.equal(status.code, 0, wss.lines.join("\n"));
  const welcome = JSON.parse(wss.lines[0]!);
  assert.equal(welcome.type, "welcome");
  assert.equal(welcome.server, server.name);
});

Deno.test("bad --cert or --key files stop startup with exit code 2 and a line naming the flag", async () => {
  await using tls = await selfSigned();
  const garbage = `${tls.dir}/garbage.pem`;
  await Deno.writeTextFile(garbage, "not a pem file\n");
  const cases: Array<[string[], RegExp]> = [
    [
      ["--cert", `${tls.dir}/missing.pem`, "--key", tls.key],
      /^ws-time: Cannot read --cert ".*missing\.pem": No such file/m,
    ],
    [
      ["--cert", tls.cert, "--key", `${tls.dir}/missing.pem`],
      /^ws-time: Cannot read --key ".*missing\.pem": No such file/m,
    ],
    [
      ["--cert", "/root/elsewhere.pem", "--key", tls.key],
      /^ws-time: Cannot read --cert "\/root\/elsewhere\.pem": not allowed by this build's --allow-read/m,
    ],
    [
      ["--cert", tls.dir, "--key", tls.key],
      /^ws-time: Cannot read --cert ".*": /m,
    ],
    [
      ["--cert", garbage, "--key", tls.key],
      /^ws-time: Cannot use --cert ".*garbage\.pem" and --key ".*": No certificates/m,
    ],
    [
      ["--cert", tls.cert, "--key", garbage],
      /^ws-time: Cannot use --cert ".*" and --key ".*garbage\.pem": No keys/m,
    ],
    [
      ["--cert", tls.cert],
      /^ws-time: Invalid --cert\/--key: expected both PEM files or neither/m,
    ],
  ];
  for (const [args, pattern] of cases) {
    const { code, output } = await failedStart(tls.dir, args);
    assert.equal(code, 2, `${args.join(" ")}:\n${output}`);
    assert.match(output, pattern);
    assert.doesNotMatch(output, /^\s+at /m, "no stack trace");
  }
});
