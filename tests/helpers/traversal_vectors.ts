/**
 * Path traversal vectors for the static handler: encoded dots and slashes
 * (single, double and overlong UTF-8), backslashes, NUL bytes, dotfiles and
 * absolute paths, aimed at files that exist outside `static/`. Each is a
 * request-target exactly as it would be written on the wire.
 *
 * @module
 */

const DOTS = [
  "..",
  "%2e%2e",
  "%2E%2E",
  ".%2e",
  "%2e.",
  "%252e%252e",
  "%c0%ae%c0%ae",
  "%e0%80%ae%e0%80%ae",
  "%c0%2e%c0%2e",
  "....",
  "..%00",
];

const SEPARATORS = [
  "/",
  "%2f",
  "%2F",
  "\\",
  "%5c",
  "%5C",
  "%252f",
  "%c0%af",
  "%e0%80%af",
  "//",
];

const TARGETS = ["main.ts", "deno.json", "etc/passwd"];

const EXTRA = [
  "/.git/config",
  "/.git/HEAD",
  "/.env",
  "/.gitignore",
  "/%2egit/config",
  "/.%67it/config",
  "/.deno.json",
  "/deno.json",
  "/main.ts",
  "/server/app.ts",
  "/static/index.html",
  "/static/../main.ts",
  "/index.html/../../main.ts",
  "/app.js%2f..%2f..%2fmain.ts",
  "/index.html%00.js",
  "/index.html%00",
  "/%00/etc/passwd",
  "//etc/passwd",
  "///etc/passwd",
  "/%2fetc%2fpasswd",
  "/%5cetc%5cpasswd",
  "/file:///etc/passwd",
  "/proc/self/environ",
  "/%2e%2e%2f%2e%2e%2f%2e%2e%2fproc%2fself%2fenviron",
  "/..;/main.ts",
  "/%u002e%u002e/main.ts",
  "/%uff0e%uff0e/main.ts",
  "/\uff0e\uff0e/main.ts",
  "/.%2e/.%2e/.%2e/etc/passwd",
  "/index.html?../../main.ts",
  "/index.html#../../main.ts",
];

/** Every vector, a few hundred in all, each starting with "/". */
export function traversalVectors(): string[] {
  const vectors = new Set<string>(EXTRA);
  for (const dots of DOTS) {
    for (const sep of SEPARATORS) {
      for (const target of TARGETS) {
        const climb = `${dots}${sep}`.repeat(3);
        vectors.add(`/${climb}${target}`);
      }
    }
  }
  return [...vectors];
}

/** Text that appears in files outside `static/` and never in its assets. */
export const SECRET_MARKERS = [
  "root:x:0:0",
  '"unstable"',
  "ws-time entry point",
  "[core]",
  "repositoryformatversion",
  "PATH=",
  "createApp(deps",
];
