/**
 * Opening a trained model in Node, whatever the user points at:
 *   - an .onnx file from `nextray export`: ONNX Runtime opens the file itself (JS reads only its skeleton);
 *   - a checkpoint folder (model.json + model.safetensors) or a training run directory (its best checkpoint, else
 *     its last): the model is rebuilt in TF.js, exported to ONNX in memory and run by ONNX Runtime.
 * When ONNX Runtime cannot be used ('auto' engine: onnxruntime-node does not load, or the export fails), a
 * checkpoint runs in TF.js instead, with one line saying why. Either way the result is the core's InferenceModel.
 *
 * Also the home of the pieces `nextray evaluate --model` and `nextray forward` share: `loadTrainedModel`,
 * `loadOnnxRuntime`, `onnxRunner` and `tfjsRunner` (moved here from src/train/predict.ts, which re-exports them).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Preprocessing } from '../../data/preprocess.js';
import { createModel, isArch, type Model } from '../../models/index.js';
import { exportOnnx } from '../../models/onnx/export.js';
import { OnnxModelError } from '../../models/onnx/classifier.js';
import { loadCheckpoint, type CheckpointMetadata } from '../../models/weights/index.js';
import { cardFromInfo, InferenceError, modelNameFrom, OnnxInferenceModel, sha256Hex, type InferenceModel, type ModelCard, type ModelRunResult } from '../core/model.js';

/** Which engine runs a model: ONNX Runtime, TF.js, or ONNX Runtime when it can (default). */
export type PredictEngine = 'onnx' | 'tfjs' | 'auto';
export const PREDICT_ENGINES: readonly PredictEngine[] = ['auto', 'onnx', 'tfjs'];

/** The Node face of ONNX Runtime (src/models/onnx/runtime.ts) and its version. */
export type OnnxRuntimeFace = Pick<typeof import('../../models/onnx/runtime.js'), 'OnnxClassifier'> & { version: string };

/** Loads onnxruntime-node through src/models/onnx/runtime.ts; throws when its native binding does not load. */
export async function loadOnnxRuntime(): Promise<OnnxRuntimeFace> {
  const mod = await import('../../models/onnx/runtime.js');
  const require = createRequire(import.meta.url);
  const version = (require('onnxruntime-node/package.json') as { version: string }).version;
  return { OnnxClassifier: mod.OnnxClassifier, version };
}

export interface LoadedModel {
  model: Model;
  metadata: CheckpointMetadata;
  preprocessing: Preprocessing;
  /** The checkpoint folder actually read. */
  checkpoint: string;
}

/** The checkpoint folder a path means: itself, or a run directory's best (else last) checkpoint. */
export function resolveCheckpointDir(path: string, which: 'best' | 'last' = 'best'): string {
  const dir = resolve(path);
  if (existsSync(join(dir, 'model.json'))) return dir;
  if (existsSync(join(dir, 'checkpoints'))) {
    const best = join(dir, 'checkpoints', 'best');
    const last = join(dir, 'checkpoints', 'last');
    const [first, second] = which === 'best' ? [best, last] : [last, best];
    if (existsSync(join(first, 'model.json'))) return first;
    if (existsSync(join(second, 'model.json'))) return second;
    throw new InferenceError(`${path}: the run has no checkpoint yet (no completed epoch)`);
  }
  return dir; // loadCheckpoint names what is missing
}

/**
 * Rebuilds a trained model from a checkpoint folder, or from a run directory (its best checkpoint, else its last).
 * The architecture, head and preprocessing come from the checkpoint's model.json.
 */
export function loadTrainedModel(path: string, which: 'best' | 'last' = 'best'): LoadedModel {
  const dir = resolveCheckpointDir(path, which);
  const ckpt = loadCheckpoint(dir, { skipOptimizer: true });
  const meta = ckpt.metadata;
  if (!isArch(meta.arch)) throw new InferenceError(`${dir}: unknown architecture '${meta.arch}' in model.json`);
  const dropout = typeof meta.head.dropout === 'number' ? meta.head.dropout : 0.5;
  const model = createModel(meta.arch, { head: 'binary', dropout, seed: 0, init: 'none' });
  try {
    model.loadStateDict(ckpt.tensors, { strict: true, layout: 'torch', source: dir });
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, metadata: meta, preprocessing: meta.preprocessing, checkpoint: dir };
}

