/**
 * The 'nextray-native' TF.js backend: the pure-JS cpu backend (same tensor storage, same kernels) with the
 * kernels that dominate ResNet/DenseNet training and inference replaced by oneDNN/OpenMP code from the
 * native addon. Every native kernel checks that it can reproduce the JS kernel's semantics for the given
 * inputs (float32, NHWC, no dilation in pooling, supported activation, simple broadcast) and otherwise calls
 * the JS kernel, so any model that runs on 'cpu' runs here unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './native-addon.js';
import { timeKernel } from './profile.js';
import { fusedKernelsNative, registerFusedKernels } from './fused-kernels.js';
import { ArrayPool, allocOutput } from './array-pool.js';
import { transposeInto } from './transpose.js';
import { CONV_BN, type ConvBnAttrs } from './fused-ops.js';

export const NATIVE_BACKEND = 'nextray-native';
export { ArrayPool, allocOutput };

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: MathBackendCPU; attrs?: tf.NamedAttrMap };
type KernelImpl = (args: KernelArgs) => TensorInfo | TensorInfo[];

/** Settings of the native backend, from the engine options (src/engine/options.ts) when it is registered. */
export interface NativeBackendSettings {
  /** ArrayPool budget in MiB (0: no recycling). */
  poolMb: number;
  /** Keep oneDNN-layout copies of filters used repeatedly (see filterCache). */
  weightCache: boolean;
  /** Above this many output pixels per call the filter is reordered each time instead of cached. */
  weightCachePixels: number;
}

let settings: NativeBackendSettings = { poolMb: 512, weightCache: true, weightCachePixels: 4096 };

/** The backend class: cpu storage with recycled native outputs (ArrayPool). */
export class NativeBackend extends MathBackendCPU {
  readonly pool = new ArrayPool(settings.poolMb * 2 ** 20);

  constructor() {
    super();
    // The cpu backend prints an "install tfjs-node" banner on first use; this backend is the answer to it.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override readSync(dataId: object): tf.backend_util.BackendValues {
    // The caller gets the array itself (dataSync / data / bufferSync all come here).
    this.pool.disown(this.data.get(dataId)?.values);
    return super.readSync(dataId);
  }

  override disposeData(dataId: object, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const released = super.disposeData(dataId, force);
    if (values instanceof Float32Array && !this.data.has(dataId)) {
      // The array is about to hold other data: a filter layout cached under it would be stale.
      forgetFilter(values);
      this.pool.release(values);
    }
    return released;
  }
}

/** JS kernels that share their input's data by reference count (never by a view), so inputs stay poolable. */
const SHARES_BY_REFCOUNT = new Set(['Reshape', 'Identity']);

function disownInputs(args: KernelArgs, kernelName: string): void {
  if (SHARES_BY_REFCOUNT.has(kernelName) || !(args.backend instanceof NativeBackend)) return;
  for (const t of Object.values(args.inputs)) if (t) args.backend.pool.disown(args.backend.data.get(t.dataId)?.values);
}

