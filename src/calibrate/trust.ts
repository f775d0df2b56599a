/**
 * Fitting what makes a trained model's outputs trustworthy, on a finished run (when training ends, or later with
 * `nextray calibrate`), and storing it with the model (checkpoint model.json `extra.trust`, and from there the ONNX
 * export):
 *   - the OOD gate (ood.ts) on the training images' pooled features, threshold at a training quantile;
 *   - temperature scaling (temperature.ts) on the validation images' logits;
 *   - optionally an operating point: the study-level threshold reaching a target sensitivity on validation
 *     (on the calibrated probabilities), stored as the checkpoint's decisionThreshold.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { BatchLoader } from '../data/loader.js';
import { loadMuraDataset } from '../data/mura.js';
import { loadSplit, selectSubset } from '../data/splits.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import { initEngine } from '../engine/index.js';
import { calibration } from '../evaluate/calibration.js';
import { applyTemperature, fitTemperature } from './temperature.js';
import { thresholdForSensitivity } from '../evaluate/threshold.js';
import { mahalanobisScores, storeGate, type OodGate } from '../inference/core/ood.js';
import { finalFeatures, layerStatistics, oodLayers } from '../models/cam.js';
import type { Model, NetworkModel } from '../models/index.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMetadata } from '../models/weights/index.js';
import { Rng } from '../util/rng.js';
import { fitOodGate } from './ood.js';
import { loadTrainedModel } from '../inference/node/checkpoint.js';
import { runPaths } from '../runs/run-dir.js';

import type { TrustInfo } from '../inference/core/trust.js';

/** The OOD gate's feature statistics of `layers` [n, dim] and the logits [n] of NHWC images, in inference mode. */
export function pooledFeaturesAndLogits(model: Model | NetworkModel, x: Float32Array, n: number, size: number, layers: readonly string[]): { features: Float32Array; logits: Float32Array; dim: number } {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [n, size, size, 3]);
    const stats = layerStatistics(model, xt, layers);
    const logits = tf.reshape(model.forward(xt, false), [-1]);
    void finalFeatures;
    return { features: stats.dataSync() as Float32Array, logits: logits.dataSync() as Float32Array, dim: stats.shape[1] };
  });
}

export interface FeatureSet {
  records: ImageRecord[];
  features: Float32Array;
  logits: Float32Array;
  dim: number;
}

