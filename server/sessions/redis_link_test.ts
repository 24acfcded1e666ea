import assert from "node:assert/strict";
import { ErrorReply } from "@redis/client";
import { ManualClock } from "../clock.ts";
import { memoryLogger } from "../logger.ts";
import type { Backend, BackendOptions } from "./redis_backends.ts";
import { RedisCallError, RedisLink } from "./redis_link.ts";

/**
 * One generation as the link sees it: a connect the test settles, a role,
 * and commands answered by `reply` (a promise that never settles stands in
 * for a frozen server).
 */
class FakeBackend implements Backend {
  readonly connected: Promise<void>;
  readonly #connect = Promise.withResolvers<void>();
  role = "master";
  readonly publishCommand = "PUBLISH";
  readonly addressed = false;
  reply: (args: string[]) => Promise<unknown> = () => Promise.resolve("OK");
  destroyed = false;

  constructor(readonly options: BackendOptions) {
    this.connected = this.#connect.promise;
  }

  succeed(): void {
    this.#connect.resolve();
  }

  fail(error: Error): void {
    this.#connect.reject(error);
  }

  send(args: string[]): Promise<unknown> {
    return args[0] === "ROLE" ? Promise.resolve([this.role]) : this.reply(args);
  }

  pipeline(commands: readonly string[][]): Promise<unknown[]> {
    return Promise.all(commands.map((c) => this.send(c)));
  }

  shardOf(): string {
    return "";
  }

