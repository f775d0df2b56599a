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
import { BatchLoader, type BadImage, type ImageCache } from '../data/loader.js';
import { initEngine } from '../engine/index.js';
import { loadMuraDataset } from '../data/mura.js';
import { loadSplit, selectSubset, type Subset } from '../data/splits.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import type { Prediction } from '../evaluate/predictions.js';
import type { Model } from '../models/index.js';
import type { CheckpointMetadata } from '../models/weights/index.js';
import { loadOnnxRuntime, PREDICT_ENGINES, type OnnxRuntimeFace, type PredictEngine } from '../inference/node/models.js';
import { loadTrainedModel, onnxRunner, sigmoid, tfjsRunner, type BatchRunner, type LoadedModel } from '../inference/node/checkpoint.js';
import { runPaths } from './run-dir.js';

// Running a trained model lives in src/inference; re-exported for the trainer's callers.
export { loadOnnxRuntime, loadTrainedModel, onnxRunner, sigmoid, tfjsRunner, PREDICT_ENGINES, type BatchRunner, type LoadedModel, type OnnxRuntimeFace, type PredictEngine };

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
  return inferRecordsWith(tfjsRunner(model, opts.preprocessing.size), records, opts);
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

/** Prediction rows for src/evaluate from an inference result. */
export function toPredictions(result: InferenceResult): Prediction[] {
  return result.records.map((r, i) => ({ image: r.path, label: r.label, probability: sigmoid(result.logits[i]!) }));
}

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
  /** The model's logit per prediction (same order), divided by the checkpoint's temperature when it has one. */
  logits: Float32Array;
  /** The temperature applied (checkpoint extra.trust.temperature; 1 when none). */
  temperature: number;
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
  // Temperature scaling fitted at training end (src/train/trust.ts) is applied to the logit by both engines.
  const tr = (loaded.metadata.extra as { trust?: { temperature?: { value?: unknown } } } | undefined)?.trust?.temperature?.value;
  const temperature = typeof tr === 'number' && tr > 0 ? tr : 1;
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
          temperature,
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
    const tfRun = tfjsRunner(loaded.model, loaded.preprocessing.size);
    const engineRun: BatchRunner = onnx ? onnx.run : async (x, n) => (await tfRun(x, n)).map((z) => z / temperature);
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
    return { predictions: toPredictions(res), logits: res.logits, temperature, badImages: res.badImages, checkpoint: loaded.checkpoint, metadata: loaded.metadata, images: sel.images.length, engine };
  } finally {
    if (onnx) await onnx.release();
    if (modelLive) loaded.model.dispose();
  }
}
