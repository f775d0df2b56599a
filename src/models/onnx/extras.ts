/**
 * The optional "trust" parts of an exported graph, added by exportOnnx after the trunk:
 *
 *   cam          output `cam` [batch, h, w] = ReLU(sum_c w_c F_c): the class activation map of the abnormal logit over
 *                the last feature map F (a 1x1 Conv with the head's weights, no bias), so onnxruntime-node and -web
 *                give heatmaps without gradients. The map is in logit units; hosts normalise it (divide by its max).
 *   temperature  the `logits` output becomes Gemm(...) / T and `probability` its sigmoid (temperature scaling);
 *                metadata `temperature`.
 *   ood          output `ood_score` [batch, 1] = (f - mu)^T P (f - mu) (Mahalanobis, P the shrunk inverse covariance of
 *                the training images' f), f = per-channel spatial mean and standard deviation of the outputs of the
 *                gate's layers (src/models/cam.ts layerStatistics); metadata `ood` holds the method, the layers, the
 *                threshold and how it was chosen, so a browser decides with the file alone.
 *
 * Only graph building here (no TF.js, no Node), shared by Node and browsers like export.ts.
 */
import type { OnnxInitializer, OnnxNode } from './graph.js';

export const ONNX_CAM = 'cam';
export const ONNX_OOD_SCORE = 'ood_score';

/** An out-of-distribution detector as stored with a model (see src/calibrate/trust.ts for the fitting). */
export interface OodStats {
  method: 'mahalanobis';
  /** Layers (trunk step names, 'features' = the final map) whose channel means and standard deviations form f. */
  layers: string[];
  /** Feature mean, [dim]. */
  mean: Float32Array;
  /** Inverse of the shrunk covariance, row-major [dim, dim]. */
  precision: Float32Array;
  /** Scores above this are out of distribution. */
  threshold: number;
  /** The quantile of the reference scores the threshold sits at (e.g. 0.99). */
  quantile: number;
  /** Whose scores: held-out validation images (the default since thresholds are fitted on held-out data) or training images. */
  thresholdFrom?: 'validation' | 'train';
  /** Covariance shrinkage towards a scaled identity, in [0, 1]. */
  shrinkage: number;
  /** Training images the statistics came from. */
  images: number;
}

/** The metadata JSON of the OOD gate (everything but the arrays, which are initializers). */
export interface OodMetadata {
  method: 'mahalanobis';
  output: typeof ONNX_OOD_SCORE;
  layers: string[];
  threshold: number;
  quantile: number;
  /** Whose scores the quantile was taken of (absent: training images). */
  threshold_from?: 'validation' | 'train';
  shrinkage: number;
  dim: number;
  images: number;
}

/**
 * The one reader of a model's `ood` metadata (the JSON above): the gate, null when the model has none, or what is
 * wrong with it (for the caller to name with the file). Used by the model's info, its card and the trust layer.
 */
export function parseOodMetadata(json: string | undefined): { ood: OodMetadata | null; problem?: string } {
  if (json === undefined || json === '') return { ood: null };
  let g: unknown;
  try {
    g = JSON.parse(json);
  } catch {
    return { ood: null, problem: 'is not JSON' };
  }
  const o = g as Partial<OodMetadata> | null;
  if (!o || typeof o !== 'object' || o.method !== 'mahalanobis' || typeof o.threshold !== 'number' || !Number.isFinite(o.threshold)) {
    return { ood: null, problem: "must be { method: 'mahalanobis', threshold, ... }" };
  }
  return { ood: o as OodMetadata };
}

/** What the extras need from export.ts's graph builder. */
export interface ExtrasBuilder {
  readonly inits: OnnxInitializer[];
  node(opType: string, inputs: string[], hint: string, attrs?: OnnxNode['attrs'], outName?: string): string;
  init(name: string, dims: number[], data: Float32Array): string;
}

/** 1x1 Conv of the feature map (NCHW) with the head's column `k` -> Relu -> Squeeze(1): `cam` [batch, h, w]. */
export function emitCam(b: ExtrasBuilder, featureMap: string, headWeight: Float32Array, inFeatures: number, outFeatures: number, k = 0): string {
  const w = new Float32Array(inFeatures);
  for (let c = 0; c < inFeatures; c++) w[c] = headWeight[c * outFeatures + k]!; // our Linear keeps [in, out]
  const conv = b.node('Conv', [featureMap, b.init('cam.weight', [1, inFeatures, 1, 1], w)], 'cam.conv', {
    kernel_shape: [1, 1],
    strides: [1, 1],
    pads: [0, 0, 0, 0],
    dilations: [1, 1],
    group: 1,
  });
  const r = b.node('Relu', [conv], 'cam.relu');
  b.inits.push({ name: 'cam.squeeze_axes', dims: [1], data: BigInt64Array.from([1n]) });
  return b.node('Squeeze', [r, 'cam.squeeze_axes'], 'cam.squeeze', undefined, ONNX_CAM);
}

/** f = [mean_c, std_c] per layer, concatenated: [batch, dim] (spatial statistics per channel, NCHW taps). */
function emitLayerStats(b: ExtrasBuilder, taps: ReadonlyMap<string, string>, layers: readonly string[]): string {
  const parts: string[] = [];
  for (const l of layers) {
    const t = taps.get(l);
    if (!t) throw new Error(`ood: layer '${l}' is not in the exported graph (known: ${[...taps.keys()].join(', ')})`);
    const m = b.node('GlobalAveragePool', [t], `ood.${l}.mean`);
    const m2 = b.node('GlobalAveragePool', [b.node('Mul', [t, t], `ood.${l}.sq`)], `ood.${l}.meansq`);
    const v = b.node('Relu', [b.node('Sub', [m2, b.node('Mul', [m, m], `ood.${l}.mean2`)], `ood.${l}.var`)], `ood.${l}.varpos`);
    parts.push(m, b.node('Sqrt', [v], `ood.${l}.std`));
  }
  const cat = parts.length === 1 ? parts[0]! : b.node('Concat', parts, 'ood.features4d', { axis: 1 });
  return b.node('Flatten', [cat], 'ood.features', { axis: 1 });
}

/** `ood_score` [batch, 1] = sum_j ((f - mu) P)_j (f - mu)_j, f from the gate's layers (see emitLayerStats). */
export function emitOodScore(b: ExtrasBuilder, taps: ReadonlyMap<string, string>, ood: OodStats): string {
  const flat = emitLayerStats(b, taps, ood.layers);
  const dim = ood.mean.length;
  if (ood.precision.length !== dim * dim) throw new RangeError(`ood: precision has ${ood.precision.length} values, expected ${dim * dim}`);
  const d = b.node('Sub', [flat, b.init('ood.mean', [1, dim], ood.mean)], 'ood.centre');
  const q = b.node('MatMul', [d, b.init('ood.precision', [dim, dim], ood.precision)], 'ood.project');
  const e = b.node('Mul', [q, d], 'ood.terms');
  return b.node('MatMul', [e, b.init('ood.ones', [dim, 1], new Float32Array(dim).fill(1))], 'ood.sum', undefined, ONNX_OOD_SCORE);
}

export function oodMetadata(ood: OodStats): OodMetadata {
  return { method: ood.method, output: ONNX_OOD_SCORE, layers: [...ood.layers], threshold: ood.threshold, quantile: ood.quantile, ...(ood.thresholdFrom ? { threshold_from: ood.thresholdFrom } : {}), shrinkage: ood.shrinkage, dim: ood.mean.length, images: ood.images };
}
