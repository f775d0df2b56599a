/**
 * The trainer's validation pass: the live TF.js model in inference mode (dropout off, batchnorm running statistics)
 * over the validation records, through the loader (src/data/records.ts). It stays on TF.js: the weights change every
 * epoch, and an ONNX export per pass would cost more than it saves on small validation sets.
 */
import * as tf from '@tensorflow/tfjs-core';
import { inferRecordsWith, type InferenceOptions, type InferenceResult } from '../data/records.js';
import type { ImageRecord } from '../data/types.js';
import type { Model } from '../models/index.js';

/** Runs the model in inference mode (dropout off, batchnorm running statistics) over `records`. */
export async function inferRecords(model: Model, records: readonly ImageRecord[], opts: InferenceOptions): Promise<InferenceResult> {
  const size = opts.preprocessing.size;
  return inferRecordsWith(async (x, n) => tf.tidy(() => model.forward(tf.tensor4d(x, [n, size, size, 3]), false).dataSync() as Float32Array), records, opts);
}
