/**
 * Operating-point selection: pick a decision threshold on a validation set so that the study-level sensitivity
 * reaches a target, then apply it unchanged to the test set (choosing it on the test set would overstate results).
 */
import type { Label } from '../data/types.js';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/**
 * The validation cases cannot give the operating point asked for (one class only, or too few abnormal cases with a
 * probability above 0): a property of the user's data, so a usage error that says which class is missing.
 */
export class OperatingPointError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_OPERATING_POINT', exitStatus: EXIT_USAGE, hint: 'validate on studies of both classes (abnormal and normal), or give the threshold yourself' });
    this.name = 'OperatingPointError';
  }
}

export interface ThresholdChoice {
  threshold: number;
  targetSensitivity: number;
  /** Sensitivity reached on the validation cases at `threshold` (>= target). */
  validationSensitivity: number;
  /** Specificity on the validation cases at `threshold`; null when they hold no normal case. */
  validationSpecificity: number | null;
  validationCases: number;
  validationPositives: number;
}

/**
 * The largest threshold t, among the validation probabilities themselves (and 0), at which calling
 * "abnormal when probability > t" reaches sensitivity >= target.
 *
 * Why among observed values: the validation calls change only at observed probabilities, so every t in
 * [t*, p_k) (p_k = the k-th highest abnormal probability, k = ceil(target x positives)) gives the same validation
 * result; t* — the highest observed probability below p_k, or 0 if none — is the reproducible representative, and
 * it keeps every validation case scored at or below it normal, as observed.
 *
 * Throws when the validation cases contain no abnormal case, or when the target cannot be reached with t >= 0
 * (the needed abnormal case has probability 0).
 */
export function thresholdForSensitivity(
  cases: readonly { label: Label; probability: number }[],
  targetSensitivity: number,
): ThresholdChoice {
  if (!(targetSensitivity > 0 && targetSensitivity <= 1)) {
    throw new RangeError(`target sensitivity must be in (0, 1], got ${targetSensitivity}`);
  }
  const pos = cases.filter((c) => c.label === 1).map((c) => c.probability).sort((a, b) => b - a);
  if (pos.length === 0) throw new OperatingPointError('cannot choose a threshold for a target sensitivity: no abnormal case in the validation set');
  // The tolerance keeps e.g. 0.9 x 10 = 9.000000000000002 from demanding 10 positives.
  const k = Math.max(1, Math.ceil(targetSensitivity * pos.length - 1e-9));
  const pk = pos[k - 1]!;
  if (pk <= 0) {
    throw new OperatingPointError(
      `cannot reach sensitivity ${targetSensitivity} with a threshold >= 0: ${k} abnormal validation cases are needed and the ${k}-th highest has probability 0`,
    );
  }
  let threshold = 0;
  for (const c of cases) if (c.probability < pk && c.probability > threshold) threshold = c.probability;
  let tp = 0;
  let tn = 0;
  let neg = 0;
  for (const c of cases) {
    const called = c.probability > threshold;
    if (c.label === 1) tp += called ? 1 : 0;
    else {
      neg++;
      tn += called ? 0 : 1;
    }
  }
  return {
    threshold,
    targetSensitivity,
    validationSensitivity: tp / pos.length,
    validationSpecificity: neg === 0 ? null : tn / neg,
    validationCases: cases.length,
    validationPositives: pos.length,
  };
}

export interface KappaChoice {
  threshold: number;
  /** Cohen's kappa of the validation cases at `threshold` (the maximum over thresholds). */
  validationKappa: number;
  validationSensitivity: number;
  validationSpecificity: number;
  validationCases: number;
  validationPositives: number;
}

/**
 * The threshold t maximising Cohen's kappa of "abnormal when probability > t" on the validation cases (the
 * report's headline metric, at the unit it is computed on: pass study-level cases).
 *
 * Candidates are 0 (everything at or below it normal, i.e. nearly everything abnormal) and every observed
 * probability (as in thresholdForSensitivity: the calls change only there, so each observed value represents the
 * interval up to the next one). Among thresholds with the same kappa the lowest wins: it calls more studies
 * abnormal, and a missed abnormality costs a clinic more than a second look at a normal one.
 *
 * Throws when the cases hold only one class (kappa is undefined at every threshold).
 */
