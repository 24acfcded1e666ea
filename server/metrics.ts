/**
 * Counters and gauges with the Prometheus text exposition. Counters are
 * plain numbers bumped by the code that sees the event; gauges are read at
 * scrape time from callbacks, so nothing is computed between scrapes.
 *
 * @module
 */

type Labels = Readonly<Record<string, string>>;

interface Family {
  readonly help: string;
  readonly type: "counter" | "gauge";
  readonly values: Map<string, number>;
  readonly read?: () => number | ReadonlyArray<readonly [Labels, number]>;
}

/** A registry of metric families rendered as Prometheus text. */
export class Metrics {
  readonly #families = new Map<string, Family>();

  /** Declares a counter; `inc` then adds to it. */
  counter(name: string, help: string): void {
    this.#families.set(name, { help, type: "counter", values: new Map() });
  }

  /** Declares a metric read from `read` at scrape time (gauge by default). */
  gauge(
    name: string,
    help: string,
    read: () => number | ReadonlyArray<readonly [Labels, number]>,
    type: "gauge" | "counter" = "gauge",
  ): void {
    this.#families.set(name, { help, type, values: new Map(), read });
  }

  /** Adds `by` (default 1) to the counter `name` with `labels`. */
  inc(name: string, labels: Labels = {}, by = 1): void {
    const family = this.#families.get(name);
    if (!family) throw new Error(`Unknown metric "${name}"`);
    const key = labelText(labels);
    family.values.set(key, (family.values.get(key) ?? 0) + by);
  }

  /** Current value of a counter, for tests and the bench. */
  value(name: string, labels: Labels = {}): number {
    return this.#families.get(name)?.values.get(labelText(labels)) ?? 0;
  }

  /** The Prometheus text exposition format, version 0.0.4. */
  render(): string {
    const lines: string[] = [];
    for (const [name, family] of this.#families) {
      lines.push(
        `# HELP ${name} ${family.help}`,
        `# TYPE ${name} ${family.type}`,
      );
      if (family.read) {
        const read = family.read();
        const rows = typeof read === "number" ? [[{}, read] as const] : read;
        for (const [labels, value] of rows) {
          lines.push(`${name}${labelText(labels)} ${number(value)}`);
        }
      } else if (family.values.size === 0) {
        lines.push(`${name} 0`);
      } else {
        for (const [labels, value] of family.values) {
          lines.push(`${name}${labels} ${number(value)}`);
        }
      }
    }
    return lines.join("\n") + "\n";
  }
}

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels);
  if (pairs.length === 0) return "";
  return `{${
    pairs.map(([k, v]) =>
      `${k}="${
        v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
      }"`
    ).join(",")
  }}`;
}

function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return String(value);
}
