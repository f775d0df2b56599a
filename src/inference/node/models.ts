/**
 * Opening a trained model in Node, whatever the user points at:
 *   - an .onnx file from `nextray export`: ONNX Runtime opens the file itself (JS reads only its skeleton);
 *   - a checkpoint folder (model.json + model.safetensors) or a training run directory (its best checkpoint, else
 *     its last): the model is rebuilt in TF.js, exported to ONNX in memory and run by ONNX Runtime.
 * When ONNX Runtime cannot be used ('auto' engine: onnxruntime-node does not load, or the export fails), a
 * checkpoint runs in TF.js instead, with one line saying why. Either way the result is the core's InferenceModel.
 *
 * Folders go to ./checkpoint.ts, loaded only then: opening an .onnx file loads neither TF.js nor the model zoo
 * (the cold start of `nextray predict --model model.onnx`). checkpoint.ts also holds what `nextray evaluate --model`
 * and `nextray forward` share (`loadTrainedModel`, `onnxRunner`, `tfjsRunner`; records.ts runs them over a dataset split).
 */
import { InstallError } from '../../util/errors.js';
import { sha256File as fileSha256 } from '../../util/hash.js';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { OnnxModelError } from '../../models/onnx/info.js';
import { cardFromInfo, InferenceError, modelNameFrom, OnnxInferenceModel, type InferenceModel } from '../core/model.js';

/** Which runtime runs a model: ONNX Runtime, TF.js, or ONNX Runtime when it can (default); the CLI's --runtime. */
export type InferenceRuntime = 'onnx' | 'tfjs' | 'auto';
export const INFERENCE_RUNTIMES: readonly InferenceRuntime[] = ['auto', 'onnx', 'tfjs'];
/** @deprecated The old name of InferenceRuntime (it names a runtime, not a TF.js engine). */
export type PredictEngine = InferenceRuntime;
/** @deprecated The old name of INFERENCE_RUNTIMES. */
export const PREDICT_ENGINES = INFERENCE_RUNTIMES;

/** The Node face of ONNX Runtime (src/inference/node/onnx-session.ts) and its version. */
export type OnnxRuntimeFace = Pick<typeof import('./onnx-session.js'), 'OnnxClassifier'> & { version: string };

/** Loads onnxruntime-node through src/inference/node/onnx-session.ts; throws when its native binding does not load. */
export async function loadOnnxRuntime(): Promise<OnnxRuntimeFace> {
  const mod = await import('./onnx-session.js');
  const require = createRequire(import.meta.url);
  const version = (require('onnxruntime-node/package.json') as { version: string }).version;
  return { OnnxClassifier: mod.OnnxClassifier, version };
}

/** onnxruntime-node (or the injected stand-in), or an error that says it does not load and why. */
export async function loadRuntimeOrSayWhy(load?: () => Promise<OnnxRuntimeFace>): Promise<OnnxRuntimeFace> {
  try {
    return await (load ?? loadOnnxRuntime)();
  } catch (err) {
    throw new InstallError(`onnxruntime-node does not load: ${(err as Error).message}`, { hint: 'reinstall with npm ci (onnxruntime-node ships a binary for linux/darwin/win32 on x64 and arm64)' });
  }
}

/** SHA-256 of a file, streamed: util's one helper, kept under this name for the package's `inference` API. */
export const sha256File = fileSha256;

export interface OpenModelOptions {
  /** 'auto' (default): ONNX Runtime, else TF.js for checkpoints (with a line to onLog); 'onnx'; 'tfjs' (checkpoints only). */
  engine?: InferenceRuntime;
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
  /**
   * An .onnx file: keep ONNX Runtime's optimised graph beside it (else in the user cache) and load that next time
   * (src/inference/node/ort-cache.ts). Default false; `nextray predict` / `serve` turn it on unless --no-onnx-cache.
   */
  onnxCache?: boolean;
  /** For a checkpoint run in ONNX Runtime: called with the bytes of its in-memory export (what the session runs). */
  onExport?: (onnx: Uint8Array) => void;
}

/** Opens `spec` (an .onnx file, a checkpoint folder or a run directory) as an InferenceModel. */
export async function openModel(spec: string, opts: OpenModelOptions = {}): Promise<InferenceModel> {
  const engine = opts.engine ?? 'auto';
  const threads = opts.threads ?? availableParallelism();
  let st;
  try {
    st = statSync(spec);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InferenceError(`${spec}: ${code === 'ENOENT' ? 'no such file or folder' : (err as Error).message}; give an .onnx file from 'nextray export', a checkpoint folder or a run directory`);
  }
  const name = modelNameFrom(spec);
  if (st.isFile()) {
    if (engine === 'tfjs') throw new InferenceError(`${spec}: an .onnx file runs in ONNX Runtime only; --runtime tfjs needs a checkpoint folder or run directory`);
    let rt: OnnxRuntimeFace;
    try {
      rt = await (opts.loadRuntime ?? loadOnnxRuntime)();
    } catch (err) {
      throw new InferenceError(`${spec}: onnxruntime-node does not load (${(err as Error).message}); an .onnx file needs it — give the checkpoint folder instead to run in TF.js`);
    }
    // Hash while ONNX Runtime builds the session (the optimised-model cache waits for it: it checks the model's hash).
    const hash = sha256File(spec);
    hash.catch(() => undefined);
    let clf;
    try {
      clf = await rt.OnnxClassifier.create(spec, {
        threads,
        ...(opts.maxBatch ? { maxBatch: opts.maxBatch } : {}),
        // The cache checks the model's sha256 against its manifest: the same hash as the card's, computed once.
        ...(opts.onnxCache ? { optimizedCache: { sourceSha256: hash, ...(opts.onLog ? { onLog: opts.onLog } : {}) } } : {}),
      });
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
  const { openCheckpointModel } = await import('./checkpoint.js');
  return openCheckpointModel(spec, opts);
}
