/**
 * Binary classification metrics for abnormality detection, computed exactly as scikit-learn does (so numbers can
 * be checked against any Python pipeline): confusion matrix, accuracy, sensitivity (recall), specificity, precision,
 * F1, Cohen's kappa, ROC AUC (trapezoid over distinct thresholds, ties counted as half) and the ROC curve.
 *
 * Decision rule everywhere: a case is called abnormal when probability > threshold (strictly greater).
 *
 * Every metric accepts optional integer case weights. The bootstrap (bootstrap.ts) resamples studies with
 * replacement; a case drawn k times gets weight k, which gives exactly the metric of the duplicated sample without
 * building it or re-sorting scores for each replicate.
 *
 * Undefined values (no positives, division by zero) are `null` with a reason, never NaN: NaN does not survive JSON.
 */

export const METRIC_NAMES = ['accuracy', 'sensitivity', 'specificity', 'precision', 'f1', 'kappa', 'auc'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export interface ConfusionMatrix {
  /** Abnormal called abnormal. */
  tp: number;
  /** Normal called abnormal. */
  fp: number;
  /** Normal called normal. */
  tn: number;
  /** Abnormal called normal. */
  fn: number;
}

export interface PointMetrics {
  count: number;
  positives: number;
  negatives: number;
  confusion: ConfusionMatrix;
  values: Record<MetricName, number | null>;
  /** Why a value is null, for each null value. */
  nullReasons: Partial<Record<MetricName, string>>;
  /** Analytic standard error of kappa, sqrt(po(1-po) / (n (1-pe)^2)) (Cohen 1960); null where kappa is. */
  kappaSE: number | null;
}

/**
 * Scores pre-sorted once (descending, grouped by equal score) so AUC for any weighting is one linear pass.
 * Build with `prepareScores`, reuse for every bootstrap replicate.
 */
export interface PreparedScores {
  labels: Uint8Array;
  scores: Float64Array;
  /** Case indices in descending score order. */
  order: Uint32Array;
  /** groupEnd[g] = one past the last position (in `order`) of the g-th distinct score, descending. */
  groupEnds: Uint32Array;
}

export function prepareScores(labels: ArrayLike<number>, scores: ArrayLike<number>): PreparedScores {
  if (labels.length !== scores.length) {
    throw new RangeError(`labels (${labels.length}) and scores (${scores.length}) differ in length`);
  }
  const n = labels.length;
  const lab = new Uint8Array(n);
  const sc = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const s = scores[i]!;
    if (y !== 0 && y !== 1) throw new RangeError(`label at index ${i} is ${y}; labels must be 0 or 1`);
    if (!Number.isFinite(s)) throw new RangeError(`score at index ${i} is ${s}; scores must be finite numbers`);
    lab[i] = y;
    sc[i] = s;
  }
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => sc[b]! - sc[a]! || a - b);
  const ends: number[] = [];
  for (let p = 1; p <= n; p++) {
    if (p === n || sc[order[p]!] !== sc[order[p - 1]!]) ends.push(p);
  }
  return { labels: lab, scores: sc, order, groupEnds: Uint32Array.from(ends) };
}

/** Confusion matrix at `threshold` (abnormal when score > threshold), optionally weighted. */
export function confusionMatrix(
  prepared: PreparedScores,
  threshold: number,
  weights?: ArrayLike<number>,
): ConfusionMatrix {
  const { labels, scores } = prepared;
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const w = weights ? weights[i]! : 1;
    if (w === 0) continue;
    const called = scores[i]! > threshold;
    if (labels[i] === 1) {
      if (called) tp += w;
      else fn += w;
    } else if (called) fp += w;
    else tn += w;
  }
  return { tp, fp, tn, fn };
}

/**
 * ROC AUC as sklearn.metrics.roc_auc_score: trapezoidal area under the ROC curve whose vertices are the distinct
 * score values, so a tie between a positive and a negative counts one half. Null when either class is absent.
 */
export function rocAuc(prepared: PreparedScores, weights?: ArrayLike<number>): number | null {
  const { labels, order, groupEnds } = prepared;
  let tpCum = 0;
  let fpCum = 0;
  let area2 = 0; // twice the (unnormalised) area, to stay in exact integer arithmetic for integer weights
  let start = 0;
  for (let g = 0; g < groupEnds.length; g++) {
    const end = groupEnds[g]!;
    let tpG = 0;
    let fpG = 0;
    for (let p = start; p < end; p++) {
      const i = order[p]!;
      const w = weights ? weights[i]! : 1;
      if (labels[i] === 1) tpG += w;
      else fpG += w;
    }
    area2 += fpG * (2 * tpCum + tpG);
    tpCum += tpG;
    fpCum += fpG;
    start = end;
  }
  if (tpCum === 0 || fpCum === 0) return null;
  return area2 / (2 * tpCum * fpCum);
}

