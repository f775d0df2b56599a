/**
 * Precision post-passes over an exported ONNX graph (`OnnxGraph` from export.ts): smaller files for cheap devices.
 *
 * fp16 (`toFloat16Graph`): every float32 initializer is stored as IEEE half precision (round to nearest, ties to
 *   even) followed by a `Cast` to float32, so every kernel still computes in float32 — ONNX Runtime's CPU and wasm
 *   builds have no fast fp16 convolutions (fp16 arithmetic there is emulated and about 2x slower), and with
 *   graph optimisation it constant-folds the Casts at load. The file is about half; inputs and outputs stay float32.
 *   A tensor with a value outside fp16's range (|x| > 65504) stays float32.
 *
 * int8 (`quantizeGraphInt8`): static quantization in QDQ form, the form ONNX Runtime turns into integer kernels:
 *   - weights of Conv and Gemm: int8, symmetric (zero point 0), per output channel, q in [-127, 127]
 *     (scale = max|w| / 127), stored as int8 initializers behind a DequantizeLinear;
 *   - biases: int32 with scale = input scale x weight scale (zero point 0), as QLinearConv expects;
 *   - activations: uint8, asymmetric, per tensor, range calibrated on real images (`collectActivationStats`,
 *     `activationRanges`: min-max or a percentile). uint8 activations with int8 per-channel weights ("U8S8") is the
 *     combination ORT's x86 and wasm builds fuse into QLinearConv; with int8 activations the Conv stays float.
 *   - every activation tensor read or written by Conv, Gemm, Add, Concat, GlobalAveragePool, AveragePool and MaxPool
 *     gets one QuantizeLinear -> DequantizeLinear pair right after the node that computes it; all of its readers take
 *     the DequantizeLinear output (so ORT sees DQ -> op -> Q groups). MaxPool and Flatten outputs reuse their
 *     input's scale and zero point (max and reshape commute with quantization: no extra rounding).
 *   - a Relu that is the only reader of a Conv/Add/BatchNormalization output is removed and that output is quantized
 *     with the Relu output's range (zero point 0): QuantizeLinear's clamp at 0 is exactly the Relu.
 *   - layers named in `floatLayers` (Conv/Gemm weight names without '.weight', e.g. 'conv1', 'fc') keep float
 *     weights: ORT runs them as float convolutions between the neighbouring Q/DQ pairs.
 *   BatchNorm must already be folded into the convolutions (the exporter's default).
 *
 * Calibration runs the float32 graph with every tensor to be quantized as an extra graph output, in any ONNX Runtime
 * (onnxruntime-node's or -web's module is passed in), so this module stays browser-safe (no node: imports).
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { EXIT_USAGE, NextrayError } from '../../util/errors.js';
import { concatChunks, encodeModel, type OnnxGraph, type OnnxInitializer, type OnnxModelMeta, type OnnxNode, type OnnxValueInfo } from './graph.js';

/**
 * An fp16/int8 conversion the options or the model do not allow (a float layer that is not a Conv/Gemm, int8
 * without folded BatchNorm or calibration images, calibration images that cannot be read or give non-finite values).
 */
export class QuantizeError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_QUANTIZE', exitStatus: EXIT_USAGE });
    this.name = 'QuantizeError';
  }
}

/**
 * The parts of an ONNX Runtime module the calibration runs use (onnxruntime-node's and onnxruntime-web's modules
 * both fit; the caller picks one through src/inference's ONNX Runtime seam and passes it in).
 */
export interface CalibrationRuntime {
  InferenceSession: { create(model: Uint8Array | string, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: typeof Tensor;
}

/** Number format of an exported model's weights (not the training engine's arithmetic, engine/options.ts's Precision). */
export type ExportPrecision = 'fp32' | 'fp16' | 'int8';
export const PRECISIONS: readonly ExportPrecision[] = ['fp32', 'fp16', 'int8'];

// ---------------------------------------------------------------------------------------------------------------
// Scalar maths

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of `x` (rounded to float32 first), round to nearest, ties to even; overflow -> +-inf. */
export function float16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): value = m * 2^-24 with m = (1.mant) * 2^(e - 14 + 23 - 23) ...
    const shift = 14 - e;
    if (shift > 24) return sign;
    const full = mant | 0x800000;
    const m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rem > half || (rem === half && (m & 1) === 1) ? m + 1 : m);
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct (up to inf)
  return sign | h;
}

