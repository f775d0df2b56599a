/**
 * The model card as the page shows and uses it: everything a reader needs to weigh a number — what the threshold
 * was chosen for (the operating point's sensitivity and specificity on validation), whether the probability is
 * calibrated, whether an out-of-distribution gate stands in front of the decision, what the model was trained on.
 * Built from the exported file's metadata (ONNX metadata_props); nothing here is invented when the file is silent.
 */
import type { OnnxClassifierInfo } from '../../src/models/onnx/info.js';
import { ONNX_CAM } from '../../src/models/onnx/extras.js';

export interface OperatingPoint {
  threshold: number;
  /** How it was chosen: 'target-sensitivity' or 'max-kappa' (null when the file does not say). */
  rule: string | null;
  /** The sensitivity the threshold was chosen to reach (e.g. 0.9). */
  targetSensitivity: number | null;
  /** Measured at that threshold on the validation data. */
  sensitivity: number | null;
  specificity: number | null;
  cases: number | null;
  level: string | null;
}

export interface PageModelCard {
  name: string;
  arch: string;
  sha256: string;
  bytes: number;
  inputSize: number;
  resize: 'pad' | 'stretch' | string;
  threshold: number;
  /** Temperature scaling the graph applies (null: the probability is the raw model score). */
  temperature: number | null;
  operatingPoint: OperatingPoint | null;
  ood: { method: string; threshold: number; quantile: number; images: number } | null;
  heatmap: boolean;
  trainedOn: 'mura' | 'synthetic' | null;
  nextrayVersion: string;
  /** Further metadata worth showing (validation metrics, dataset), as label/value pairs. */
  extra: [string, string][];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : null);

/**
 * The operating point stored with the model (metadata `operating_point`, JSON), read leniently: camelCase as the
 * checkpoint's trust record writes it, snake_case too. Null when absent or unreadable.
 */
export function readOperatingPoint(metadata: Readonly<Record<string, string>>, threshold: number): OperatingPoint | null {
  const raw = metadata.operating_point ?? metadata.operatingPoint;
  if (!raw) return null;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (!j || typeof j !== 'object') return null;
  const pick = (...keys: string[]): number | null => {
    for (const k of keys) {
      const v = num(j[k]);
      if (v !== null) return v;
    }
    return null;
  };
  return {
    threshold: pick('threshold') ?? threshold,
    rule: typeof j.rule === 'string' ? j.rule : null,
    targetSensitivity: pick('targetSensitivity', 'target_sensitivity'),
    sensitivity: pick('validationSensitivity', 'validation_sensitivity', 'sensitivity'),
    specificity: pick('validationSpecificity', 'validation_specificity', 'specificity'),
    cases: pick('validationCases', 'validation_cases', 'cases'),
    level: typeof j.level === 'string' ? j.level : null,
  };
}

/** What the model file says it was trained on: 'mura', 'synthetic', or null when it does not say. */
export function trainingData(metadata: Readonly<Record<string, string>>): 'mura' | 'synthetic' | null {
  const d = metadata.dataset;
  if (!d) return null;
  try {
    const j = JSON.parse(d) as { kind?: string };
    if (j.kind === 'synthetic' || j.kind === 'mura') return j.kind;
  } catch {
    /* a plain name */
  }
  return /synth/i.test(d) ? 'synthetic' : /mura/i.test(d) ? 'mura' : null;
}

function formatMeta(v: string): string {
  try {
    const j = JSON.parse(v) as unknown;
    if (j && typeof j === 'object') {
      return Object.entries(j as Record<string, unknown>)
        .filter(([k]) => k !== 'fingerprint')
        .map(([k, x]) => `${k.replace(/^val_images$/, 'validation_images').replace(/^val_/, '').replace(/_/g, ' ')} ${typeof x === 'number' ? +x.toFixed(4) : typeof x === 'string' ? x : JSON.stringify(x)}`)
        .join(', ');
    }
  } catch {
    /* plain text */
  }
  return v;
}

export function pageCard(info: OnnxClassifierInfo, o: { name: string; sha256: string; bytes: number; threshold: number }): PageModelCard {
  const m = info.metadata;
  const extra: [string, string][] = [];
  for (const key of Object.keys(m).sort()) {
    if (/^(validation|valid|metrics|auc|kappa|dataset|training_data|calibration)/.test(key)) extra.push([key.replace(/_/g, ' '), formatMeta(m[key]!)]);
  }
  return {
    name: o.name,
    arch: info.arch,
    sha256: o.sha256,
    bytes: o.bytes,
    inputSize: info.inputSize,
    resize: info.preprocessing.resize,
    threshold: o.threshold,
    temperature: info.temperature !== 1 ? info.temperature : null,
    operatingPoint: readOperatingPoint(m, o.threshold),
    ood: info.ood ? { method: info.ood.method, threshold: info.ood.threshold, quantile: info.ood.quantile, images: info.ood.images } : null,
    heatmap: info.model.outputs.some((x) => x.name === ONNX_CAM),
    trainedOn: trainingData(m),
    nextrayVersion: info.nextrayVersion,
    extra,
  };
}

const pct = (x: number): string => `${Math.round(100 * x)}%`;

/** How the threshold was chosen, in words: 'chosen for 90% sensitivity on validation (specificity 71%)'. */
export function operatingPointText(card: PageModelCard): string {
  const op = card.operatingPoint;
  if (!op) return 'the threshold stored with the model (the file records no validated operating point)';
  const kappa = op.rule === 'max-kappa';
  const target = kappa ? null : (op.targetSensitivity ?? op.sensitivity);
  const parts: string[] = [];
  if (op.sensitivity !== null && (target === null || Math.abs(op.sensitivity - target) > 0.005)) parts.push(`sensitivity ${pct(op.sensitivity)}`);
  if (op.specificity !== null) parts.push(`specificity ${pct(op.specificity)}`);
  if (op.cases !== null) parts.push(`${op.cases} validation ${op.level === 'image' ? 'images' : 'studies'}`);
  const head = kappa ? "chosen for the highest Cohen's kappa on validation" : target !== null ? `chosen for ${pct(target)} sensitivity on validation` : 'chosen on validation';
  return parts.length ? `${head} (${parts.join(', ')})` : head;
}

/** A threshold with two decimals, three when it has them (0.5036 -> '0.504', 0.5 -> '0.50'). */
export function formatThreshold(t: number): string {
  const s = t.toFixed(3);
  return s.endsWith('0') ? t.toFixed(2) : s;
}

/**
 * Two decimals, more when two would hide which side of the threshold the value is on (0.503 against a threshold of
 * 0.50 shows as 0.503, never as '0.50 — above the threshold 0.50').
 */
export function formatProbability(p: number, threshold: number): string {
  const t = formatThreshold(threshold);
  for (const d of [2, 3, 4]) {
    const s = p.toFixed(d);
    if (s !== t && Number(s) > Number(t) === p > threshold) return s;
  }
  return p.toFixed(5);
}

/** '0.83 — above the threshold 0.50, chosen for 90% sensitivity on validation (specificity 71%)'. */
export function probabilityLine(p: number, card: PageModelCard): string {
  const t = card.threshold;
  return `${formatProbability(p, t)} — ${p > t ? 'above' : 'at or below'} the threshold ${formatThreshold(t)}, ${operatingPointText(card)}`;
}

/** Whether the number shown is a calibrated probability, in words. */
export function calibrationText(card: PageModelCard): string {
  return card.temperature !== null
    ? `calibrated on validation (temperature scaling, T = ${+card.temperature.toFixed(3)})`
    : 'not calibrated: a model score between 0 and 1, not a frequency';
}
