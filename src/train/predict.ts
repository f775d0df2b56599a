/**
 * Inference over image records: a model (live, or rebuilt from a checkpoint folder or a run directory) ->
 * per-image logits and probabilities -> `Prediction` rows ({image, label, probability}) that src/evaluate takes.
 * Used by the trainer's validation pass, by `nextray evaluate --model RUN`, and by the demo.
 *
 * Prediction of a split (`predictSplit`) runs in ONNX Runtime by default: the checkpoint's model is exported to
 * ONNX in memory (src/models/onnx) and one onnxruntime-node session runs every batch — the fastest engine measured
 * for inference here. TF.js stays as the fallback ('auto' uses it, with one stderr line saying why, when
 * onnxruntime-node does not load or the architecture cannot be exported) and as an explicit choice ('tfjs').
 * The trainer's validation pass stays on TF.js: its weights change every epoch and an export per pass would
 * cost more than it saves on small validation sets.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BatchLoader, type BadImage, type ImageCache } from '../data/loader.js';
import { initEngine } from '../engine/index.js';
import { loadMuraDataset } from '../data/mura.js';
import { loadSplit, selectSubset, type Subset } from '../data/splits.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import type { Prediction } from '../evaluate/predictions.js';
import type { Model, NetworkModel } from '../models/index.js';
import { exportOnnx } from '../models/onnx/export.js';
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

/** Logits [n] for `n` preprocessed NHWC images (`x` holds n * size * size * 3 values). */
export type BatchRunner = (x: Float32Array, n: number) => Promise<Float32Array>;

/** Runs the model in inference mode (dropout off, batchnorm running statistics) over `records`. */
export async function inferRecords(model: Model, records: readonly ImageRecord[], opts: InferenceOptions): Promise<InferenceResult> {
  return inferRecordsWith(tfjsRunner(model, opts.preprocessing.size), records, opts);
}

/** A batch runner over the TF.js model (inference mode; every tensor freed by tf.tidy). */
export function tfjsRunner(model: Model, size: number): BatchRunner {
  return async (x, n) => tf.tidy(() => model.forward(tf.tensor4d(x, [n, size, size, 3]), false).dataSync() as Float32Array);
}

/**
 * `inferRecords` over any engine: the same loader, batching and ordering, with `run` producing each batch's
 * logits (TF.js model, ONNX Runtime session, ...).
 */