/** The value of binary16 bits. */
export function float16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export const FLOAT16_MAX = 65504;

/** Round half to even, as ONNX QuantizeLinear does. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Scale and zero point of a uint8 activation (QuantizeLinear: q = clamp(round(x / scale) + zp, 0, 255)). */
export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

/**
 * uint8 asymmetric parameters for values in [min, max]. The range is widened to include 0 (so 0 — padding, a
 * Relu's floor — is exact); scale = (max - min) / 255 rounded to float32, zeroPoint = round(-min / scale), as ONNX
 * Runtime's quantizer computes them. An empty range (all zeros) gets scale 1.
 */
export function activationParams(min: number, max: number): QuantParams {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) throw new RangeError(`bad activation range [${min}, ${max}]`);
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  if (hi === lo) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / 255);
  const zeroPoint = Math.min(255, Math.max(0, roundHalfEven(-lo / scale)));
  return { scale, zeroPoint };
}

/** QuantizeLinear then DequantizeLinear of one value with uint8 params (what the graph computes). */
export function fakeQuantUint8(x: number, p: QuantParams): number {
  const q = Math.min(255, Math.max(0, roundHalfEven(x / p.scale) + p.zeroPoint));
  return (q - p.zeroPoint) * p.scale;
}

/**
 * Symmetric int8 per-channel quantization of a weight whose first (axis 0, `channelAxis` 0) or last (`channelAxis`
 * 1 of a 2-D [in, out] matrix) dimension is the output channel: scale_c = max|w_c| / 127 (1 for an all-zero
 * channel), q = clamp(round(w / scale_c), -127, 127). `minScales` raises a channel's scale where the int32 bias
 * would otherwise overflow.
 */
export function quantizeWeightsPerChannel(
  w: Float32Array,
  dims: readonly number[],
  channelAxis: 0 | 1,
  minScales?: Float64Array,
): { q: Int8Array; scales: Float32Array } {
  let total = 1;
  for (const d of dims) total *= d;
  if (total !== w.length) throw new RangeError(`weight of ${w.length} values does not fit dims [${dims.join(', ')}]`);
  if (channelAxis === 1 && dims.length !== 2) throw new RangeError('channelAxis 1 is for 2-D [in, out] matrices');
  const channels = channelAxis === 0 ? dims[0]! : dims[1]!;
  const chanOf = channelAxis === 0 ? (i: number) => Math.floor(i / (total / channels)) : (i: number) => i % channels;
  const maxAbs = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = chanOf(i);
    const a = Math.abs(w[i]!);
    if (a > maxAbs[c]!) maxAbs[c] = a;
  }
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let s = maxAbs[c]! > 0 ? maxAbs[c]! / 127 : 1;
    if (minScales && minScales[c]! > s) s = minScales[c]!;
    scales[c] = s;
  }
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) q[i] = Math.min(127, Math.max(-127, roundHalfEven(w[i]! / scales[chanOf(i)]!)));
  return { q, scales };
}

const INT32_MAX = 2 ** 31 - 1;

/** int32 bias for QLinearConv/QGemm: scale_c = inputScale * weightScale_c (float32), zero point 0. */
export function quantizeBias(b: Float32Array, inputScale: number, weightScales: Float32Array): { q: Int32Array; scales: Float32Array } {
  if (b.length !== weightScales.length) throw new RangeError(`bias of ${b.length} values for ${weightScales.length} weight scales`);
  const scales = new Float32Array(b.length);
  const q = new Int32Array(b.length);
  for (let c = 0; c < b.length; c++) {
    scales[c] = inputScale * weightScales[c]!;
    const v = roundHalfEven(b[c]! / scales[c]!);
    if (!(Math.abs(v) <= INT32_MAX)) throw new RangeError(`bias ${c} = ${b[c]} overflows int32 at scale ${scales[c]}`);
    q[c] = v;
  }
  return { q, scales };
}

// ---------------------------------------------------------------------------------------------------------------
// fp16

