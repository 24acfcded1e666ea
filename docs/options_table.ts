/**
 * Writes the flag table of docs/configuration.md from the options table in
 * server/config/schema.ts (`deno task docs`); tests/docs_test.ts fails when
 * the file and the table disagree.
 *
 * @module
 */

import { optionsMarkdown } from "../server/config/help.ts";

/** The markers around the generated table. */
export const MARKERS = ["<!-- options:start -->", "<!-- options:end -->"];

/** `text` with the part between the markers replaced by `table`. */
export function withTable(text: string, table: string): string {
  const [open, close] = MARKERS as [string, string];
  const from = text.indexOf(open);
  const to = text.indexOf(close);
  if (from < 0 || to < from) {
    throw new Error(`docs/configuration.md lacks ${open} ... ${close}`);
  }
  return `${text.slice(0, from + open.length)}\n\n${table}\n\n${
    text.slice(to)
  }`;
}

if (import.meta.main) {
  const path = new URL("./configuration.md", import.meta.url);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, withTable(text, optionsMarkdown()));
}
