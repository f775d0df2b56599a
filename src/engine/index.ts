/**
 * The engine seam: the one module that picks and initialises the TensorFlow.js backend (and, where present,
 * native kernels). Models and training import '@tensorflow/tfjs-core' only and never care which backend runs.
 *
 * Engines: 'native' = the pure-JS cpu backend with oneDNN kernels from native/ (see native-backend.ts);
 * 'cpu' = pure JS; 'tfjs-node' = @tensorflow/tfjs-node when the user has it installed; 'auto' (default) =
 * tfjs-node if installed, else native if the addon loads, else cpu with one line on stderr saying why.
 * Settings (engine, threads, pool, caches) come from one typed object, EngineOptions (options.ts): initEngine's
 * argument over the NEXTRAY_* variables, which are read once, when the engine starts. Every engine also gets
 * TF.js's gradient functions registered (see gradients.ts), which tfjs-core alone does not do.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createRequire } from 'node:module';
import { registerGradients } from './gradients.js';
import { loadNativeAddon, type NativeAddon } from './native-addon.js';
import { NATIVE_BACKEND, nativeKernelNames, registerNativeBackend } from './native-backend.js';
import { fusedKernelsJs, registerFusedKernels } from './fused-kernels.js';
import { envEngineOptions, parseEngineName, type EngineName, type EngineOptions, type Precision } from './options.js';
import { enableKernelProfile } from './profile.js';
import { InstallError } from '../util/errors.js';

// The fused training ops' JS kernels serve the pure-JS backend whoever selects it (tests, 'cpu', fallback).
registerFusedKernels('cpu', fusedKernelsJs);

export type { EngineName, EngineOptions, Precision } from './options.js';
export { engineOptionsFromEnv, DEFAULT_ENGINE_OPTIONS, PRECISIONS } from './options.js';

export interface EngineInfo {
  /** The TF.js backend name in use: 'cpu', 'nextray-native' or 'tensorflow'. */
  backend: string;
  /** The engine that was chosen. */
  engine: Exclude<EngineName, 'auto'>;
  /** One line for logs, e.g. "native (oneDNN 2.6.3, avx512_core, 2 threads) over the TF.js cpu backend". */
  description: string;
  /** Why the native engine is not in use, when it is not. */
  fallbackReason?: string;
  /** Native addon details when it is in use. */
  native?: { onednn: string; isa: string; threads: number; addonPath: string; kernels: string[]; bf16: boolean };
}

let current: EngineInfo | null = null;
let warned = false;
let nativeAddon: NativeAddon | null = null;
let precisionInEffect: Precision = 'fp32';
let bf16Noted = false;

/** Why the engine in use cannot compute in bf16, or null when it can (native engine on a CPU with bf16 kernels). */
export function bf16Unavailable(): string | null {
  if (!current || current.engine !== 'native' || !nativeAddon) return `bf16 needs the native engine (in use: ${current?.engine ?? 'none'})`;
  if (typeof nativeAddon.setPrecision !== 'function') return 'the native addon predates bf16 (rebuild it: npm run build:native)';
  if (!nativeAddon.info().bf16) return 'this CPU lacks bf16 (avx512_core_bf16/AMX)';
  return null;
}

/**
 * Sets the native convolutions' precision (see options.ts Precision) and returns the one in effect. bf16 where it
 * cannot run gives float32 and, once per process, one stderr line saying why ("...; <doing> in float32").
 */
export function setPrecision(p: Precision, doing = 'running'): Precision {
  if (p === 'bf16') {
    const why = bf16Unavailable();
    if (why) {
      if (!bf16Noted) process.stderr.write(`nextray: ${why}; ${doing} in float32\n`);
      bf16Noted = true;
      p = 'fp32';
    }
  }
  if (nativeAddon?.setPrecision) p = nativeAddon.setPrecision(p);
  precisionInEffect = p;
  return p;
}

/** The native convolutions' precision now ('fp32' on the other engines). */
export function precision(): Precision {
  return precisionInEffect;
}

/** fn() with the convolutions in precision p (what setPrecision gives), then the previous precision again. */
export async function withPrecision<T>(p: Precision, fn: (inEffect: Precision) => Promise<T>, doing?: string): Promise<T> {
  const before = precisionInEffect;
  const inEffect = p === before ? p : setPrecision(p, doing);
  try {
    return await fn(inEffect);
  } finally {
    if (precisionInEffect !== before) setPrecision(before);
  }
}