export interface Fp16Result {
  graph: OnnxGraph;
  /** Initializers stored as float16. */
  converted: number;
  /** Float32 initializers left as they were (values outside fp16's range). */
  keptFloat32: string[];
}

/** Store every float32 initializer as float16 + Cast(to float32). The input graph is not modified. */
export function toFloat16Graph(graph: OnnxGraph): Fp16Result {
  const names = new Set<string>();
  for (const t of graph.initializers) names.add(t.name);
  for (const n of graph.nodes) for (const o of n.outputs) names.add(o);
  const initializers: OnnxInitializer[] = [];
  const casts: OnnxNode[] = [];
  const keptFloat32: string[] = [];
  for (const t of graph.initializers) {
    if (!(t.data instanceof Float32Array)) {
      initializers.push(t);
      continue;
    }
    const half = new Uint16Array(t.data.length);
    let ok = true;
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i]!;
      if (!(Math.abs(v) <= FLOAT16_MAX)) {
        ok = false;
        break;
      }
      half[i] = float16Bits(v);
    }
    if (!ok) {
      keptFloat32.push(t.name);
      initializers.push(t);
      continue;
    }
    const stored = uniqueName(`${t.name}.fp16`, names);
    initializers.push({ name: stored, dims: t.dims, data: half });
    casts.push({ opType: 'Cast', inputs: [stored], outputs: [t.name], name: `${t.name}.cast`, attrs: { to: 1 } });
  }
  return {
    graph: { ...graph, nodes: [...casts, ...graph.nodes], initializers },
    converted: casts.length,
    keptFloat32,
  };
}

function uniqueName(want: string, taken: Set<string>): string {
  let name = want;
  for (let i = 1; taken.has(name); i++) name = `${want}.${i}`;
  taken.add(name);
  return name;
}

// ---------------------------------------------------------------------------------------------------------------
// int8: plan

/** Ops whose activation inputs and outputs are quantized (ORT has QDQ fusions for each). */
const QUANT_OPS = new Set(['Conv', 'Gemm', 'Add', 'Concat', 'GlobalAveragePool', 'AveragePool', 'MaxPool']);
/** Ops whose output takes the input's quantization parameters (no rounding of their own). */
const SHARED_PARAM_OPS = new Set(['MaxPool', 'Flatten']);
/** Producers whose only-reader Relu folds into the output quantization. */
const RELU_FOLD_OPS = new Set(['Conv', 'Add', 'BatchNormalization', 'Gemm']);

/** A Conv/Gemm's layer name: its weight initializer's name without '.weight' ('layer1.0.conv1', 'fc'). */
export function layerName(node: OnnxNode): string | null {
  if (node.opType !== 'Conv' && node.opType !== 'Gemm') return null;
  const w = node.inputs[1];
  if (!w) return null;
  return w.endsWith('.weight') ? w.slice(0, -'.weight'.length) : w;
}

/** Conv/Gemm layer names of a graph, in order. */
export function quantizableLayers(graph: OnnxGraph): string[] {
  return graph.nodes.map(layerName).filter((n): n is string => n !== null);
}

export interface Int8Plan {
  /** Relu nodes (by index) removed; their producer writes the Relu's output name instead. */
  foldedRelu: Set<number>;
  /** Tensors (names as in the float32 graph) that get a Q/DQ pair. */
  quantized: Set<string>;
  /** tensor -> the tensor whose parameters it reuses (MaxPool, Flatten outputs). */
  sharedWith: Map<string, string>;
  /** Tensors whose range must be calibrated (quantized minus shared), in graph order. */
  calibrate: string[];
  /** Nodes (by index) computed in integer form (QDQ around them). */
  quantizedNodes: Set<number>;
  /** Conv/Gemm layers left in float, as asked. */
  floatLayers: string[];
}

export interface Int8Options {
  /** Conv/Gemm layer names to keep in float (see `layerName`). */
  floatLayers?: readonly string[];
}

