/**
 * Fitting what makes a trained model's outputs trustworthy, on a finished run (when training ends, or later with
 * `nextray calibrate`), and storing it with the model (checkpoint model.json `extra.trust`, and from there the ONNX
 * export): the OOD gate, the temperature and the operating point, each fitted on held-out (validation) data — see
 * fitTrust.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { BatchLoader } from '../data/loader.js';
import { DatasetError, loadMuraDataset } from '../data/mura.js';
import { loadSplit, selectSubset, SplitFileError } from '../data/splits.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import { initEngine } from '../engine/index.js';
import { studyProbabilities } from '../evaluate/calibration.js';
import { chooseTemperature } from './temperature.js';
import { chooseOperatingPoint, OperatingPointError, type OperatingPointRule } from '../evaluate/threshold.js';
import { mahalanobisScores, storeGate, type OodGate } from '../inference/core/ood.js';
import { finalFeatures, layerStatistics, oodLayers } from '../models/cam.js';
import type { Model, NetworkModel } from '../models/index.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMetadata } from '../models/weights/index.js';
import { Rng } from '../util/rng.js';
import { fitOodGate, quantile } from './ood.js';
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
  /** Quantile of the validation images' OOD scores the threshold sits at (default 0.99: ~1% of held-out radiographs flagged). */
  oodQuantile?: number;
  /** Choose the study-level threshold reaching this validation sensitivity instead of the maximum-kappa one. */
  targetSensitivity?: number;
  /** Fit the OOD gate on at most this many training images (seeded sample; default all). */
  maxTrainImages?: number;
  /** Also score the test split's images for the OOD flag rate (default true when the split has a test part). */
  testFlagRate?: boolean;
  batchSize?: number;
  workers?: number;
  onLog?: (line: string) => void;
}

export interface FitTrustResult {
  checkpoint: string;
  trust: TrustInfo;
  decisionThreshold: number;
  /** Flag rates of the OOD gate on the training, validation and (when scored) test radiographs. */
  oodFlagRate: { train: number; validation: number; test?: number };
  gate: OodGate;
}

/** Study index per record and the label of each study, in first-appearance order. */
export function studyIndex(records: readonly ImageRecord[]): { study: Uint32Array; labels: number[]; keys: string[] } {
  const idx = new Map<string, number>();
  const labels: number[] = [];
  const keys: string[] = [];
  const study = new Uint32Array(records.length);
  records.forEach((r, i) => {
    let s = idx.get(r.study);
    if (s === undefined) {
      s = labels.length;
      idx.set(r.study, s);
      labels.push(r.label);
      keys.push(r.study);
    }
    study[i] = s;
  });
  return { study, labels, keys };
}

/**
 * Fits, for a run or checkpoint, everything a decision rests on besides the weights — each on data the model did
 * not train on, except the OOD gate's mean and covariance, which describe the training images:
 *   - the OOD gate: mean and Ledoit-Wolf covariance of the training images' layer statistics; threshold at the
 *     `oodQuantile` quantile of the VALIDATION images' scores (training images score lower than new ones, so
 *     their own quantile flags several times the nominal share of held-out radiographs);
 *   - the temperature: fitted on the validation images' logits and on their study probabilities; the study-level
 *     one is kept when it gives the lower validation study ECE (chooseTemperature);
 *   - the operating point: the study-level threshold on the calibrated validation probabilities, by maximum
 *     Cohen's kappa (default) or for a target sensitivity; it becomes the checkpoint's decisionThreshold, which
 *     export, predict, serve, the page and `evaluate --model` use.
 * Writes them into the checkpoint (model.json `extra.trust`).
 */
