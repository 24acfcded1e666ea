import assert from "node:assert/strict";
import { helpText } from "./help.ts";
import { ConfigError, parseConfig, parseDuration } from "./parse.ts";
import { randomName } from "./random_name.ts";
import { OPTIONS } from "./schema.ts";

function configOf(args: string[], env: Record<string, string> = {}) {
  const result = parseConfig(args, env, () => "generated-name");
  if (result.help) throw new Error("unexpected help");
  return result.config;
}

Deno.test("parseConfig() gives the documented defaults", () => {
  const config = configOf([]);
  assert.equal(config.port, 8000);
  assert.equal(config.hostname, "0.0.0.0");
  assert.equal(config.name, "generated-name");
  assert.equal(config.sessionTtlMs, 300_000);
  assert.equal(config.healthThreshold, 0.6);
  assert.equal(config.redisUrl, "");
  assert.ok(Object.isFrozen(config));
});

Deno.test("parseConfig() reads the environment and lets flags win", () => {
  const env = { PORT: "9000", NAME: "from-env", SESSION_TTL: "90s" };
  assert.equal(configOf([], env).port, 9000);
  assert.equal(configOf([], env).sessionTtlMs, 90_000);
  const config = configOf(["--port", "9100", "--name=flag-name"], env);
  assert.equal(config.port, 9100);
  assert.equal(config.name, "flag-name");
});

Deno.test("parseConfig() names the flag, the value and the expectation", () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [["--port", "abc"], {}, /--port "abc": expected a whole number/],
    [
      ["--port", "70000"],
      {},
      /--port "70000": expected a value from 0 to 65535/,
    ],
    [[], { PORT: "-1" }, /PORT \(--port\) "-1": expected a whole number/],
    [
      ["--session-ttl", "soon"],
      {},
      /--session-ttl "soon": expected a duration/,
    ],
    [["--health-threshold", "2"], {}, /--health-threshold "2"/],
    [["--max-connections", "0"], {}, /--max-connections "0"/],
    [["--name", "bad name!"], {}, /--name "bad name!"/],
    [
      ["--reuse-port", "maybe"],
      {},
      /--reuse-port "maybe": expected true or false/,
    ],
    [
      ["--listeners", "17"],
      {},
      /--listeners "17": expected a value from 1 to 16/,
    ],
    [
      [],
      { PRECISE_TICKS: "maybe" },
      /PRECISE_TICKS \(--precise-ticks\) "maybe"/,
    ],
    [
      ["--redis", "http://x"],
      { SESSION_SECRET: "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e" },
      /--redis/,
    ],
    [["--redis", "redis://127.0.0.1:1"], {}, /--session-secret/],
    [
      ["--reuse-port", "true"],
      {},
      /Missing --session-secret .*--reuse-port/,
    ],
    [["--cert", "a.pem"], {}, /--cert\/--key/],
    [
      ["--allowed-origins", "example.com"],
      {},
      /--allowed-origins "example.com"/,
    ],
    [["--nope"], {}, /nope/],
  ];
  for (const [args, env, message] of cases) {
    assert.throws(() => configOf(args, env), (error: unknown) => {
      assert.ok(
        error instanceof ConfigError,
        `${args} should be a ConfigError`,
      );
      assert.match(error.message, message);
      assert.equal(error.message.split("\n").length, 1);
      return true;
    });
  }
});

Deno.test("parseConfig() never echoes a Redis password in its errors", () => {
  assert.throws(
    () =>
      configOf(["--redis", "http://user:hunter2@host"], {
        SESSION_SECRET: "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e",
      }),
    (error: Error) => !error.message.includes("hunter2"),
  );
});

Deno.test("--help lists every option with its variable and default", () => {
  assert.deepEqual(parseConfig(["--help"], {}), { help: true });
  const text = helpText();
  for (const spec of OPTIONS) {
    assert.match(text, new RegExp(`--${spec.flag} `));
    assert.ok(text.includes(`env ${spec.env}`), spec.env);
  }
  assert.match(text, /--port <int>.*\[default: 8000\]/);
  assert.match(text, /--log-level <debug\|info\|warn\|error> +least/);
});

Deno.test("parseConfig() refuses a value outside an enum option's choices, naming them", () => {
  const enums = OPTIONS.filter((spec) => spec.kind === "enum");
  assert.deepEqual(enums.map((spec) => spec.flag), [
    "forwarded-header",
    "log-level",
    "log-format",
    "log-connections",
  ]);
  for (const spec of enums) {
    const last = spec.choices!.at(-1)!;
    assert.throws(
      () => configOf([`--${spec.flag}`, "loud"]),
      new RegExp(`--${spec.flag} "loud": expected .*or ${last}$`),
    );
    assert.throws(
      () => configOf([], { [spec.env]: "LOUD" }),
      new RegExp(`${spec.env} \\(--${spec.flag}\\) "LOUD"`),
    );
    for (const choice of spec.choices!) {
      assert.equal(configOf([`--${spec.flag}`, choice])[spec.key], choice);
    }
  }
});

Deno.test("parseDuration() accepts ms, s, m, h and bare seconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("10"), 10_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("-1s"), null);
  assert.equal(parseDuration("10 parsecs"), null);
});

Deno.test("randomName() makes readable adjective-animal names", () => {
  const names = new Set(Array.from({ length: 20 }, randomName));
  for (const name of names) assert.match(name, /^[a-z]+-[a-z]+$/);
  assert.ok(names.size > 10, "names should vary");
});

