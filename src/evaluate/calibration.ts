/**
 * Calibration metrics: does a predicted 0.8 mean 80%? Expected calibration error over equal-width bins, the Brier
 * score and the reliability diagram's bins; `uncalibrate` maps temperature-scaled probabilities back for the report's
 * before / after table. Fitting the temperature is calibration's job (src/calibrate/temperature.ts). Pure arithmetic
 * (browser-safe).
 *
 * ECE (Naeini et al. 2015; Guo et al. 2017): bins B_m = (m/M, (m+1)/M] of the predicted probability of the positive
 * class (the first bin also holds 0), ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)| with acc = fraction of positive
 * labels and conf = mean probability in the bin (the binary "positive-class" ECE, as in sklearn's
 * calibration_curve with strategy='uniform'). Brier = mean (p - y)^2.
 */

export interface ReliabilityBin {
  /** Bin edges (lower exclusive except for the first bin, upper inclusive). */
  lo: number;
  hi: number;
  count: number;
  /** Mean predicted probability in the bin; null when empty. */
  confidence: number | null;
  /** Fraction of positive labels in the bin; null when empty. */
  frequency: number | null;
}

export interface CalibrationSummary {
  /** Expected calibration error with `bins` equal-width bins. */
  ece: number;
  /** Largest |frequency - confidence| over non-empty bins. */
  mce: number;
  brier: number;
  n: number;
  bins: ReliabilityBin[];
}

export const DEFAULT_ECE_BINS = 15;

function binIndex(p: number, m: number): number {
  // (k/m, (k+1)/m] -> k; 0 -> 0.
  const k = Math.ceil(p * m) - 1;
  return k < 0 ? 0 : k >= m ? m - 1 : k;
}

/** ECE, MCE, Brier and the reliability bins of probabilities `p` for labels `y` (0/1). */
export function calibration(p: ArrayLike<number>, y: ArrayLike<number>, bins = DEFAULT_ECE_BINS): CalibrationSummary {
  const n = p.length;
  if (y.length !== n) throw new RangeError(`calibration: ${n} probabilities, ${y.length} labels`);
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
  if (n === 0) throw new RangeError('calibration: no cases');
  const cnt = new Float64Array(bins);
  const sumP = new Float64Array(bins);
  const sumY = new Float64Array(bins);
  let brier = 0;
  for (let i = 0; i < n; i++) {
    const pi = p[i]!;
    const yi = y[i]!;
    if (!(pi >= 0 && pi <= 1)) throw new RangeError(`calibration: probability ${i} is ${pi}, not in [0, 1]`);
    if (yi !== 0 && yi !== 1) throw new RangeError(`calibration: label ${i} is ${yi}, not 0 or 1`);
    const k = binIndex(pi, bins);
    cnt[k]!++;
    sumP[k]! += pi;
    sumY[k]! += yi;
    brier += (pi - yi) * (pi - yi);
  }
  let ece = 0;
  let mce = 0;
  const out: ReliabilityBin[] = [];
  for (let k = 0; k < bins; k++) {
    const c = cnt[k]!;
    const conf = c ? sumP[k]! / c : null;
    const freq = c ? sumY[k]! / c : null;
    if (c) {
      const gap = Math.abs(freq! - conf!);
      ece += (c / n) * gap;
      mce = Math.max(mce, gap);
    }
    out.push({ lo: k / bins, hi: (k + 1) / bins, count: c, confidence: conf, frequency: freq });
  }
  return { ece, mce, brier: brier / n, n, bins: out };
}

/** The logistic function, stable for large |z|. */
export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/**
 * ECE and Brier of the same predictions before temperature scaling (probabilities p = sigmoid(z / T) mapped back to
 * sigmoid(z)) and after, per level: what the report's "before / after" table shows.
 */
export function uncalibrate(p: number, t: number): number {
  const z = Math.log(p / (1 - p)) * t;
  return Number.isFinite(z) ? sigmoid(z) : p;
}
