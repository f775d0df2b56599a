/**
 * Trained models from checkpoint folders and run directories (the TF.js side of the Node host): rebuilding the
 * model (`loadTrainedModel`), running it in ONNX Runtime after an in-memory export (`onnxRunner`) or in TF.js
 * (`tfjsRunner`, `TfjsInferenceModel`), and `openCheckpointModel`, what `openModel` uses for a folder. Loaded only
 * when a folder is given, so an .onnx file never loads TF.js.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Preprocessing } from '../../data/preprocess.js';
import { initEngine } from '../../engine/index.js';
import { createModel, isArch, type Model } from '../../models/index.js';
import { exportOnnx, type OnnxExport, type OnnxExportOptions } from '../../models/onnx/export.js';
import { trustExportOptions } from '../core/trust.js';
import { mahalanobisScores, OodGateError, type OodGate } from '../core/ood.js';
import { camChain, forwardWithExtras } from '../../models/cam.js';
import { oodMetadata, ONNX_CAM, ONNX_OOD_SCORE } from '../../models/onnx/extras.js';
import { loadCheckpoint, type CheckpointMetadata } from '../../models/weights/index.js';
import { cardFromInfo, InferenceError, modelNameFrom, OnnxInferenceModel, type InferenceModel, type LoadedCard, type ModelRunResult } from '../core/model.js';
import { loadRuntimeOrSayWhy, type OpenModelOptions, type OnnxRuntimeFace } from './models.js';
import { resolveCheckpointDir } from '../../runs/run-dir.js';
import { cardFromCheckpoint, type ModelCard } from '../../models/card.js';
import { sha256Hex } from '../../util/hash.js';

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

/**
 * The model identity of a checkpoint folder, what `model_sha256` and the card's `sha256` show whichever engine runs
 * it: the SHA-256 of a sha256sum-style manifest of the files inference reads, model.json (architecture,
 * preprocessing, threshold, temperature, OOD gate) and the weights file it names, i.e. what
 *   (cd CKPT && sha256sum model.json model.safetensors | sha256sum)
 * prints. The weights' hash is the one model.json records (loadCheckpoint has checked the bytes against it); the
 * optimizer state is left out (it changes nothing at inference).
 */
export function checkpointSha256(dir: string, meta: CheckpointMetadata): string {
  const json = sha256Hex(readFileSync(join(dir, 'model.json')));
  return sha256Hex(`${json}  model.json\n${meta.files.model.sha256}  ${meta.files.model.file}\n`);
}

/** Logits [n] for `n` preprocessed NHWC images (`x` holds n * size * size * 3 values). */
export type BatchRunner = (x: Float32Array, n: number) => Promise<Float32Array>;

/** A batch runner over the TF.js model (inference mode; every tensor freed by tf.tidy). */
export function tfjsRunner(model: Model, size: number): BatchRunner {
  return async (x, n) => tf.tidy(() => model.forward(tf.tensor4d(x, [n, size, size, 3]), false).dataSync() as Float32Array);
}

/**
 * A batch runner over ONNX Runtime for `model`, exported in memory — or `onnxFile`, an export of the same checkpoint
 * (e.g. fp16/int8 from `nextray export --precision`), whose preprocessing must match. Throws (with the reason) when
 * it cannot.
 */
export async function onnxRunner(
  model: Model,
  preprocessing: Preprocessing,
  opts: { loadRuntime?: () => Promise<OnnxRuntimeFace>; threads?: number; onnxFile?: string; temperature?: number } = {},
): Promise<{ run: BatchRunner; description: string; release: () => Promise<void> }> {
  const rt = await loadRuntimeOrSayWhy(opts.loadRuntime);
  // Export problems (an architecture the exporter does not know) are reported as such, before any session.
  // An in-memory export applies the checkpoint's temperature to the logit; an exported file carries its own.
  const source =
    opts.onnxFile ??
    exportOnnx(model, { inputSize: preprocessing.size, preprocessing, ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}) }).toBytes();
  const threads = opts.threads ?? availableParallelism();
  const clf = await rt.OnnxClassifier.create(source, { threads, maxBatch: 64 });
  const k = clf.numOutputs;
  if (k !== 1) {
    await clf.release();
    throw new InferenceError(`${opts.onnxFile ?? 'the exported model'}: expected the binary head (1 output), the model has ${k}`);
  }
  if (opts.onnxFile && JSON.stringify(clf.info.preprocessing) !== JSON.stringify(preprocessing)) {
    await clf.release();
    throw new InferenceError(`${opts.onnxFile}: its preprocessing ${JSON.stringify(clf.info.preprocessing)} differs from the checkpoint's ${JSON.stringify(preprocessing)}`);
  }
  const per = preprocessing.size * preprocessing.size * 3;
  return {
    run: async (x, n) => (await clf.run(x.length === n * per ? x : x.subarray(0, n * per), n)).logits,
    description: `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'})${opts.onnxFile ? `, ${opts.onnxFile} (${clf.info.metadata.precision ?? 'fp32'})` : ''}`,
    release: () => clf.release(),
  };
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** What the TF.js fallback applies of a checkpoint's trust information (the ONNX export puts the same in the graph). */
export interface TfjsTrust {
  /** The logit is divided by it (temperature scaling; 1 or absent: none). */
  temperature?: number;
  /** The OOD gate: output `ood_score` = Mahalanobis score of the gate layers' statistics. */
  gate?: OodGate;
  /** Output `cam` (the class activation map; needs a network camChain knows). */
  cam?: boolean;
}

