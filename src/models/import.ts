/**
 * state_dict -> model: copies a torchvision state_dict (from a .pth or .safetensors, parsed by ./weights) onto a
 * Network built by this package, converting PyTorch layouts (conv OIHW -> HWIO, Linear [out, in] -> [in, out]) and
 * dtypes (F16/BF16/F64 -> float32, I64 num_batches_tracked -> int32).
 *
 * Tolerated key variants, because real checkpoints carry them:
 *   - `module.` prefixes written by nn.DataParallel / DistributedDataParallel;
 *   - DenseNet's pre-0.4 names (`denselayer1.norm.1.weight` for `denselayer1.norm1.weight`), which the official
 *     torchvision densenet*.pth files still use (torchvision renames them with the same rule on load);
 *   - a missing `num_batches_tracked` (checkpoints written before PyTorch 0.4.1, e.g. resnet152-b121ed2d.pth): it
 *     stays 0, as PyTorch does.
 * timm's ResNet/DenseNet keys equal torchvision's, so they load as is.
 *
 * Strict by default: nothing is copied unless every model key is found with the right shape and no checkpoint key
 * is left over; the error lists every problem, naming both shapes. `ignoreClassifier` drops the checkpoint's
 * `fc.*` / `classifier.*` (ImageNet weights into the binary head).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Network, Param } from './nn.js';
import type { RawTensor, StateDict } from './weights/types.js';
import { toFloat32 } from './weights/dtype.js';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

export interface LoadOptions {
  /** Throw on any missing, unexpected or mis-shaped key (default true). When false, load what fits and report. */
  strict?: boolean;
  /**
   * 'torch' (default): PyTorch layouts (OIHW conv, [out, in] Linear); 'tfjs': this package's own (HWIO, [in, out]);
   * 'auto': decided from the conv kernels' shapes (see detectLayout).
   */
  layout?: 'torch' | 'tfjs' | 'auto';
  /** Skip the checkpoint's classifier (`fc.*` / `classifier.*`) and keep the model's own head. */
  ignoreClassifier?: boolean;
  /** Names the weights in error messages (e.g. the file path). */
  source?: string;
}

export interface ShapeMismatch {
  key: string;
  /** Shape the model needs, in the checkpoint's layout. */
  expected: number[];
  /** Shape found in the checkpoint. */
  got: number[];
}

export interface LoadReport {
  /** Model keys whose values were copied. */
  loaded: string[];
  /** Model keys absent from the checkpoint (left at their current values). */
  missing: string[];
  /** Checkpoint keys that match nothing in the model. */
  unexpected: string[];
  mismatched: ShapeMismatch[];
  /** Checkpoint classifier keys skipped because of `ignoreClassifier`. */
  skipped: string[];
  /** `num_batches_tracked` buffers absent from an old checkpoint, kept at 0. */
  defaulted: string[];
  /** Checkpoint keys that were renamed to match (prefix stripped, legacy DenseNet names), `from -> to`. */
  renamed: number;
}

/** Thrown by a strict load; `report` has the details, the message lists them. */
export class StateDictMismatchError extends NextrayError {
  constructor(
    message: string,
    readonly report: LoadReport,
  ) {
    super(message, { code: 'ERR_STATE_DICT_MISMATCH', exitStatus: EXIT_USAGE });
    this.name = 'StateDictMismatchError';
  }
}

// torchvision's own rename rule, plus num_batches_tracked (absent from the real legacy files, harmless to accept).
const LEGACY_DENSENET = /^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$/;

/** Map one checkpoint key onto this package's (torchvision's) naming. */
export function canonicalKey(key: string): string {
  let k = key;
  while (k.startsWith('module.')) k = k.slice('module.'.length);
  const m = LEGACY_DENSENET.exec(k);
  if (m) k = `${m[1]}${m[2]}`;
  return k;
}

