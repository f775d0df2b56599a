/**
 * Kernels behind src/engine/fused-ops.ts: plain-JS versions for TF.js's 'cpu' backend (one loop instead of
 * tens of generic kernels, so even pure JS gains) and addon versions for 'nextray-native'. Both follow the same
 * algorithm (shifted double sums for the statistics, float32 elementwise arithmetic), so they agree to float
 * rounding; Adam's update is bit-identical.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { ADAM_UPDATE, ADD_RELU, BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, RELU_GRAD, type AdamUpdateAttrs, type BatchNormTrainAttrs } from './fused-ops.js';
import type { NativeAddon } from './native-addon.js';
import { timeKernel } from './profile.js';
import { allocOutput } from './array-pool.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: MathBackendCPU; attrs?: tf.NamedAttrMap };
type Kernel = (a: KernelArgs) => tf.TensorInfo[];

function values(backend: MathBackendCPU, t: tf.TensorInfo | undefined, name: string, kernel: string): Float32Array {
  if (!t) throw new Error(`${kernel}: input '${name}' is missing`);
  const v = backend.data.get(t.dataId).values;
  if (t.dtype !== 'float32' || !(v instanceof Float32Array)) throw new Error(`${kernel}: input '${name}' must be float32, got ${t.dtype}`);
  return v;
}

function channels(x: tf.TensorInfo, kernel: string): { rows: number; cols: number } {
  const cols = x.shape[x.shape.length - 1] ?? 0;
  const size = tf.util.sizeFromShape(x.shape);
  if (x.shape.length < 2 || cols === 0 || size === 0) throw new Error(`${kernel}: x must be a non-empty [..., channels] tensor, got shape [${x.shape}]`);
  return { rows: size / cols, cols };
}

const make = (b: MathBackendCPU, shape: number[], v: Float32Array) => b.makeTensorInfo(shape, 'float32', v);

function bnTrainJs({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const K = BATCH_NORM_TRAIN;
  const { varianceEpsilon: eps, relu } = attrs as unknown as BatchNormTrainAttrs;
  const x = values(backend, inputs.x, 'x', K), scale = values(backend, inputs.scale, 'scale', K), offset = values(backend, inputs.offset, 'offset', K);
  const { rows, cols } = channels(inputs.x!, K);
  const s1 = new Float64Array(cols), s2 = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) {
      const d = x[o + c]! - x[c]!;
      s1[c] += d;
      s2[c] += d * d;
    }
  }
  const mean = new Float32Array(cols), variance = new Float32Array(cols), k = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    const m1 = s1[c]! / rows;
    mean[c] = x[c]! + m1;
    variance[c] = Math.max(0, s2[c]! / rows - m1 * m1);
    k[c] = scale[c]! / Math.sqrt(variance[c]! + eps);
  }
  const y = allocOutput(backend, x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) {
      const v = Math.fround(offset[c]! + Math.fround(Math.fround(x[o + c]! - mean[c]!) * k[c]!));
      y[o + c] = relu && v < 0 ? 0 : v;
    }
  }
  return [make(backend, [...inputs.x!.shape], y), make(backend, [cols], mean), make(backend, [cols], variance)];
}

function bnTrainGradJs({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const K = BATCH_NORM_TRAIN_GRAD;
  const { varianceEpsilon: eps, relu } = attrs as unknown as BatchNormTrainAttrs;
  const dy = values(backend, inputs.dy, 'dy', K), x = values(backend, inputs.x, 'x', K);
  const mean = values(backend, inputs.mean, 'mean', K), variance = values(backend, inputs.variance, 'variance', K);
  const scale = values(backend, inputs.scale, 'scale', K), offset = values(backend, inputs.offset, 'offset', K);
  const { rows, cols } = channels(inputs.x!, K);
  const inv = new Float32Array(cols), k = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    inv[c] = 1 / Math.sqrt(variance[c]! + eps);
    k[c] = scale[c]! / Math.sqrt(variance[c]! + eps);
  }
  const gate = (i: number, c: number) =>
    !relu || Math.fround(offset[c]! + Math.fround(Math.fround(x[i]! - mean[c]!) * k[c]!)) > 0 ? dy[i]! : 0;
  const sumG = new Float64Array(cols), sumGX = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) {
      const g = gate(o + c, c);
      sumG[c] += g;
      sumGX[c] += g * (x[o + c]! - mean[c]!);
    }
  }
  const dscale = new Float32Array(cols), doffset = new Float32Array(cols);
  const kq = new Float32Array(cols), c1 = new Float32Array(cols), c2 = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    doffset[c] = sumG[c]!;
    dscale[c] = sumGX[c]! * inv[c]!;
    kq[c] = scale[c]! * inv[c]!;
    c1[c] = sumG[c]! / rows;
    c2[c] = (inv[c]! * inv[c]! * sumGX[c]!) / rows;
  }
  const f = Math.fround;
  const dx = allocOutput(backend, x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) {
      const i = o + c;
      dx[i] = f(kq[c]! * f(f(gate(i, c) - c1[c]!) - f(f(x[i]! - mean[c]!) * c2[c]!)));
    }
  }
  return [make(backend, [...inputs.x!.shape], dx), make(backend, [cols], dscale), make(backend, [cols], doffset)];
}

function adamJs({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const K = ADAM_UPDATE;
  const p = values(backend, inputs.param, 'param', K), m = values(backend, inputs.m, 'm', K);
  const v = values(backend, inputs.v, 'v', K), g = values(backend, inputs.grad, 'grad', K);
  if (m.length !== p.length || v.length !== p.length || g.length !== p.length) throw new Error(`${K}: parameter, moments and gradient sizes differ`);
  const a = attrs as unknown as AdamUpdateAttrs;
  const f = Math.fround;
  const b1 = f(a.beta1), omb1 = f(1 - a.beta1), b2 = f(a.beta2), omb2 = f(1 - a.beta2);
  const step = f(a.stepSize), bc2 = f(a.bc2Sqrt), eps = f(a.epsilon);
  const np = allocOutput(backend, p.length), nm = allocOutput(backend, p.length), nv = allocOutput(backend, p.length);
  for (let i = 0; i < p.length; i++) {
    const mi = f(f(m[i]! * b1) + f(g[i]! * omb1));
    const vi = f(f(v[i]! * b2) + f(f(g[i]! * g[i]!) * omb2));
    const denom = f(f(f(Math.sqrt(vi)) / bc2) + eps);
    np[i] = p[i]! - f(f(mi / denom) * step);
    nm[i] = mi;
    nv[i] = vi;
  }
  const shape = [...inputs.param!.shape];
  return [make(backend, shape, np), make(backend, shape, nm), make(backend, shape, nv)];
}

function pair(backend: MathBackendCPU, inputs: tf.NamedTensorInfoMap, n1: string, n2: string, kernel: string): [Float32Array, Float32Array] {
  const a = values(backend, inputs[n1], n1, kernel), b = values(backend, inputs[n2], n2, kernel);
  if (a.length !== b.length) throw new Error(`${kernel}: '${n1}' and '${n2}' differ in size (${a.length} vs ${b.length})`);
  return [a, b];
}

function addReluJs({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const [a, b] = pair(backend, inputs, 'a', 'b', ADD_RELU);
  const y = allocOutput(backend, a.length);
  for (let i = 0; i < a.length; i++) {
    const v = Math.fround(a[i]! + b[i]!);
    y[i] = v > 0 ? v : 0;
  }
  return [make(backend, [...inputs.a!.shape], y)];
}

function reluGradJs({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const [dy, y] = pair(backend, inputs, 'dy', 'y', RELU_GRAD);
  const dx = allocOutput(backend, dy.length);
  for (let i = 0; i < dy.length; i++) dx[i] = y[i]! > 0 ? dy[i]! : 0;
  return [make(backend, [...inputs.dy!.shape], dx)];
}

/** The JS kernels, by name. */
export const fusedKernelsJs: Record<string, Kernel> = {
  [BATCH_NORM_TRAIN]: bnTrainJs,
  [BATCH_NORM_TRAIN_GRAD]: bnTrainGradJs,
  [ADAM_UPDATE]: adamJs,
  [ADD_RELU]: addReluJs,
  [RELU_GRAD]: reluGradJs,
};

