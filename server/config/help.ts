/**
 * Text derived from the {@link OPTIONS} table: the `--help` screen and the
 * flag table of docs/configuration.md. A test compares that file with
 * {@link optionsMarkdown}, so the docs cannot drift from the defaults.
 *
 * @module
 */

import { choiceList } from "./parse.ts";
import { OPTIONS, type OptionSpec } from "./schema.ts";

/** The `--help` text: every option with its variable and default. */
export function helpText(): string {
  const lefts = OPTIONS.map((spec) => {
    const value = spec.kind === "enum" ? spec.choices!.join("|") : spec.kind;
    return `  --${spec.flag} <${value}>`;
  });
  const width = Math.max(...lefts.map((l) => l.length)) + 2;
  const rows = OPTIONS.map((spec, i) => {
    const left = lefts[i]!.padEnd(width);
    const fallback = spec.fallback === "" ? "" : ` [default: ${spec.fallback}]`;
    return `${left}${spec.help} (env ${spec.env})${fallback}`;
  });
  return [
    "ws-time: WebSocket sessions that survive instance loss, deploys and overload",
    "",
    "Usage: ws-time [options]   (flags win over environment variables)",
    "",
    ...rows,
    "  --version".padEnd(width) + "print the version and exit",
    "  --help".padEnd(width) + "show this help",
  ].join("\n");
}

/** How an option's default reads in the docs. */
export function defaultText(spec: OptionSpec): string {
  return spec.fallbackDoc ?? (spec.fallback === "" ? "none" : spec.fallback);
}

/** An option's meaning, with the values an enum takes. */
function docText(spec: OptionSpec): string {
  if (spec.kind !== "enum") return spec.doc;
  const values = choiceList(spec.choices!.map((c) => `\`${c}\``));
  return `${values}: ${spec.doc}`;
}

/** The Markdown table of every option, as docs/configuration.md holds it. */
export function optionsMarkdown(): string {
  const rows = OPTIONS.map((spec) =>
    `| \`--${spec.flag}\` | \`${spec.env}\` | ${defaultText(spec)} | ${
      docText(spec)
    } |`
  );
  return [
    "| flag | environment | default | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
