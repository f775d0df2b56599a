/**
 * The evaluation report: one self-contained HTML file (inline CSS, figures inline as SVG — it opens offline and
 * can be mailed) and the same content as Markdown (figures linked as PNG files), plus the files behind them:
 * image- and study-level predictions CSVs, the figures as SVG and PNG, and metrics.json. Every write is atomic.
 */
import { join } from 'node:path';
import { REGIONS, type Region } from '../data/types.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { evaluationJson, LEVELS, type EvaluationResult, type Level, type MetricReport } from './evaluate.js';
import { confusionMatrixSvg, CURVE_COLOURS, reliabilitySvg, rocCurveSvg, type RocSeries } from './plots.js';
import { loadReferenceResults, svgToPng } from './io.js';
import { imagePredictionsCsv, studyPredictionsCsv } from './predictions.js';
import {
  escapeHtml,
  fmt,
  GROUP_LABELS,
  table2,
  table2Html,
  table2Markdown,
  table3,
  table3Caveat,
  table3Html,
  table3Markdown,
  type Group,
} from './tables.js';

export type DataKind = 'mura' | 'synthetic';

/** Optional context shown in the report; all fields may be omitted. */
export interface ReportContext {
  title?: string;
  /** 'mura' adds the research-use notice (MURA licence); default: inferred from the dataset root folder names. */
  dataKind?: DataKind;
  /** Where the predictions came from (file, run). */
  source?: string;
  /** Which split was evaluated (e.g. "valid", "test"). */
  split?: string;
  /** Training / model configuration to record (shown as key-value pairs). */
  config?: Record<string, unknown>;
  /** Extra dataset facts to record (shown as key-value pairs beside the computed summary). */
  dataset?: Record<string, unknown>;
  /** Software versions (nextray, node, ...). */
  versions?: Record<string, string>;
  /** Input rows skipped as invalid. */
  badRows?: number;
  /** ISO time stamp; default now. */
  generatedAt?: string;
  /**
   * Temperature scaling the model carries (fitted on validation), with the evaluated set's ECE / Brier of the
   * uncalibrated (T = 1) and calibrated probabilities per level.
   */
  calibration?: { temperature: number; rows: { level: Level; eceBefore: number; eceAfter: number; brierBefore: number; brierAfter: number }[] };
  /** Further sections (e.g. the demo's heatmap gallery and OOD figures), after Calibration; HTML and Markdown bodies. */
  sections?: { title: string; html: string; markdown: string }[];
}

/**
 * Synthetic data is recognised only by a root folder name containing "synth"; anything else is treated as MURA, so
 * the research-use notice errs on the safe side. The synthetic generator writes `MURA-v1.1/` too (and marks its
 * dataset folder with synth.json): a face that knows the dataset folder should pass `dataKind` explicitly.
 */
export function inferDataKind(result: EvaluationResult): DataKind {
  const roots = result.summary.roots;
  return roots.length > 0 && roots.every((r) => /synth/i.test(r)) ? 'synthetic' : 'mura';
}

/**
 * Clause 7 of the MURA Dataset Research Use Agreement (Stanford University School of Medicine), quoted verbatim
 * from the agreement's published text (competitions/mura/agreement.html of stanfordmlgroup.github.io, 2018).
 */
export const MURA_AGREEMENT_CLAUSE_7 =
  'The MURA Dataset has not been reviewed or approved by the Food and Drug Administration, and is for non-clinical, ' +
  'Research Use Only. In no event shall data or images generated through the use of the MURA Dataset be used or ' +
  'relied upon in the diagnosis or provision of patient care.';

export const MURA_NOTICE =
  'Research use only. These results come from a model trained or evaluated on MURA. The MURA Dataset Research Use ' +
  `Agreement, clause 7: "${MURA_AGREEMENT_CLAUSE_7}"`;

export const SYNTHETIC_NOTICE =
  'Synthetic data: these numbers describe the pipeline on generated images, not performance on real radiographs.';

export interface Figure {
  /** File base name under plots/, e.g. `study-roc-overall`. */
  name: string;
  level: Level;
  kind: 'roc' | 'confusion' | 'reliability';
  group: Group | 'regions';
  title: string;
  svg: string;
}

const LEVEL_NAMES: Record<Level, string> = { image: 'Image level', study: 'Study level' };
const UNIT: Record<Level, string> = { image: 'Images', study: 'Studies' };