/** The addon's kernels, by name; each runs the JS kernel when the addon predates it. */
export function fusedKernelsNative(addon: NativeAddon): Record<string, Kernel> {
  const has = (fn: keyof NativeAddon) => typeof addon[fn] === 'function';
  const out: Record<string, Kernel> = {};
  out[BATCH_NORM_TRAIN] = !has('batchNormTrain') ? bnTrainJs : ({ inputs, backend, attrs }) => {
    const K = BATCH_NORM_TRAIN;
    const { varianceEpsilon: eps, relu } = attrs as unknown as BatchNormTrainAttrs;
    const x = values(backend, inputs.x, 'x', K);
    const { cols } = channels(inputs.x!, K);
    const y = allocOutput(backend, x.length), mean = new Float32Array(cols), variance = new Float32Array(cols);
    addon.batchNormTrain(x, values(backend, inputs.scale, 'scale', K), values(backend, inputs.offset, 'offset', K), y, mean, variance, cols, eps, relu);
    return [make(backend, [...inputs.x!.shape], y), make(backend, [cols], mean), make(backend, [cols], variance)];
  };
  out[BATCH_NORM_TRAIN_GRAD] = !has('batchNormTrainGrad') ? bnTrainGradJs : ({ inputs, backend, attrs }) => {
    const K = BATCH_NORM_TRAIN_GRAD;
    const { varianceEpsilon: eps, relu } = attrs as unknown as BatchNormTrainAttrs;
    const x = values(backend, inputs.x, 'x', K);
    const { cols } = channels(inputs.x!, K);
    const dx = allocOutput(backend, x.length), dscale = new Float32Array(cols), doffset = new Float32Array(cols);
    addon.batchNormTrainGrad(
      values(backend, inputs.dy, 'dy', K), x, values(backend, inputs.mean, 'mean', K), values(backend, inputs.variance, 'variance', K),
      values(backend, inputs.scale, 'scale', K), values(backend, inputs.offset, 'offset', K), dx, dscale, doffset, cols, eps, relu);
    return [make(backend, [...inputs.x!.shape], dx), make(backend, [cols], dscale), make(backend, [cols], doffset)];
  };
  out[ADAM_UPDATE] = !has('adamUpdate') ? adamJs : ({ inputs, backend, attrs }) => {
    const K = ADAM_UPDATE;
    const a = attrs as unknown as AdamUpdateAttrs;
    const p = values(backend, inputs.param, 'param', K);
    const np = allocOutput(backend, p.length), nm = allocOutput(backend, p.length), nv = allocOutput(backend, p.length);
    addon.adamUpdate(p, values(backend, inputs.m, 'm', K), values(backend, inputs.v, 'v', K), values(backend, inputs.grad, 'grad', K),
      np, nm, nv, a.beta1, a.beta2, a.stepSize, a.bc2Sqrt, a.epsilon);
    const shape = [...inputs.param!.shape];
    return [make(backend, shape, np), make(backend, shape, nm), make(backend, shape, nv)];
  };
  out[ADD_RELU] = !has('addRelu') ? addReluJs : ({ inputs, backend }) => {
    const [a, b] = pair(backend, inputs, 'a', 'b', ADD_RELU);
    const y = allocOutput(backend, a.length);
    addon.addRelu(a, b, y);
    return [make(backend, [...inputs.a!.shape], y)];
  };
  out[RELU_GRAD] = !has('reluGrad') ? reluGradJs : ({ inputs, backend }) => {
    const [dy, y] = pair(backend, inputs, 'dy', 'y', RELU_GRAD);
    const dx = allocOutput(backend, dy.length);
    addon.reluGrad(dy, y, dx);
    return [make(backend, [...inputs.dy!.shape], dx)];
  };
  return out;
}

const registeredOn = new Set<string>();

/** Registers the kernels for a backend (idempotent); timed by the kernel profiler like the others. */
export function registerFusedKernels(backendName: string, kernels: Record<string, Kernel>): void {
  if (registeredOn.has(backendName)) return;
  registeredOn.add(backendName);
  const path = backendName === 'cpu' ? 'js' : 'native';
  for (const [name, k] of Object.entries(kernels)) {
    const kernelFunc = path === 'js'
      ? (a: KernelArgs) => timeKernel(name, null, () => k(a))
      : (a: KernelArgs) => timeKernel(name, () => k(a), () => k(a));
    tf.registerKernel({ kernelName: name, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}
