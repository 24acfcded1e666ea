/**
 * Counters, gauges and histograms with the Prometheus text exposition.
 * Counters are plain numbers bumped by the code that sees the event;
 * gauges are read at scrape time from callbacks, so nothing is computed
 * between scrapes; histograms count observations into fixed buckets (a
 * loop over a dozen bounds, cheap enough for every tick).
 *
 * @module
 */

type Labels = Readonly<Record<string, string>>;

/**
 * Upper bounds, in seconds, on the 1-2.5-5 scale from `from` to 1 s: one
 * series for every duration histogram, so panels compare like with like.
 */
export function latencyBuckets(from: number): number[] {
  const all = [
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
  ];
  return all.filter((bound) => bound >= from);
}

/** Observations counted into fixed buckets (upper bounds, in seconds). */
export class Histogram {
  readonly bounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;

  /** A histogram over `bounds` (ascending; +Inf is implied). */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = bounds.map(() => 0);
  }

  /** Counts one observation of `value`. */
  observe(value: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

interface Family {
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  readonly values: Map<string, number>;
  readonly read?: () => number | ReadonlyArray<readonly [Labels, number]>;
  readonly histograms?: () => ReadonlyArray<readonly [Labels, Histogram]>;
}

/** A registry of metric families rendered as Prometheus text. */
export class Metrics {
  readonly #families = new Map<string, Family>();

  /**
   * Declares a counter; `inc` then adds to it. Each of `labelSets` starts
   * at 0, so a rate over it exists before the first event (an absent series
   * reads as "no data" on a dashboard and never fires an alert).
   */
  counter(
    name: string,
    help: string,
    labelSets: ReadonlyArray<Labels> = [],
  ): void {
    const values = new Map(labelSets.map((l) => [labelText(l), 0]));
    this.#families.set(name, { help, type: "counter", values });
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

  /** Declares histograms kept elsewhere, one per label set. */
  histogram(
    name: string,
    help: string,
    read: () => ReadonlyArray<readonly [Labels, Histogram]>,
  ): void {
    this.#families.set(name, {
      help,
      type: "histogram",
      values: new Map(),
      histograms: read,
    });
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
      if (family.histograms) {
        for (const [labels, histogram] of family.histograms()) {
          renderHistogram(lines, name, labels, histogram);
        }
      } else if (family.read) {
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

function renderHistogram(
  lines: string[],
  name: string,
  labels: Labels,
  histogram: Histogram,
): void {
  let cumulative = 0;
  histogram.bounds.forEach((bound, i) => {
    cumulative += histogram.counts[i]!;
    lines.push(
      `${name}_bucket${
        labelText({ ...labels, le: String(bound) })
      } ${cumulative}`,
    );
  });
  lines.push(
    `${name}_bucket${labelText({ ...labels, le: "+Inf" })} ${histogram.count}`,
    `${name}_sum${labelText(labels)} ${number(histogram.sum)}`,
    `${name}_count${labelText(labels)} ${histogram.count}`,
  );
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
