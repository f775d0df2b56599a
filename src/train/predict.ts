/**
 * Inference over image records: a model (live, or rebuilt from a checkpoint folder or a run directory) ->
 * per-image logits and probabilities -> `Prediction` rows ({image, label, probability}) that src/evaluate takes.
 * Used by the trainer's validation pass, by `nextray evaluate --model RUN`, and by the demo.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BatchLoader, type BadImage, type ImageCache } from '../data/loader.js';
import { initEngine } from '../engine/index.js';
import { loadMuraDataset } from '../data/mura.js';
import { loadSplit, selectSubset, type Subset } from '../data/splits.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import type { Prediction } from '../evaluate/predictions.js';
import type { Model } from '../models/index.js';
import { loadCheckpoint, type CheckpointMetadata } from '../models/weights/index.js';
import { buildModel } from './archs.js';
import { runPaths } from './run-dir.js';

export interface InferenceResult {
  /** Records that produced an output, in the records' order (bad images left out). */
  records: ImageRecord[];
  /** One logit per kept record. */
  logits: Float32Array;
  badImages: BadImage[];
}

export interface InferenceOptions {
  preprocessing: Preprocessing;
  batchSize?: number;
  workers?: number;
  /** Decoded images kept across calls (the trainer's validation passes); see ImageCache. */
  cache?: ImageCache;
  /** Called after each batch with the number of images done. */
  onProgress?: (done: number, total: number) => void;
}

/** Runs the model in inference mode (dropout off, batchnorm running statistics) over `records`. */
export async function inferRecords(model: Model, records: readonly ImageRecord[], opts: InferenceOptions): Promise<InferenceResult> {
  const loader = new BatchLoader(records, {
    batchSize: opts.batchSize ?? 16,
    shuffle: false,
    augment: false,
    preprocessing: opts.preprocessing,
    workers: opts.workers ?? 2,
    ...(opts.cache ? { cache: opts.cache } : {}),
  });
  const size = opts.preprocessing.size;
  const out: { index: number; logit: number }[] = [];
  try {
    let done = 0;
    for await (const batch of loader.epoch(0)) {
      const logits = tf.tidy(() => {
        const x = tf.tensor4d(batch.x, [batch.n, size, size, 3]);
        return model.forward(x, false).dataSync() as Float32Array;
      });
      batch.indices.forEach((index, k) => out.push({ index, logit: logits[k]! }));
      done += batch.n;
      opts.onProgress?.(done, records.length);
    }
  } finally {
    await loader.close();
  }
  out.sort((a, b) => a.index - b.index);
  return {
    records: out.map((o) => records[o.index]!),
    logits: Float32Array.from(out.map((o) => o.logit)),
    badImages: loader.badImages,
  };
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** Prediction rows for src/evaluate from an inference result. */
export function toPredictions(result: InferenceResult): Prediction[] {
  return result.records.map((r, i) => ({ image: r.path, label: r.label, probability: sigmoid(result.logits[i]!) }));
}

export interface LoadedModel {
  model: Model;
  metadata: CheckpointMetadata;
  preprocessing: Preprocessing;
  /** The checkpoint folder actually read. */
  checkpoint: string;
}

/**
 * Rebuilds a trained model from a checkpoint folder, or from a run directory (its best checkpoint, else its last).
 * The architecture, head and preprocessing come from the checkpoint's model.json.
 */
export function loadTrainedModel(path: string, which: 'best' | 'last' = 'best'): LoadedModel {
  let dir = resolve(path);
  if (existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'checkpoints'))) {
    const p = runPaths(dir);
    const want = which === 'best' ? p.best : p.last;
    dir = existsSync(want) ? want : which === 'best' ? p.last : p.best;
    if (!existsSync(dir)) throw new Error(`${path}: the run has no checkpoint yet (no completed epoch)`);
  }
  const ckpt = loadCheckpoint(dir, { skipOptimizer: true });
  const meta = ckpt.metadata;
  const dropout = typeof meta.head.dropout === 'number' ? meta.head.dropout : 0.5;
  const model = buildModel(meta.arch, { dropout, seed: 0, init: 'none' });
  try {
    model.loadStateDict(ckpt.tensors, { strict: true, layout: 'torch', source: dir });
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, metadata: meta, preprocessing: meta.preprocessing, checkpoint: dir };
}

export interface PredictSplitOptions {
  /** Dataset folder (MURA layout). */
  data: string;
  /** Split file; default: the run directory's split.json. */
  splitFile?: string;
  subset: Subset;
  batchSize?: number;
  workers?: number;
  which?: 'best' | 'last';
  onProgress?: (done: number, total: number) => void;
}

export interface SplitPredictions {
  predictions: Prediction[];
  badImages: BadImage[];
  checkpoint: string;
  metadata: CheckpointMetadata;
  images: number;
}

/**
 * Predictions of a trained model (run directory or checkpoint folder) on one subset of a dataset: what
 * `nextray evaluate --model RUN --data DIR --split test` evaluates.
 */
export async function predictSplit(modelPath: string, opts: PredictSplitOptions): Promise<SplitPredictions> {
  await initEngine(); // NEXTRAY_ENGINE or auto; a no-op when the caller already chose one
  const splitFile = opts.splitFile ?? runPaths(modelPath).split;
  if (opts.subset !== 'train' && !existsSync(splitFile)) {
    throw new Error(`${splitFile}: no split file; give one (the run directory's split.json is used by default)`);
  }
  const dataset = await loadMuraDataset(opts.data);
  const split = opts.subset === 'train' ? null : loadSplit(splitFile, dataset);
  const sel = split ? selectSubset(dataset, split, opts.subset) : { images: dataset.images.filter((i) => i.split === 'train') };
  if (!sel.images.length) throw new Error(`${opts.data}: the ${opts.subset} subset has no images`);
  const loaded = loadTrainedModel(modelPath, opts.which ?? 'best');
  try {
    const res = await inferRecords(loaded.model, sel.images, {
      preprocessing: loaded.preprocessing,
      batchSize: opts.batchSize ?? 16,
      workers: opts.workers ?? 2,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    return { predictions: toPredictions(res), badImages: res.badImages, checkpoint: loaded.checkpoint, metadata: loaded.metadata, images: sel.images.length };
  } finally {
    loaded.model.dispose();
  }
}