  target(): string {
    return "fake:6379";
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  destroy(): void {
    this.destroyed = true;
  }
}

/** Lets promise callbacks run (the manual clock fires only timers). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function setup() {
  const clock = new ManualClock();
  const generations: FakeBackend[] = [];
  let ups = 0;
  const link = new RedisLink({
    target: { kind: "url", url: "redis://fake:6379" },
    channels: ["c"],
    onMessage: () => {},
    onUp: () => ups++,
    timeoutMs: 100,
    clock,
    logger: memoryLogger(),
    // The largest wait of the jitter: retries come at a known time.
    random: () => 0.999,
    backoffBaseMs: 200,
    pingEveryMs: 5000,
    backend: (_target, options) => {
      const backend = new FakeBackend(options);
      generations.push(backend);
      return backend;
    },
  });
  const latest = () => generations[generations.length - 1]!;
  return { clock, link, generations, latest, ups: () => ups };
}

Deno.test("RedisLink moves connecting -> up when the first generation connects to a primary", async () => {
  const t = setup();
  assert.equal(t.link.state, "connecting");
  t.latest().succeed();
  await t.link.firstAttempt;
  assert.equal(t.link.state, "up");
  assert.equal(t.link.up, true);
  assert.equal(t.ups(), 1);
  assert.equal(t.link.reconnects, 0);
  await t.link.close();
  assert.equal(t.link.state, "closed");
});

Deno.test("RedisLink moves connecting -> down when the first attempt fails, and counts no unwritable time before it was ever up", async () => {
  const t = setup();
  t.latest().fail(new Error("ECONNREFUSED"));
  await t.link.firstAttempt;
  assert.equal(t.link.state, "down");
  t.clock.advance(198);
  assert.equal(t.link.notWritableMs, 0);
  assert.equal(t.link.errors().connection, 1);
  assert.equal(t.generations.length, 1, "the retry waits for its backoff");
  t.clock.advance(1);
  assert.equal(t.generations.length, 2);
  t.latest().succeed();
  await settle();
  assert.equal(t.link.state, "up");
  await t.link.close();
});

Deno.test("RedisLink moves up -> slow on a timeout and back to up on the next answer, counting the spell as not writable", async () => {
  const t = setup();
  t.latest().succeed();
  await t.link.firstAttempt;
  t.latest().reply = () => new Promise(() => {});
  const call = t.link.run("claim", (redis) => redis.send(["GET", "k"]));
  t.clock.advance(100);
  await assert.rejects(
    call,
    (e) => e instanceof RedisCallError && e.kind === "timeout",
  );
  assert.equal(t.link.state, "slow");
  assert.equal(t.link.up, true, "commands still go out while slow");
  t.clock.advance(400);
  t.latest().reply = () => Promise.resolve("v");
  assert.equal(await t.link.run("claim", (r) => r.send(["GET", "k"])), "v");
  assert.equal(t.link.state, "up");
  // From the timeout to the answer.
  assert.equal(t.link.notWritableMs, 400);
  await t.link.close();
});

Deno.test("RedisLink bounds each call by its own deadline: a hung call fails 100 ms after it was sent, answered ones are untouched, close() fails what hangs", async () => {
  const t = setup();
  t.latest().succeed();
  await t.link.firstAttempt;
  const hung = new Set(["a", "c", "d"]);
  t.latest().reply = (args) =>
    hung.has(args[1]!) ? new Promise(() => {}) : Promise.resolve(args[1]);
  const outcome = (call: Promise<unknown>) =>
    call.then(
      (v) => `answered ${v}`,
      (e: RedisCallError) => `${e.kind} at ${t.clock.now() - start}`,
    );
  const start = t.clock.now();
  const a = outcome(t.link.run("claim", (r) => r.send(["GET", "a"])));
  t.clock.advance(30);
  const b = outcome(t.link.run("claim", (r) => r.send(["GET", "b"])));
  const c = outcome(t.link.run("claim", (r) => r.send(["GET", "c"])));
  t.clock.advance(60);
  await settle();
  assert.equal(await b, "answered b");
  t.clock.advance(10);
  assert.equal(await a, "timeout at 100");
  t.clock.advance(29);
  await settle();
  let cDone = false;
  c.then(() => cDone = true);
  await settle();
  assert.equal(cDone, false, "c was sent 30 ms after a: 1 ms left");
  t.clock.advance(1);
  assert.equal(await c, "timeout at 130");
  // A call still hanging when the link closes fails then, not never.
  const d = outcome(t.link.run("claim", (r) => r.send(["GET", "d"])));
  await t.link.close();
  assert.equal(await d, "offline at 130");
});

Deno.test("RedisLink moves up -> down when the generation errors, and down -> up with a new one after the backoff", async () => {
  const t = setup();
  t.latest().succeed();
  await t.link.firstAttempt;
  const first = t.latest();
  first.options.hooks.onError(new Error("socket closed"));
  assert.equal(t.link.state, "down");
  await assert.rejects(
    t.link.run("claim", (r) => r.send(["GET", "k"])),
    (e) => e instanceof RedisCallError && e.kind === "offline",
  );
  await settle();
  assert.ok(first.destroyed, "the lost generation is destroyed");
  t.clock.advance(199);
  assert.equal(t.generations.length, 2, "the retry waits for its backoff");
  t.latest().succeed();
  await settle();
  assert.equal(t.link.state, "up");
  assert.equal(t.link.reconnects, 1);
  assert.equal(t.ups(), 2);
  assert.equal(t.link.notWritableMs, 199);
  await t.link.close();
});

Deno.test("RedisLink treats READONLY as a wrong link: down, a failover counted, a new generation that must find a primary", async () => {
  const t = setup();
  t.latest().succeed();
  await t.link.firstAttempt;
  t.latest().reply = () =>
    Promise.reject(
      new ErrorReply("READONLY You can't write against a replica"),
    );
  await assert.rejects(
    t.link.run("claim", (r) => r.send(["SET", "k", "v"])),
    (e) => e instanceof RedisCallError && e.kind === "readonly",
  );
  assert.equal(t.link.state, "down");
  assert.equal(t.link.failovers, 1);
  // The next generation reaches a replica: it does not come up.
  t.clock.advance(200);
  t.latest().role = "slave";
  t.latest().succeed();
  await settle();
  assert.equal(t.link.state, "down");
  t.clock.advance(400);
  t.latest().succeed();
  await settle();
  assert.equal(t.link.state, "up");
  await t.link.close();
});

Deno.test("RedisLink moves up -> down after three PINGs go unanswered", async () => {
  const t = setup();
  t.latest().succeed();
  await t.link.firstAttempt;
  t.latest().reply = () => new Promise(() => {});
  // The first PING goes at once, then one every 5 s; each times out.
  for (let ping = 0; ping < 3; ping++) {
    t.clock.advance(ping === 0 ? 100 : 5100);
    await settle();
  }
  assert.equal(t.link.state, "down");
  assert.ok(t.link.errors().timeout! >= 3);
  await t.link.close();
});

Deno.test("RedisLink.close() is final: no state change or retry after it", async () => {
  const t = setup();
  t.latest().succeed();
  await t.link.firstAttempt;
  await t.link.close();
  t.latest().options.hooks.onError(new Error("late error"));
  t.clock.advance(60_000);
  assert.equal(t.link.state, "closed");
  assert.equal(t.generations.length, 1);
});