/** Features and logits of `records` (bad images skipped), in the records' order. */
export async function collectFeatures(model: Model, records: readonly ImageRecord[], pre: Preprocessing, layers: readonly string[], opts: { batchSize?: number; workers?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<FeatureSet> {
  const loader = new BatchLoader(records, { batchSize: opts.batchSize ?? 32, shuffle: false, augment: false, preprocessing: pre, workers: opts.workers ?? 2 });
  const rows: { index: number; f: Float32Array; z: number }[] = [];
  let dim = 0;
  try {
    let done = 0;
    for await (const b of loader.epoch(0)) {
      const r = pooledFeaturesAndLogits(model, b.x, b.n, pre.size, layers);
      dim = r.dim;
      b.indices.forEach((index, k) => rows.push({ index, f: r.features.slice(k * dim, (k + 1) * dim), z: r.logits[k]! }));
      done += b.n;
      opts.onProgress?.(done, records.length);
    }
  } finally {
    await loader.close();
  }
  rows.sort((a, b) => a.index - b.index);
  const features = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => features.set(r.f, i * dim));
  return { records: rows.map((r) => records[r.index]!), features, logits: Float32Array.from(rows.map((r) => r.z)), dim };
}

export interface FitTrustOptions {
  data: string;
  /** Default: the run directory's split.json. */
  splitFile?: string;
  which?: 'best' | 'last';
  /** Training-score quantile of the OOD threshold (default 0.99). */
  oodQuantile?: number;
  /** Also store the study-level operating point for this validation sensitivity. */
  targetSensitivity?: number;
  /** Fit the OOD gate on at most this many training images (seeded sample; default all). */
  maxTrainImages?: number;
  batchSize?: number;
  workers?: number;
  onLog?: (line: string) => void;
}

export interface FitTrustResult {
  checkpoint: string;
  trust: TrustInfo;
  decisionThreshold: number;
  /** Flag rates of the OOD gate on the training and validation radiographs. */
  oodFlagRate: { train: number; validation: number };
  gate: OodGate;
}

/** Fits the gate, the temperature (and the operating point) for a run or checkpoint, and writes them into it. */
export async function fitTrust(modelPath: string, opts: FitTrustOptions): Promise<FitTrustResult> {
  await initEngine();
  const log = opts.onLog ?? (() => undefined);
  const loaded = loadTrainedModel(modelPath, opts.which ?? 'best');
  try {
    const splitFile = opts.splitFile ?? runPaths(modelPath).split;
    if (!existsSync(splitFile)) throw new Error(`${splitFile}: no split file (give --split)`);
    const dataset = await loadMuraDataset(opts.data);
    const split = loadSplit(splitFile, dataset);
    let train = selectSubset(dataset, split, 'train').images;
    const val = selectSubset(dataset, split, 'validation').images;
    if (opts.maxTrainImages && train.length > opts.maxTrainImages) {
      const rng = new Rng('trust-ood-sample');
      const idx = train.map((_, i) => i);
      for (let i = idx.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        [idx[i], idx[j]] = [idx[j]!, idx[i]!];
      }
      train = idx.slice(0, opts.maxTrainImages).sort((a, b) => a - b).map((i) => train[i]!);
    }
    const common = { ...(opts.batchSize ? { batchSize: opts.batchSize } : {}), ...(opts.workers ? { workers: opts.workers } : {}) };
    log(`trust: features of ${train.length} training and ${val.length} validation images`);
    const layers = oodLayers(loaded.model);
    const tr = await collectFeatures(loaded.model, train, loaded.preprocessing, layers, common);
    const va = await collectFeatures(loaded.model, val, loaded.preprocessing, layers, common);
    const q = opts.oodQuantile ?? 0.99;
    const gate = fitOodGate(tr.features, tr.records.length, tr.dim, q, layers);
    const valScores = mahalanobisScores(va.features, va.records.length, gate);
    const flag = (s: Float64Array): number => s.reduce((c, v) => c + (v > gate.threshold ? 1 : 0), 0) / Math.max(1, s.length);
    const labels = va.records.map((r) => r.label);
    const fit = fitTemperature(va.logits, labels);
    const before = calibration(applyTemperature(va.logits, 1), labels);
    const after = calibration(applyTemperature(va.logits, fit.temperature), labels);
    const trust: TrustInfo = {
      temperature: { value: fit.temperature, fittedOn: 'validation', images: fit.n, nllBefore: fit.nllBefore, nllAfter: fit.nllAfter, eceBefore: before.ece, eceAfter: after.ece },
      ood: { ...storeGate(gate), fittedOn: 'train' },
    };
    let decisionThreshold = loaded.metadata.decisionThreshold;
    if (opts.targetSensitivity !== undefined) {
      // Study level, on the calibrated probabilities predict will produce (mean of the views, as in MURA).
      const p = applyTemperature(va.logits, fit.temperature);
      const studies = new Map<string, { label: 0 | 1; s: number; n: number }>();
      va.records.forEach((r, i) => {
        const s = studies.get(r.study) ?? { label: r.label, s: 0, n: 0 };
        s.s += p[i]!;
        s.n++;
        studies.set(r.study, s);
      });
      const choice = thresholdForSensitivity([...studies.values()].map((s) => ({ label: s.label, probability: s.s / s.n })), opts.targetSensitivity);
      trust.operatingPoint = { ...choice, level: 'study', fittedOn: 'validation' };
      decisionThreshold = choice.threshold;
    }
    // Rewrite the checkpoint with the same tensors and the trust information.
    const ck = loadCheckpoint(loaded.checkpoint, { skipOptimizer: false });
    const m = ck.metadata;
    saveCheckpoint(
      loaded.checkpoint,
      {
        tensors: ck.tensors,
        metadata: {
          arch: m.arch,
          inputShape: m.inputShape,
          preprocessing: m.preprocessing,
          head: m.head,
          decisionThreshold,
          ...(m.training ? { training: m.training } : {}),
          ...(m.dataset ? { dataset: m.dataset } : {}),
          versions: m.versions,
          created: m.created,
          extra: { ...m.extra, trust },
        },
      },
      ck.optimizer ? { optimizer: ck.optimizer } : {},
    );
    const rates = { train: flag(gate.trainScores), validation: flag(valScores) };
    log(
      `trust: temperature ${fit.temperature.toFixed(3)} (validation ECE ${before.ece.toFixed(4)} -> ${after.ece.toFixed(4)}); ` +
        `OOD gate on ${layers.join(', ')} (dim ${tr.dim}), shrinkage ${gate.shrinkage.toFixed(3)}, threshold ${gate.threshold.toFixed(1)} (train q${q}), flags ${(100 * rates.train).toFixed(1)}% train / ${(100 * rates.validation).toFixed(1)}% validation` +
        (trust.operatingPoint ? `; threshold ${decisionThreshold.toFixed(4)} for study sensitivity >= ${opts.targetSensitivity}` : ''),
    );
    return { checkpoint: loaded.checkpoint, trust, decisionThreshold, oodFlagRate: rates, gate };
  } finally {
    loaded.model.dispose();
  }
}
