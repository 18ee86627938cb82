/**
 * A small SVG line chart for the benchmark report: a few named series over a shared x axis, with
 * axes, ticks and a legend. Self-contained markup, so the report renders anywhere (GitHub, a browser,
 * offline).
 */

export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
}

const colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/** Round tick steps (1, 2, 5 × 10^n), about `count` of them, from 0 to the first at or above `max`. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [0];
  while ((out[out.length - 1] ?? 0) < max) out.push(Math.round(out.length * step * 1e6) / 1e6);
  return out;
}

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Renders the chart as an SVG document. */
export function lineChart(options: ChartOptions): string {
  const width = options.width ?? 760;
  const height = options.height ?? 360;
  const margin = { left: 64, right: 16, top: 36, bottom: 64 };
  const all = options.series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map(([x]) => x));
  const yTicks = ticks(Math.max(1, ...all.map(([, y]) => y)));
  const xTicks = ticks(xMax, 8);
  const yTop = yTicks[yTicks.length - 1] ?? 1;
  const xRight = xTicks[xTicks.length - 1] ?? xMax;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const px = (x: number) => margin.left + (x / xRight) * plotW;
  const py = (y: number) => margin.top + plotH - (y / yTop) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escape(options.title)}</text>`,
  ];
  for (const y of yTicks) {
    parts.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${py(y) + 4}" text-anchor="end">${y}</text>`);
  }
  for (const x of xTicks) parts.push(`<text x="${px(x)}" y="${margin.top + plotH + 16}" text-anchor="middle">${x}</text>`);
  parts.push(
    `<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#333"/>`,
    `<line x1="${margin.left}" x2="${width - margin.right}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 28}" text-anchor="middle">${escape(options.xLabel)}</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(options.yLabel)}</text>`,
  );
  options.series.forEach((series, i) => {
    const colour = colours[i % colours.length] ?? "#000";
    const path = series.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    if (series.points.length > 0) parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${path}"/>`);
    for (const [x, y] of series.points.length <= 30 ? series.points : []) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${colour}"/>`);
    const lx = margin.left + 10 + i * 180;
    parts.push(`<rect x="${lx}" y="${height - 16}" width="12" height="4" fill="${colour}"/>`, `<text x="${lx + 16}" y="${height - 10}">${escape(series.name)}</text>`);
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