export async function fitTrust(modelPath: string, opts: FitTrustOptions): Promise<FitTrustResult> {
  await initEngine();
  const log = opts.onLog ?? (() => undefined);
  const loaded = loadTrainedModel(modelPath, opts.which ?? 'best');
  try {
    const splitFile = opts.splitFile ?? runPaths(modelPath).split;
    if (!existsSync(splitFile)) throw new SplitFileError(splitFile, 'no split file (give --split)');
    const dataset = await loadMuraDataset(opts.data);
    const split = loadSplit(splitFile, dataset);
    let train = selectSubset(dataset, split, 'train').images;
    const val = selectSubset(dataset, split, 'validation').images;
    let test: ImageRecord[] = [];
    try {
      test = opts.testFlagRate === false ? [] : selectSubset(dataset, split, 'test').images;
    } catch {
      test = [];
    }
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
    log(`trust: features of ${train.length} training, ${val.length} validation${test.length ? ` and ${test.length} test` : ''} images`);
    const layers = oodLayers(loaded.model);
    const tr = await collectFeatures(loaded.model, train, loaded.preprocessing, layers, common);
    const va = await collectFeatures(loaded.model, val, loaded.preprocessing, layers, common);
    const te = test.length ? await collectFeatures(loaded.model, test, loaded.preprocessing, layers, common) : null;
    if (!va.records.length) throw new DatasetError(`${opts.data}: no validation image could be read: nothing to fit the threshold, temperature and OOD threshold on`);

    // The gate's covariance needs two training images at least.
    if (tr.records.length < 2) throw new DatasetError(`${opts.data}: ${tr.records.length} training image(s) of the split could be read: the OOD gate needs at least 2`);

    // OOD gate: statistics of the training images, threshold from the validation images' scores.
    const q = opts.oodQuantile ?? 0.99;
    const fitted = fitOodGate(tr.features, tr.records.length, tr.dim, q, layers);
    const valScores = mahalanobisScores(va.features, va.records.length, fitted);
    const gate: OodGate = { method: fitted.method, layers: fitted.layers, mean: fitted.mean, precision: fitted.precision, threshold: quantile(valScores, q), quantile: q, thresholdFrom: 'validation', shrinkage: fitted.shrinkage, images: fitted.images };
    const flag = (sc: Float64Array): number => sc.reduce((c, v) => c + (v > gate.threshold ? 1 : 0), 0) / Math.max(1, sc.length);
    const rates: FitTrustResult['oodFlagRate'] = { train: flag(fitted.trainScores), validation: flag(valScores) };
    if (te && te.records.length) rates.test = flag(mahalanobisScores(te.features, te.records.length, gate));

    // Temperature: image level or study level, whichever gives the lower validation study ECE.
    const labels = va.records.map((r) => r.label);
    const si = studyIndex(va.records);
    const tc = chooseTemperature(va.logits, labels, si.study, si.labels);
    const fitUsed = tc.level === 'study' ? { nllBefore: tc.study.nllBefore, nllAfter: tc.study.nllAfter } : { nllBefore: tc.image.nllBefore, nllAfter: tc.image.nllAfter };
    const trust: TrustInfo = {
      temperature: {
        value: tc.temperature,
        fittedOn: 'validation',
        level: tc.level,
        images: va.records.length,
        studies: si.labels.length,
        ...fitUsed,
        eceBefore: tc.imageEce.before,
        eceAfter: tc.imageEce.after,
        studyEceBefore: tc.studyEce.before,
        studyEceAfter: tc.studyEce.after,
        candidates: { image: tc.image.temperature, study: tc.study.temperature },
      },
      ood: { ...storeGate(gate), fittedOn: 'train', thresholdFrom: 'validation', flagRates: rates },
    };

    // Operating point: study level, on the calibrated probabilities predict will produce.
    let decisionThreshold = loaded.metadata.decisionThreshold;
    const studyP = studyProbabilities(va.logits, si.study, si.labels.length, tc.temperature);
    const cases = si.labels.map((label, s) => ({ label: label as 0 | 1, probability: studyP[s]! }));
    const rule: OperatingPointRule = opts.targetSensitivity !== undefined ? { kind: 'sensitivity-target', sensitivity: opts.targetSensitivity } : { kind: 'max-kappa' };
    try {
      const op = chooseOperatingPoint(cases, rule);
      trust.operatingPoint = { ...op, level: 'study', fittedOn: 'validation' };
      decisionThreshold = op.threshold;
    } catch (err) {
      if (opts.targetSensitivity !== undefined) throw err instanceof OperatingPointError ? new DatasetError(`${opts.data}: --target-sensitivity ${opts.targetSensitivity}: ${err.message}`, { hint: err.hint }) : err;
      log(`trust: no operating point chosen (${(err as Error).message}); the threshold stays ${decisionThreshold}`);
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
    const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
    const t = trust.temperature!;
    const op = trust.operatingPoint;
    log(
      `trust: temperature ${tc.temperature.toFixed(3)} (${tc.level} level; validation ECE image ${t.eceBefore.toFixed(4)} -> ${t.eceAfter.toFixed(4)}, study ${t.studyEceBefore!.toFixed(4)} -> ${t.studyEceAfter!.toFixed(4)}); ` +
        `OOD gate on ${layers.join(', ')} (dim ${tr.dim}), shrinkage ${gate.shrinkage.toFixed(3)}, threshold ${gate.threshold.toFixed(1)} (validation q${q}), flags ${pct(rates.train)} train / ${pct(rates.validation)} validation` +
        (rates.test !== undefined ? ` / ${pct(rates.test)} test` : '') +
        (op ? `; study threshold ${decisionThreshold.toFixed(4)} (${op.rule === 'max-kappa' ? 'max kappa' : `sensitivity >= ${op.targetSensitivity}`}: validation kappa ${op.validationKappa?.toFixed(3) ?? '-'}, sensitivity ${op.validationSensitivity.toFixed(3)}, specificity ${op.validationSpecificity?.toFixed(3) ?? '-'})` : ''),
    );
    return { checkpoint: loaded.checkpoint, trust, decisionThreshold, oodFlagRate: rates, gate };
  } finally {
    loaded.model.dispose();
  }
}
