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

/**
 * ECE, MCE, Brier and the reliability bins of probabilities `p` for labels `y` (0/1). Optional case weights
 * (non-negative; a bootstrap replicate's draw counts): weight k counts a case k times, exactly as if it were
 * duplicated; `n` is then the total weight.
 */
export function calibration(p: ArrayLike<number>, y: ArrayLike<number>, bins = DEFAULT_ECE_BINS, weights?: ArrayLike<number>): CalibrationSummary {
  const len = p.length;
  if (y.length !== len) throw new RangeError(`calibration: ${len} probabilities, ${y.length} labels`);
  if (weights && weights.length !== len) throw new RangeError(`calibration: ${len} probabilities, ${weights.length} weights`);
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
  let n = 0;
  if (weights) for (let i = 0; i < len; i++) n += weights[i]!;
  else n = len;
  if (len === 0 || !(n > 0)) throw new RangeError('calibration: no cases');
  const cnt = new Float64Array(bins);
  const sumP = new Float64Array(bins);
  const sumY = new Float64Array(bins);
  let brier = 0;
  for (let i = 0; i < len; i++) {
    const pi = p[i]!;
    const yi = y[i]!;
    const w = weights ? weights[i]! : 1;
    if (!(pi >= 0 && pi <= 1)) throw new RangeError(`calibration: probability ${i} is ${pi}, not in [0, 1]`);
    if (yi !== 0 && yi !== 1) throw new RangeError(`calibration: label ${i} is ${yi}, not 0 or 1`);
    if (!(w >= 0)) throw new RangeError(`calibration: weight ${i} is ${w}`);
    if (w === 0) continue;
    const k = binIndex(pi, bins);
    cnt[k]! += w;
    sumP[k]! += w * pi;
    sumY[k]! += w * yi;
    brier += w * (pi - yi) * (pi - yi);
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
/** Mean negative log-likelihood of labels under probabilities p (clipped to [1e-15, 1 - 1e-15], as sklearn's log_loss), optionally weighted. */
export function logLoss(p: ArrayLike<number>, y: ArrayLike<number>, weights?: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < p.length; i++) {
    const w = weights ? weights[i]! : 1;
    if (w === 0) continue;
    const q = Math.min(1 - 1e-15, Math.max(1e-15, p[i]!));
    s -= w * (y[i]! === 1 ? Math.log(q) : Math.log(1 - q));
    n += w;
  }
  if (!(n > 0)) throw new RangeError('logLoss: no cases');
  return s / n;
}

/**
 * Study-level probabilities under temperature T: p_s = mean over the study's images of sigmoid(z_i / T) (MURA's
 * study rule, the unit a clinic decides on). `study[i]` is image i's study index in [0, nStudies).
 */
export function studyProbabilities(logits: ArrayLike<number>, study: ArrayLike<number>, nStudies: number, t = 1): Float64Array {
  const sum = new Float64Array(nStudies);
  const cnt = new Float64Array(nStudies);
  for (let i = 0; i < logits.length; i++) {
    const s = study[i]!;
    sum[s]! += sigmoid(logits[i]! / t);
    cnt[s]!++;
  }
  for (let s = 0; s < nStudies; s++) {
    if (cnt[s] === 0) throw new RangeError(`studyProbabilities: study ${s} has no image`);
    sum[s]! /= cnt[s]!;
  }
  return sum;
}

/** Mean negative log-likelihood of labels under sigmoid(z / T) (numerically stable softplus form). */
export function logitNll(logits: ArrayLike<number>, y: ArrayLike<number>, t = 1): number {
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    const z = logits[i]! / t;
    // -[y log s(z) + (1-y) log(1 - s(z))] = softplus(z) - y z
    const sp = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
    s += sp - y[i]! * z;
  }
  return s / logits.length;
}

/**
 * The T in [lo, hi] minimising f(log T): golden-section search on log T (the NLLs minimised here are unimodal in
 * log T), stopped when the bracket is narrower than `tol` in log T. The search both temperature fits
 * (src/calibrate/temperature.ts) and the trainer's temperature-scaled validation NLL use.
 */
export function minimiseOverLogT(f: (logT: number) => number, tol = 1e-9, lo = 0.05, hi = 20): number {
  let a = Math.log(lo);
  let b = Math.log(hi);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let it = 0; it < 100 && b - a > tol; it++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return Math.exp((a + b) / 2);
}

/**
 * Validation NLL after temperature scaling: logitNll at the T in [0.05, 20] minimising it (the quantity a fitted
 * temperature reaches; the trainer's `--select-by nll` metric).
 */
export function temperatureScaledNll(logits: ArrayLike<number>, y: ArrayLike<number>): number {
  if (logits.length !== y.length || logits.length === 0) throw new RangeError(`temperatureScaledNll: ${logits.length} logits, ${y.length} labels`);
  return logitNll(logits, y, minimiseOverLogT((u) => logitNll(logits, y, Math.exp(u))));
}