const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** The shape a model parameter has in the checkpoint's layout. */
function sourceShape(p: Param, layout: 'torch' | 'tfjs'): number[] {
  const s = [...p.shape];
  if (layout === 'tfjs') return s;
  if (s.length === 4) return [s[3]!, s[2]!, s[0]!, s[1]!]; // HWIO -> OIHW
  if (s.length === 2) return [s[1]!, s[0]!]; // [in, out] -> [out, in]
  return s;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checkpoint tensor -> a tensor in the model's layout and dtype (caller disposes). */
function toModelTensor(t: RawTensor, p: Param, layout: 'torch' | 'tfjs'): tf.Tensor {
  if (p.dtype === 'int32') {
    const f = toFloat32(t);
    return tf.tensor(Int32Array.from(f, (v) => Math.round(v)), [...p.shape], 'int32');
  }
  const data = toFloat32(t);
  const transpose = layout === 'torch' && (p.shape.length === 4 || p.shape.length === 2);
  if (!transpose) {
    // Readers hand out views into the whole file's bytes: copy, or one BatchNorm vector would keep the file alive.
    return tf.tensor(data.slice(), [...p.shape], 'float32');
  }
  return tf.tidy(() => {
    const src = tf.tensor(data, t.shape, 'float32');
    return p.shape.length === 4 ? tf.transpose(src, [2, 3, 1, 0]) : tf.transpose(src, [1, 0]);
  });
}

function hint(keys: string[]): string {
  if (keys.some((k) => k.startsWith('resnet.embedder') || k.startsWith('resnet.encoder'))) {
    return ' (these look like Hugging Face transformers ResNet keys; export the torchvision/timm state_dict instead)';
  }
  return '';
}

function describe(report: LoadReport, network: Network, source: string): string {
  const lines: string[] = [];
  const list = (ks: string[], max = 12) => ks.slice(0, max).join(', ') + (ks.length > max ? `, ... (${ks.length} in all)` : '');
  if (report.mismatched.length) {
    lines.push(
      `${report.mismatched.length} shape mismatch(es): ` +
        report.mismatched
          .slice(0, 12)
          .map((m) => `${m.key}: checkpoint ${shapeStr(m.got)}, model needs ${shapeStr(m.expected)}`)
          .join('; ') +
        (report.mismatched.length > 12 ? `; ... (${report.mismatched.length} in all)` : ''),
    );
  }
  if (report.missing.length) lines.push(`${report.missing.length} missing key(s): ${list(report.missing)}`);
  if (report.unexpected.length) {
    lines.push(`${report.unexpected.length} unexpected key(s): ${list(report.unexpected)}${hint(report.unexpected)}`);
  }
  const cls = network.classifierName;
  const clsProblem = report.mismatched.some((m) => m.key.startsWith(`${cls}.`));
  const tail = clsProblem
    ? ` The classifier differs: load ImageNet weights into a binary head with ignoreClassifier (the CLI does: nextray train --weights loads the backbone only; nextray export --head binary adds an untrained head).`
    : '';
  return `${source}: state_dict does not match the model. ${lines.join('. ')}.${tail}`;
}

/** What `matchStateDict` found: the checkpoint tensors by model key, the layout they are in, and the report. */
export interface StateDictMatch {
  /** Model key (torchvision's) -> the checkpoint's tensor, shape checked against the model in `layout`. */
  matched: Map<string, RawTensor>;
  layout: 'torch' | 'tfjs';
  report: LoadReport;
}

/**
 * Match `sd`'s keys and shapes to `network` with the rules of the module comment, copying nothing: what
 * `loadIntoNetwork` copies into the TF.js variables, and what the ONNX exporter reads directly (a network built as a
 * shape spec, no variables). Strict by default: throws StateDictMismatchError naming every problem.
 */
export function matchStateDict(network: Network, sd: StateDict, opts: LoadOptions = {}): StateDictMatch {
  const strict = opts.strict ?? true;
  const layout = opts.layout === 'auto' ? (detectLayout(network, sd) ?? 'torch') : (opts.layout ?? 'torch');
  const source = opts.source ?? 'weights';
  const clsPrefix = `${network.classifierName}.`;
  const params = new Map(network.namedParams());

  const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [], skipped: [], defaulted: [], renamed: 0 };
  const matched = new Map<string, RawTensor>();
  for (const [rawKey, t] of sd) {
    const key = canonicalKey(rawKey);
    if (key !== rawKey) report.renamed++;
    if (opts.ignoreClassifier && key.startsWith(clsPrefix)) {
      report.skipped.push(rawKey);
      continue;
    }
    const p = params.get(key);
    if (!p) {
      report.unexpected.push(rawKey);
      continue;
    }
    if (matched.has(key)) {
      report.unexpected.push(`${rawKey} (duplicate of ${key})`);
      continue;
    }
    const want = sourceShape(p, layout);
    // A scalar buffer may come as shape [] or [1] depending on the writer.
    const ok = sameShape(t.shape, want) || (want.length === 0 && t.shape.length === 1 && t.shape[0] === 1);
    if (!ok) {
      report.mismatched.push({ key, expected: want, got: [...t.shape] });
      continue;
    }
    matched.set(key, t);
  }
  for (const [key] of params) {
    if (matched.has(key) || report.mismatched.some((m) => m.key === key)) continue;
    if (opts.ignoreClassifier && key.startsWith(clsPrefix)) continue;
    if (key.endsWith('.num_batches_tracked')) {
      report.defaulted.push(key);
      continue;
    }
    report.missing.push(key);
  }

  if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
    throw new StateDictMismatchError(describe(report, network, source), report);
  }
  return { matched, layout, report };
}

