/**
 * The seed report's tables, as data and as text / Markdown / HTML:
 *  - Table 2: per region and overall — count, specificity, sensitivity, precision, F1, accuracy, Cohen's kappa and
 *    AUC, each with its bootstrap 95% interval;
 *  - Table 3: our study-level kappa per region beside the MURA paper's three radiologists and its DenseNet-169
 *    (reference-results.json, cited there; measured on MURA's hidden test set, so not comparable one-to-one).
 */
import { REGIONS, type Region } from '../data/types.js';
import type { LevelReport, MetricReport } from './evaluate.js';
import type { MetricName } from './metrics.js';

export type Group = Region | 'overall';

export const GROUP_LABELS: Record<Group, string> = {
  XR_ELBOW: 'Elbow',
  XR_FINGER: 'Finger',
  XR_FOREARM: 'Forearm',
  XR_HAND: 'Hand',
  XR_HUMERUS: 'Humerus',
  XR_SHOULDER: 'Shoulder',
  XR_WRIST: 'Wrist',
  overall: 'Overall',
};

/** Table 2's metric columns, in the seed report's order. */
export const TABLE2_METRICS = ['specificity', 'sensitivity', 'precision', 'f1', 'accuracy', 'kappa', 'auc'] as const;
export const METRIC_LABELS: Record<MetricName, string> = {
  accuracy: 'Accuracy',
  sensitivity: 'Sensitivity',
  specificity: 'Specificity',
  precision: 'Precision',
  f1: 'F1',
  kappa: 'Kappa',
  auc: 'AUC',
};

export interface TableCell {
  value: number | null;
  ci: [number, number] | null;
  /** Why the value is null. */
  reason?: string;
}

export interface Table2Row {
  group: Group;
  label: string;
  count: number;
  positives: number;
  negatives: number;
  cells: Record<(typeof TABLE2_METRICS)[number], TableCell>;
}

function cell(m: MetricReport, name: MetricName): TableCell {
  const c: TableCell = { value: m.values[name], ci: m.intervals.ci[name] };
  const reason = m.nullReasons[name];
  if (reason) c.reason = reason;
  return c;
}

function groups(level: LevelReport): [Group, MetricReport][] {
  const out: [Group, MetricReport][] = [];
  for (const r of REGIONS) {
    const m = level.regions[r];
    if (m) out.push([r, m]);
  }
  out.push(['overall', level.overall]);
  return out;
}

export function table2(level: LevelReport): Table2Row[] {
  return groups(level).map(([group, m]) => {
    const cells = {} as Table2Row['cells'];
    for (const name of TABLE2_METRICS) cells[name] = cell(m, name);
    return { group, label: GROUP_LABELS[group], count: m.count, positives: m.positives, negatives: m.negatives, cells };
  });
}

// ---- reference results (Table 3) ----

export type ReferenceRater = 'radiologist1' | 'radiologist2' | 'radiologist3' | 'model';
export const REFERENCE_RATERS: readonly ReferenceRater[] = ['radiologist1', 'radiologist2', 'radiologist3', 'model'];

export interface ReferenceValue {
  value: number;
  ci: [number, number];
  verified: boolean;
  source?: string;
  note?: string;
}

export interface ReferenceResults {
  citation: string;
  url: string;
  what: string;
  test_set: string;
  published_interval_caveat: string;
  verification: { note: string; checked: string; sources: Record<string, string> };
  rater_names: Record<ReferenceRater, string>;
  kappa: Record<Group, Record<ReferenceRater, ReferenceValue>>;
}

export interface Table3Row {
  group: Group;
  label: string;
  ours: TableCell;
  reference: Record<ReferenceRater, ReferenceValue | null>;
}

/** Our study-level kappa per region beside the published ones; every region with a published value is listed. */
export function table3(study: LevelReport, reference: ReferenceResults): Table3Row[] {
  const rows: Table3Row[] = [];
  for (const group of [...REGIONS, 'overall'] as Group[]) {
    const m = group === 'overall' ? study.overall : study.regions[group];
    const ref = reference.kappa[group];
    const refs = {} as Table3Row['reference'];
    for (const r of REFERENCE_RATERS) refs[r] = ref?.[r] ?? null;
    rows.push({
      group,
      label: GROUP_LABELS[group],
      ours: m ? cell(m, 'kappa') : { value: null, ci: null, reason: 'no studies of this type in the predictions' },
      reference: refs,
    });
  }
  return rows;
}