export function planInt8(graph: OnnxGraph, opts: Int8Options = {}): Int8Plan {
  const inits = new Set(graph.initializers.map((t) => t.name));
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const layers = new Set(quantizableLayers(graph));
  const floatLayers = [...new Set(opts.floatLayers ?? [])];
  for (const l of floatLayers) {
    if (!layers.has(l)) throw new QuantizeError(`float layer '${l}' is not a Conv/Gemm layer of ${graph.name} (e.g. ${[...layers].slice(0, 3).join(', ')})`);
  }
  const keepFloat = new Set(floatLayers);
  const consumers = new Map<string, number[]>();
  graph.nodes.forEach((n, i) => {
    for (const x of n.inputs) if (x && !inits.has(x)) consumers.set(x, [...(consumers.get(x) ?? []), i]);
  });
  const isQuantNode = (n: OnnxNode): boolean => QUANT_OPS.has(n.opType) && !keepFloat.has(layerName(n) ?? '');

  // Relu folding: output name of a node after folding.
  const foldedRelu = new Set<number>();
  const outName = new Map<number, string>(); // producer index -> its new output name
  const producerOf = new Map<string, number>();
  graph.nodes.forEach((n, i) => n.outputs.forEach((o) => producerOf.set(o, i)));
  graph.nodes.forEach((n, i) => {
    if (n.opType !== 'Relu') return;
    const t = n.inputs[0]!;
    const p = producerOf.get(t);
    if (p === undefined || outputs.has(t) || outputs.has(n.outputs[0]!)) return;
    const readers = consumers.get(t) ?? [];
    if (readers.length !== 1 || !RELU_FOLD_OPS.has(graph.nodes[p]!.opType) || graph.nodes[p]!.outputs.length !== 1) return;
    foldedRelu.add(i);
    outName.set(p, n.outputs[0]!);
  });
  // Readers after folding (a folded Relu's readers read the producer's new output, which has the same name).
  // Conv/Gemm (int8 weights) are always integer. The other ops (Add, pools, Concat) are integer only when what they
  // compute flows into an integer op (through a folded Relu or a Flatten): a branch that leaves the integer path
  // (the OOD gate's mean/variance statistics, where 8-bit means would cancel catastrophically in E[x^2] - E[x]^2)
  // stays float. Nodes are in topological order, so one pass from the end settles it.
  const quantizedNodes = new Set<number>();
  const readersOf = (t: string): number[] => consumers.get(t) ?? [];
  const feedsQuantized = (t: string, depth = 0): boolean =>
    depth < 8 &&
    readersOf(t).some((r) => {
      const m = graph.nodes[r]!;
      if (quantizedNodes.has(r)) return true;
      if (foldedRelu.has(r) || m.opType === 'Flatten') return m.outputs.some((o) => feedsQuantized(o, depth + 1));
      return false;
    });
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (foldedRelu.has(i) || !isQuantNode(n)) continue;
    if (n.opType === 'Conv' || n.opType === 'Gemm') quantizedNodes.add(i);
    else if (n.outputs.some((o) => feedsQuantized(o))) quantizedNodes.add(i);
  }

  const quantized = new Set<string>();
  const sharedWith = new Map<string, string>();
  const order: string[] = [];
  const consider = (t: string, producerQuant: boolean, forced: boolean) => {
    if (outputs.has(t) || inits.has(t)) return;
    const readers = consumers.get(t) ?? [];
    if (forced || producerQuant || readers.some((r) => quantizedNodes.has(r))) {
      quantized.add(t);
      order.push(t);
    }
  };
  for (const inp of graph.inputs) consider(inp.name, false, false);
  graph.nodes.forEach((n, i) => {
    if (foldedRelu.has(i)) return;
    const folded = outName.get(i);
    for (const o of folded ? [folded] : n.outputs) {
      consider(o, quantizedNodes.has(i), folded !== undefined);
      if (quantized.has(o) && SHARED_PARAM_OPS.has(n.opType) && quantized.has(n.inputs[0]!)) {
        const src = n.inputs[0]!;
        sharedWith.set(o, sharedWith.get(src) ?? src);
      }
    }
  });
  // A MaxPool must read a quantized input to be integer; one that does not stays float on float input.
  const calibrate = order.filter((t) => !sharedWith.has(t));
  return { foldedRelu, quantized, sharedWith, calibrate, quantizedNodes, floatLayers };
}

// ---------------------------------------------------------------------------------------------------------------
// int8: calibration