export function thresholdForMaxKappa(cases: readonly { label: Label; probability: number }[]): KappaChoice {
  const n = cases.length;
  let pos = 0;
  for (const c of cases) pos += c.label;
  const neg = n - pos;
  if (pos === 0 || neg === 0) throw new OperatingPointError(`cannot choose a threshold by Cohen's kappa: the validation cases hold no ${pos === 0 ? 'abnormal' : 'normal'} case`);
  // Sweep the distinct probabilities upwards: at t = v every case with probability <= v is called normal.
  const sorted = [...cases].sort((a, b) => a.probability - b.probability);
  const kappaAt = (tp: number, tn: number): number => {
    const fp = neg - tn;
    const fn = pos - tp;
    const po = (tp + tn) / n;
    const pe = ((tp + fp) * pos + (fn + tn) * neg) / (n * n);
    return pe >= 1 ? -Infinity : (po - pe) / (1 - pe);
  };
  // Called abnormal / normal counts at the current threshold, starting at t = 0.
  let tp = pos;
  let tn = 0;
  let i = 0;
  const passValue = (v: number): void => {
    while (i < n && sorted[i]!.probability <= v) {
      if (sorted[i]!.label === 1) tp--;
      else tn++;
      i++;
    }
  };
  passValue(0);
  let best = { t: 0, k: kappaAt(tp, tn), tp, tn };
  while (i < n) {
    const v = sorted[i]!.probability;
    passValue(v);
    const k = kappaAt(tp, tn);
    if (k > best.k) best = { t: v, k, tp, tn };
  }
  return {
    threshold: best.t,
    validationKappa: best.k,
    validationSensitivity: best.tp / pos,
    validationSpecificity: best.tn / neg,
    validationCases: n,
    validationPositives: pos,
  };
}

/** How a decision threshold is chosen on validation: maximum Cohen's kappa (the default), or a target sensitivity. */
export type OperatingPointRule = { kind: 'max-kappa' } | { kind: 'sensitivity-target'; sensitivity: number };

export interface OperatingPoint {
  rule: 'max-kappa' | 'sensitivity-target';
  threshold: number;
  targetSensitivity?: number;
  validationSensitivity: number;
  validationSpecificity: number | null;
  validationKappa: number | null;
  validationCases: number;
  validationPositives: number;
}

/** The operating point of `rule` on validation cases (pass study-level cases: the unit a clinic decides on). */
export function chooseOperatingPoint(cases: readonly { label: Label; probability: number }[], rule: OperatingPointRule): OperatingPoint {
  if (rule.kind === 'max-kappa') {
    const c = thresholdForMaxKappa(cases);
    return { rule: 'max-kappa', threshold: c.threshold, validationSensitivity: c.validationSensitivity, validationSpecificity: c.validationSpecificity, validationKappa: c.validationKappa, validationCases: c.validationCases, validationPositives: c.validationPositives };
  }
  const c = thresholdForSensitivity(cases, rule.sensitivity);
  // Kappa at the chosen threshold, for the record (same confusion-matrix formula as thresholdForMaxKappa).
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (const k of cases) {
    const called = k.probability > c.threshold;
    if (k.label === 1) called ? tp++ : fn++;
    else called ? fp++ : tn++;
  }
  const n = cases.length;
  const po = (tp + tn) / n;
  const pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n);
  return {
    rule: 'sensitivity-target',
    threshold: c.threshold,
    targetSensitivity: rule.sensitivity,
    validationSensitivity: c.validationSensitivity,
    validationSpecificity: c.validationSpecificity,
    validationKappa: pe >= 1 ? null : (po - pe) / (1 - pe),
    validationCases: c.validationCases,
    validationPositives: c.validationPositives,
  };
}