function operatingPoint(m: MetricReport, threshold: number): RocSeries['operatingPoint'] {
  const { sensitivity, specificity } = m.values;
  if (sensitivity === null || specificity === null) return undefined;
  return { fpr: 1 - specificity, tpr: sensitivity, threshold };
}

/** Every figure of the report, built from the result. */
export function buildFigures(result: EvaluationResult): Figure[] {
  const figures: Figure[] = [];
  const t = result.threshold;
  for (const level of LEVELS) {
    const rep = result[level];
    const groups: [Group, MetricReport][] = [['overall', rep.overall]];
    for (const r of REGIONS) if (rep.regions[r]) groups.push([r, rep.regions[r]]);
    for (const [group, m] of groups) {
      const label = GROUP_LABELS[group];
      const sub = `${LEVEL_NAMES[level]} · n = ${m.count} (${m.positives} abnormal, ${m.negatives} normal)`;
      if (m.roc) {
        const series: RocSeries = { label, curve: m.roc, auc: m.values.auc, colour: CURVE_COLOURS[1]! };
        const op = operatingPoint(m, t);
        if (op) series.operatingPoint = op;
        figures.push({ name: `${level}-roc-${group}`, level, kind: 'roc', group, title: `ROC — ${label}`, svg: rocCurveSvg([series], `ROC curve — ${label}`, sub) });
      }
      figures.push({
        name: `${level}-confusion-${group}`,
        level,
        kind: 'confusion',
        group,
        title: `Confusion matrix — ${label}`,
        svg: confusionMatrixSvg(m.confusion, `Confusion matrix — ${label}`, `${LEVEL_NAMES[level]} · abnormal when p > ${t}`),
      });
    }
    const cal = rep.overall.calibration;
    figures.push({
      name: `${level}-reliability-overall`,
      level,
      kind: 'reliability',
      group: 'overall',
      title: `Reliability — ${LEVEL_NAMES[level]}`,
      svg: reliabilitySvg(cal.bins, `Reliability diagram — ${LEVEL_NAMES[level]}`, `ECE ${cal.ece.toFixed(3)} (${cal.bins.length} bins) · Brier ${cal.brier.toFixed(3)} · n = ${cal.n}`),
    });
    const regionSeries: RocSeries[] = [];
    if (rep.overall.roc) regionSeries.push({ label: 'Overall', curve: rep.overall.roc, auc: rep.overall.values.auc, colour: CURVE_COLOURS[0]! });
    REGIONS.forEach((r, i) => {
      const m = rep.regions[r];
      if (m?.roc) regionSeries.push({ label: GROUP_LABELS[r], curve: m.roc, auc: m.values.auc, colour: CURVE_COLOURS[i + 1]! });
    });
    if (regionSeries.length > 1) {
      figures.push({
        name: `${level}-roc-regions`,
        level,
        kind: 'roc',
        group: 'regions',
        title: 'ROC — all regions',
        svg: rocCurveSvg(regionSeries, 'ROC curves by region', LEVEL_NAMES[level]),
      });
    }
  }
  return figures;
}

function kvRows(obj: Record<string, unknown>): [string, string][] {
  return Object.entries(obj).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
}

function thresholdText(result: EvaluationResult): string {
  const c = result.thresholdChoice;
  if (!c) return `${result.threshold} (fixed)`;
  return (
    `${result.threshold} — chosen on ${c.validationCases} validation studies as the largest threshold reaching ` +
    `study-level sensitivity ≥ ${c.targetSensitivity} (reached ${fmt(c.validationSensitivity)}, specificity ` +
    `${fmt(c.validationSpecificity)} there)`
  );
}

