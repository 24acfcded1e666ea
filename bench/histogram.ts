/**
 * A fixed-size latency histogram: 0.1 ms bins up to 100 ms, 10 ms bins up
 * to 60 s. Generators fill one each and send the counts; the coordinator
 * merges them and reads percentiles, so no process keeps every sample.
 *
 * @module
 */

const FINE_BINS = 1000; // 0.1 ms each, 0-100 ms
const COARSE_BINS = 5990; // 10 ms each, 100 ms - 60 s
const SIZE = FINE_BINS + COARSE_BINS + 1; // last bin: overflow

/** Latency counts in milliseconds. */
export class Histogram {
  readonly counts: number[];
  /** Samples below zero (clamped into the first bin). */
  negative = 0;
  max = 0;
  total = 0;

  /** An empty histogram, or one holding `counts` (from {@link toJSON}). */
  constructor(from?: HistogramJson) {
    this.counts = from ? [...from.counts] : new Array<number>(SIZE).fill(0);
    if (from) {
      this.negative = from.negative;
      this.max = from.max;
      this.total = from.total;
    }
  }

  /** Adds one sample of `ms`. */
  add(ms: number): void {
    if (ms < 0) {
      this.negative++;
      ms = 0;
    }
    const bin = ms < 100
      ? Math.floor(ms * 10)
      : Math.min(SIZE - 1, FINE_BINS + Math.floor((ms - 100) / 10));
    this.counts[bin]!++;
    this.total++;
    if (ms > this.max) this.max = ms;
  }

  /** Adds every sample of `other`. */
  merge(other: Histogram): void {
    for (let i = 0; i < SIZE; i++) this.counts[i]! += other.counts[i]!;
    this.negative += other.negative;
    this.total += other.total;
    this.max = Math.max(this.max, other.max);
  }

  /** The upper edge of the bin holding quantile `q` (0-1), in ms. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil(q * this.total);
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const edge = i < FINE_BINS
          ? (i + 1) / 10
          : 100 + (i - FINE_BINS + 1) * 10;
        return Math.min(edge, this.max);
      }
    }
    return this.max;
  }

  /** A compact summary: p50, p99, max (ms) and the sample count. */
  summary(): LatencySummary {
    return {
      p50: round(this.quantile(0.5)),
      p99: round(this.quantile(0.99)),
      max: round(this.max),
      samples: this.total,
    };
  }

  /** Plain data for JSON transport between processes. */
  toJSON(): HistogramJson {
    return {
      counts: this.counts,
      negative: this.negative,
      max: this.max,
      total: this.total,
    };
  }
}

/** The JSON form of a {@link Histogram}. */
export interface HistogramJson {
  readonly counts: number[];
  readonly negative: number;
  readonly max: number;
  readonly total: number;
}

/** Percentiles of a latency histogram, in ms. */
export interface LatencySummary {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
