/**
 * Text derived from the {@link OPTIONS} table: the `--help` screen and the
 * flag table of docs/configuration.md. A test compares that file with
 * {@link optionsMarkdown}, so the docs cannot drift from the defaults.
 *
 * @module
 */

import { OPTIONS, type OptionSpec } from "./schema.ts";

/** The `--help` text: every option with its variable and default. */
export function helpText(): string {
  const rows = OPTIONS.map((spec) => {
    const left = `  --${spec.flag} <${spec.kind}>`.padEnd(36);
    const fallback = spec.fallback === "" ? "" : ` [default: ${spec.fallback}]`;
    return `${left}${spec.help} (env ${spec.env})${fallback}`;
  });
  return [
    "ws-time: WebSocket sessions that survive instance loss, deploys and overload",
    "",
    "Usage: ws-time [options]   (flags win over environment variables)",
    "",
    ...rows,
    "  --version".padEnd(36) + "print the version and exit",
    "  --help".padEnd(36) + "show this help",
  ].join("\n");
}

/** How an option's default reads in the docs. */
export function defaultText(spec: OptionSpec): string {
  return spec.fallbackDoc ?? (spec.fallback === "" ? "none" : spec.fallback);
}

/** The Markdown table of every option, as docs/configuration.md holds it. */
export function optionsMarkdown(): string {
  const rows = OPTIONS.map((spec) =>
    `| \`--${spec.flag}\` | \`${spec.env}\` | ${
      defaultText(spec)
    } | ${spec.doc} |`
  );
  return [
    "| flag | environment | default | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
