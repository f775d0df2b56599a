/**
 * Report figures as hand-written SVG (no plotting dependency; the same markup inlines into the HTML report and
 * renders in the browser app) and PNG (the SVG rasterised by sharp/librsvg, for slides and Markdown viewers):
 *  - ROC curve: one or several curves, labelled axes, chance diagonal, AUC in the legend, optional operating point;
 *  - confusion matrix: 2x2 counts with row percentages, shaded by the row fraction.
 * No element ids, so several figures can share one HTML page.
 */
import type { ConfusionMatrix, RocCurve } from './metrics.js';
import { escapeHtml } from './tables.js';

const FONT = "DejaVu Sans, 'Helvetica Neue', Helvetica, Arial, sans-serif";
const INK = '#1f2933';
const MUTED = '#616e7c';
const GRID = '#e4e7eb';

/** Distinguishable colours (Okabe–Ito, colour-blind safe) for up to 8 curves; overall gets the first. */
export const CURVE_COLOURS = ['#1f2933', '#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#8c6d1f'];

export interface RocSeries {
  label: string;
  curve: RocCurve;
  auc: number | null;
  colour?: string;
  /** Operating point to mark: sensitivity and 1 - specificity at the decision threshold. */
  operatingPoint?: { fpr: number; tpr: number; threshold: number };
}

function num(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

/**
 * The frame both unit-square plots (ROC, reliability) start from: white background, title, optional subtitle, and a
 * 0-1 grid with ticks every 0.2 on both axes. Returns the SVG parts so far and the data-to-pixel maps.
 */
function unitSquarePlot(W: number, H: number, bottom: number, title: string, subtitle?: string) {
  const m = { left: 72, right: 24, top: subtitle ? 70 : 52, bottom };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const x = (v: number): number => m.left + v * pw;
  const y = (v: number): number => m.top + (1 - v) * ph;
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="30" text-anchor="middle" font-size="18" font-weight="600" fill="${INK}">${escapeHtml(title)}</text>`);
  if (subtitle) parts.push(`<text x="${W / 2}" y="52" text-anchor="middle" font-size="13" fill="${MUTED}">${escapeHtml(subtitle)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = i / 5;
    parts.push(`<line x1="${num(x(v))}" y1="${m.top}" x2="${num(x(v))}" y2="${m.top + ph}" stroke="${GRID}" stroke-width="1"/>`);
    parts.push(`<line x1="${m.left}" y1="${num(y(v))}" x2="${m.left + pw}" y2="${num(y(v))}" stroke="${GRID}" stroke-width="1"/>`);
    parts.push(`<text x="${num(x(v))}" y="${m.top + ph + 20}" text-anchor="middle" font-size="12" fill="${MUTED}">${v.toFixed(1)}</text>`);
    parts.push(`<text x="${m.left - 10}" y="${num(y(v) + 4)}" text-anchor="end" font-size="12" fill="${MUTED}">${v.toFixed(1)}</text>`);
  }
  return { W, H, m, pw, ph, x, y, parts };
}

/** ROC curve(s) as a standalone SVG document. */
export function rocCurveSvg(series: readonly RocSeries[], title: string, subtitle?: string): string {
  const { W, H, m, pw, ph, x, y, parts } = unitSquarePlot(560, 560, 64, title, subtitle);
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="${INK}" stroke-width="1.2"/>`,
  );
  // Chance diagonal.
  parts.push(
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#9aa5b1" stroke-width="1.2" stroke-dasharray="6 5"/>`,
  );
  // Axis labels.
  parts.push(
    `<text x="${m.left + pw / 2}" y="${H - 18}" text-anchor="middle" font-size="14" fill="${INK}">False positive rate (1 − specificity)</text>`,
  );
  parts.push(
    `<text transform="translate(22 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="14" fill="${INK}">True positive rate (sensitivity)</text>`,
  );
  // Curves, the first (overall) drawn last so it stays on top.
  const drawn = series.map((s, i) => ({ ...s, colour: s.colour ?? CURVE_COLOURS[i % CURVE_COLOURS.length]! }));
  for (const s of [...drawn].reverse()) {
    const pts = s.curve.fpr.map((f, i) => `${num(x(f))},${num(y(s.curve.tpr[i]!))}`).join(' ');
    const width = drawn.length > 1 && s === drawn[0] ? 3 : 2.2;
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${s.colour}" stroke-width="${width}" stroke-linejoin="round" stroke-linecap="round"/>`,
    );
    if (s.operatingPoint) {
      const op = s.operatingPoint;
      parts.push(
        `<circle cx="${num(x(op.fpr))}" cy="${num(y(op.tpr))}" r="5.5" fill="#ffffff" stroke="${s.colour}" stroke-width="2.2"/>`,
      );
    }
  }
  // Legend, bottom right inside the plot (the empty corner of a ROC plot).
  const rowH = 20;
  const opLine = drawn.find((s) => s.operatingPoint);
  const rows = drawn.length + (opLine ? 1 : 0);
  const labels = drawn.map((s) => `${s.label} (AUC ${s.auc === null ? 'n/a' : s.auc.toFixed(3)})`);
  const opText = opLine ? `threshold ${opLine.operatingPoint!.threshold}` : '';
  const longest = Math.max(...labels.map((l) => l.length), opText.length);
  const lw = Math.min(pw - 20, 44 + longest * 7.1);
  const lh = rows * rowH + 12;
  const lx = m.left + pw - lw - 10;
  const ly = m.top + ph - lh - 10;
  parts.push(
    `<rect x="${num(lx)}" y="${num(ly)}" width="${num(lw)}" height="${lh}" rx="4" fill="#ffffff" fill-opacity="0.92" stroke="#cbd2d9"/>`,
  );
  drawn.forEach((s, i) => {
    const cy = ly + 16 + i * rowH;
    parts.push(`<line x1="${num(lx + 10)}" y1="${num(cy - 4)}" x2="${num(lx + 32)}" y2="${num(cy - 4)}" stroke="${s.colour}" stroke-width="3"/>`);
    parts.push(`<text x="${num(lx + 40)}" y="${num(cy)}" font-size="12.5" fill="${INK}">${escapeHtml(labels[i]!)}</text>`);
  });
  if (opLine) {
    const cy = ly + 16 + drawn.length * rowH;
    parts.push(`<circle cx="${num(lx + 21)}" cy="${num(cy - 4)}" r="5" fill="#ffffff" stroke="${opLine.colour}" stroke-width="2"/>`);
    parts.push(`<text x="${num(lx + 40)}" y="${num(cy)}" font-size="12.5" fill="${INK}">${escapeHtml(opText)}</text>`);
  }
  return svgDocument(W, H, title, parts);
}

