/**
 * Inference over a dataset's image records: a trained model (rebuilt from a checkpoint folder or a run directory)
 * -> per-image logits and probabilities -> prediction rows ({image, label, probability}, the shape src/evaluate
 * takes). Used by `nextray evaluate --model RUN`, by calibration's reports and by the demo.
 *
 * Prediction of a split (`predictSplit`) runs in ONNX Runtime by default: the checkpoint's model is exported to
 * ONNX in memory (src/models/onnx) and one onnxruntime-node session runs every batch — the fastest engine measured
 * for inference here. TF.js stays as the fallback ('auto' uses it, with one stderr line saying why, when
 * onnxruntime-node does not load or the architecture cannot be exported) and as an explicit choice ('tfjs').
 * (The trainer's validation pass, src/train/validate.ts, stays on TF.js: its weights change every epoch and an
 * export per pass would cost more than it saves on small validation sets.)
 */
import { existsSync } from 'node:fs';
import type { BadImage } from '../../data/loader.js';
import { inferRecordsWith, type InferenceResult } from '../../data/records.js';
import { initEngine } from '../../engine/index.js';
import { DatasetError, loadMuraDataset } from '../../data/mura.js';
import { loadSplit, selectSubset, SplitFileError, type Subset } from '../../data/splits.js';
import { InferenceError } from '../core/model.js';
import { InstallError, NextrayError } from '../../util/errors.js';
import type { Label } from '../../data/types.js';
import type { CheckpointMetadata } from '../../models/weights/index.js';
import { runPaths } from '../../runs/run-dir.js';
import { INFERENCE_RUNTIMES, type OnnxRuntimeFace, type InferenceRuntime } from './models.js';
import { loadTrainedModel, onnxRunner, sigmoid, tfjsRunner, type BatchRunner } from './checkpoint.js';

/** One image's prediction: its dataset path, label and P(abnormal) (what src/evaluate's `Prediction` holds). */
export interface RecordPrediction {
  image: string;
  label: Label;
  probability: number;
}

/** Prediction rows for src/evaluate from an inference result. */
export function toPredictions(result: InferenceResult): RecordPrediction[] {
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
  engine?: InferenceRuntime;
  /** Where the fallback notice goes (default: a line on stderr). */
  onLog?: (line: string) => void;
  /** ONNX Runtime threads (default: all cores). */
  threads?: number;
  /** Supplies ONNX Runtime (default: onnxruntime-node via src/inference/node/onnx-session.ts); a seam for hosts and tests. */
  loadOnnxRuntime?: () => Promise<OnnxRuntimeFace>;  /** An exported .onnx file of this checkpoint (any precision) to run instead of exporting it in memory. */
  onnxFile?: string;
}

export interface SplitPredictions {
  predictions: RecordPrediction[];
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
    throw new SplitFileError(splitFile, "no split file; give one (the run directory's split.json is used by default)");
  }
  const dataset = await loadMuraDataset(opts.data);
  const split = opts.subset === 'train' ? null : loadSplit(splitFile, dataset);
  const sel = split ? selectSubset(dataset, split, opts.subset) : { images: dataset.images.filter((i) => i.split === 'train') };
  if (!sel.images.length) throw new DatasetError(`${opts.data}: the ${opts.subset} subset has no images`);
  const requested = opts.engine ?? 'auto';
  if (!INFERENCE_RUNTIMES.includes(requested)) throw new InferenceError(`engine must be one of ${INFERENCE_RUNTIMES.join(', ')}, got '${String(requested)}'`);
  const loaded = loadTrainedModel(modelPath, opts.which ?? 'best');
  // Temperature scaling fitted at training end (src/calibrate/trust.ts) is applied to the logit by both engines.
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
        if (requested === 'onnx' || opts.onnxFile) {
          // A missing runtime is the install's problem, an unusable --onnx file the user's; anything else is a bug.
          const message = `${why} (use --runtime tfjs or --runtime auto)`;
          if (err instanceof InstallError) throw new InstallError(message, { cause: err });
          if (err instanceof NextrayError) throw new InferenceError(message, { cause: err });
          throw new Error(message, { cause: err });
        }
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
