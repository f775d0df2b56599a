/**
 * Fitting the out-of-distribution gate (src/inference/core/ood.ts) on training features: mean, Ledoit-Wolf shrunk
 * covariance (the analytic shrinkage of Ledoit & Wolf 2004, as sklearn.covariance.ledoit_wolf computes it), its
 * inverse by Cholesky in float64, and the threshold at a quantile of the training scores (NumPy's default linear
 * interpolation). Shrinkage matters: with pooled features of a few hundred to 2,048 dimensions and correlated
 * channels, the sample covariance is ill-conditioned and its inverse amplifies noise directions.
 */
import type { OodGate } from '../inference/core/ood.js';
import { mahalanobisScores } from '../inference/core/ood.js';

/** Ledoit-Wolf shrunk covariance of rows x [n, p] (float64 in, float64 out) and the shrinkage used. */
export function ledoitWolf(x: Float64Array, n: number, p: number): { mean: Float64Array; cov: Float64Array; shrinkage: number } {
  if (x.length !== n * p) throw new RangeError(`ledoitWolf: ${x.length} values for ${n} x ${p}`);
  if (n < 2) throw new RangeError('ledoitWolf: need at least 2 samples');
  const mean = new Float64Array(p);
  for (let r = 0; r < n; r++) for (let j = 0; j < p; j++) mean[j]! += x[r * p + j]!;
  for (let j = 0; j < p; j++) mean[j]! /= n;
  const xc = new Float64Array(n * p);
  for (let r = 0; r < n; r++) for (let j = 0; j < p; j++) xc[r * p + j] = x[r * p + j]! - mean[j]!;
  // emp = Xc^T Xc / n ; b = (Xc^2)^T (Xc^2)
  const emp = new Float64Array(p * p);
  let betaSum = 0;
  const sq = new Float64Array(p);
  const colSq = new Float64Array(p); // sum_k x_kj^2
  for (let r = 0; r < n; r++) {
    const row = r * p;
    for (let i = 0; i < p; i++) {
      const xi = xc[row + i]!;
      if (xi === 0) continue;
      const o = i * p;
      for (let j = i; j < p; j++) emp[o + j]! += xi * xc[row + j]!;
    }
    let s2 = 0;
    for (let j = 0; j < p; j++) {
      const v = xc[row + j]! * xc[row + j]!;
      sq[j] = v;
      s2 += v;
      colSq[j]! += v;
    }
    betaSum += s2 * s2; // sum_ij x_ki^2 x_kj^2 for sample k
  }
  for (let i = 0; i < p; i++) for (let j = i; j < p; j++) {
    emp[i * p + j]! /= n;
    emp[j * p + i] = emp[i * p + j]!;
  }
  let trace = 0;
  for (let j = 0; j < p; j++) trace += colSq[j]! / n;
  const mu = trace / p;
  let delta_ = 0;
  for (let k = 0; k < p * p; k++) delta_ += emp[k]! * emp[k]!;
  // sklearn: delta_ = sum((X^T X)^2) / n^2 = sum(emp^2)
  let beta = (1 / (p * n)) * (betaSum / n - delta_);
  let delta = (delta_ - 2 * mu * trace + p * mu * mu) / p;
  beta = Math.min(beta, delta);
  const shrinkage = beta === 0 ? 0 : beta / delta;
  const cov = new Float64Array(p * p);
  for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) cov[i * p + j] = (1 - shrinkage) * emp[i * p + j]! + (i === j ? shrinkage * mu : 0);
  void sq;
  void delta;
  return { mean, cov, shrinkage };
}

/** Inverse of a symmetric positive-definite matrix by Cholesky (float64); throws when it is not positive definite. */
export function invertSpd(a: Float64Array, p: number): Float64Array {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * p + j]!;
      for (let k = 0; k < j; k++) s -= l[i * p + k]! * l[j * p + k]!;
      if (i === j) {
        if (!(s > 0)) throw new Error(`covariance is not positive definite (pivot ${i}: ${s})`);
        l[i * p + i] = Math.sqrt(s);
      } else l[i * p + j] = s / l[j * p + j]!;
    }
  }
  // inv(L) lower-triangular, then inv(A) = inv(L)^T inv(L)
  const li = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    li[i * p + i] = 1 / l[i * p + i]!;
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let k = j; k < i; k++) s += l[i * p + k]! * li[k * p + j]!;
      li[i * p + j] = -s / l[i * p + i]!;
    }
  }
  const inv = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < p; k++) s += li[k * p + i]! * li[k * p + j]!;
      inv[i * p + j] = s;
      inv[j * p + i] = s;
    }
  }
  return inv;
}

/** NumPy's default quantile (linear interpolation between order statistics, 'type 7'). */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be in [0, 1], got ${q}`);
  const s = Float64Array.from(values).sort();
  if (!s.length) throw new RangeError('quantile of no values');
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (h - lo) * (s[hi]! - s[lo]!);
}

/** Fits the gate on `n` training feature rows [n, dim]; threshold at the `q` quantile of their own scores. */
export function fitOodGate(features: Float32Array, n: number, dim: number, q: number, layers: string[]): OodGate & { trainScores: Float64Array } {
  const lw = ledoitWolf(Float64Array.from(features), n, dim);
  // A tiny ridge keeps constant features (zero variance: dead channels, tiny test sets) invertible.
  let trace = 0;
  for (let i = 0; i < dim; i++) trace += lw.cov[i * dim + i]!;
  const ridge = Math.max(1e-9, (1e-6 * trace) / dim);
  for (let i = 0; i < dim; i++) lw.cov[i * dim + i]! += ridge;
  const precision = Float32Array.from(invertSpd(lw.cov, dim));
  const gate = { method: 'mahalanobis' as const, layers, mean: Float32Array.from(lw.mean), precision, threshold: 0, quantile: q, shrinkage: lw.shrinkage, images: n };
  const trainScores = mahalanobisScores(features, n, gate);
  gate.threshold = quantile(trainScores, q);
  return { ...gate, trainScores };
}