function svgDocument(w: number, h: number, title: string, parts: string[]): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="${FONT}" role="img">\n` +
    `<title>${escapeHtml(title)}</title>\n${parts.join('\n')}\n</svg>\n`
  );
}

/** Blend white to the report blue by t in [0, 1]. */
function shade(t: number): string {
  const a = [255, 255, 255];
  const b = [16, 82, 160];
  const c = a.map((v, i) => Math.round(v + (b[i]! - v) * t));
  return `rgb(${c.join(',')})`;
}

/**
 * 2x2 confusion matrix: rows = actual (normal, abnormal), columns = predicted (normal, abnormal), as
 * sklearn.metrics.confusion_matrix lays it out. Each cell: count, and its share of the actual row.
 */
export function confusionMatrixSvg(cm: ConfusionMatrix, title: string, subtitle?: string): string {
  const W = 480;
  const H = 440;
  const cell = 140;
  const gx = 160;
  const gy = subtitle ? 110 : 96;
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="30" text-anchor="middle" font-size="18" font-weight="600" fill="${INK}">${escapeHtml(title)}</text>`);
  if (subtitle) {
    parts.push(`<text x="${W / 2}" y="52" text-anchor="middle" font-size="13" fill="${MUTED}">${escapeHtml(subtitle)}</text>`);
  }
  const rows = [
    { name: 'Normal', cells: [{ tag: 'TN', n: cm.tn }, { tag: 'FP', n: cm.fp }] },
    { name: 'Abnormal', cells: [{ tag: 'FN', n: cm.fn }, { tag: 'TP', n: cm.tp }] },
  ];
  parts.push(
    `<text x="${gx + cell}" y="${gy - 32}" text-anchor="middle" font-size="14" font-weight="600" fill="${INK}">Predicted</text>`,
  );
  ['Normal', 'Abnormal'].forEach((name, c) => {
    parts.push(`<text x="${gx + c * cell + cell / 2}" y="${gy - 10}" text-anchor="middle" font-size="13" fill="${MUTED}">${name}</text>`);
  });
  parts.push(
    `<text transform="translate(${gx - 92} ${gy + cell}) rotate(-90)" text-anchor="middle" font-size="14" font-weight="600" fill="${INK}">Actual</text>`,
  );
  rows.forEach((row, r) => {
    const total = row.cells[0]!.n + row.cells[1]!.n;
    parts.push(
      `<text x="${gx - 12}" y="${gy + r * cell + cell / 2 + 4}" text-anchor="end" font-size="13" fill="${MUTED}">${row.name}</text>`,
    );
    row.cells.forEach((c, col) => {
      const frac = total === 0 ? 0 : c.n / total;
      const cx = gx + col * cell;
      const cy = gy + r * cell;
      const dark = frac > 0.55;
      const text = dark ? '#ffffff' : INK;
      parts.push(`<rect x="${cx}" y="${cy}" width="${cell}" height="${cell}" fill="${shade(frac)}" stroke="#ffffff" stroke-width="2"/>`);
      parts.push(`<text x="${cx + 10}" y="${cy + 20}" font-size="12" fill="${dark ? '#dbe7f5' : MUTED}">${c.tag}</text>`);
      parts.push(`<text x="${cx + cell / 2}" y="${cy + cell / 2 + 6}" text-anchor="middle" font-size="28" font-weight="600" fill="${text}">${c.n}</text>`);
      parts.push(
        `<text x="${cx + cell / 2}" y="${cy + cell / 2 + 30}" text-anchor="middle" font-size="13" fill="${text}">${total === 0 ? '–' : `${(frac * 100).toFixed(1)}% of row`}</text>`,
      );
    });
  });
  parts.push(`<rect x="${gx}" y="${gy}" width="${2 * cell}" height="${2 * cell}" fill="none" stroke="${INK}" stroke-width="1.2"/>`);
  const n = cm.tp + cm.fp + cm.tn + cm.fn;
  parts.push(
    `<text x="${gx + cell}" y="${gy + 2 * cell + 34}" text-anchor="middle" font-size="12.5" fill="${MUTED}">n = ${n}; shading = share of the actual row</text>`,
  );
  return svgDocument(W, H, title, parts);
}

