/**
 * Loads the compiled oneDNN addon (native/build/Release/nextray_native.node) and describes its functions.
 * Loading never throws: callers get either the addon or one sentence saying why it is unavailable and what
 * to run, so the engine can fall back to pure JS with a single clear line.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package.js';
import { envEngineOptions } from './options.js';

/** The C++ functions (native/src/*.cc). Outputs are written into caller-allocated Float32Arrays. */
export interface NativeAddon {
  /** bf16: oneDNN has bf16 convolutions on this CPU (ISA cap included); precision: the one in effect. */
  info(): { onednn: string; isa: string; threads: number; elementwiseThreads: number; cachedPrimitives: number; bf16?: boolean; precision?: 'fp32' | 'bf16' };
  /** The convolutions' precision; returns the one in effect ('fp32' where the CPU has no bf16). Older builds lack it. */
  setPrecision?(p: 'fp32' | 'bf16'): 'fp32' | 'bf16';
  /** OpenMP threads for oneDNN (convolutions, sgemm); returns the count in effect. */
  setThreads(n: number): number;
  /** Threads for the memory-bound kernels (default 1); returns the count in effect. */
  setElementwiseThreads(n: number): number;
  /** Winograd for 3x3 stride-1 convolutions where oneDNN has a kernel (default on); returns the setting in effect. */
  setWinograd(on: boolean): boolean;
  /** Residuals join through oneDNN's sum post-op instead of binary add (a diagnostic); returns the setting. */
  setShortcutSum(on: boolean): boolean;
  /** geom: [n,h,w,ci, oh,ow,co, kh,kw, sh,sw, padTop,padBottom,padLeft,padRight, dilH,dilW] */
  /** cache: an object owned per filter array in which the addon keeps the filter in oneDNN's layout. */
  conv2dForward(x: Float32Array, filter: Float32Array, bias: Float32Array | null, out: Float32Array, geom: Int32Array, relu: boolean, cache?: object): void;
  /** out = [relu](conv(x, filter * scale) + shift [+ residual]): batch norm folded into the filter inside the addon. */
  conv2dForwardBn(x: Float32Array, filter: Float32Array, scale: Float32Array, shift: Float32Array, residual: Float32Array | null, out: Float32Array, geom: Int32Array, relu: boolean, cache: object | null): void;
  conv2dBackwardData(dy: Float32Array, filter: Float32Array, dx: Float32Array, geom: Int32Array): void;
  conv2dBackwardFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geom: Int32Array): void;
  /** kind 0 forward, 1 backward data, 2 backward weights, 3 forward + bias + shortcut + ReLU: oneDNN's implementation name for that shape (+ " bf16" where that primitive reads bf16). */
  convImpl(kind: 0 | 1 | 2 | 3, geom: Int32Array): string;
  /** geom: [n,h,w,c, oh,ow, kh,kw, sh,sw, padTop,padLeft] */
  pool2d(x: Float32Array, out: Float32Array, geom: Int32Array, isMax: boolean): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, geom: Int32Array): void;
  avgPoolGrad(dy: Float32Array, dx: Float32Array, geom: Int32Array): void;
  /** dims: [batchA, batchB, M, N, K, transA, transB] */
  matmul(a: Float32Array, b: Float32Array, out: Float32Array, dims: Int32Array, bias: Float32Array | null, relu: boolean): void;
  /** op: 0 add, 1 sub, 2 mul, 3 div, 4 squaredDifference, 5 maximum, 6 minimum; mode: 0 full, 1 b per column, 2 a per column, 3 b scalar, 4 a scalar */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number, mode: number): void;
  /** op: 0 relu, 1 step, 2 sqrt, 3 square, 4 neg, 5 rsqrt */
  unary(op: number, x: Float32Array, out: Float32Array): void;
  reduceLeading(x: Float32Array, out: Float32Array, rows: number, cols: number, mean: boolean): void;
  reduceMiddle(x: Float32Array, out: Float32Array, outer: number, rows: number, cols: number, mean: boolean): void;
  reduceTrailing(x: Float32Array, out: Float32Array, rows: number, cols: number, mean: boolean): void;
  /** Training-mode batch norm over [rows, cols]: writes y and the batch mean / biased variance (src/engine/fused-ops.ts). */
  batchNormTrain(x: Float32Array, scale: Float32Array, offset: Float32Array, y: Float32Array, mean: Float32Array, variance: Float32Array, cols: number, eps: number, relu: boolean): void;
  batchNormTrainGrad(dy: Float32Array, x: Float32Array, mean: Float32Array, variance: Float32Array, scale: Float32Array, offset: Float32Array, dx: Float32Array, dscale: Float32Array, doffset: Float32Array, cols: number, eps: number, relu: boolean): void;
  /** relu(a + b) */
  addRelu(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** dy where y > 0, else 0 */
  reluGrad(dy: Float32Array, y: Float32Array, out: Float32Array): void;
  adamUpdate(param: Float32Array, m: Float32Array, v: Float32Array, grad: Float32Array, newParam: Float32Array, newM: Float32Array, newV: Float32Array, beta1: number, beta2: number, stepSize: number, bc2Sqrt: number, epsilon: number): void;
  batchNorm(x: Float32Array, mean: Float32Array, variance: Float32Array, scale: Float32Array | null, offset: Float32Array | null, out: Float32Array, cols: number, eps: number): void;
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

/**
 * Where `npm run build:native` (node-gyp in native/) puts the addon, unless the engine option addonPath
 * (NEXTRAY_NATIVE_ADDON) says otherwise: another build, or in tests nothing, to exercise the fallback.
 */
export function addonPath(override: string | undefined = envEngineOptions().addonPath): string {
  if (override) return override;
  return join(packageRoot(), 'native', 'build', 'Release', 'nextray_native.node');
}

const loads = new Map<string, AddonLoad>();

/** The addon at `override` (default: addonPath()), loaded once per path. */
export function loadNativeAddon(override?: string): AddonLoad {
  let path: string;
  try {
    path = addonPath(override);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  const seen = loads.get(path);
  if (seen) return seen;
  const result = load(path);
  loads.set(path, result);
  return result;
}

function load(path: string): AddonLoad {
  if (!existsSync(path)) {
    const hasDnnl = existsSync('/usr/include/dnnl.hpp') || existsSync('/usr/include/oneapi/dnnl/dnnl.hpp');
    return {
      ok: false,
      reason: hasDnnl
        ? `native addon not built (${path} missing); run: npm run build:native`
        : 'native addon not built: oneDNN headers missing; run: sudo apt-get install -y libdnnl-dev && npm run build:native',
    };
  }
  try {
    // OpenMP threads that finish a parallel region sleep instead of spinning (unless the user set OMP_WAIT_POLICY):
    // where other processes share the cores (a busy laptop, a cloud VM, CI), a spinning thread that waits for a
    // descheduled sibling makes every convolution many times slower (DenseNet-121 inference at 64 px took 5.4 s
    // with spinning and 0.08 s passive at load average 15 on 2 cores). libgomp reads this once, when the addon
    // loads it.
    process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
    const require = createRequire(import.meta.url);
    const addon = require(path) as NativeAddon;
    addon.info();
    return { ok: true, addon, path };
  } catch (e) {
    return {
      ok: false,
      reason: `native addon at ${path} failed to load (${(e as Error).message.split('\n')[0]}); rebuild it: npm run build:native`,
    };
  }
}
