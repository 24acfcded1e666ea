/**
 * Headless Debian chromium driven by playwright-core, with a fresh profile
 * per session.
 *
 * @module
 */

import nodeFs from "node:fs";
import type { BrowserContext, Page } from "playwright-core";

/** Flags for Debian's chromium: headless, quiet, no network of its own. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** A headless chromium with a fresh profile; dispose closes both. */
export interface BrowserSession extends AsyncDisposable {
  readonly context: BrowserContext;
  /** The first tab. */
  readonly page: Page;
}

/**
 * Starts /usr/bin/chromium through playwright-core with a fresh temporary
 * profile. Playwright loads only here, so other suites do not pay for it.
 */
export async function startBrowser(
  options: {
    viewport?: { width: number; height: number };
    /** Host names chromium resolves to 127.0.0.1 (insecure origins). */
    loopbackNames?: string[];
  } = {},
): Promise<BrowserSession> {
  const { chromium } = await importPlaywright();
  const profile = await Deno.makeTempDir({ prefix: "ws-time-chromium-" });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        ...CHROMIUM_ARGS,
        ...(options.loopbackNames ?? []).map((name) =>
          `--host-resolver-rules=MAP ${name} 127.0.0.1`
        ),
      ],
      viewport: options.viewport ?? { width: 1000, height: 800 },
    });
  } catch (error) {
    await Deno.remove(profile, { recursive: true });
    throw error;
  }
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context,
    page,
    async [Symbol.asyncDispose]() {
      await context.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Loads playwright-core. At load it probes for WSL with `fs.existsSync` on
 * a /proc/sys path, which Deno grants only under --allow-all and answers
 * with NotCapable otherwise; for that load only, such a refusal counts as
 * "absent" (it is: this is not WSL), so the test task keeps its explicit
 * permission flags.
 */
async function importPlaywright(): Promise<typeof import("playwright-core")> {
  const existsSync = nodeFs.existsSync;
  nodeFs.existsSync = (path) => {
    try {
      return existsSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) return false;
      throw error;
    }
  };
  try {
    return await import("playwright-core");
  } finally {
    nodeFs.existsSync = existsSync;
  }
}