export async function inferRecordsWith(run: BatchRunner, records: readonly ImageRecord[], opts: InferenceOptions): Promise<InferenceResult> {
  const loader = new BatchLoader(records, {
    batchSize: opts.batchSize ?? 16,
    shuffle: false,
    augment: false,
    preprocessing: opts.preprocessing,
    workers: opts.workers ?? 2,
    ...(opts.cache ? { cache: opts.cache } : {}),
  });
  const out: { index: number; logit: number }[] = [];
  try {
    let done = 0;
    for await (const batch of loader.epoch(0)) {
      const logits = await run(batch.x, batch.n);
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

/** Which engine runs prediction: ONNX Runtime, TF.js, or ONNX Runtime when it can (default). */
export type PredictEngine = 'onnx' | 'tfjs' | 'auto';
export const PREDICT_ENGINES: readonly PredictEngine[] = ['auto', 'onnx', 'tfjs'];

/** What ran a prediction. */
export interface PredictEngineInfo {
  name: 'onnx' | 'tfjs';
  /** e.g. 'onnxruntime-node 1.30.0 (CPU, 2 threads)' or the TF.js engine's description. */
  description: string;
  /** With 'auto': why ONNX Runtime was not used (absent when it was). */
  fallbackReason?: string;
  /** Seconds spent preparing the engine (ONNX export + session creation; 0 for TF.js). */
  setupSeconds: number;
  /** Seconds spent inside the engine's forward passes (decoding excluded). */
  inferenceSeconds: number;
}

/** The Node face of ONNX Runtime that prediction needs (src/models/onnx/runtime.ts). */
export type OnnxRuntimeFace = Pick<typeof import('../models/onnx/runtime.js'), 'OnnxClassifier'> & { version: string };

/** Loads onnxruntime-node through src/models/onnx/runtime.ts; throws when its native binding does not load. */
export async function loadOnnxRuntime(): Promise<OnnxRuntimeFace> {
  const mod = await import('../models/onnx/runtime.js');
  const require = createRequire(import.meta.url);
  const version = (require('onnxruntime-node/package.json') as { version: string }).version;
  return { OnnxClassifier: mod.OnnxClassifier, version };
}

/** A batch runner over ONNX Runtime for `model`, exported in memory. Throws (with the reason) when it cannot. */
export async function onnxRunner(
  model: Model,
  preprocessing: Preprocessing,
  opts: { loadRuntime?: () => Promise<OnnxRuntimeFace>; threads?: number; onnxFile?: string } = {},
): Promise<{ run: BatchRunner; description: string; release: () => Promise<void> }> {
  let rt: OnnxRuntimeFace;
  try {
    rt = await (opts.loadRuntime ?? loadOnnxRuntime)();
  } catch (err) {
    throw new Error(`onnxruntime-node does not load: ${(err as Error).message}`);
  }
  // Export problems (an architecture the exporter does not know) are reported as such, before any session.
  // An exported file (e.g. an fp16/int8 one from `nextray export --precision`) replaces the in-memory export.
  const source = opts.onnxFile ?? exportOnnx(model as Model | NetworkModel, { inputSize: preprocessing.size, preprocessing }).toBytes();
  const threads = opts.threads ?? availableParallelism();
  const clf = await rt.OnnxClassifier.create(source, { threads, maxBatch: 64 });
  const k = clf.numOutputs;
  if (k !== 1) {
    await clf.release();
    throw new Error(`expected the binary head (1 output), the exported model has ${k}`);
  }
  if (opts.onnxFile && JSON.stringify(clf.info.preprocessing) !== JSON.stringify(preprocessing)) {
    await clf.release();
    throw new Error(`${opts.onnxFile}: its preprocessing ${JSON.stringify(clf.info.preprocessing)} differs from the checkpoint's ${JSON.stringify(preprocessing)}`);
  }
  const per = preprocessing.size * preprocessing.size * 3;
  return {
    run: async (x, n) => (await clf.run(x.length === n * per ? x : x.subarray(0, n * per), n)).logits,
    description: `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'})${opts.onnxFile ? `, ${opts.onnxFile} (${clf.info.metadata.precision ?? 'fp32'})` : ''}`,
    release: () => clf.release(),
  };
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
  /**
   * 'auto' (default): ONNX Runtime when onnxruntime-node loads and the architecture exports, else TF.js with one
   * line on stderr (or to `onLog`) saying why; 'onnx': ONNX Runtime or an error; 'tfjs': TF.js.
   */
  engine?: PredictEngine;
  /** Where the fallback notice goes (default: a line on stderr). */
  onLog?: (line: string) => void;
  /** ONNX Runtime threads (default: all cores). */
  threads?: number;
  /** Supplies ONNX Runtime (default: onnxruntime-node via src/models/onnx/runtime.ts); a seam for hosts and tests. */
  loadOnnxRuntime?: () => Promise<OnnxRuntimeFace>;  /** An exported .onnx file of this checkpoint (any precision) to run instead of exporting it in memory. */
  onnxFile?: string;
}

export interface SplitPredictions {
  predictions: Prediction[];
  /** The model's logit per prediction (same order). */
  logits: Float32Array;
  badImages: BadImage[];
  checkpoint: string;
  metadata: CheckpointMetadata;
  images: number;
  /** Which engine produced the predictions, and how long it took. */
  engine: PredictEngineInfo;
}

/**
 * Predictions of a trained model (run directory or checkpoint folder) on one subset of a dataset: what
 * `nextray evaluate --model RUN --data DIR --split test` evaluates.
 */
export async function predictSplit(modelPath: string, opts: PredictSplitOptions): Promise<SplitPredictions> {
  const tfEngine = await initEngine(); // NEXTRAY_ENGINE or auto; a no-op when the caller already chose one
  const splitFile = opts.splitFile ?? runPaths(modelPath).split;
  if (opts.subset !== 'train' && !existsSync(splitFile)) {
    throw new Error(`${splitFile}: no split file; give one (the run directory's split.json is used by default)`);
  }
  const dataset = await loadMuraDataset(opts.data);
  const split = opts.subset === 'train' ? null : loadSplit(splitFile, dataset);
  const sel = split ? selectSubset(dataset, split, opts.subset) : { images: dataset.images.filter((i) => i.split === 'train') };
  if (!sel.images.length) throw new Error(`${opts.data}: the ${opts.subset} subset has no images`);
  const requested = opts.engine ?? 'auto';
  if (!PREDICT_ENGINES.includes(requested)) throw new Error(`engine must be one of ${PREDICT_ENGINES.join(', ')}, got '${String(requested)}'`);
  const loaded = loadTrainedModel(modelPath, opts.which ?? 'best');
  let onnx: Awaited<ReturnType<typeof onnxRunner>> | null = null;
  let modelLive = true;
  try {
    let fallbackReason: string | undefined;
    const t0 = performance.now();
    if (requested !== 'tfjs') {
      try {
        onnx = await onnxRunner(loaded.model, loaded.preprocessing, {
          ...(opts.loadOnnxRuntime ? { loadRuntime: opts.loadOnnxRuntime } : {}),
          ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
          ...(opts.onnxFile !== undefined ? { onnxFile: opts.onnxFile } : {}),
        });
        // The session holds its own copy of the weights: free TF.js's now (hundreds of MB for ResNet-152).
        loaded.model.dispose();
        modelLive = false;
      } catch (err) {
        const why = `${loaded.metadata.arch}: ONNX Runtime unavailable: ${(err as Error).message}`;
        if (requested === 'onnx' || opts.onnxFile) throw new Error(`${why} (use engine 'tfjs' or 'auto')`);
        fallbackReason = why;
        (opts.onLog ?? ((l: string) => process.stderr.write(l + '\n')))(`nextray: predicting with TF.js instead of ONNX Runtime (${why})`);
      }
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    let inferenceSeconds = 0;
    const engineRun = onnx ? onnx.run : tfjsRunner(loaded.model, loaded.preprocessing.size);
    const timed: BatchRunner = async (x, n) => {
      const s0 = performance.now();
      const logits = await engineRun(x, n);
      inferenceSeconds += (performance.now() - s0) / 1000;
      return logits;
    };
    const res = await inferRecordsWith(timed, sel.images, {
      preprocessing: loaded.preprocessing,
      batchSize: opts.batchSize ?? 16,
      workers: opts.workers ?? 2,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    const engine: PredictEngineInfo = onnx
      ? { name: 'onnx', description: onnx.description, setupSeconds, inferenceSeconds }
      : { name: 'tfjs', description: `TF.js: ${tfEngine.description}`, ...(fallbackReason ? { fallbackReason } : {}), setupSeconds, inferenceSeconds };
    return { predictions: toPredictions(res), logits: res.logits, badImages: res.badImages, checkpoint: loaded.checkpoint, metadata: loaded.metadata, images: sel.images.length, engine };
  } finally {
    if (onnx) await onnx.release();
    if (modelLive) loaded.model.dispose();
  }
}
