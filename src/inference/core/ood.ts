/**
 * The out-of-distribution gate at inference time (browser-safe): "is this even an image the model knows?".
 *
 * The gate is a Mahalanobis distance (Lee et al. 2018) on feature statistics: f = per-channel spatial mean and
 * standard deviation of a few early layers' outputs (by default the stem and the first two stages: chosen by
 * measurement, see the README — the final pooled features alone, which the head uses, flagged only ~20% of the
 * generated non-radiographs, the early-layer statistics ~99%). score = (f - mu)^T P (f - mu), mu and P (the inverse
 * of a Ledoit-Wolf-shrunk covariance) fitted on the training images when training ends (src/calibrate/ood.ts),
 * threshold at a stated quantile of held-out (validation) images' scores — training images score lower than any
 * new image (the mean and covariance were fitted on them), so a quantile of their own scores flags far more
 * held-out radiographs than it says.
 * Exported ONNX models compute the score in the graph (output `ood_score`, metadata `ood`), so a host only compares
 * it with the threshold; TF.js hosts compute it here from the stored statistics. An image whose score is above the
 * threshold gets a warning instead of a decision.
 */

import type { OodStats } from '../../models/onnx/extras.js';
import { EXIT_USAGE, NextrayError } from '../../util/errors.js';

/** A stored OOD gate (a checkpoint's extra.trust.ood or an export's metadata) that cannot be read: damaged or edited. */
export class OodGateError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_OOD_GATE', exitStatus: EXIT_USAGE, hint: 'fit the gate again with nextray calibrate, or use the model without it' });
    this.name = 'OodGateError';
  }
}

/** The gate as stored in a checkpoint (model.json `extra.trust.ood`): arrays as base64 little-endian float32. */
export interface StoredOodGate {
  method: 'mahalanobis';
  features: 'layer-statistics';
  layers: string[];
  dim: number;
  mean: string;
  precision: string;
  threshold: number;
  quantile: number;
  /** Whose scores the threshold's quantile was taken of (absent in older checkpoints: the training images'). */
  thresholdFrom?: 'validation' | 'train';
  shrinkage: number;
  images: number;
}

/** The gate as stored with a model: the same record the ONNX export writes (src/models/onnx/extras.ts). */
export type OodGate = OodStats;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Base64 of a float32 array's little-endian bytes (no Buffer/atob: runs anywhere). */
export function floatsToBase64(a: Float32Array): string {
  const le = new Uint8Array(a.length * 4);
  const dv = new DataView(le.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(4 * i, a[i]!, true);
  let s = '';
  for (let i = 0; i < le.length; i += 3) {
    const b0 = le[i]!;
    const b1 = i + 1 < le.length ? le[i + 1]! : 0;
    const b2 = i + 2 < le.length ? le[i + 2]! : 0;
    s += B64[b0 >> 2]! + B64[((b0 & 3) << 4) | (b1 >> 4)]! + (i + 1 < le.length ? B64[((b1 & 15) << 2) | (b2 >> 6)]! : '=') + (i + 2 < le.length ? B64[b2 & 63]! : '=');
  }
  return s;
}

export function base64ToFloats(s: string, what = 'base64'): Float32Array {
  const clean = s.replace(/=+$/, '');
  const bytes = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of clean) {
    const v = B64.indexOf(ch);
    if (v < 0) throw new OodGateError(`${what}: not base64 (character ${JSON.stringify(ch)})`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[o++] = (acc >> bits) & 255;
    }
  }
  if (bytes.length % 4) throw new OodGateError(`${what}: ${bytes.length} bytes is not a whole number of float32 values`);
  const dv = new DataView(bytes.buffer);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

export function storeGate(g: OodGate): StoredOodGate {
  return { method: g.method, features: 'layer-statistics', layers: [...g.layers], dim: g.mean.length, mean: floatsToBase64(g.mean), precision: floatsToBase64(g.precision), threshold: g.threshold, quantile: g.quantile, ...(g.thresholdFrom ? { thresholdFrom: g.thresholdFrom } : {}), shrinkage: g.shrinkage, images: g.images };
}

export function loadGate(s: StoredOodGate, where = 'ood gate'): OodGate {
  if (!s || s.method !== 'mahalanobis') throw new OodGateError(`${where}: unknown method ${JSON.stringify(s?.method)}`);
  const mean = base64ToFloats(s.mean, `${where}.mean`);
  const precision = base64ToFloats(s.precision, `${where}.precision`);
  if (mean.length !== s.dim || precision.length !== s.dim * s.dim) throw new OodGateError(`${where}: sizes do not match dim ${s.dim}`);
  if (typeof s.threshold !== 'number' || !Number.isFinite(s.threshold)) throw new OodGateError(`${where}: threshold must be a finite number`);
  if (!Array.isArray(s.layers) || !s.layers.length) throw new OodGateError(`${where}: layers missing`);
  return { method: 'mahalanobis', layers: [...s.layers], mean, precision, threshold: s.threshold, quantile: s.quantile, ...(s.thresholdFrom ? { thresholdFrom: s.thresholdFrom } : {}), shrinkage: s.shrinkage, images: s.images };
}

/** Mahalanobis scores of `n` pooled feature rows (row-major [n, dim]). */
export function mahalanobisScores(features: Float32Array, n: number, gate: Pick<OodGate, 'mean' | 'precision'>): Float64Array {
  const d = gate.mean.length;
  if (features.length !== n * d) throw new RangeError(`mahalanobisScores: ${features.length} values for ${n} x ${d}`);
  const out = new Float64Array(n);
  const c = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) c[j] = features[r * d + j]! - gate.mean[j]!;
    let s = 0;
    for (let i = 0; i < d; i++) {
      let q = 0;
      const row = i * d;
      for (let j = 0; j < d; j++) q += gate.precision[row + j]! * c[j]!;
      s += q * c[i]!;
    }
    out[r] = s;
  }
  return out;
}

/** The gate's verdict: out of distribution when the score is above the threshold (NaN counts as out). */
export function isOutOfDistribution(score: number, threshold: number): boolean {
  return !(score <= threshold);
}

/** The warning shown instead of a decision. */
export function oodWarning(score: number, threshold: number): string {
  return `out of distribution (score ${score.toFixed(1)} > ${threshold.toFixed(1)}): this does not look like the upper-extremity radiographs the model was trained on; no decision`;
}