/** Logits [n] for `n` preprocessed NHWC images (`x` holds n * size * size * 3 values). */
export type BatchRunner = (x: Float32Array, n: number) => Promise<Float32Array>;

/** A batch runner over the TF.js model (inference mode; every tensor freed by tf.tidy). */
export function tfjsRunner(model: Model, size: number): BatchRunner {
  return async (x, n) => tf.tidy(() => model.forward(tf.tensor4d(x, [n, size, size, 3]), false).dataSync() as Float32Array);
}

/** A batch runner over ONNX Runtime for `model`, exported in memory. Throws (with the reason) when it cannot. */
export async function onnxRunner(
  model: Model,
  preprocessing: Preprocessing,
  opts: { loadRuntime?: () => Promise<OnnxRuntimeFace>; threads?: number } = {},
): Promise<{ run: BatchRunner; description: string; release: () => Promise<void> }> {
  let rt: OnnxRuntimeFace;
  try {
    rt = await (opts.loadRuntime ?? loadOnnxRuntime)();
  } catch (err) {
    throw new Error(`onnxruntime-node does not load: ${(err as Error).message}`);
  }
  // Export problems (an architecture the exporter does not know) are reported as such, before any session.
  const exported = exportOnnx(model, { inputSize: preprocessing.size, preprocessing });
  const threads = opts.threads ?? availableParallelism();
  const clf = await rt.OnnxClassifier.create(exported.toBytes(), { threads, maxBatch: 64 });
  const k = clf.numOutputs;
  if (k !== 1) {
    await clf.release();
    throw new Error(`expected the binary head (1 output), the exported model has ${k}`);
  }
  const per = preprocessing.size * preprocessing.size * 3;
  return {
    run: async (x, n) => (await clf.run(x.length === n * per ? x : x.subarray(0, n * per), n)).logits,
    description: `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'})`,
    release: () => clf.release(),
  };
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** A trained TF.js model as an InferenceModel (the fallback when ONNX Runtime cannot run it). Owns the model. */
export class TfjsInferenceModel implements InferenceModel {
  private released = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly model: Model,
    readonly card: ModelCard,
  ) {}

  async run(x: Float32Array, n: number, opts: { outputs?: string[] } = {}): Promise<ModelRunResult> {
    if (this.released) throw new InferenceError(`${this.card.source}: model was released`);
    if (opts.outputs?.length) throw new InferenceError(`${this.card.source}: extra outputs (${opts.outputs.join(', ')}) need ONNX Runtime; TF.js gives the probability only`);
    const size = this.card.preprocessing.size;
    if (x.length !== n * size * size * 3) throw new InferenceError(`${this.card.source}: input has ${x.length} values, expected ${n * size * size * 3}`);
    const job = this.queue.then(() => {
      const t0 = performance.now();
      const logits = tf.tidy(() => this.model.forward(tf.tensor4d(x, [n, size, size, 3]), false).dataSync() as Float32Array);
      const probabilities = Float32Array.from(logits, sigmoid);
      return { probabilities, logits: Float32Array.from(logits), extra: {}, seconds: (performance.now() - t0) / 1000 };
    });
    this.queue = job.catch(() => undefined);
    return job;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.queue;
    this.model.dispose();
  }
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface OpenModelOptions {
  /** 'auto' (default): ONNX Runtime, else TF.js for checkpoints (with a line to onLog); 'onnx'; 'tfjs' (checkpoints only). */
  engine?: PredictEngine;
  /** ONNX Runtime threads (default: all cores). */
  threads?: number;
  /** Largest batch per ONNX Runtime call (default 32). */
  maxBatch?: number;
  /** For a run directory: which checkpoint (default best, else last). */
  which?: 'best' | 'last';
  /** Where the fallback notice goes (default: stderr). */
  onLog?: (line: string) => void;
  /** Supplies ONNX Runtime (a seam for tests); default onnxruntime-node. */
  loadRuntime?: () => Promise<OnnxRuntimeFace>;
}

/** Opens `spec` (an .onnx file, a checkpoint folder or a run directory) as an InferenceModel. */
export async function openModel(spec: string, opts: OpenModelOptions = {}): Promise<InferenceModel> {
  const engine = opts.engine ?? 'auto';
  const threads = opts.threads ?? availableParallelism();
  const log = opts.onLog ?? ((l: string) => process.stderr.write(l + '\n'));
  let st;
  try {
    st = statSync(spec);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InferenceError(`${spec}: ${code === 'ENOENT' ? 'no such file or folder' : (err as Error).message}; give an .onnx file from 'nextray export', a checkpoint folder or a run directory`);
  }
  const name = modelNameFrom(spec);
  if (st.isFile()) {
    if (engine === 'tfjs') throw new InferenceError(`${spec}: an .onnx file runs in ONNX Runtime only; engine 'tfjs' needs a checkpoint folder or run directory`);
    let rt: OnnxRuntimeFace;
    try {
      rt = await (opts.loadRuntime ?? loadOnnxRuntime)();
    } catch (err) {
      throw new InferenceError(`${spec}: onnxruntime-node does not load (${(err as Error).message}); an .onnx file needs it — give the checkpoint folder instead to run in TF.js`);
    }
    // Hash while ONNX Runtime builds the session.
    const hash = sha256File(spec);
    hash.catch(() => undefined);
    let clf;
    try {
      clf = await rt.OnnxClassifier.create(spec, { threads, ...(opts.maxBatch ? { maxBatch: opts.maxBatch } : {}) });
    } catch (err) {
      if (err instanceof OnnxModelError) throw new InferenceError(err.message);
      throw err;
    }
    try {
      const card = cardFromInfo(clf.info, clf.outputNames, { name, source: spec, sha256: await hash, engine: `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'})` });
      return new OnnxInferenceModel(clf, card);
    } catch (err) {
      await clf.release();
      throw err;
    }
  }
  if (!st.isDirectory()) throw new InferenceError(`${spec}: neither a file nor a folder`);
  // The checkpoint is rebuilt in TF.js (NEXTRAY_ENGINE or auto; a no-op when the caller already chose one).
  const { initEngine } = await import('../../engine/index.js');
  const tfEngine = await initEngine();
  let loaded: LoadedModel;
  try {
    loaded = loadTrainedModel(spec, opts.which ?? 'best');
  } catch (err) {
    throw new InferenceError(`${spec}: not a usable checkpoint folder or run directory: ${(err as Error).message.replace(/^.*?: /, '')}`);
  }
  const meta = loaded.metadata;
  if (engine !== 'tfjs') {
    try {
      let rt: OnnxRuntimeFace;
      try {
        rt = await (opts.loadRuntime ?? loadOnnxRuntime)();
      } catch (err) {
        throw new Error(`onnxruntime-node does not load: ${(err as Error).message}`);
      }
      const exported = exportOnnx(loaded.model, { inputSize: loaded.preprocessing.size, preprocessing: loaded.preprocessing, decisionThreshold: meta.decisionThreshold });
      const bytes = exported.toBytes();
      const clf = await rt.OnnxClassifier.create(bytes, { threads, ...(opts.maxBatch ? { maxBatch: opts.maxBatch } : {}) });
      // The session holds its own copy of the weights: free TF.js's.
      loaded.model.dispose();
      try {
        const card = cardFromInfo(clf.info, clf.outputNames, {
          name,
          source: spec,
          sha256: await sha256Hex(bytes),
          engine: `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'}), exported in memory from ${loaded.checkpoint}`,
        });
        return new OnnxInferenceModel(clf, card);
      } catch (err) {
        await clf.release();
        throw err;
      }
    } catch (err) {
      if (engine === 'onnx') {
        loaded.model.dispose();
        throw new InferenceError(`${spec}: ONNX Runtime unavailable: ${(err as Error).message}`);
      }
      log(`nextray: ${name}: running in TF.js instead of ONNX Runtime (${(err as Error).message})`);
    }
  }
  const card: ModelCard = {
    name,
    source: spec,
    // Not an ONNX file here: the SHA-256 model.json records for the weights file that runs.
    sha256: meta.files.model.sha256,
    arch: meta.arch,
    preprocessing: loaded.preprocessing,
    threshold: meta.decisionThreshold,
    engine: `TF.js: ${tfEngine.description}`,
    outputs: ['logits'],
    metadata: {},
  };
  return new TfjsInferenceModel(loaded.model, card);
}
