/**
 * A small line chart as standalone SVG text: axes with round ticks, one
 * polyline with dots per series, and a legend. Enough for the bench's
 * RSS/CPU-against-N and resumed-over-time charts, without a dependency.
 *
 * @module
 */

/** One named line of (x, y) points. */
export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/** What to draw. */
export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Top of the y axis; default: a round value above the data. */
  readonly yMax?: number;
  /** Horizontal reference lines, e.g. a target. */
  readonly marks?: ReadonlyArray<
    { readonly y: number; readonly label: string }
  >;
}

const W = 640, H = 360, LEFT = 70, RIGHT = 20, TOP = 40, BOTTOM = 50;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/** Renders `spec` as an SVG document. */
export function lineChart(spec: ChartSpec): string {
  const points = spec.series.flatMap((s) => s.points);
  const ys = [
    ...points.map((p) => p[1]),
    ...(spec.marks ?? []).map((m) => m.y),
  ];
  const xMax = niceCeil(Math.max(1, ...points.map((p) => p[0])));
  const yMax = spec.yMax ?? niceCeil(Math.max(1e-9, ...ys) * 1.05);
  const x = (v: number) => LEFT + (v / xMax) * (W - LEFT - RIGHT);
  const y = (v: number) => H - BOTTOM - (v / yMax) * (H - TOP - BOTTOM);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${
      esc(spec.title)
    }</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const vx = (xMax * i) / 5, vy = (yMax * i) / 5;
    out.push(
      `<line x1="${x(vx)}" y1="${y(0)}" x2="${x(vx)}" y2="${
        y(yMax)
      }" stroke="#eee"/>`,
      `<text x="${x(vx)}" y="${H - BOTTOM + 16}" text-anchor="middle">${
        fmt(vx)
      }</text>`,
      `<line x1="${x(0)}" y1="${y(vy)}" x2="${x(xMax)}" y2="${
        y(vy)
      }" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${y(vy) + 4}" text-anchor="end">${
        fmt(vy)
      }</text>`,
    );
  }
  out.push(
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(xMax)}" y2="${
      y(0)
    }" stroke="black"/>`,
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(0)}" y2="${
      y(yMax)
    }" stroke="black"/>`,
    `<text x="${(LEFT + W - RIGHT) / 2}" y="${H - 12}" text-anchor="middle">${
      esc(spec.xLabel)
    }</text>`,
    `<text transform="translate(16 ${(TOP + H - BOTTOM) / 2}) rotate(-90)" ` +
      `text-anchor="middle">${esc(spec.yLabel)}</text>`,
  );
  for (const mark of spec.marks ?? []) {
    out.push(
      `<line x1="${x(0)}" y1="${y(mark.y)}" x2="${x(xMax)}" y2="${
        y(mark.y)
      }" stroke="#888" stroke-dasharray="5 4"/>`,
      `<text x="${x(xMax) - 4}" y="${y(mark.y) - 4}" text-anchor="end" ` +
        `fill="#666">${esc(mark.label)}</text>`,
    );
  }
  spec.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length];
    const path = series.points.map((p) => `${x(p[0])},${y(p[1])}`).join(" ");
    out.push(
      `<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`,
      ...series.points.length <= 40
        ? series.points.map((p) =>
          `<circle cx="${x(p[0])}" cy="${y(p[1])}" r="3" fill="${color}"/>`
        )
        : [],
      `<rect x="${LEFT + 10}" y="${
        TOP + i * 18
      }" width="12" height="12" fill="${color}"/>`,
      `<text x="${LEFT + 28}" y="${TOP + i * 18 + 10}">${
        esc(series.name)
      }</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function niceCeil(v: number): number {
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (m * step >= v) return m * step;
  }
  return 10 * step;
}

function fmt(v: number): string {
  if (v >= 1000) return `${Math.round(v / 100) / 10}k`;
  return String(Math.round(v * 100) / 100);
}

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  );
}
