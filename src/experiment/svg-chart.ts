// A line chart as a self-contained SVG string (no dependencies): axes with round-number ticks, one
// polyline per series, a legend. Enough for training curves in a Markdown report that GitHub renders.

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  /** Trailing moving-average window applied to every series (1 = raw). */
  smooth?: number;
}

// Colour-blind-friendly categorical palette (Okabe–Ito, then Tol's muted extras).
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#F0E442', '#882255', '#44AA99', '#999933', '#AA4499'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Trailing moving average over up to `window` points (the first points average what exists). */
export function movingAverage(points: readonly (readonly [number, number])[], window: number): [number, number][] {
  const w = Math.max(1, Math.floor(window));
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i][1];
    if (i >= w) sum -= points[i - w][1];
    out.push([points[i][0], sum / Math.min(i + 1, w)]);
  }
  return out;
}

/** About `count` round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 760;
  const height = o.height ?? 420;
  const legendWidth = 220;
  const m = { left: 64, right: legendWidth + 16, top: 40, bottom: 52 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const series = o.series.map((s) => ({
    name: s.name,
    points: movingAverage(
      s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
      o.smooth ?? 1,
    ),
  }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - Math.max(1, Math.abs(y0)) * 0.1, y1 + Math.max(1, Math.abs(y1)) * 0.1];
  // Round the y range out to whole tick steps, so the frame sits on labelled values.
  const firstTicks = niceTicks(y0, y1);
  const yStep = firstTicks.length > 1 ? firstTicks[1] - firstTicks[0] : (y1 - y0) / 5;
  [y0, y1] = [Math.floor(y0 / yStep + 1e-9) * yStep, Math.ceil(y1 / yStep - 1e-9) * yStep];
  const yTicks = niceTicks(y0, y1);
  const xTicks = niceTicks(x0, x1, 6).filter((t) => t >= x0 && t <= x1);
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => m.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const r = (v: number) => v.toFixed(1);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${r(m.left + plotW / 2)}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(o.title)}</text>`);
  for (const t of yTicks) {
    parts.push(`<line x1="${r(m.left)}" y1="${r(sy(t))}" x2="${r(m.left + plotW)}" y2="${r(sy(t))}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${r(m.left - 6)}" y="${r(sy(t) + 4)}" text-anchor="end">${escapeXml(fmt(t))}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line x1="${r(sx(t))}" y1="${r(m.top + plotH)}" x2="${r(sx(t))}" y2="${r(m.top + plotH + 5)}" stroke="#333333"/>`);
    parts.push(`<text x="${r(sx(t))}" y="${r(m.top + plotH + 18)}" text-anchor="middle">${escapeXml(fmt(t))}</text>`);
  }
  parts.push(`<rect x="${r(m.left)}" y="${r(m.top)}" width="${r(plotW)}" height="${r(plotH)}" fill="none" stroke="#333333"/>`);
  parts.push(`<text x="${r(m.left + plotW / 2)}" y="${r(height - 12)}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  parts.push(`<text x="16" y="${r(m.top + plotH / 2)}" text-anchor="middle" transform="rotate(-90 16 ${r(m.top + plotH / 2)})">${escapeXml(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const dash = i >= PALETTE.length ? ' stroke-dasharray="6 3"' : '';
    if (s.points.length === 1) {
      parts.push(`<circle cx="${r(sx(s.points[0][0]))}" cy="${r(sy(s.points[0][1]))}" r="3" fill="${colour}"><title>${escapeXml(s.name)}</title></circle>`);
    } else if (s.points.length > 1) {
      const pts = s.points.map(([x, y]) => `${r(sx(x))},${r(sy(y))}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2"${dash} points="${pts}"><title>${escapeXml(s.name)}</title></polyline>`);
    }
    const ly = m.top + 8 + i * 20;
    const lx = width - legendWidth;
    parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${colour}" stroke-width="3"${dash}/>`);
    parts.push(`<text x="${lx + 28}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
