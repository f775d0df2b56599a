/**
 * Operating-point selection: pick a decision threshold on a validation set so that the study-level sensitivity
 * reaches a target, then apply it unchanged to the test set (choosing it on the test set would overstate results).
 */
import type { Label } from '../data/types.js';

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
  if (pos.length === 0) throw new RangeError('cannot choose a threshold for a target sensitivity: no abnormal case in the validation set');
  // The tolerance keeps e.g. 0.9 x 10 = 9.000000000000002 from demanding 10 positives.
  const k = Math.max(1, Math.ceil(targetSensitivity * pos.length - 1e-9));
  const pk = pos[k - 1]!;
  if (pk <= 0) {
    throw new RangeError(
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
