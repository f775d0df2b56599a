/**
 * The model card in words. The card itself is the library's typed model card (src/models/card.ts), which `load()`
 * parses from the exported file's ONNX metadata (`model.cards[0]`); this module only says what it means for a
 * reader weighing a number: what the threshold was chosen for (the operating point's sensitivity and specificity on
 * validation), whether the probability is calibrated, what the model was trained on. Nothing here is invented when
 * the file is silent.
 */
import type { LoadedCard, ModelCard } from 'nextray/browser';

/** What the page reads of a card: the typed card (a loaded model's has every field an export gives). */
export type Card = Partial<ModelCard> & Pick<LoadedCard, 'name' | 'arch' | 'sha256' | 'preprocessing'>;

const pct = (x: number): string => `${Math.round(100 * x)}%`;

/** How the threshold was chosen, in words: 'chosen for 90% sensitivity on validation (specificity 71%)'. */
export function operatingPointText(card: Card): string {
  const op = card.operatingPoint;
  if (!op) return 'the threshold stored with the model (the file records no validated operating point)';
  if (op.rule === 'default') return 'the untuned default (not chosen on validation data)';
  const on = op.fittedOn || 'validation';
  const kappa = op.rule === 'max-kappa';
  const target = kappa ? null : (op.targetSensitivity ?? op.sensitivity ?? null);
  const parts: string[] = [];
  if (op.sensitivity !== undefined && (target === null || Math.abs(op.sensitivity - target) > 0.005)) parts.push(`sensitivity ${pct(op.sensitivity)}`);
  if (op.specificity !== undefined && op.specificity !== null) parts.push(`specificity ${pct(op.specificity)}`);
  if (op.cases !== undefined) parts.push(`${op.cases} ${on} ${op.level === 'image' ? 'images' : 'studies'}`);
  const head = kappa ? `chosen for the highest Cohen's kappa on ${on}` : target !== null ? `chosen for ${pct(target)} sensitivity on ${on}` : `chosen on ${on}`;
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
export function probabilityLine(p: number, card: Card, threshold: number): string {
  return `${formatProbability(p, threshold)} — ${p > threshold ? 'above' : 'at or below'} the threshold ${formatThreshold(threshold)}, ${operatingPointText(card)}`;
}

/** The temperature the graph divides the logit by, or null when the probability is the raw model score. */
export function temperatureOf(card: Card): number | null {
  const t = card.temperature?.value;
  return t !== undefined && t > 0 && t !== 1 ? t : null;
}

/** Whether the number shown is a calibrated probability, in words. */
export function calibrationText(card: Card): string {
  const t = temperatureOf(card);
  return t !== null ? `calibrated on ${card.temperature!.fittedOn === 'unknown' ? 'validation' : card.temperature!.fittedOn} (temperature scaling, T = ${+t.toFixed(3)})` : 'not calibrated: a model score between 0 and 1, not a frequency';
}

/** What the card says the model was trained on: 'mura', 'synthetic', or null when it does not say. */
export function trainedOn(card: Card): 'mura' | 'synthetic' | null {
  return card.dataset?.kind ?? null;
}

const metricName = (k: string): string => k.replace(/^val_/, '').replace(/_/g, ' ');

/** Further facts worth showing (validation metrics, the data), as label/value pairs. */
export function cardFacts(card: Card): [string, string][] {
  const out: [string, string][] = [];
  const metrics = card.training?.validationMetrics;
  if (metrics && Object.keys(metrics).length) {
    out.push(['Validation', Object.entries(metrics).map(([k, v]) => `${metricName(k)} ${typeof v === 'number' ? +v.toFixed(4) : String(v)}`).join(', ')]);
  }
  const d = card.dataset;
  if (d && (d.name || d.trainImages !== undefined || d.valImages !== undefined)) {
    const counts = [d.trainImages !== undefined ? `${d.trainImages} training` : '', d.valImages !== undefined ? `${d.valImages} validation` : ''].filter(Boolean).join(', ');
    out.push(['Data', `${d.name ?? 'unnamed'}${counts ? ` (${counts} images)` : ''}`]);
  }
  return out;
}