/** The float32 graph with `tensors` added as graph outputs (shape left unknown). */
export function withExtraOutputs(graph: OnnxGraph, tensors: readonly string[]): OnnxGraph {
  const have = new Set(graph.outputs.map((o) => o.name));
  const extra: OnnxValueInfo[] = tensors.filter((t) => !have.has(t)).map((name) => ({ name, elemType: 'float32' }));
  return { ...graph, outputs: [...graph.outputs, ...extra] };
}

/** Per-tensor statistics from calibration: exact min and max, and a regular subsample of values for percentiles. */
export interface TensorStats {
  min: number;
  max: number;
  count: number;
  samples: Float32Array[];
}

export type ActivationStats = Map<string, TensorStats>;

/** Values kept per tensor per image for percentiles (a regular grid over the tensor). */
export const SAMPLES_PER_IMAGE = 4096;

export function observe(stats: ActivationStats, name: string, data: Float32Array, images: number): void {
  let s = stats.get(name);
  if (!s) {
    s = { min: Infinity, max: -Infinity, count: 0, samples: [] };
    stats.set(name, s);
  }
  let mn = s.min;
  let mx = s.max;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  if (!Number.isFinite(mn) || !Number.isFinite(mx)) throw new QuantizeError(`calibration: tensor '${name}' holds a non-finite value (the model's weights give NaN or infinity on a calibration image)`);
  s.min = mn;
  s.max = mx;
  s.count += data.length;
  const m = Math.min(data.length, SAMPLES_PER_IMAGE * images);
  const sample = new Float32Array(m);
  const step = data.length / m;
  for (let i = 0; i < m; i++) sample[i] = data[Math.floor((i + 0.5) * step)]!;
  s.samples.push(sample);
}

export interface CalibrationBatch {
  /** Input values in the graph's input layout, `n` images. */
  x: Float32Array;
  n: number;
}

/**
 * Run the float32 graph on the calibration batches with the plan's tensors as extra outputs and gather their
 * statistics. `inputDims(n)` gives the input tensor's dims for a batch of n.
 */
export async function collectActivationStats(
  ort: CalibrationRuntime,
  graph: OnnxGraph,
  meta: OnnxModelMeta,
  tensors: readonly string[],
  batches: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch>,
  opts: { inputDims: (n: number) => number[]; sessionOptions?: InferenceSession.SessionOptions; onBatch?: (images: number) => void },
): Promise<{ stats: ActivationStats; images: number }> {
  const bytes = concatChunks(encodeModel(withExtraOutputs(graph, tensors), meta));
  const session = await ort.InferenceSession.create(bytes, opts.sessionOptions ?? { executionProviders: ['cpu'], graphOptimizationLevel: 'basic' });
  const stats: ActivationStats = new Map();
  let images = 0;
  try {
    const inputName = graph.inputs[0]!.name;
    for await (const b of batches) {
      const feeds = { [inputName]: new ort.Tensor('float32', b.x, opts.inputDims(b.n)) } as InferenceSession.FeedsType;
      const out = await session.run(feeds, [...tensors]);
      for (const t of tensors) {
        const v = out[t];
        if (!v) throw new Error(`calibration: ONNX Runtime did not return tensor '${t}'`);
        observe(stats, t, v.data as Float32Array, b.n);
        (v as { dispose?: () => void }).dispose?.();
      }
      images += b.n;
      opts.onBatch?.(images);
    }
  } finally {
    await session.release();
  }
  if (images === 0) throw new QuantizeError('calibration: no images (none of the calibration images could be read)');
  return { stats, images };
}

export type CalibrationMethod = { kind: 'minmax' } | { kind: 'percentile'; percentile: number };

export function describeMethod(m: CalibrationMethod): string {
  return m.kind === 'minmax' ? 'minmax' : `percentile-${m.percentile}`;
}

export function parseCalibrationMethod(s: string): CalibrationMethod {
  if (s === 'minmax') return { kind: 'minmax' };
  const m = /^percentile(?:-(\d+(?:\.\d+)?))?$/.exec(s);
  if (m) {
    const p = m[1] === undefined ? 99.99 : Number(m[1]);
    if (!(p > 50 && p <= 100)) throw new RangeError(`percentile must be in (50, 100], got ${p}`);
    return { kind: 'percentile', percentile: p };
  }
  throw new RangeError(`calibration method must be 'minmax' or 'percentile[-P]' (e.g. percentile-99.99), got '${s}'`);
}