function methodsText(result: EvaluationResult): string[] {
  const b = result.bootstrap;
  return [
    `Decision rule: a case is called abnormal when its probability is strictly greater than the threshold (${result.threshold}).`,
    'Study level, as in MURA: a study\'s probability is the mean of its views\' probabilities; its label is the study folder\'s.',
    'Metrics as scikit-learn computes them: sensitivity = recall = TP/(TP+FN), specificity = TN/(TN+FP), precision = TP/(TP+FP), F1 = 2TP/(2TP+FP+FN), unweighted Cohen\'s kappa; AUC = trapezoidal area under the ROC curve over distinct thresholds (roc_auc_score; ties count one half). ROC vertices as roc_curve(drop_intermediate=False).',
    `Intervals: ${Math.round((1 - b.alpha) * 100)}% percentile bootstrap, B = ${b.replicates} replicates, seed ${String(b.seed)}. Each replicate resamples the STUDIES of the group (region or all) with replacement; at image level a drawn study brings all its images (cluster bootstrap), because views of one study are not independent.`,
    'n/a: the value is undefined on these cases (e.g. sensitivity without abnormal cases); an interval is omitted when the metric was undefined in more than half of the replicates.',
  ];
}

const CSS = `
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; --accent:#10529f; --warn-bg:#fff4e5; --warn:#8a4b00; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 "DejaVu Sans","Helvetica Neue",Helvetica,Arial,sans-serif; color:var(--ink); background:#f5f7fa; }
main { max-width:1180px; margin:0 auto; padding:32px 28px 64px; background:#fff; min-height:100vh; }
h1 { font-size:26px; margin:0 0 4px; } h2 { font-size:20px; margin:36px 0 10px; padding-bottom:6px; border-bottom:2px solid var(--line); }
h3 { font-size:16px; margin:22px 0 8px; }
.sub { color:var(--muted); margin:0 0 18px; }
.notice { padding:12px 16px; border-left:4px solid #d97706; background:var(--warn-bg); color:var(--warn); margin:16px 0; border-radius:4px; }
.notice.synthetic { border-color:#2563eb; background:#eef4ff; color:#1e3a8a; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:12px; margin:14px 0; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .n { font-size:22px; font-weight:600; }
.card .ci { display:block; }
table { border-collapse:collapse; width:100%; margin:8px 0 6px; font-variant-numeric:tabular-nums; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:right; vertical-align:top; }
th:first-child, td:first-child { text-align:left; }
thead th { background:#f0f4f8; font-size:13px; }
tr.overall th, tr.overall td { font-weight:600; border-top:2px solid var(--ink); }
td .v { display:block; } td .ci, .card .ci { color:var(--muted); font-size:12px; font-weight:400; }
td.na { color:var(--muted); }
sup.unverified { color:#b45309; }
.kv td { text-align:left; } .kv td:first-child { width:220px; color:var(--muted); }
.caption { color:var(--muted); font-size:13px; margin:4px 0 0; }
.figs { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:16px; margin:12px 0; }
.figs.big { grid-template-columns:repeat(auto-fill,minmax(420px,1fr)); }
figure { margin:0; border:1px solid var(--line); border-radius:8px; padding:8px; }
figure svg { width:100%; height:auto; display:block; }
details { margin:12px 0; } summary { cursor:pointer; font-weight:600; }
ul.methods li { margin:4px 0; }
footer { margin-top:40px; color:var(--muted); font-size:12px; }
`;