// ---- formatting ----

export function fmt(v: number | null, digits = 3): string {
  return v === null ? 'n/a' : v.toFixed(digits);
}

/** "0.812 (0.780–0.843)"; "n/a" for a null value; the value alone when the interval is null. */
export function formatCell(c: { value: number | null; ci: [number, number] | null }, digits = 3, dash = '–'): string {
  if (c.value === null) return 'n/a';
  if (!c.ci) return fmt(c.value, digits);
  return `${fmt(c.value, digits)} (${fmt(c.ci[0], digits)}${dash}${fmt(c.ci[1], digits)})`;
}

const UNVERIFIED_MARK = '†';

function formatReference(v: ReferenceValue | null): string {
  if (!v) return 'n/a';
  return formatCell(v) + (v.verified ? '' : UNVERIFIED_MARK);
}

function countText(r: { count: number; positives: number; negatives: number }): string {
  return `${r.count} (${r.positives}/${r.negatives})`;
}

function padTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...r[c]!].length)));
  return rows
    .map((r) => r.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  '))
    .join('\n');
}

/** Plain-text Table 2 for a terminal. `unit` names what count counts (images / studies). */
export function table2Text(rows: Table2Row[], unit: string): string {
  const head = ['Region', `${unit} (abn/norm)`, ...TABLE2_METRICS.map((m) => METRIC_LABELS[m])];
  const body = rows.map((r) => [r.label, countText(r), ...TABLE2_METRICS.map((m) => formatCell(r.cells[m], 3, '-'))]);
  return padTable([head, ...body]);
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export function table2Markdown(rows: Table2Row[], unit: string): string {
  const head = ['Region', `${unit} (abn/norm)`, ...TABLE2_METRICS.map((m) => METRIC_LABELS[m])];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? ':---' : '---:')).join('|')}|`,
    ...rows.map(
      (r) =>
        `| ${[r.group === 'overall' ? `**${r.label}**` : r.label, countText(r), ...TABLE2_METRICS.map((m) => formatCell(r.cells[m]))]
          .map(mdEscape)
          .join(' | ')} |`,
    ),
  ];
  return lines.join('\n');
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function htmlCell(c: TableCell): string {
  if (c.value === null) return `<td class="na" title="${escapeHtml(c.reason ?? 'undefined')}">n/a</td>`;
  const ci = c.ci ? `<span class="ci">${fmt(c.ci[0])}–${fmt(c.ci[1])}</span>` : '';
  return `<td><span class="v">${fmt(c.value)}</span>${ci}</td>`;
}

export function table2Html(rows: Table2Row[], unit: string): string {
  const head = ['Region', `${unit}<br><small>abn / norm</small>`, ...TABLE2_METRICS.map((m) => METRIC_LABELS[m])];
  const body = rows
    .map(
      (r) =>
        `<tr${r.group === 'overall' ? ' class="overall"' : ''}><th scope="row">${escapeHtml(r.label)}</th>` +
        `<td>${r.count}<br><small>${r.positives} / ${r.negatives}</small></td>` +
        TABLE2_METRICS.map((m) => htmlCell(r.cells[m])).join('') +
        '</tr>',
    )
    .join('\n');
  return `<table class="metrics"><thead><tr>${head.map((h) => `<th scope="col">${h}</th>`).join('')}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
}

export function table3Text(rows: Table3Row[], reference: ReferenceResults): string {
  const head = ['Region', 'Ours (kappa)', ...REFERENCE_RATERS.map((r) => reference.rater_names[r])];
  const body = rows.map((r) => [r.label, formatCell(r.ours, 3, '-'), ...REFERENCE_RATERS.map((k) => formatReference(r.reference[k]).replace('–', '-'))]);
  return padTable([head, ...body]);
}

