/**
 * The frozen prefix at a fixed batch size. On the native engine (oneDNN) a sample's output depends, at float32
 * round-off, on the batch size N of the call (oneDNN picks its blocking and kernels by shape), though never on the
 * other samples in the batch (measured: a sample's bits are identical in any batch of the same N, and differ by
 * ~1e-5 between N = 16 and N = 5). Training amplifies such round-off: Adam divides every gradient by its running
 * RMS and batchnorm by a small batch variance, so a feature differing in its last bit moved some weights by
 * 3e-3 after 15 steps in a measured ResNet-18 run.
 *
 * So wherever the feature cache can apply, the prefix runs on exactly PREFIX_BATCH images per call: a batch is
 * cut into chunks of 16 and the last chunk is padded with zero images (their outputs are dropped). Extraction,
 * a step that computes a missing entry, uncached training of a cacheable configuration and its validation all do
 * this, so an image's features are the same bits whether read from the cache or computed, and a cached run equals
 * an uncached one exactly (test/train/feature-cache-train.test.ts). The cost is at most 15 padded images per
 * call, paid only by uncached runs with batches that are not a multiple of 16.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '../../models/index.js';

/** Images per frozen-prefix call (the seed report's batch size). Part of the cache key. */
export const PREFIX_BATCH = 16;

/** model.forwardFrozen(x) computed in calls of exactly PREFIX_BATCH images (see the module comment). */
export function forwardFrozenFixed(model: Model, x: tf.Tensor4D): tf.Tensor4D {
  const n = x.shape[0];
  if (n === PREFIX_BATCH) return model.forwardFrozen(x);
  return tf.tidy(() => {
    const parts: tf.Tensor4D[] = [];
    for (let start = 0; start < n; start += PREFIX_BATCH) {
      const m = Math.min(PREFIX_BATCH, n - start);
      let chunk = n <= PREFIX_BATCH ? x : tf.slice(x, [start, 0, 0, 0], [m, -1, -1, -1]);
      if (m < PREFIX_BATCH) chunk = tf.concat([chunk, tf.zeros([PREFIX_BATCH - m, x.shape[1], x.shape[2], x.shape[3]])], 0);
      const out = model.forwardFrozen(chunk);
      parts.push(m < PREFIX_BATCH ? tf.slice(out, [0, 0, 0, 0], [m, -1, -1, -1]) : out);
    }
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
  });
}
