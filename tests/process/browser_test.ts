/**
 * The page in real headless chromium against real server processes: it
 * loads without console errors, counts and names its server, explains bad
 * addresses, rides out a restart on the same port without resetting the
 * count, survives a reload, and Disconnect stops every retry. Screenshots
 * land in tests/output/ for a person to look at.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { startBrowser } from "../helpers/browser.ts";
import { ROOT } from "../../dev/paths.ts";
import { startServer } from "../../dev/server_process.ts";
import { sleep, waitFor } from "../../dev/timing.ts";

const OUTPUT = `${ROOT}tests/output/`;

/** Collects console errors and warnings and uncaught page errors. */
function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      problems.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  return problems;
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector))?.trim() ?? "";
}

function waitForText(
  page: Page,
  selector: string,
  pattern: RegExp,
  timeoutMs = 8000,
): Promise<RegExpExecArray> {
  return waitFor(
    async () => pattern.exec(await text(page, selector)),
    timeoutMs,
    `${selector} to match ${pattern}`,
  );
}

async function seconds(page: Page): Promise<number> {
  return Number(await text(page, "#seconds"));
}

async function openConnections(http: string): Promise<number> {
  const metrics = await (await fetch(`${http}/metrics`)).text();
  return Number(/^wstime_connections (\d+)$/m.exec(metrics)?.[1]);
}

Deno.test("GET / (the page) connects, counts and names its server, with no console errors", async () => {
  await Deno.mkdir(OUTPUT, { recursive: true });
  await using server = await startServer();
  // A name, not 127.0.0.1: the page must work in an insecure context too,
  // as served over plain http in most deployments.
  await using browser = await startBrowser({ loopbackNames: ["ws-time.test"] });
  const { page } = browser;
  const problems = watchConsole(page);
  await page.goto(`http://ws-time.test:${server.port}/`);
  assert.equal(await page.evaluate("isSecureContext"), false);
  assert.equal(
    await page.inputValue("#address"),
    `ws://ws-time.test:${server.port}/`,
  );
  assert.equal(await text(page, "#state"), "not connected");
  await page.click("#connect");
  await waitForText(page, "#state", /^connected$/);
  await waitFor(async () => await seconds(page) >= 2, 8000, "the count at 2");
  assert.equal(await text(page, "#server"), server.name);
  assert.match(await text(page, "#log"), /welcome from srv-\d+: new session/);
  assert.equal(await page.isDisabled("#connect"), true);
  await page.screenshot({ path: `${OUTPUT}connected.png` });
  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = Number(
    await page.evaluate("document.documentElement.scrollWidth - innerWidth"),
  );
  assert.ok(overflow <= 0, `scrolls sideways by ${overflow}px on a phone`);
  await page.screenshot({ path: `${OUTPUT}connected-phone.png` });
  await page.click("#disconnect");
  await waitForText(page, "#state", /^disconnected$/);
  await waitFor(
    async () => await openConnections(server.http) === 0,
    5000,
    "the server to see the close",
  );
  assert.deepEqual(problems, []);
});

Deno.test("GET / (the page) explains invalid addresses instead of connecting", async () => {
  await Deno.mkdir(OUTPUT, { recursive: true });
  await using server = await startServer();
  await using browser = await startBrowser();
  const { page } = browser;
  const problems = watchConsole(page);
  await page.goto(`${server.http}/`);
  const cases: Array<[string, RegExp]> = [
    [
      "ws://http://127.0.0.1:8000/",
      /two schemes .* ws:\/\/127\.0\.0\.1:8000\//,
    ],
    ["127.0.0.1:8000", /needs a scheme: try ws:\/\/127\.0\.0\.1:8000/],
    [`${server.http}/`, /http:\/\/ is for web pages.*Try ws:\/\/127/],
    ["", /Enter the server's address/],
  ];
  for (const [address, message] of cases) {
    await page.fill("#address", address);
    await page.click("#connect");
    assert.match(await text(page, "#address-error"), message, address);
    assert.equal(await page.getAttribute("#address", "aria-invalid"), "true");
    assert.equal(await text(page, "#state"), "not connected");
  }
  await page.fill("#address", "ws://http://127.0.0.1:8000/");
  await page.click("#connect");
  await page.screenshot({ path: `${OUTPUT}address-error.png` });
  await page.fill("#address", server.ws);
  assert.equal(await text(page, "#address-error"), "");
  assert.equal(await openConnections(server.http), 0);
  assert.deepEqual(problems, []);
});

Deno.test("GET / (the page) shows its retries across a restart on the same port and keeps counting", async () => {
  await Deno.mkdir(OUTPUT, { recursive: true });
  const env = { SESSION_SECRET: "browser-failover-test-secret-0123456789" };
  await using first = await startServer({ env, name: "first" });
  await using browser = await startBrowser();
  const { page } = browser;
  const problems = watchConsole(page);
  await page.goto(`${first.http}/`);
  await page.click("#connect");
  await waitFor(async () => await seconds(page) >= 3, 10_000, "the count at 3");
  assert.equal(await text(page, "#server"), "first");

  await first[Symbol.asyncDispose]();
  await waitForText(page, "#state", /^retrying, attempt \d+ of 50$/);
  await page.screenshot({ path: `${OUTPUT}retrying.png` });
  await waitForText(page, "#countdown", /next try in \d+ s/);
  const before = await seconds(page);
  await using second = await startServer({
    env,
    name: "second",
    port: first.port,
  });
  await waitForText(page, "#server", /^second$/, 20_000);
  await waitForText(page, "#state", /^connected$/);
  assert.match(
    await text(page, "#log"),
    /welcome from second: session resumed/,
  );
  assert.ok(await seconds(page) >= before, "the count went back");
  assert.match(await text(page, "#log"), /retry 1 of 50 in/);

  // A reload in the same tab resumes the same session.
  const beforeReload = await seconds(page);
  await page.reload();
  await waitForText(page, "#state", /^connected$/);
  await waitForText(page, "#log", /welcome from second: session resumed/);
  assert.ok(await seconds(page) >= beforeReload, "the reload reset the count");

  // Disconnect while retrying: no retry may reach the next instance.
  await second[Symbol.asyncDispose]();
  await waitForText(page, "#state", /^retrying/);
  const pending = Number(/(\d+) s/.exec(await text(page, "#countdown"))?.[1]);
  await page.click("#disconnect");
  await waitForText(page, "#state", /^disconnected$/);
  assert.equal(await text(page, "#countdown"), "");
  await using third = await startServer({
    env,
    name: "third",
    port: first.port,
  });
  await sleep(Math.max(2, (pending || 0) + 1) * 1000);
  assert.equal(await openConnections(third.http), 0);
  assert.equal(await text(page, "#state"), "disconnected");

  // The browser itself reports refused connections; nothing else may appear.
  const unexpected = problems.filter((problem) =>
    !/WebSocket connection to .* failed|net::ERR_CONNECTION_REFUSED/.test(
      problem,
    )
  );
  assert.deepEqual(unexpected, []);
});