export function table3Markdown(rows: Table3Row[], reference: ReferenceResults): string {
  const head = ['Region', 'Ours (kappa)', ...REFERENCE_RATERS.map((r) => reference.rater_names[r])];
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? ':---' : '---:')).join('|')}|`,
    ...rows.map(
      (r) =>
        `| ${[r.group === 'overall' ? `**${r.label}**` : r.label, formatCell(r.ours), ...REFERENCE_RATERS.map((k) => formatReference(r.reference[k]))]
          .map(mdEscape)
          .join(' | ')} |`,
    ),
  ].join('\n');
}

export function table3Html(rows: Table3Row[], reference: ReferenceResults): string {
  const head = ['Region', 'Ours', ...REFERENCE_RATERS.map((r) => reference.rater_names[r])];
  const refCell = (v: ReferenceValue | null): string => {
    if (!v) return '<td class="na">n/a</td>';
    const mark = v.verified ? '' : `<sup class="unverified" title="not confirmed against the paper">${UNVERIFIED_MARK}</sup>`;
    return `<td><span class="v">${fmt(v.value)}</span>${mark}<span class="ci">${fmt(v.ci[0])}–${fmt(v.ci[1])}</span></td>`;
  };
  const body = rows
    .map(
      (r) =>
        `<tr${r.group === 'overall' ? ' class="overall"' : ''}><th scope="row">${escapeHtml(r.label)}</th>${htmlCell(r.ours)}` +
        REFERENCE_RATERS.map((k) => refCell(r.reference[k])).join('') +
        '</tr>',
    )
    .join('\n');
  return `<table class="metrics"><thead><tr>${head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('')}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
}

/** The caveat printed under every Table 3. */
export function table3Caveat(reference: ReferenceResults): string {
  return (
    `Reference columns: ${reference.citation} ${reference.test_set} ` +
    `${UNVERIFIED_MARK} = value not confirmed against a copy of the paper (see reference-results.json). ` +
    'Ours: study-level kappa with a study-bootstrap 95% interval.'
  );
}

// ---- one level at two thresholds (the stored operating point beside 0.5) ----

const COMPARED = ['kappa', 'sensitivity', 'specificity', 'accuracy'] as const;

export interface ThresholdComparisonRow {
  label: string;
  count: number;
  /** Per metric: [at the first threshold, at the second]. */
  cells: Record<(typeof COMPARED)[number], [TableCell, TableCell]>;
}

/** Table 2's threshold-dependent columns for the same cases at two thresholds (`a` headline, `b` the other). */
export function thresholdComparison(a: LevelReport, b: LevelReport): ThresholdComparisonRow[] {
  const gb = new Map(groups(b));
  return groups(a).map(([group, m]) => {
    const mb = gb.get(group)!;
    const cells = {} as ThresholdComparisonRow['cells'];
    for (const name of COMPARED) cells[name] = [cell(m, name), cell(mb, name)];
    return { label: GROUP_LABELS[group], count: m.count, cells };
  });
}

function comparisonHead(ta: number, tb: number): string[] {
  return ['Region', 'n', ...COMPARED.flatMap((m) => [`${METRIC_LABELS[m]} @${fmt(ta, 3)}`, `@${fmt(tb, 3)}`])];
}

export function thresholdComparisonText(rows: ThresholdComparisonRow[], ta: number, tb: number): string {
  const body = rows.map((r) => [r.label, String(r.count), ...COMPARED.flatMap((m) => [formatCell(r.cells[m][0], 3, '-'), formatCell(r.cells[m][1], 3, '-')])]);
  return padTable([comparisonHead(ta, tb), ...body]);
}

export function thresholdComparisonMarkdown(rows: ThresholdComparisonRow[], ta: number, tb: number): string {
  const head = comparisonHead(ta, tb);
  const body = rows.map((r) => [r.label, String(r.count), ...COMPARED.flatMap((m) => [formatCell(r.cells[m][0]), formatCell(r.cells[m][1])])]);
  return [head, head.map(() => '---'), ...body].map((r) => `| ${r.map(mdEscape).join(' | ')} |`).join('\n');
}

export function thresholdComparisonHtml(rows: ThresholdComparisonRow[], ta: number, tb: number): string {
  const head = comparisonHead(ta, tb);
  const body = rows.map((r) => [r.label, String(r.count), ...COMPARED.flatMap((m) => [formatCell(r.cells[m][0]), formatCell(r.cells[m][1])])]);
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${body.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}