function f32(backend: MathBackendCPU, t: TensorInfo | undefined | null): Float32Array | null {
  if (!t || t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

function out(backend: MathBackendCPU, shape: number[], values: Float32Array): TensorInfo {
  return backend.makeTensorInfo(shape, 'float32', values);
}

/** oneDNN derives the output size with floor division; TF.js's 'ceil' rounding can disagree. */
function oneDnnAgrees(conv: tf.backend_util.Conv2DInfo): boolean {
  const p = conv.padInfo;
  const effH = (conv.filterHeight - 1) * conv.dilationHeight + 1;
  const effW = (conv.filterWidth - 1) * conv.dilationWidth + 1;
  return (
    p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0 &&
    conv.outHeight === Math.floor((conv.inHeight + p.top + p.bottom - effH) / conv.strideHeight) + 1 &&
    conv.outWidth === Math.floor((conv.inWidth + p.left + p.right - effW) / conv.strideWidth) + 1
  );
}

function convGeom(c: tf.backend_util.Conv2DInfo): Int32Array {
  const p = c.padInfo;
  return Int32Array.from([
    c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth, c.outChannels,
    c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, p.top, p.bottom, p.left, p.right,
    c.dilationHeight, c.dilationWidth,
  ]);
}

function poolGeom(c: tf.backend_util.Conv2DInfo): Int32Array {
  return Int32Array.from([
    c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth,
    c.effectiveFilterHeight, c.effectiveFilterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left,
  ]);
}

// Filters seen twice by the forward convolution (inference, frozen layers) get their oneDNN-layout copy kept
// beside them; a filter used once (a trainable weight, replaced after every optimiser step) never does, so
// training does not pay the memory. TF.js never mutates a tensor's array, so the array identifies the data while
// its tensor lives; when ArrayPool recycles the array, its entries are forgotten (forgetFilter).
// The copy is kept only where the reorder would be a noticeable part of the convolution: the reorder moves the
// filter once, the convolution uses it once per output pixel, so above NEXTRAY_WEIGHT_CACHE_PIXELS output pixels
// per call (batch x height x width, default 4096) the filter is reordered each time into a reused buffer. That
// keeps ResNet-152's 230 MB of blocked copies out of memory at training batch sizes, where they bought nothing
// measurable, and keeps them for batch-1 inference, where the reorder would cost as much as the convolution.
const seenFilters = new WeakSet<Float32Array>();
const filterCaches = new WeakMap<Float32Array, object>();
function filterCache(w: Float32Array, conv: tf.backend_util.Conv2DInfo): object | undefined {
  if (!settings.weightCache || conv.batchSize * conv.outHeight * conv.outWidth > settings.weightCachePixels) return undefined;
  let c = filterCaches.get(w);
  if (c) return c;
  if (!seenFilters.has(w)) {
    seenFilters.add(w);
    return undefined;
  }
  c = {};
  filterCaches.set(w, c);
  return c;
}

/** Drops what is cached under an array (called when the pool recycles it for other data). */
function forgetFilter(w: Float32Array): void {
  seenFilters.delete(w);
  filterCaches.delete(w);
}

const channelsLast = (fmt: unknown) => fmt === undefined || fmt === 'NHWC' || fmt === 'channelsLast';

/** Builds the native kernels; each returns null when it cannot match the JS kernel, meaning "use JS". */
function nativeKernels(addon: NativeAddon): Record<string, (a: KernelArgs) => TensorInfo | null> {
  const conv2d = (a: KernelArgs, fused: boolean): TensorInfo | null => {
    const { x, filter, bias, preluActivationWeights } = a.inputs;
    const at = a.attrs as Record<string, unknown>;
    if (!channelsLast(at.dataFormat)) return null;
    const activation = (at.activation as string | undefined) ?? 'linear';
    if (fused && activation !== 'linear' && activation !== 'relu') return null;
    if (preluActivationWeights && activation === 'prelu') return null;
    const xv = f32(a.backend, x), wv = f32(a.backend, filter);
    if (!xv || !wv || x!.shape.length !== 4) return null;
    const conv = tf.backend_util.computeConv2DInfo(
      x!.shape as [number, number, number, number], filter!.shape as [number, number, number, number],
      at.strides as [number, number], at.dilations as [number, number], at.pad as 'same',
      at.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
    if (!oneDnnAgrees(conv)) return null;
    let bv: Float32Array | null = null;
    if (fused && bias) {
      bv = f32(a.backend, bias);
      if (!bv || bv.length !== conv.outChannels || bias.shape[bias.shape.length - 1] !== conv.outChannels) return null;
    }
    const res = allocOutput(a.backend, tf.util.sizeFromShape(conv.outShape));
    addon.conv2dForward(xv, wv, bv, res, convGeom(conv), fused && activation === 'relu', filterCache(wv, conv));
    return out(a.backend, conv.outShape, res);
  };

  const pool = (a: KernelArgs, isMax: boolean): TensorInfo | null => {
    const { x } = a.inputs;
    const at = a.attrs as Record<string, unknown>;
    const xv = f32(a.backend, x);
    if (!xv || x!.shape.length !== 4) return null;
    const conv = tf.backend_util.computePool2DInfo(
      x!.shape as [number, number, number, number], at.filterSize as [number, number], at.strides as [number, number],
      1, at.pad as 'same', at.dimRoundingMode as 'floor' | undefined);
    if (conv.dilationHeight !== 1 || conv.dilationWidth !== 1) return null;
    const res = allocOutput(a.backend, tf.util.sizeFromShape(conv.outShape));
    addon.pool2d(xv, res, poolGeom(conv), isMax);
    return out(a.backend, conv.outShape, res);
  };

  const matmul = (a: KernelArgs, fused: boolean): TensorInfo | null => {
    const { a: A, b: B, bias, preluActivationWeights } = a.inputs;
    const at = a.attrs as Record<string, unknown>;
    const activation = (at.activation as string | undefined) ?? 'linear';
    if (fused && activation !== 'linear' && activation !== 'relu') return null;
    if (preluActivationWeights && activation === 'prelu') return null;
    const av = f32(a.backend, A), bv = f32(a.backend, B);
    if (!av || !bv || A!.shape.length < 2 || B!.shape.length < 2) return null;
    const ta = Boolean(at.transposeA), tb = Boolean(at.transposeB);
    const ra = A!.shape.length, rb = B!.shape.length;
    const M = ta ? A!.shape[ra - 1] : A!.shape[ra - 2];
    const K = ta ? A!.shape[ra - 2] : A!.shape[ra - 1];
    const K2 = tb ? B!.shape[rb - 1] : B!.shape[rb - 2];
    const N = tb ? B!.shape[rb - 2] : B!.shape[rb - 1];
    if (K !== K2) return null; // the JS kernel raises the proper error
    const outerA = A!.shape.slice(0, -2), outerB = B!.shape.slice(0, -2);
    const batchA = tf.util.sizeFromShape(outerA), batchB = tf.util.sizeFromShape(outerB);
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
    const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
    let biasV: Float32Array | null = null;
    if (fused && bias) {
      biasV = f32(a.backend, bias);
      if (!biasV || !(biasV.length === 1 || (biasV.length === N && bias.shape[bias.shape.length - 1] === N))) return null;
    }
    const shape = [...outer, M, N];
    const res = allocOutput(a.backend, tf.util.sizeFromShape(shape));
    addon.matmul(av, bv, res, Int32Array.from([batchA, batchB, M, N, K, ta ? 1 : 0, tb ? 1 : 0]), biasV, fused && activation === 'relu');
    return out(a.backend, shape, res);
  };

  const binary = (op: number) => (a: KernelArgs): TensorInfo | null => {
    const { a: A, b: B } = a.inputs;
    const av = f32(a.backend, A), bv = f32(a.backend, B);
    if (!av || !bv) return null;
    const sa = A!.shape, sb = B!.shape;
    const shape = tf.backend_util.assertAndGetBroadcastShape(sa, sb);
    const size = tf.util.sizeFromShape(shape);
    const cols = shape.length ? shape[shape.length - 1] : 1;
    const rows = cols ? size / cols : 0;
    const perColumn = (s: number[]) => s.length >= 1 && s[s.length - 1] === cols && tf.util.sizeFromShape(s) === cols;
    let mode: number;
    if (tf.util.arraysEqual(sa, shape) && tf.util.arraysEqual(sb, shape)) mode = 0;
    else if (tf.util.arraysEqual(sa, shape) && bv.length === 1) mode = 3;
    else if (tf.util.arraysEqual(sb, shape) && av.length === 1) mode = 4;
    else if (tf.util.arraysEqual(sa, shape) && perColumn(sb)) mode = 1;
    else if (tf.util.arraysEqual(sb, shape) && perColumn(sa)) mode = 2;
    else {
      // [N,1,..,1,C] against [N,H,..,W,C] (the gradient of a global average pool): per-channel, batch by batch.
      const perBatchColumn = (s: number[]) =>
        s.length === shape.length && s.length >= 3 && s[0] === shape[0] && s[s.length - 1] === cols && s.slice(1, -1).every((d) => d === 1);
      const aSmall = tf.util.arraysEqual(sb, shape) && perBatchColumn(sa);
      const bSmall = tf.util.arraysEqual(sa, shape) && perBatchColumn(sb);
      if (!aSmall && !bSmall) return null;
      const res = allocOutput(a.backend, size);
      const outer = shape[0], per = size / outer, rowsPer = per / cols;
      for (let n = 0; n < outer; n++) {
        const small = (aSmall ? av : bv).subarray(n * cols, (n + 1) * cols);
        const big = (aSmall ? bv : av).subarray(n * per, (n + 1) * per);
        const o = res.subarray(n * per, (n + 1) * per);
        if (aSmall) addon.binary(op, small, big, o, rowsPer, cols, 2);
        else addon.binary(op, big, small, o, rowsPer, cols, 1);
      }
      return out(a.backend, shape, res);
    }
    const res = allocOutput(a.backend, size);
    if (size > 0) addon.binary(op, av, bv, res, mode >= 3 ? size : rows, mode >= 3 ? 1 : cols, mode);
    return out(a.backend, shape, res);
  };

  const unary = (op: number) => (a: KernelArgs): TensorInfo | null => {
    const xv = f32(a.backend, a.inputs.x);
    if (!xv) return null;
    const res = allocOutput(a.backend, xv.length);
    addon.unary(op, xv, res);
    return out(a.backend, [...a.inputs.x!.shape], res);
  };

  const reduce = (mean: boolean) => (a: KernelArgs): TensorInfo | null => {
    const { x } = a.inputs;
    const at = a.attrs as Record<string, unknown>;
    const xv = f32(a.backend, x);
    if (!xv) return null;
    const shape = x!.shape;
    const axes = tf.util.parseAxisParam(at.axis as number | number[], shape).sort((p, q) => p - q);
    if (axes.length === 0 || new Set(axes).size !== axes.length) return null;
    // One contiguous block of axes: x is [outer, reduced, inner] and the result [outer, inner].
    if (axes[axes.length - 1] - axes[0] !== axes.length - 1) return null;
    const outer = tf.util.sizeFromShape(shape.slice(0, axes[0]));
    const reduced = tf.util.sizeFromShape(shape.slice(axes[0], axes[axes.length - 1] + 1));
    const inner = tf.util.sizeFromShape(shape.slice(axes[axes.length - 1] + 1));
    if (reduced === 0) return null;
    const outShape = at.keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
    const res = allocOutput(a.backend, outer * inner);
    if (inner === 1) addon.reduceTrailing(xv, res, outer, reduced, mean);
    else if (outer === 1) addon.reduceLeading(xv, res, reduced, inner, mean);
    else addon.reduceMiddle(xv, res, outer, reduced, inner, mean);
    return out(a.backend, outShape, res);
  };

  return {
    Conv2D: (a) => conv2d(a, false),
    FusedConv2D: (a) => conv2d(a, true),
    Conv2DBackpropInput: (a) => {
      const { dy, filter } = a.inputs;
      const at = a.attrs as Record<string, unknown>;
      if (!channelsLast(at.dataFormat)) return null;
      const dyv = f32(a.backend, dy), wv = f32(a.backend, filter);
      if (!dyv || !wv) return null;
      const inputShape = at.inputShape as [number, number, number, number];
      const conv = tf.backend_util.computeConv2DInfo(inputShape, filter!.shape as [number, number, number, number],
        at.strides as [number, number], 1, at.pad as 'same', at.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
      if (!oneDnnAgrees(conv) || !tf.util.arraysEqual(dy!.shape, conv.outShape)) return null;
      const res = allocOutput(a.backend, tf.util.sizeFromShape(inputShape));
      addon.conv2dBackwardData(dyv, wv, res, convGeom(conv));
      return out(a.backend, [...inputShape], res);
    },
    Conv2DBackpropFilter: (a) => {
      const { x, dy } = a.inputs;
      const at = a.attrs as Record<string, unknown>;
      if (!channelsLast(at.dataFormat)) return null;
      const xv = f32(a.backend, x), dyv = f32(a.backend, dy);
      if (!xv || !dyv) return null;
      const filterShape = at.filterShape as [number, number, number, number];
      const conv = tf.backend_util.computeConv2DInfo(x!.shape as [number, number, number, number], filterShape,
        at.strides as [number, number], 1, at.pad as 'same', at.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
      if (!oneDnnAgrees(conv) || !tf.util.arraysEqual(dy!.shape, conv.outShape)) return null;
      const res = allocOutput(a.backend, tf.util.sizeFromShape(filterShape));
      addon.conv2dBackwardFilter(xv, dyv, res, convGeom(conv));
      return out(a.backend, [...filterShape], res);
    },
    MaxPool: (a) => pool(a, true),
    AvgPool: (a) => pool(a, false),
    MaxPoolGrad: (a) => {
      const { dy, input } = a.inputs;
      const at = a.attrs as Record<string, unknown>;
      const dyv = f32(a.backend, dy), xv = f32(a.backend, input);
      if (!dyv || !xv || input!.shape.length !== 4) return null;
      const conv = tf.backend_util.computePool2DInfo(input!.shape as [number, number, number, number],
        at.filterSize as [number, number], at.strides as [number, number], 1, at.pad as 'same', at.dimRoundingMode as 'floor' | undefined);
      if (!tf.util.arraysEqual(dy!.shape, conv.outShape)) return null;
      const res = allocOutput(a.backend, xv.length, true);
      addon.maxPoolGrad(dyv, xv, res, poolGeom(conv));
      return out(a.backend, [...input!.shape], res);
    },
    AvgPoolGrad: (a) => {
      const { dy, input } = a.inputs;
      const at = a.attrs as Record<string, unknown>;
      const dyv = f32(a.backend, dy);
      if (!dyv || input!.shape.length !== 4) return null;
      const conv = tf.backend_util.computePool2DInfo(input!.shape as [number, number, number, number],
        at.filterSize as [number, number], at.strides as [number, number], 1, at.pad as 'same');
      if (!tf.util.arraysEqual(dy!.shape, conv.outShape)) return null;
      const res = allocOutput(a.backend, tf.util.sizeFromShape(input!.shape), true);
      addon.avgPoolGrad(dyv, res, poolGeom(conv));
      return out(a.backend, [...input!.shape], res);
    },
    BatchMatMul: (a) => matmul(a, false),
    _FusedMatMul: (a) => matmul(a, true),
    Add: binary(0),
    Sub: binary(1),
    Multiply: binary(2),
    RealDiv: binary(3),
    SquaredDifference: binary(4),
    Maximum: binary(5),
    Minimum: binary(6),
    Relu: unary(0),
    Sqrt: unary(2),
    Square: unary(3),
    Neg: unary(4),
    Rsqrt: unary(5),
    Step: (a) => {
      const xv = f32(a.backend, a.inputs.x);
      if (!xv || ((a.attrs as Record<string, unknown>).alpha ?? 0) !== 0) return null;
      const res = allocOutput(a.backend, xv.length);
      addon.unary(1, xv, res);
      return out(a.backend, [...a.inputs.x!.shape], res);
    },
    Transpose: (a) => {
      // Typed-array transpose (transpose.ts): weight import moves every filter OIHW -> HWIO through this.
      const { x } = a.inputs;
      const perm = (a.attrs as { perm: number[] }).perm;
      if (!x || (x.dtype !== 'float32' && x.dtype !== 'int32')) return null;
      const v = a.backend.data.get(x.dataId).values;
      if (!(v instanceof Float32Array || v instanceof Int32Array) || v.length !== tf.util.sizeFromShape(x.shape)) return null;
      const shape = perm.map((p) => x.shape[p]!);
      const res = v instanceof Float32Array ? transposeInto(v, x.shape, perm, allocOutput(a.backend, v.length)) : transposeInto(v, x.shape, perm, new Int32Array(v.length));
      return a.backend.makeTensorInfo(shape, x.dtype, res);
    },
    Sum: reduce(false),
    Mean: reduce(true),
    FusedBatchNorm: (a) => {
      const { x, mean, variance, scale, offset } = a.inputs;
      const xv = f32(a.backend, x), mv = f32(a.backend, mean), vv = f32(a.backend, variance);
      if (!xv || !mv || !vv || x!.shape.length === 0) return null;
      const cols = x!.shape[x!.shape.length - 1];
      const sv = scale ? f32(a.backend, scale) : null, ov = offset ? f32(a.backend, offset) : null;
      if ((scale && !sv) || (offset && !ov)) return null;
      const perChannel = (v: Float32Array | null) => v === null || v.length === cols;
      if (mv.length !== cols || vv.length !== cols || !perChannel(sv) || !perChannel(ov)) return null;
      const eps = ((a.attrs as Record<string, unknown>).varianceEpsilon as number | undefined) ?? 0.001;
      const res = allocOutput(a.backend, xv.length);
      addon.batchNorm(xv, mv, vv, sv, ov, res, cols, eps);
      return out(a.backend, [...x!.shape], res);
    },
    Tile: (a) => {
      // The batch-norm gradient tiles a [1,1,1,C] vector over the whole activation: a row broadcast.
      const { x } = a.inputs;
      const reps = (a.attrs as Record<string, unknown>).reps as number[];
      const xv = f32(a.backend, x);
      if (!xv || reps.length !== x!.shape.length || reps[reps.length - 1] !== 1) return null;
      if (x!.shape.slice(0, -1).some((d) => d !== 1)) return null;
      const shape = x!.shape.map((d, i) => d * reps[i]);
      const res = allocOutput(a.backend, tf.util.sizeFromShape(shape));
      if (res.length === 0) return out(a.backend, shape, res);
      res.set(xv, 0);
      for (let filled = xv.length; filled < res.length; filled *= 2) res.copyWithin(filled, 0, Math.min(filled, res.length - filled));
      return out(a.backend, shape, res);
    },
  };
}

/**
 * CONV_BN (src/engine/fused-ops.ts): the addon folds the batch norm's scale into the filter while reordering it and
 * adds the residual inside the convolution (a oneDNN post-op), so neither a folded filter nor the pre-residual
 * output is ever materialised. (convBn only asks for 'valid' or symmetric explicit padding, which oneDNN expresses.)
 */
function convBnKernel(addon: NativeAddon): KernelImpl {
  return (a) => {
    const { x, filter, scale, shift, residual } = a.inputs;
    const at = a.attrs as unknown as ConvBnAttrs;
    const need = (t: TensorInfo | undefined, name: string): Float32Array => {
      const v = f32(a.backend, t);
      if (!v) throw new Error(`${CONV_BN}: input '${name}' must be a float32 tensor`);
      return v;
    };
    const xv = need(x, 'x'), wv = need(filter, 'filter'), sv = need(scale, 'scale'), hv = need(shift, 'shift');
    const rv = residual ? need(residual, 'residual') : null;
    if (x!.shape.length !== 4 || filter!.shape.length !== 4) throw new Error(`${CONV_BN}: x and filter must be 4-D (NHWC, HWIO)`);
    const conv = tf.backend_util.computeConv2DInfo(
      x!.shape as [number, number, number, number], filter!.shape as [number, number, number, number],
      at.strides, [1, 1], at.pad, undefined, false, 'channelsLast');
    if (sv.length !== conv.outChannels || hv.length !== conv.outChannels) {
      throw new Error(`${CONV_BN}: scale and shift need ${conv.outChannels} values (one per output channel), got ${sv.length} and ${hv.length}`);
    }
    if (residual && !tf.util.arraysEqual(residual.shape, conv.outShape)) {
      throw new Error(`${CONV_BN}: residual shape [${residual.shape}] differs from the output shape [${conv.outShape}]`);
    }
    if (!oneDnnAgrees(conv)) {
      throw new Error(`${CONV_BN}: padding ${JSON.stringify(at.pad)} with strides [${at.strides}] on input [${x!.shape}] is not a geometry oneDNN expresses`);
    }
    const res = allocOutput(a.backend, tf.util.sizeFromShape(conv.outShape));
    addon.conv2dForwardBn(xv, wv, sv, hv, rv, res, convGeom(conv), at.relu, filterCache(wv, conv) ?? null);
    return out(a.backend, conv.outShape, res);
  };
}

let registered = false;

/** Registers the backend and all kernels (cpu's, then the native overrides); idempotent. */
export function registerNativeBackend(addon: NativeAddon, opts: Partial<NativeBackendSettings> = {}, priority = 0): void {
  if (registered) return;
  registered = true;
  settings = { ...settings, ...opts };
  tf.registerBackend(NATIVE_BACKEND, () => new NativeBackend(), priority);
  const natives = nativeKernels(addon);
  const fused = fusedKernelsNative(addon);
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (fused[k.kernelName]) continue; // registered below, with the addon's versions
    const js = k.kernelFunc as unknown as KernelImpl;
    const native = natives[k.kernelName];
    const viaJs = (args: KernelArgs) => {
      disownInputs(args, k.kernelName);
      return js(args);
    };
    const kernelFunc: KernelImpl = native
      ? (args) => timeKernel(k.kernelName, () => native(args), () => viaJs(args))
      : (args) => timeKernel(k.kernelName, null, () => viaJs(args));
    tf.registerKernel({ ...k, backendName: NATIVE_BACKEND, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
  registerFusedKernels(NATIVE_BACKEND, fused);
  if (typeof addon.conv2dForwardBn === 'function') {
    const k = convBnKernel(addon);
    tf.registerKernel({ kernelName: CONV_BN, backendName: NATIVE_BACKEND, kernelFunc: ((args: KernelArgs) => timeKernel(CONV_BN, () => k(args), () => k(args)!)) as unknown as tf.KernelFunc });
  }
}

/** Names of the kernels that have a native implementation (for engineInfo and tests). */
export function nativeKernelNames(addon: NativeAddon): string[] {
  const convBn = typeof addon.conv2dForwardBn === 'function' ? [CONV_BN] : [];
  return [...Object.keys(nativeKernels(addon)), ...Object.keys(fusedKernelsNative(addon)), ...convBn].sort();
}