function kvTable(rows: [string, string][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`;
}

function summaryRows(result: EvaluationResult, ctx: ReportContext): [string, string][] {
  const s = result.summary;
  const rows: [string, string][] = [
    ['Images', String(s.images)],
    ['Studies', String(s.studies)],
    ['Patients', String(s.patients)],
    ['Dataset root(s)', s.roots.join(', ')],
    ['MURA split(s) in the paths', s.splits.join(', ')],
  ];
  if (ctx.split) rows.push(['Evaluated split', ctx.split]);
  if (ctx.source) rows.push(['Predictions', ctx.source]);
  if (ctx.badRows !== undefined) rows.push(['Rows skipped as invalid', String(ctx.badRows)]);
  for (const r of REGIONS) {
    const e = s.regions[r];
    if (e) rows.push([GROUP_LABELS[r], `${e.studies} studies (${e.abnormalStudies} abnormal, ${e.normalStudies} normal), ${e.images} images, ${e.patients} patients`]);
  }
  if (ctx.dataset) rows.push(...kvRows(ctx.dataset));
  return rows;
}

function card(k: string, m: MetricReport, name: 'auc' | 'kappa' | 'sensitivity' | 'specificity'): string {
  const v = m.values[name];
  const ci = m.intervals.ci[name];
  return `<div class="card"><div class="k">${k}</div><div class="n">${fmt(v)}</div>${ci ? `<span class="ci">95% CI ${fmt(ci[0])}–${fmt(ci[1])}</span>` : ''}</div>`;
}

/** The self-contained HTML report. */
export function renderHtmlReport(result: EvaluationResult, figures: readonly Figure[], ctx: ReportContext = {}): string {
  const kind = ctx.dataKind ?? inferDataKind(result);
  const title = ctx.title ?? 'neXt-Ray evaluation report';
  const generated = ctx.generatedAt ?? new Date().toISOString();
  const ref = loadReferenceResults();
  const fig = (f: Figure | undefined): string => (f ? `<figure aria-label="${escapeHtml(f.title)}">${f.svg.replace(/^<\?xml[^>]*>/, '')}</figure>` : '');
  const find = (level: Level, kind: Figure['kind'], group: Figure['group']): Figure | undefined =>
    figures.find((f) => f.level === level && f.kind === kind && f.group === group);
  const study = result.study.overall;
  const parts: string[] = [];
  parts.push(`<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`);
  parts.push(`<title>${escapeHtml(title)}</title><style>${CSS}</style></head><body><main>`);
  parts.push(`<h1>${escapeHtml(title)}</h1><p class="sub">Generated ${escapeHtml(generated)}${ctx.split ? ` · split: ${escapeHtml(ctx.split)}` : ''}</p>`);
  if (kind === 'mura') parts.push(`<div class="notice"><strong>Research use only.</strong> ${escapeHtml(MURA_NOTICE.replace(/^Research use only\. /, ''))}</div>`);
  else parts.push(`<div class="notice synthetic">${escapeHtml(SYNTHETIC_NOTICE)}</div>`);
  parts.push('<div class="cards">');
  parts.push(card('Study AUC', study, 'auc'), card("Study Cohen's kappa", study, 'kappa'), card('Study sensitivity', study, 'sensitivity'), card('Study specificity', study, 'specificity'));
  parts.push(`<div class="card"><div class="k">Studies / images</div><div class="n">${result.summary.studies} / ${result.summary.images}</div></div>`);
  parts.push('</div>');
  parts.push(`<p><strong>Threshold:</strong> ${escapeHtml(thresholdText(result))}</p>`);

  parts.push('<h2>Table 2 — performance by region</h2>');
  for (const level of ['study', 'image'] as const) {
    parts.push(`<h3>${LEVEL_NAMES[level]}</h3>`);
    parts.push(table2Html(table2(result[level]), UNIT[level]));
  }
  parts.push(`<p class="caption">Each cell: point estimate and ${Math.round((1 - result.bootstrap.alpha) * 100)}% bootstrap interval (studies resampled, B = ${result.bootstrap.replicates}). Count: cases (abnormal / normal).</p>`);

  parts.push("<h2>Table 3 — Cohen's kappa beside the MURA paper</h2>");
  parts.push(table3Html(table3(result.study, ref), ref));
  parts.push(`<p class="caption">${escapeHtml(table3Caveat(ref))} ${escapeHtml(ref.published_interval_caveat)}</p>`);

  parts.push('<h2>Calibration</h2>');
  parts.push(calibrationHtml(result, ctx));
  parts.push('<div class="figs big">', fig(find('study', 'reliability', 'overall')), fig(find('image', 'reliability', 'overall')), '</div>');

  for (const sec of ctx.sections ?? []) parts.push(`<h2>${escapeHtml(sec.title)}</h2>`, sec.html);

  parts.push('<h2>Figures</h2><h3>Study level</h3><div class="figs big">');
  parts.push(fig(find('study', 'roc', 'overall')), fig(find('study', 'confusion', 'overall')), fig(find('study', 'roc', 'regions')));
  parts.push('</div>');
  for (const level of LEVELS) {
    const perRegion = REGIONS.filter((r) => result[level].regions[r]);
    if (level === 'image') {
      parts.push('<h3>Image level</h3><div class="figs big">');
      parts.push(fig(find('image', 'roc', 'overall')), fig(find('image', 'confusion', 'overall')), fig(find('image', 'roc', 'regions')));
      parts.push('</div>');
    }
    parts.push(`<details><summary>${LEVEL_NAMES[level]}: ROC curve and confusion matrix per region</summary><div class="figs">`);
    for (const r of perRegion as Region[]) parts.push(fig(find(level, 'roc', r)), fig(find(level, 'confusion', r)));
    parts.push('</div></details>');
  }

  parts.push('<h2>Data</h2>', kvTable(summaryRows(result, ctx)));
  if (ctx.config && Object.keys(ctx.config).length) parts.push('<h2>Configuration</h2>', kvTable(kvRows(ctx.config)));
  parts.push('<h2>Methods</h2><ul class="methods">');
  for (const m of methodsText(result)) parts.push(`<li>${escapeHtml(m)}</li>`);
  parts.push('</ul>');
  if (ctx.versions && Object.keys(ctx.versions).length) parts.push('<h2>Versions</h2>', kvTable(Object.entries(ctx.versions)));
  parts.push(`<footer>neXt-Ray · ${escapeHtml(ref.citation)}</footer>`);
  parts.push('</main></body></html>\n');
  return parts.join('\n');
}

function calibrationRows(result: EvaluationResult): string[][] {
  const rows: string[][] = [];
  const groupsOf = (level: Level): [string, MetricReport][] => [
    ...REGIONS.filter((r) => result[level].regions[r]).map((r): [string, MetricReport] => [GROUP_LABELS[r], result[level].regions[r]!]),
    ['Overall', result[level].overall],
  ];
  const img = new Map(groupsOf('image'));
  for (const [label, s] of groupsOf('study')) {
    const i = img.get(label)!;
    rows.push([label, s.calibration.ece.toFixed(3), s.calibration.brier.toFixed(3), i.calibration.ece.toFixed(3), i.calibration.brier.toFixed(3)]);
  }
  return rows;
}

const CAL_HEAD = ['Region', 'Study ECE', 'Study Brier', 'Image ECE', 'Image Brier'];
const CAL_CAPTION = 'ECE: expected calibration error, 15 equal-width probability bins; Brier: mean squared error of the probability. Lower is better for both.';

function temperatureRows(ctx: ReportContext): string[][] {
  const c = ctx.calibration;
  if (!c) return [];
  return c.rows.map((r) => [LEVEL_NAMES[r.level], r.eceBefore.toFixed(3), r.eceAfter.toFixed(3), r.brierBefore.toFixed(3), r.brierAfter.toFixed(3)]);
}

function calibrationHtml(result: EvaluationResult, ctx: ReportContext): string {
  const table = (head: string[], rows: string[][]): string =>
    `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  let out = table(CAL_HEAD, calibrationRows(result)) + `<p class="caption">${escapeHtml(CAL_CAPTION)}</p>`;
  if (ctx.calibration) {
    out += `<p>Temperature scaling T = ${ctx.calibration.temperature.toFixed(3)} (fitted on the validation split): this set before (T = 1) and after.</p>`;
    out += table(['Level', 'ECE before', 'ECE after', 'Brier before', 'Brier after'], temperatureRows(ctx));
  }
  return out;
}

function calibrationMarkdown(result: EvaluationResult, ctx: ReportContext): string {
  const md = (head: string[], rows: string[][]): string => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  let out = md(CAL_HEAD, calibrationRows(result)) + '\n\n' + CAL_CAPTION;
  if (ctx.calibration) {
    out += `\n\nTemperature scaling T = ${ctx.calibration.temperature.toFixed(3)} (fitted on the validation split): this set before (T = 1) and after.\n\n`;
    out += md(['Level', 'ECE before', 'ECE after', 'Brier before', 'Brier after'], temperatureRows(ctx));
  }
  return out;
}

/** The Markdown report; figures are linked as `${figureDir}/<name>.png`. */
export function renderMarkdownReport(
  result: EvaluationResult,
  figures: readonly Figure[],
  ctx: ReportContext = {},
  figureDir = 'plots',
): string {
  const kind = ctx.dataKind ?? inferDataKind(result);
  const ref = loadReferenceResults();
  const title = ctx.title ?? 'neXt-Ray evaluation report';
  const img = (f: Figure | undefined): string => (f ? `![${f.title}](${figureDir}/${f.name}.png)` : '');
  const find = (level: Level, k: Figure['kind'], group: Figure['group']): Figure | undefined =>
    figures.find((f) => f.level === level && f.kind === k && f.group === group);
  const out: string[] = [];
  out.push(`# ${title}`, '', `Generated ${ctx.generatedAt ?? new Date().toISOString()}${ctx.split ? ` · split: ${ctx.split}` : ''}`, '');
  out.push(kind === 'mura' ? `> **${MURA_NOTICE}**` : `> ${SYNTHETIC_NOTICE}`, '');
  out.push(`**Threshold:** ${thresholdText(result)}`, '');
  out.push('## Table 2 — performance by region', '');
  for (const level of ['study', 'image'] as const) {
    out.push(`### ${LEVEL_NAMES[level]}`, '', table2Markdown(table2(result[level]), UNIT[level]), '');
  }
  out.push(
    `Each cell: point estimate (${Math.round((1 - result.bootstrap.alpha) * 100)}% bootstrap interval; studies resampled, B = ${result.bootstrap.replicates}). Count: cases (abnormal/normal).`,
    '',
  );
  out.push("## Table 3 — Cohen's kappa beside the MURA paper", '', table3Markdown(table3(result.study, ref), ref), '');
  out.push(table3Caveat(ref), ref.published_interval_caveat, '');
  out.push('## Calibration', '', calibrationMarkdown(result, ctx), '');
  out.push(img(find('study', 'reliability', 'overall')), img(find('image', 'reliability', 'overall')), '');
  for (const sec of ctx.sections ?? []) out.push(`## ${sec.title}`, '', sec.markdown, '');
  out.push('## Figures', '');
  for (const level of LEVELS) {
    out.push(`### ${LEVEL_NAMES[level]}`, '');
    out.push(img(find(level, 'roc', 'overall')), img(find(level, 'confusion', 'overall')), img(find(level, 'roc', 'regions')), '');
    const links = REGIONS.filter((r) => result[level].regions[r]).map(
      (r) => `${GROUP_LABELS[r]}: [ROC](${figureDir}/${level}-roc-${r}.png) · [confusion](${figureDir}/${level}-confusion-${r}.png)`,
    );
    if (links.length) out.push('Per region — ' + links.join(' — '), '');
  }
  out.push('## Data', '', '| | |', '|:---|:---|');
  for (const [k, v] of summaryRows(result, ctx)) out.push(`| ${k.replace(/\|/g, '\\|')} | ${v.replace(/\|/g, '\\|')} |`);
  out.push('');
  if (ctx.config && Object.keys(ctx.config).length) {
    out.push('## Configuration', '', '| | |', '|:---|:---|');
    for (const [k, v] of kvRows(ctx.config)) out.push(`| ${k} | ${v.replace(/\|/g, '\\|')} |`);
    out.push('');
  }
  out.push('## Methods', '', ...methodsText(result).map((m) => `- ${m}`), '');
  if (ctx.versions && Object.keys(ctx.versions).length) {
    out.push('## Versions', '', '| | |', '|:---|:---|', ...Object.entries(ctx.versions).map(([k, v]) => `| ${k} | ${v} |`), '');
  }
  return out.join('\n');
}

export interface WrittenOutputs {
  dir: string;
  /** Paths written, relative to dir. */
  files: string[];
}

/**
 * Writes everything for one evaluation into `outDir`: report.html, report.md, metrics.json,
 * predictions-image.csv, predictions-study.csv, plots/<figure>.svg and .png.
 */
export async function writeEvaluationOutputs(
  result: EvaluationResult,
  outDir: string,
  ctx: ReportContext = {},
  extraJson: Record<string, unknown> = {},
): Promise<WrittenOutputs> {
  const files: string[] = [];
  const write = (rel: string, data: string | Uint8Array): void => {
    writeFileAtomic(join(outDir, rel), data);
    files.push(rel);
  };
  const generated = { ...ctx, generatedAt: ctx.generatedAt ?? new Date().toISOString() };
  write('predictions-image.csv', imagePredictionsCsv(result.predictions, result.threshold));
  write('predictions-study.csv', studyPredictionsCsv(result.studies, result.threshold));
  writeJsonAtomic(join(outDir, 'metrics.json'), evaluationJson(result, extraJson));
  files.push('metrics.json');
  const figures = buildFigures(result);
  for (const f of figures) {
    write(`plots/${f.name}.svg`, f.svg);
    write(`plots/${f.name}.png`, await svgToPng(f.svg));
  }
  write('report.html', renderHtmlReport(result, figures, generated));
  write('report.md', renderMarkdownReport(result, figures, generated, 'plots'));
  return { dir: outDir, files };
}