/**
 * A trained TF.js model as an InferenceModel (the fallback when ONNX Runtime cannot run it). Owns the model.
 * Gives what the in-memory ONNX export gives: logits divided by the checkpoint's temperature, and the extra outputs
 * `cam` [n, h, w] (classActivationMap, = the graph's ReLU(1x1 Conv) map) and `ood_score` [n, 1] (the gate's
 * Mahalanobis score on layerStatistics, = the graph's score). Asked for extras, it runs the network once for all of
 * them (forwardWithExtras), as the ONNX graph does.
 */
export class TfjsInferenceModel implements InferenceModel {
  private released = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly temperature: number;

  constructor(
    private readonly model: Model,
    readonly card: LoadedCard,
    private readonly trust: TfjsTrust = {},
  ) {
    const t = trust.temperature ?? 1;
    if (!(t > 0 && Number.isFinite(t))) throw new RangeError(`temperature must be a positive number, got ${t}`);
    this.temperature = t;
  }

  async run(x: Float32Array, n: number, opts: { outputs?: string[] } = {}): Promise<ModelRunResult> {
    if (this.released) throw new InferenceError(`${this.card.source}: model was released`);
    const want = [...new Set(opts.outputs ?? [])];
    const unknown = want.filter((o) => !this.card.outputs.includes(o) || o === 'logits' || o === 'probability');
    if (unknown.length) throw new InferenceError(`${this.card.source}: the model has no extra output(s) ${unknown.join(', ')}; it has ${this.card.outputs.join(', ')}`);
    const size = this.card.preprocessing.size;
    if (x.length !== n * size * size * 3) throw new InferenceError(`${this.card.source}: input has ${x.length} values, expected ${n * size * size * 3}`);
    const job = this.queue.then(() => {
      const t0 = performance.now();
      const extra: ModelRunResult['extra'] = {};
      let logits = new Float32Array(0);
      tf.tidy(() => {
        const input = tf.tensor4d(x, [n, size, size, 3]);
        const cam = want.includes(ONNX_CAM);
        const gate = want.includes(ONNX_OOD_SCORE) ? this.trust.gate! : undefined;
        if (!cam && !gate) {
          logits = Float32Array.from(this.model.forward(input, false).dataSync() as Float32Array, (v) => v / this.temperature);
          return;
        }
        // One pass through the network gives the logit, the map and the gate's statistics (src/models/cam.ts).
        const r = forwardWithExtras(this.model, input, { cam, ...(gate ? { statsLayers: gate.layers } : {}) });
        logits = Float32Array.from(r.logits.dataSync() as Float32Array, (v) => v / this.temperature);
        if (r.maps) extra[ONNX_CAM] = { dims: [...r.maps.shape], data: Float32Array.from(r.maps.dataSync() as Float32Array) };
        if (gate) {
          const stats = r.statistics!.dataSync() as Float32Array;
          const d = gate.mean.length;
          if (stats.length !== n * d) {
            throw new OodGateError(`${this.card.source}: its OOD gate holds ${d} features per image, the network's layers ${gate.layers.join(', ')} give ${stats.length / n}: the gate was fitted for another model`);
          }
          extra[ONNX_OOD_SCORE] = { dims: [n, 1], data: Float32Array.from(mahalanobisScores(stats, n, gate)) };
        }
      });
      const probabilities = Float32Array.from(logits, sigmoid);
      return { probabilities, logits, extra, seconds: (performance.now() - t0) / 1000 };
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

/**
 * The trust information of a checkpoint as the TF.js fallback applies it, with the card fields that advertise it
 * like an ONNX export's card (outputs `cam` / `ood_score`, metadata `temperature` / `ood` with the gate threshold).
 */
export function tfjsTrustOf(model: Model, meta: CheckpointMetadata, modelJson: string): { trust: TfjsTrust; outputs: string[]; metadata: Record<string, string> } {
  // A damaged gate is an OodGateError naming modelJson.
  const opts = trustExportOptions(meta, modelJson);
  let cam = false;
  try {
    camChain(model);
    cam = true;
  } catch {
    // A network CAM does not know: no `cam` output (as the export would fail for it).
  }
  const temperature = opts.temperature ?? 1;
  const trust: TfjsTrust = { cam, ...(temperature !== 1 ? { temperature } : {}), ...(opts.ood ? { gate: opts.ood } : {}) };
  return {
    trust,
    outputs: ['logits', 'probability', ...(cam ? [ONNX_CAM] : []), ...(opts.ood ? [ONNX_OOD_SCORE] : [])],
    metadata: {
      ...(temperature !== 1 ? { temperature: String(temperature) } : {}),
      ...(opts.ood ? { ood: JSON.stringify(oodMetadata(opts.ood)) } : {}),
    },
  };
}

/** A checkpoint folder or run directory as an InferenceModel (see OpenModelOptions; openModel calls this). */
export async function openCheckpointModel(spec: string, opts: OpenModelOptions = {}): Promise<InferenceModel> {
  const engine = opts.engine ?? 'auto';
  const threads = opts.threads ?? availableParallelism();
  const log = opts.onLog ?? ((l: string) => process.stderr.write(l + '\n'));
  const name = modelNameFrom(spec);
  // The checkpoint is rebuilt in TF.js (NEXTRAY_ENGINE or auto; a no-op when the caller already chose one).
  const tfEngine = await initEngine();
  let loaded: LoadedModel;
  try {
    loaded = loadTrainedModel(spec, opts.which ?? 'best');
  } catch (err) {
    throw new InferenceError(`${spec}: not a usable checkpoint folder or run directory: ${(err as Error).message.replace(/^.*?: /, '')}`);
  }
  const meta = loaded.metadata;
  let sha256: string;
  try {
    sha256 = checkpointSha256(loaded.checkpoint, meta);
  } catch (err) {
    loaded.model.dispose();
    throw new InferenceError(`${spec}: cannot read ${join(loaded.checkpoint, 'model.json')}: ${(err as Error).message}`);
  }
  let modelCard: ModelCard;
  try {
    modelCard = cardFromCheckpoint(meta, name, sha256);
  } catch (err) {
    loaded.model.dispose();
    throw new InferenceError(`${spec}: ${(err as Error).message}`);
  }
  // The checkpoint's trust information (CAM output, temperature, OOD gate: src/inference/core/trust.ts), read before
  // either runtime so that a damaged gate is reported as such, not as a reason to fall back to TF.js.
  const modelJson = join(loaded.checkpoint, 'model.json');
  let trustOpts: ReturnType<typeof trustExportOptions>;
  try {
    trustOpts = trustExportOptions(meta, modelJson);
  } catch (err) {
    loaded.model.dispose();
    throw err;
  }
  if (engine !== 'tfjs') {
    try {
      const rt = await loadRuntimeOrSayWhy(opts.loadRuntime);
      const exported = exportOnnx(loaded.model, { inputSize: loaded.preprocessing.size, preprocessing: loaded.preprocessing, ...trustOpts, card: modelCard });
      const bytes = exported.toBytes();
      const clf = await rt.OnnxClassifier.create(bytes, { threads, ...(opts.maxBatch ? { maxBatch: opts.maxBatch } : {}) });
      let onnxModel: OnnxInferenceModel;
      try {
        opts.onExport?.(bytes);
        const card = cardFromInfo(clf.info, clf.outputNames, {
          name,
          source: spec,
          sha256,
          engine: `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'}), exported in memory from ${loaded.checkpoint}`,
        });
        onnxModel = new OnnxInferenceModel(clf, card);
      } catch (err) {
        await clf.release();
        throw err;
      }
      // The session holds its own copy of the weights: free TF.js's, only now that nothing can fail any more (the
      // fallback below runs the TF.js model).
      loaded.model.dispose();
      return onnxModel;
    } catch (err) {
      if (engine === 'onnx') {
        loaded.model.dispose();
        throw new InferenceError(`${spec}: ONNX Runtime unavailable: ${(err as Error).message}`);
      }
      log(`nextray: ${name}: running in TF.js instead of ONNX Runtime (${(err as Error).message})`);
    }
  }
  let trust: ReturnType<typeof tfjsTrustOf>;
  try {
    trust = tfjsTrustOf(loaded.model, meta, modelJson);
  } catch (err) {
    loaded.model.dispose();
    throw err;
  }
  const card: LoadedCard = {
    ...modelCard,
    name,
    source: spec,
    sha256,
    arch: meta.arch,
    preprocessing: loaded.preprocessing,
    threshold: meta.decisionThreshold,
    engine: `TF.js: ${tfEngine.description}`,
    outputs: trust.outputs,
    metadata: trust.metadata,
  };
  return new TfjsInferenceModel(loaded.model, card, trust.trust);
}

// `nextray forward`'s runner lives in forward.ts (it loads TF.js only when TF.js runs); re-exported for callers here.
export { forwardNchw, forwardNetworkOf, type ForwardEngineInfo, type ForwardNchwOptions, type ForwardNetwork } from './forward.js';
