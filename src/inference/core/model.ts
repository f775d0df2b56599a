/**
 * A trained model ready to run, whatever runs it: an exported .onnx file in ONNX Runtime (onnxruntime-node in Node,
 * onnxruntime-web in a browser — both fit `OrtModule`, whose types come from onnxruntime-common), or, in Node only,
 * the TF.js model itself when ONNX Runtime cannot be used (src/inference/node/tfjs.ts). Everything downstream —
 * batching, ensembles, studies, the CLI, the server, the web page — sees only `InferenceModel`.
 *
 * `LoadedCard` is what the outputs say about the model: its model card (src/models/card.ts: architecture,
 * preprocessing, decision threshold and operating point, temperature, OOD gate, training, dataset, versions), the
 * SHA-256 of the ONNX bytes that ran (so a prediction can be traced to one exact file), and what runs it.
 *
 * Browser-safe: no `node:` modules, sharp, onnxruntime-node or the native addon.
 */
import type { InferenceSession } from 'onnxruntime-common';
import type { Preprocessing } from '../../data/preprocess.js';
import type { OnnxClassifierInfo } from '../../models/onnx/info.js';
import type { ModelCard } from '../../models/card.js';
import { OnnxClassifierCore, type OrtModule } from './onnx-session.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';

/**
 * What a prediction output says about the model that produced it: the model card it carries (every card field is
 * there for a model read from an export or a checkpoint; a stand-in may give only the ones below) and where it runs.
 */
export interface LoadedCard extends Partial<ModelCard> {
  /** Short name: the .onnx file's or checkpoint folder's base name (ensembles join them with '+'). */
  name: string;
  /** Where it came from, as the user gave it (path, URL). */
  source: string;
  /**
   * The model's identity, the same whichever engine runs it: SHA-256 (hex) of the .onnx file's bytes; for a
   * checkpoint folder or run directory, of the sha256sum manifest of its model.json and weights file
   * (checkpointSha256 in src/inference/node/checkpoint.ts).
   */
  sha256: string;
  arch: string;
  /** How decoded grey images become this model's input (stored with the model). */
  preprocessing: Preprocessing;
  /** The decision threshold stored with the model: abnormal when probability > threshold (as src/evaluate). */
  threshold: number;
  /** What runs it, in words: 'onnxruntime-node 1.30.0 (CPU, 2 threads)', 'TF.js: native (...)'. */
  engine: string;
  /** Names of the graph's outputs (logits, probability, and any extra ones such as a feature map). */
  outputs: readonly string[];
  /** The exporter's metadata_props, raw ({} for a model not run from ONNX). */
  metadata: Readonly<Record<string, string>>;
}

export interface ModelRunOptions {
  /** Extra graph outputs to return (float32, batch first), e.g. the feature map a class activation map needs. */
  outputs?: string[];
}

export interface ModelRunResult {
  /** P(abnormal) per image, [n]. */
  probabilities: Float32Array;
  /** The logit per image, [n]. */
  logits: Float32Array;
  /** The outputs asked for in `ModelRunOptions.outputs`, batches joined: dims[0] = n. */
  extra: Record<string, { dims: number[]; data: Float32Array }>;
  /** Seconds inside the engine. */
  seconds: number;
}

/** A binary (normal/abnormal) classifier over preprocessed images. */
export interface InferenceModel {
  readonly card: LoadedCard;
  /**
   * Runs `n` images: `x` holds n * size * size * 3 floats, NHWC, made by `preprocess(grey, w, h, card.preprocessing)`.
   * Calls may overlap; implementations serialise them.
   */
  run(x: Float32Array, n: number, opts?: ModelRunOptions): Promise<ModelRunResult>;
  /** Frees the engine's memory. Idempotent. */
  release(): Promise<void>;
}

/** An error about a model (unusable file, wrong head, unknown output); the message names the model. Exit status 2. */
export class InferenceError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_INFERENCE', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'InferenceError';
  }
}

/** Base name of a path or URL without a trailing slash or the '.onnx' extension. */
export function modelNameFrom(source: string): string {
  const parts = source.replace(/[\\/]+$/, '').split(/[\\/]/);
  const base = parts[parts.length - 1] || source;
  return base.replace(/\.onnx$/i, '');
}

/**
 * SHA-256 of bytes as hex, with WebCrypto (browsers and Node >= 19 both have globalThis.crypto.subtle): the
 * browser-safe, asynchronous counterpart of util/hash.ts's synchronous sha256Hex (Node's crypto), hence its own name.
 */
export async function digestSha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export interface OnnxModelOptions {
  /** Shown in outputs; default: modelNameFrom(source). */
  name?: string;
  /** Names the model in messages and outputs (path, URL); default '<bytes>'. */
  source?: string;
  /** The ONNX file's SHA-256 when the caller already knows it (else it is computed from the bytes). */
  sha256?: string;
  /** Engine description for outputs; default 'onnxruntime'. */
  engine?: string;
  /** Passed to InferenceSession.create (execution providers, threads, ...). */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Largest batch per session.run (default 32). */
  maxBatch?: number;
}

/** The card of an opened exported classifier. */
export function cardFromInfo(
  info: OnnxClassifierInfo,
  outputs: readonly string[],
  o: { name: string; source: string; sha256: string; engine: string },
): LoadedCard {
  return {
    ...info.card,
    name: o.name,
    source: o.source,
    sha256: o.sha256,
    arch: info.arch,
    preprocessing: info.preprocessing,
    threshold: info.decisionThreshold ?? 0.5,
    engine: o.engine,
    outputs: [...outputs],
    metadata: info.metadata,
  };
}

/** An InferenceModel over an opened ONNX classifier (binary head; checked). */
export class OnnxInferenceModel implements InferenceModel {
  constructor(
    readonly classifier: OnnxClassifierCore,
    readonly card: LoadedCard,
  ) {
    if (classifier.info.head.kind !== 'binary' || classifier.numOutputs !== 1) {
      throw new InferenceError(
        `${card.source}: a normal/abnormal model (binary head, one output) is needed; this one has the ${classifier.info.head.kind} head with ${classifier.numOutputs} outputs`,
      );
    }
  }

  async run(x: Float32Array, n: number, opts: ModelRunOptions = {}): Promise<ModelRunResult> {
    const r = await this.classifier.run(x, n, opts.outputs ? { outputs: opts.outputs } : {});
    return { probabilities: r.probabilities, logits: r.logits, extra: r.extra, seconds: r.seconds };
  }

  release(): Promise<void> {
    return this.classifier.release();
  }
}

/**
 * Opens an exported .onnx (its bytes) in the ONNX Runtime module given — onnxruntime-web's in a browser,
 * onnxruntime-node's in Node (the Node host's `openModel` also takes paths, checkpoints and run folders).
 */
export async function createOnnxModel(ort: OrtModule, bytes: Uint8Array, opts: OnnxModelOptions = {}): Promise<OnnxInferenceModel> {
  const source = opts.source ?? '<bytes>';
  const sha256 = opts.sha256 ?? (await digestSha256Hex(bytes));
  const clf = await OnnxClassifierCore.createWith(ort, bytes, {
    source,
    ...(opts.sessionOptions ? { sessionOptions: opts.sessionOptions } : {}),
    ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
  });
  try {
    const card = cardFromInfo(clf.info, clf.outputNames, { name: opts.name ?? modelNameFrom(source), source, sha256, engine: opts.engine ?? 'onnxruntime' });
    return new OnnxInferenceModel(clf, card);
  } catch (err) {
    await clf.release();
    throw err;
  }
}