/** One reliability bin for the diagram (see src/evaluate/calibration.ts). */
export interface ReliabilityPoint {
  lo: number;
  hi: number;
  count: number;
  confidence: number | null;
  frequency: number | null;
}

/**
 * Reliability diagram: observed frequency of abnormal per equal-width probability bin (bars) against the bin's
 * mean predicted probability (dots), the diagonal of perfect calibration, and bin counts as a strip underneath.
 */
export function reliabilitySvg(bins: readonly ReliabilityPoint[], title: string, subtitle?: string): string {
  const { W, H, m, pw, ph, x, y, parts: p } = unitSquarePlot(560, 600, 104, title, subtitle);
  p.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="${MUTED}" stroke-dasharray="5 4" stroke-width="1.5"/>`);
  const maxCount = Math.max(1, ...bins.map((b) => b.count));
  for (const b of bins) {
    if (b.count && b.frequency !== null) {
      p.push(`<rect x="${num(x(b.lo) + 1)}" y="${num(y(b.frequency))}" width="${num(x(b.hi) - x(b.lo) - 2)}" height="${num(y(0) - y(b.frequency))}" fill="${CURVE_COLOURS[1]}" fill-opacity="0.55"/>`);
      p.push(`<circle cx="${num(x(b.confidence!))}" cy="${num(y(b.frequency))}" r="3.5" fill="${CURVE_COLOURS[5]}"/>`);
    }
    const hh = (b.count / maxCount) * 30;
    p.push(`<rect x="${num(x(b.lo) + 1)}" y="${num(H - 24 - hh)}" width="${num(x(b.hi) - x(b.lo) - 2)}" height="${num(hh)}" fill="${MUTED}" fill-opacity="0.6"/>`);
  }
  p.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 44}" text-anchor="middle" font-size="13" fill="${INK}">Predicted probability of abnormal</text>`);
  p.push(`<text x="${m.left - 50}" y="${m.top + ph / 2}" text-anchor="middle" font-size="13" fill="${INK}" transform="rotate(-90 ${m.left - 50} ${m.top + ph / 2})">Observed frequency of abnormal</text>`);
  p.push(`<text x="${m.left}" y="${H - 6}" font-size="11" fill="${MUTED}">grey: cases per bin (max ${maxCount}) · dots: mean prediction · dashed: perfect</text>`);
  return svgDocument(W, H, title, p);
}