Deno.test("deno task start and compile allow exactly the documented variables", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const expected = OPTIONS.map((spec) => spec.env).sort();
  for (const task of ["start", "compile"]) {
    const flag = (config.tasks[task] as string).split(" ").find((w) =>
      w.startsWith("--allow-env")
    );
    assert.deepEqual(
      flag?.slice("--allow-env=".length).split(",").sort(),
      expected,
      task,
    );
  }
});

Deno.test("parseConfig() refuses weak session secrets at startup, naming the flag and how to make a strong one", () => {
  const strong = "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e";
  assert.equal(
    configOf(["--session-secret", strong], {}).sessionSecret,
    strong,
  );
  const weak: Array<[string[], Record<string, string>, RegExp]> = [
    [["--session-secret", "0123456789abcdef"], {}, /at least 32 characters/],
    [[], { SESSION_SECRET: "ab".repeat(20) }, /only 2 distinct/],
    [
      ["--session-secret", "changeme-0123456789abcdefghijklmnop"],
      {},
      /placeholder/,
    ],
    [
      ["--session-secret", strong, "--session-secret-previous", "short"],
      {},
      /--session-secret-previous \(secret 1\): expected at least 32/,
    ],
    [
      ["--session-secret-previous", strong],
      {},
      /--session-secret-previous: expected --session-secret too/,
    ],
  ];
  for (const [args, env, message] of weak) {
    assert.throws(() => configOf(args, env), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, message);
      assert.match(error.message, /openssl rand|--session-secret/);
      assert.ok(!error.message.includes('0123456789abcdef"'));
      return true;
    });
  }
});

Deno.test("--session-secret-file gives the secret on line 1 and previous secrets after it, and errors name the file", () => {
  const a = "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e";
  const b = "Pz8Yw1Xc4Vb7Nm0Qa3Sd6Fg9Hj2Kl5Ro";
  const c = "u7Iy4Tr1Ew8Qz5Xc2Vb9Nm6Lk3Jh0GfA";
  const files: Record<string, string> = {
    "/run/credentials/ws-time.service/session-secret": `${a}\n\n${b}\n`,
    "/etc/ws-time/empty": "\n \n",
    "/etc/ws-time/weak": "password123\n",
  };
  const read = (path: string) => {
    const text = files[path];
    if (text === undefined) {
      throw new Deno.errors.NotFound(`No such file: ${path}`);
    }
    return text;
  };
  const parse = (args: string[], env: Record<string, string> = {}) => {
    const parsed = parseConfig(args, env, () => "n", read);
    assert.ok(!parsed.help);
    return parsed.config;
  };
  const config = parse([], {
    SESSION_SECRET_FILE: "/run/credentials/ws-time.service/session-secret",
    SESSION_SECRET_PREVIOUS: c,
  });
  assert.equal(config.sessionSecret, a);
  assert.deepEqual(config.sessionSecretPrevious, [c, b]);
  const refused: Array<[string[], RegExp]> = [
    [
      ["--session-secret-file", "/etc/ws-time/missing"],
      /Cannot read --session-secret-file \/etc\/ws-time\/missing: No such file/,
    ],
    [
      ["--session-secret-file", "/etc/ws-time/empty"],
      /--session-secret-file \/etc\/ws-time\/empty: the file is empty/,
    ],
    [
      ["--session-secret-file", "/etc/ws-time/weak"],
      /Invalid --session-secret-file \/etc\/ws-time\/weak: expected at least 32/,
    ],
    [
      ["--session-secret-file", "/etc/ws-time/weak", "--session-secret", a],
      /it or --session-secret, not both/,
    ],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parse(args), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, message);
      assert.ok(!error.message.includes("password123"), "no secret echoed");
      return true;
    });
  }
});

Deno.test("--redis-cluster takes host:port seeds, alone or with --redis for credentials, and refuses what cannot work", () => {
  const secret = "k3Vq9x2LmZ8rT4wYbN6pC1sD7fG0hJ5e";
  const config = configOf([
    "--redis-cluster",
    "10.0.0.31:6379,redis-c2.internal:6380",
    "--redis",
    "rediss://wstime:pw@cluster",
    "--session-secret",
    secret,
  ]);
  assert.deepEqual(config.redisCluster, [
    "10.0.0.31:6379",
    "redis-c2.internal:6380",
  ]);
  const refused: Array<[string[], RegExp]> = [
    [
      ["--redis-cluster", "10.0.0.31"],
      /--redis-cluster "10.0.0.31": expected host:port/,
    ],
    [
      [
        "--redis-cluster",
        "a:1",
        "--redis-sentinels",
        "b:2",
        "--redis-master-name",
        "m",
      ],
      /either --redis-cluster or --redis-sentinels, not both/,
    ],
    [
      ["--redis-cluster", "a:1", "--redis-prefix", "{app}:"],
      /--redis-prefix "\{app\}:": expected no \{ or \} with --redis-cluster/,
    ],
  ];
  for (const [args, message] of refused) {
    assert.throws(
      () => configOf([...args, "--session-secret", secret]),
      message,
    );
  }
  assert.throws(
    () => configOf(["--redis-cluster", "a:1"]),
    /Missing --session-secret .* --redis-cluster is set/,
  );
});
