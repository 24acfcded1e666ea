/**
 * A plain-text table for the terminal: columns padded to their widest cell,
 * numbers right-aligned.
 *
 * @module
 */

/** Rows of cells under fixed headers. */
export class Table {
  readonly #headers: readonly string[];
  readonly #rows: Array<ReadonlyArray<string | number>> = [];

  /** A table with these column headers. */
  constructor(headers: readonly string[]) {
    this.#headers = headers;
  }

  /** Appends one row. */
  row(cells: ReadonlyArray<string | number>): void {
    this.#rows.push(cells);
  }

  /** The table as lines of text. */
  render(): string {
    const all = [this.#headers, ...this.#rows];
    const widths = this.#headers.map((_, i) =>
      Math.max(...all.map((r) => String(r[i] ?? "").length))
    );
    const line = (cells: ReadonlyArray<string | number>) =>
      cells.map((c, i) =>
        typeof c === "number"
          ? String(c).padStart(widths[i]!)
          : String(c).padEnd(widths[i]!)
      ).join("  ").trimEnd();
    return [
      line(this.#headers),
      widths.map((w) => "-".repeat(w)).join("  "),
      ...this.#rows.map(line),
    ].join("\n");
  }
}