/** Copy `sd` into `network`; see the module comment for the rules. */
export function loadIntoNetwork(
  network: Network,
  sd: StateDict,
  opts: LoadOptions & { strict?: boolean } = {},
): LoadReport {
  const { matched, layout, report } = matchStateDict(network, sd, opts);
  const params = new Map(network.namedParams());
  for (const [key, t] of matched) {
    const p = params.get(key)!;
    const v = toModelTensor(t, p, layout);
    try {
      p.v.assign(v);
    } finally {
      v.dispose();
    }
    report.loaded.push(key);
  }
  return report;
}

/**
 * Which layout a state_dict uses, judged by its conv kernels (square kernels: OIHW [O, I, k, k] vs HWIO
 * [k, k, I, O]); undefined when no conv kernel of the model is found in it.
 */
export function detectLayout(network: Network, sd: StateDict): 'torch' | 'tfjs' | undefined {
  const byKey = new Map<string, RawTensor>();
  for (const [k, t] of sd) byKey.set(canonicalKey(k), t);
  for (const [key, p] of network.namedParams()) {
    if (p.shape.length !== 4) continue;
    const t = byKey.get(key);
    if (!t) continue;
    if (sameShape(t.shape, sourceShape(p, 'torch'))) return 'torch';
    if (sameShape(t.shape, p.shape)) return 'tfjs';
  }
  return undefined;
}

/**
 * The model's state as a framework-free state_dict in PyTorch's layout (OIHW conv kernels, [out, in] Linear, I64
 * num_batches_tracked): what a checkpoint should hold so `torch.load` + `load_state_dict` read it unchanged.
 * Copies the values off the backend (dataSync), so it is safe to dispose the model afterwards.
 */
export function exportStateDict(network: Network, layout: 'torch' | 'tfjs' = 'torch'): StateDict {
  const out: StateDict = new Map();
  for (const [key, p] of network.namedParams()) {
    const v = p.v;
    if (p.dtype === 'int32') {
      const vals = v.dataSync() as Int32Array;
      out.set(key, { dtype: 'I64', shape: [...p.shape], data: BigInt64Array.from(vals, (x) => BigInt(x)) });
      continue;
    }
    const transpose = layout === 'torch' && (p.shape.length === 4 || p.shape.length === 2);
    const data = transpose
      ? tf.tidy(() => tf.transpose(v, p.shape.length === 4 ? [3, 2, 0, 1] : [1, 0]).dataSync() as Float32Array)
      : (v.dataSync() as Float32Array).slice();
    out.set(key, { dtype: 'F32', shape: sourceShape(p, layout), data });
  }
  return out;
}