async function tryTfjsNode(): Promise<boolean> {
  try {
    const require = createRequire(import.meta.url);
    require.resolve('@tensorflow/tfjs-node');
  } catch {
    return false;
  }
  try {
    await import('@tensorflow/tfjs-node' as string);
    return tf.findBackend('tensorflow') !== null && (await tf.setBackend('tensorflow'));
  } catch {
    return false;
  }
}

async function useCpu(reason?: string): Promise<EngineInfo> {
  await tf.setBackend('cpu');
  await tf.ready();
  return {
    backend: 'cpu',
    engine: 'cpu',
    description: 'cpu (pure JavaScript TF.js backend)',
    ...(reason ? { fallbackReason: reason } : {}),
  };
}

/**
 * Picks and initialises the backend: an engine name, or settings (EngineOptions; what is left out comes from the
 * NEXTRAY_* variables, else the defaults). Without an engine, NEXTRAY_ENGINE (if set) or 'auto' decides.
 * 'native' and 'tfjs-node' throw when unavailable; 'auto' falls back to pure JS with one stderr line.
 * Settings apply when the engine first starts; later calls only switch between engines.
 */
export async function initEngine(arg?: EngineName | Partial<EngineOptions>): Promise<EngineInfo> {
  const given: Partial<EngineOptions> = typeof arg === 'string' ? { engine: parseEngineName(arg, 'initEngine') } : (arg ?? {});
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<EngineOptions>;
  const opts: EngineOptions = { ...envEngineOptions(), ...defined };
  const wanted: EngineName = opts.engine;
  if (opts.profile) enableKernelProfile(true);
  if (current && (wanted === 'auto' || wanted === current.engine)) {
    if (defined.precision) setPrecision(defined.precision);
    return current;
  }
  // tfjs-core alone registers no gradients; every engine needs them for training.
  await registerGradients();
  current = await startEngine(opts);
  setPrecision(opts.precision);
  return current;
}

/** Starts the engine opts.engine asks for (see initEngine) and describes it. */
async function startEngine(opts: EngineOptions): Promise<EngineInfo> {
  const wanted = opts.engine;
  if (wanted === 'tfjs-node' || wanted === 'auto') {
    if (await tryTfjsNode()) return { backend: 'tensorflow', engine: 'tfjs-node', description: 'tfjs-node (native libtensorflow)' };
    if (wanted === 'tfjs-node') throw new InstallError("engine 'tfjs-node' requested but @tensorflow/tfjs-node is not installed or failed to load", { hint: "install it (npm install @tensorflow/tfjs-node) or choose another engine: auto, native or cpu" });
  }
  if (wanted === 'cpu') return useCpu();

  const load = loadNativeAddon(opts.addonPath);
  if (!load.ok) {
    if (wanted === 'native') throw new InstallError(`engine 'native' unavailable: ${load.reason}`, { hint: "or choose another engine: 'auto' (the fastest that loads) or 'cpu'" });
    if (!warned) {
      process.stderr.write(`nextray: using the slow pure-JS TF.js backend: ${load.reason}\n`);
      warned = true;
    }
    return useCpu(load.reason);
  }
  // threads: oneDNN's (default: all cores, via OpenMP); elementwiseThreads: the memory-bound kernels' (default 1,
  // see native/src/common.h).
  if (opts.threads > 0) load.addon.setThreads(opts.threads);
  if (opts.elementwiseThreads > 0) load.addon.setElementwiseThreads(opts.elementwiseThreads);
  load.addon.setWinograd(opts.winograd);
  load.addon.setShortcutSum(opts.shortcutPostOp === 'sum');
  registerNativeBackend(load.addon, { poolMb: opts.poolMb, weightCache: opts.weightCache, weightCachePixels: opts.weightCachePixels });
  await tf.setBackend(NATIVE_BACKEND);
  await tf.ready();
  const i = load.addon.info();
  nativeAddon = load.addon;
  return {
    backend: NATIVE_BACKEND,
    engine: 'native',
    description: `native (oneDNN ${i.onednn}, ${i.isa}, ${i.threads} threads) over the TF.js cpu backend`,
    native: { onednn: i.onednn, isa: i.isa, threads: i.threads, addonPath: load.path, kernels: nativeKernelNames(load.addon), bf16: i.bf16 === true },
  };
}

/** What initEngine chose (null before it ran); the CLI prints `description`. */
export function engineInfo(): EngineInfo | null {
  return current;
}

export { registerGradients, gradientsRegistered } from './gradients.js';
export { kernelProfile, resetKernelProfile, enableKernelProfile, type KernelStat } from './profile.js';
export { batchNormTraining, adamUpdate, addRelu, fusedBatchNormAvailable } from './fused-ops.js';
export { leanGradients, leanVariableGrads } from './lean-grads.js';
export { tf };