/** The q-th quantile (0..1) of sorted values, linear interpolation (numpy's default). */
export function quantileSorted(sorted: Float32Array | Float64Array, q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of no values');
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Ranges per tensor: min-max, or the [100 - p, p] percentiles of the sampled values (never wider than min-max). */
export function activationRanges(stats: ActivationStats, method: CalibrationMethod): Map<string, { min: number; max: number }> {
  const out = new Map<string, { min: number; max: number }>();
  for (const [name, s] of stats) {
    if (method.kind === 'minmax') {
      out.set(name, { min: s.min, max: s.max });
      continue;
    }
    let n = 0;
    for (const a of s.samples) n += a.length;
    const all = new Float32Array(n);
    let off = 0;
    for (const a of s.samples) {
      all.set(a, off);
      off += a.length;
    }
    all.sort();
    const q = method.percentile / 100;
    out.set(name, { min: Math.max(s.min, quantileSorted(all, 1 - q)), max: Math.min(s.max, quantileSorted(all, q)) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// int8: rewrite

export interface Int8Result {
  graph: OnnxGraph;
  plan: Int8Plan;
  /** Conv/Gemm layers with int8 weights. */
  quantizedLayers: string[];
  /** Activation parameters used, per tensor. */
  params: Map<string, QuantParams>;
}

/**
 * Rewrite a float32 graph (BatchNorm folded) into QDQ int8 with the given activation ranges (one per tensor of
 * `planInt8(graph, opts).calibrate`). The input graph is not modified; weights are copied into new arrays.
 */
export function quantizeGraphInt8(graph: OnnxGraph, ranges: ReadonlyMap<string, { min: number; max: number }>, opts: Int8Options = {}): Int8Result {
  const plan = planInt8(graph, opts);
  if (graph.nodes.some((n) => n.opType === 'BatchNormalization' && graph.nodes.some((m) => m.opType === 'Conv' && m.outputs[0] === n.inputs[0]))) {
    throw new Error(`${graph.name}: BatchNormalization after a Conv is not folded; export with BatchNorm folding before quantizing`);
  }
  const params = new Map<string, QuantParams>();
  for (const t of plan.calibrate) {
    const r = ranges.get(t);
    if (!r) throw new Error(`int8: no calibrated range for tensor '${t}'`);
    params.set(t, activationParams(r.min, r.max));
  }
  for (const [t, src] of plan.sharedWith) params.set(t, params.get(src)!);

  const initByName = new Map(graph.initializers.map((t) => [t.name, t]));
  const taken = new Set<string>([...initByName.keys(), ...graph.inputs.map((i) => i.name)]);
  for (const n of graph.nodes) for (const o of n.outputs) taken.add(o);
  const replacedInits = new Set<string>();
  const newInits: OnnxInitializer[] = [];
  const nodes: OnnxNode[] = [];
  const dqName = new Map<string, string>();

  const scalarParams = (t: string): [string, string] => {
    const p = params.get(t)!;
    const s = uniqueName(`${t}.scale`, taken);
    const z = uniqueName(`${t}.zero_point`, taken);
    newInits.push({ name: s, dims: [], data: Float32Array.of(p.scale) }, { name: z, dims: [], data: Uint8Array.of(p.zeroPoint) });
    return [s, z];
  };
  const emitQdq = (t: string) => {
    const [s, z] = scalarParams(t);
    const q = uniqueName(`${t}.quantized`, taken);
    const dq = uniqueName(`${t}.dequantized`, taken);
    nodes.push({ opType: 'QuantizeLinear', inputs: [t, s, z], outputs: [q], name: q });
    nodes.push({ opType: 'DequantizeLinear', inputs: [q, s, z], outputs: [dq], name: dq });
    dqName.set(t, dq);
  };

  for (const inp of graph.inputs) if (plan.quantized.has(inp.name)) emitQdq(inp.name);
  const quantizedLayers: string[] = [];
  const folded = new Map<number, string>();
  graph.nodes.forEach((n, i) => {
    if (n.opType === 'Relu' && plan.foldedRelu.has(i)) {
      const p = graph.nodes.findIndex((m) => m.outputs[0] === n.inputs[0]);
      folded.set(p, n.outputs[0]!);
    }
  });

  graph.nodes.forEach((n, i) => {
    if (plan.foldedRelu.has(i)) return;
    const inputs = n.inputs.map((x) => dqName.get(x) ?? x);
    if (plan.quantizedNodes.has(i) && (n.opType === 'Conv' || n.opType === 'Gemm')) {
      const xName = n.inputs[0]!;
      const xp = params.get(xName);
      if (!xp) throw new Error(`int8: input '${xName}' of ${n.name ?? n.opType} is not quantized`);
      const w = initByName.get(n.inputs[1]!);
      if (!w || !(w.data instanceof Float32Array)) throw new Error(`int8: ${n.name ?? n.opType}: weight '${n.inputs[1]}' is not a float32 initializer`);
      if (n.opType === 'Gemm' && (n.attrs?.transB ?? 0) !== 0) throw new Error(`int8: ${n.name}: Gemm with transB is not supported`);
      const axis: 0 | 1 = n.opType === 'Conv' ? 0 : 1;
      const b = n.inputs[2] ? initByName.get(n.inputs[2]) : undefined;
      if (n.inputs[2] && (!b || !(b.data instanceof Float32Array))) throw new Error(`int8: ${n.name}: bias '${n.inputs[2]}' is not a float32 initializer`);
      // Raise a channel's weight scale where its bias would not fit int32 at inputScale * weightScale.
      let minScales: Float64Array | undefined;
      if (b) {
        minScales = new Float64Array(b.data.length);
        for (let c = 0; c < b.data.length; c++) minScales[c] = Math.abs(b.data[c] as number) / (xp.scale * 2 ** 30);
      }
      const { q, scales } = quantizeWeightsPerChannel(w.data, w.dims, axis, minScales);
      const wq = uniqueName(`${w.name}.quantized`, taken);
      const ws = uniqueName(`${w.name}.scale`, taken);
      const wz = uniqueName(`${w.name}.zero_point`, taken);
      newInits.push({ name: wq, dims: w.dims, data: q }, { name: ws, dims: [scales.length], data: scales }, { name: wz, dims: [scales.length], data: new Int8Array(scales.length) });
      replacedInits.add(w.name);
      nodes.push({ opType: 'DequantizeLinear', inputs: [wq, ws, wz], outputs: [w.name], name: `${w.name}.dequantize`, attrs: { axis } });
      if (b) {
        const bq = quantizeBias(b.data as Float32Array, xp.scale, scales);
        const bqn = uniqueName(`${b.name}.quantized`, taken);
        const bs = uniqueName(`${b.name}.scale`, taken);
        const bz = uniqueName(`${b.name}.zero_point`, taken);
        newInits.push({ name: bqn, dims: b.dims, data: bq.q }, { name: bs, dims: [bq.scales.length], data: bq.scales }, { name: bz, dims: [bq.scales.length], data: new Int32Array(bq.scales.length) });
        replacedInits.add(b.name);
        nodes.push({ opType: 'DequantizeLinear', inputs: [bqn, bs, bz], outputs: [b.name], name: `${b.name}.dequantize`, attrs: { axis: 0 } });
      }
      quantizedLayers.push(layerName(n)!);
    }
    const out = folded.get(i);
    nodes.push(out ? { ...n, inputs, outputs: [out], ...(n.name ? { name: out } : {}) } : { ...n, inputs });
    for (const o of out ? [out] : n.outputs) if (plan.quantized.has(o)) emitQdq(o);
  });

  const initializers = [...graph.initializers.filter((t) => !replacedInits.has(t.name)), ...newInits];
  return {
    graph: { ...graph, nodes, initializers },
    plan,
    quantizedLayers,
    params,
  };
}

/** Bytes of the initializers' data (what dominates an ONNX file's size). */
export function initializerBytes(graph: OnnxGraph): number {
  let n = 0;
  for (const t of graph.initializers) n += t.data.byteLength;
  return n;
}
