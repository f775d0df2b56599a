/**
 * Training losses: numerically stable binary cross-entropy from logits, the MURA paper's per-study-type class
 * weights, per-region weights (set by hand or derived from validation loss), and the Keras-style L2 penalty.
 *
 * Every loss is a per-image weighted BCE: loss_i = w_i * bce(z_i, y_i), averaged over the batch (sum / n, not
 * sum / sum(w), so that weights change the scale of the loss exactly as the MURA paper's formula does).
 */
import * as tf from '@tensorflow/tfjs-core';
import { REGIONS, type ImageRecord, type Label, type Region } from '../data/types.js';

export const LOSS_KINDS = ['bce', 'mura-weighted', 'region-weighted'] as const;
export type LossKind = (typeof LOSS_KINDS)[number];

/**
 * Element-wise BCE from logits z and labels y in {0, 1} (any shape, same shape):
 *   max(z, 0) - z * y + log(1 + exp(-|z|))
 * which equals -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)) without overflow for large |z|.
 */
export function bceWithLogits(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits))))),
  );
}

/** Mean over the batch of weights_i * bce_i (weights default 1). Returns a scalar. */
export function weightedBceMean(logits: tf.Tensor, labels: tf.Tensor, weights?: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const per = bceWithLogits(tf.reshape(logits, [-1]), tf.reshape(labels, [-1]));
    return tf.mean(weights ? tf.mul(per, tf.reshape(weights, [-1])) : per) as tf.Scalar;
  });
}

/**
 * Keras-style kernel_regularizer: factor * sum(w^2) over the given weights, added to every batch's loss (the
 * gradient is 2 * factor * w). Note this is not PyTorch's weight_decay (factor * w added to the gradient).
 */
export function l2Penalty(weights: readonly tf.Tensor[], factor: number): tf.Scalar {
  return tf.tidy(() => {
    if (factor === 0 || weights.length === 0) return tf.scalar(0);
    let s: tf.Tensor = tf.scalar(0);
    for (const w of weights) s = tf.add(s, tf.sum(tf.square(w)));
    return tf.mul(s, factor) as tf.Scalar;
  });
}

/** Class weights for one region: w1 multiplies the loss of abnormal images, w0 of normal ones. */
export interface ClassWeights {
  w0: number;
  w1: number;
}

export type RegionClassWeights = Partial<Record<Region, ClassWeights>>;

/**
 * The MURA paper's weighted BCE (Rajpurkar et al. 2017, section 3): for study type T,
 *   w1_T = |N_T| / (|A_T| + |N_T|)  (abnormal),   w0_T = |A_T| / (|A_T| + |N_T|)  (normal),
 * where |A_T|, |N_T| count the abnormal and normal *images* of type T in the training set. A region whose training
 * images are all of one class would get a zero weight for that class; it gets w0 = w1 = 1 instead.
 */
export function muraClassWeights(trainImages: readonly Pick<ImageRecord, 'region' | 'label'>[]): RegionClassWeights {
  const counts = new Map<Region, { a: number; n: number }>();
  for (const r of trainImages) {
    const c = counts.get(r.region) ?? { a: 0, n: 0 };
    if (r.label === 1) c.a++;
    else c.n++;
    counts.set(r.region, c);
  }
  const out: RegionClassWeights = {};
  for (const region of REGIONS) {
    const c = counts.get(region);
    if (!c) continue;
    const total = c.a + c.n;
    out[region] = c.a === 0 || c.n === 0 ? { w0: 1, w1: 1 } : { w0: c.a / total, w1: c.n / total };
  }
  return out;
}

/** Per-region multipliers (one number per region, both classes), for the `region-weighted` loss. */
export type RegionWeights = Partial<Record<Region, number>>;

/**
 * Region weights derived from validation loss: weight_T = valLoss_T / mean over regions of valLoss, so regions the
 * model does worst on count more in the next epoch; then rescaled so the average weight over the *training
 * images* is 1 (the overall loss scale, and so the effective learning rate, stays that of plain BCE). Regions
 * absent from validation keep weight 1.
 */
export function regionWeightsFromValidation(
  valLossByRegion: Partial<Record<Region, number>>,
  trainImages: readonly Pick<ImageRecord, 'region'>[],
): RegionWeights {
  const losses = REGIONS.map((r) => valLossByRegion[r]).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const meanLoss = losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : 0;
  const raw: RegionWeights = {};
  for (const r of REGIONS) {
    const l = valLossByRegion[r];
    raw[r] = meanLoss > 0 && l !== undefined && Number.isFinite(l) ? l / meanLoss : 1;
  }
  if (!trainImages.length) return raw;
  let s = 0;
  for (const im of trainImages) s += raw[im.region] ?? 1;
  const scale = trainImages.length / s;
  const out: RegionWeights = {};
  for (const r of REGIONS) out[r] = (raw[r] ?? 1) * scale;
  return out;
}

/** The per-image weights of one batch under a loss; null for plain BCE (all ones). */
export function batchWeights(
  kind: LossKind,
  records: readonly Pick<ImageRecord, 'region' | 'label'>[],
  classWeights: RegionClassWeights,
  regionWeights: RegionWeights,
): Float32Array | null {
  if (kind === 'bce') return null;
  const w = new Float32Array(records.length);
  records.forEach((r, i) => {
    if (kind === 'mura-weighted') {
      const c = classWeights[r.region] ?? { w0: 1, w1: 1 };
      w[i] = (r.label as Label) === 1 ? c.w1 : c.w0;
    } else {
      w[i] = regionWeights[r.region] ?? 1;
    }
  });
  return w;
}

/** Plain-number BCE for one prediction (validation bookkeeping in float64). */
export function bceScalar(logit: number, label: number): number {
  return Math.max(logit, 0) - logit * label + Math.log1p(Math.exp(-Math.abs(logit)));
}
