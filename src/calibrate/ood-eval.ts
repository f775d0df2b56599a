/**
 * Measuring the OOD gate: held-out radiographs (the test split, which neither the gate nor the model saw) against
 * the generated non-radiograph sets of ood-sets.ts and inverted held-out radiographs. Reports, per set, the AUROC of
 * the score (OOD = positive) against the held-out radiographs and the share flagged at the gate's threshold.
 */
import { decodeGrey } from '../data/images.js';
import { preprocessGrey, type Preprocessing } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import { prepareScores, rocAuc } from '../evaluate/metrics.js';
import { mahalanobisScores, type OodGate } from '../inference/core/ood.js';
import type { Model } from '../models/index.js';
import { Rng } from '../util/rng.js';
import { OOD_KINDS, invert, makeOodSet, type GreyPicture } from './ood-sets.js';
import { collectFeatures, pooledFeaturesAndLogits } from './trust.js';

export interface OodSetResult {
  set: string;
  images: number;
  /** Share of the set flagged out of distribution at the threshold. */
  flagged: number;
  /** AUROC of the score, this set (positive) vs the held-out radiographs; null for the radiographs themselves. */
  auroc: number | null;
  medianScore: number;
}

export interface OodEvaluation {
  layers: string[];
  threshold: number;
  quantile: number;
  /** Whose scores the threshold's quantile was taken of. */
  thresholdFrom: 'validation' | 'train';
  sets: OodSetResult[];
  /** All non-radiograph sets together. */
  overall: { images: number; flagged: number; auroc: number | null };
  heldOut: { images: number; flagged: number };
}

function median(a: Float64Array): number {
  const s = Float64Array.from(a).sort();
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

async function scorePictures(model: Model, pics: GreyPicture[], pre: Preprocessing, gate: OodGate): Promise<Float64Array> {
  const per = pre.size * pre.size * 3;
  const out = new Float64Array(pics.length);
  for (let s = 0; s < pics.length; s += 16) {
    const batch = pics.slice(s, s + 16);
    const x = new Float32Array(batch.length * per);
    batch.forEach((p, i) => x.set(preprocessGrey(p.data, p.width, p.height, pre), i * per));
    const r = pooledFeaturesAndLogits(model, x, batch.length, pre.size, gate.layers);
    out.set(mahalanobisScores(r.features, batch.length, gate), s);
  }
  return out;
}

export async function evaluateOodGate(model: Model, gate: OodGate, pre: Preprocessing, heldOut: readonly ImageRecord[], opts: { perSet?: number; seed?: number } = {}): Promise<OodEvaluation> {
  const n = opts.perSet ?? 100;
  const radio = await collectFeatures(model, heldOut, pre, gate.layers);
  const radioScores = mahalanobisScores(radio.features, radio.records.length, gate);
  const flaggedShare = (s: Float64Array): number => s.reduce((c, v) => c + (v > gate.threshold ? 1 : 0), 0) / Math.max(1, s.length);
  const auroc = (s: Float64Array): number | null => {
    const labels = [...new Array<number>(radioScores.length).fill(0), ...new Array<number>(s.length).fill(1)];
    return rocAuc(prepareScores(labels, [...radioScores, ...s]));
  };
  const sets: OodSetResult[] = [];
  const all: number[] = [];
  for (const kind of OOD_KINDS) {
    const s = await scorePictures(model, makeOodSet(kind, n, opts.seed ?? 1), pre, gate);
    all.push(...s);
    sets.push({ set: kind, images: s.length, flagged: flaggedShare(s), auroc: auroc(s), medianScore: median(s) });
  }
  // Inverted held-out radiographs (a seeded sample).
  const rng = new Rng(`ood/inverted/${opts.seed ?? 1}`);
  const pick = [...heldOut].map((r) => ({ r, k: rng.next() })).sort((a, b) => a.k - b.k).slice(0, n).map((o) => o.r);
  const inv: GreyPicture[] = [];
  for (const r of pick) {
    try {
      const g = await decodeGrey(r.absPath);
      inv.push(invert({ data: g.data, width: g.width, height: g.height }));
    } catch {
      // unreadable images were already reported by the held-out pass
    }
  }
  const si = await scorePictures(model, inv, pre, gate);
  all.push(...si);
  sets.push({ set: 'inverted', images: si.length, flagged: flaggedShare(si), auroc: auroc(si), medianScore: median(si) });
  const allScores = Float64Array.from(all);
  sets.push({ set: 'held-out radiographs', images: radioScores.length, flagged: flaggedShare(radioScores), auroc: null, medianScore: median(radioScores) });
  return {
    layers: gate.layers,
    threshold: gate.threshold,
    quantile: gate.quantile,
    thresholdFrom: gate.thresholdFrom ?? 'train',
    sets,
    overall: { images: allScores.length, flagged: flaggedShare(allScores), auroc: auroc(allScores) },
    heldOut: { images: radioScores.length, flagged: flaggedShare(radioScores) },
  };
}

/** The evaluation as a Markdown table. */
export function oodTable(e: OodEvaluation): string {
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  const rows = e.sets.map((s) => `| ${s.set} | ${s.images} | ${pct(s.flagged)} | ${s.auroc === null ? '—' : s.auroc.toFixed(3)} | ${s.medianScore.toFixed(1)} |`);
  return [
    `OOD gate: Mahalanobis on channel mean/std of ${e.layers.join(', ')}, threshold ${e.threshold.toFixed(1)} (${e.thresholdFrom === 'validation' ? 'validation' : 'training'}-score quantile ${e.quantile})`,
    '',
    '| set | images | flagged | AUROC vs held-out radiographs | median score |',
    '|---|---|---|---|---|',
    ...rows,
    `| all non-radiographs | ${e.overall.images} | ${pct(e.overall.flagged)} | ${e.overall.auroc === null ? '—' : e.overall.auroc.toFixed(3)} | |`,
  ].join('\n');
}