export interface RocCurve {
  /** False positive rate (1 - specificity) at each vertex, ascending, starting at 0. */
  fpr: number[];
  /** True positive rate (sensitivity) at each vertex, starting at 0. */
  tpr: number[];
  /**
   * The score that produces each vertex under the rule score >= threshold (sklearn's roc_curve convention). The
   * first vertex (0, 0) has threshold +infinity, written as null (JSON has no infinity).
   */
  thresholds: (number | null)[];
}

/**
 * ROC curve as sklearn.metrics.roc_curve(y, s, drop_intermediate=False): one vertex per distinct score, descending,
 * plus the origin. Null when either class is absent (the rates are undefined).
 */
export function rocCurve(prepared: PreparedScores): RocCurve | null {
  const { labels, order, groupEnds, scores } = prepared;
  let pos = 0;
  for (const y of labels) pos += y;
  const neg = labels.length - pos;
  if (pos === 0 || neg === 0) return null;
  const fpr = [0];
  const tpr = [0];
  const thresholds: (number | null)[] = [null];
  let tpCum = 0;
  let fpCum = 0;
  let start = 0;
  for (let g = 0; g < groupEnds.length; g++) {
    const end = groupEnds[g]!;
    for (let p = start; p < end; p++) {
      if (labels[order[p]!] === 1) tpCum++;
      else fpCum++;
    }
    fpr.push(fpCum / neg);
    tpr.push(tpCum / pos);
    thresholds.push(scores[order[start]!]!);
    start = end;
  }
  return { fpr, tpr, thresholds };
}

/** Cohen's kappa from a 2x2 confusion matrix (sklearn.metrics.cohen_kappa_score, unweighted). */
export function cohenKappa(cm: ConfusionMatrix): { kappa: number | null; se: number | null; reason?: string } {
  const n = cm.tp + cm.fp + cm.tn + cm.fn;
  if (n === 0) return { kappa: null, se: null, reason: 'no cases' };
  const po = (cm.tp + cm.tn) / n;
  // Chance agreement: P(both say abnormal) + P(both say normal) under independent marginals.
  const pe = ((cm.tp + cm.fp) * (cm.tp + cm.fn) + (cm.fn + cm.tn) * (cm.fp + cm.tn)) / (n * n);
  if (1 - pe <= 0) {
    return { kappa: null, se: null, reason: 'chance agreement is 1 (truth and calls each all one class)' };
  }
  const kappa = (po - pe) / (1 - pe);
  // Note the square root: the MURA scorer's interval omits it, which makes its intervals far too narrow.
  const se = Math.sqrt((po * (1 - po)) / (n * (1 - pe) * (1 - pe)));
  return { kappa, se };
}

function ratio(num: number, den: number): number | null {
  return den === 0 ? null : num / den;
}

/** All metrics at one threshold, optionally weighted (weights: non-negative integers, one per case). */
export function computeMetrics(prepared: PreparedScores, threshold: number, weights?: ArrayLike<number>): PointMetrics {
  const cm = confusionMatrix(prepared, threshold, weights);
  const positives = cm.tp + cm.fn;
  const negatives = cm.tn + cm.fp;
  const count = positives + negatives;
  const reasons: Partial<Record<MetricName, string>> = {};
  const accuracy = ratio(cm.tp + cm.tn, count);
  if (accuracy === null) reasons.accuracy = 'no cases';
  const sensitivity = ratio(cm.tp, positives);
  if (sensitivity === null) reasons.sensitivity = 'no abnormal cases (TP + FN = 0)';
  const specificity = ratio(cm.tn, negatives);
  if (specificity === null) reasons.specificity = 'no normal cases (TN + FP = 0)';
  const precision = ratio(cm.tp, cm.tp + cm.fp);
  if (precision === null) reasons.precision = 'nothing called abnormal (TP + FP = 0)';
  // 2TP / (2TP + FP + FN): sklearn's f1_score; defined (as 0) even when precision is not, if any error exists.
  const f1 = ratio(2 * cm.tp, 2 * cm.tp + cm.fp + cm.fn);
  if (f1 === null) reasons.f1 = 'no abnormal cases and nothing called abnormal (2TP + FP + FN = 0)';
  const k = cohenKappa(cm);
  if (k.kappa === null) reasons.kappa = k.reason ?? 'undefined';
  const auc = rocAuc(prepared, weights);
  if (auc === null) {
    reasons.auc = positives === 0 ? 'no abnormal cases' : negatives === 0 ? 'no normal cases' : 'undefined';
  }
  return {
    count,
    positives,
    negatives,
    confusion: cm,
    values: { accuracy, sensitivity, specificity, precision, f1, kappa: k.kappa, auc },
    nullReasons: reasons,
    kappaSE: k.se,
  };
}
