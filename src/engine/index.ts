/**
 * The engine seam: the one module that picks and initialises the TensorFlow.js backend (and, where present,
 * native kernels). Models and training import '@tensorflow/tfjs-core' only and never care which backend runs.
 *
 * Engines: 'native' = the pure-JS cpu backend with oneDNN kernels from native/ (see native-backend.ts);
 * 'cpu' = pure JS; 'tfjs-node' = @tensorflow/tfjs-node when the user has it installed; 'auto' (default) =
 * tfjs-node if installed, else native if the addon loads, else cpu with one line on stderr saying why.
 * NEXTRAY_ENGINE overrides the default choice of `initEngine()` / `initEngine('auto')`. Every engine also gets
 * TF.js's gradient functions registered (see gradients.ts), which tfjs-core alone does not do.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createRequire } from 'node:module';
import { registerGradients } from './gradients.js';
import { loadNativeAddon } from './native-addon.js';
import { NATIVE_BACKEND, nativeKernelNames, registerNativeBackend } from './native-backend.js';
import { fusedKernelsJs, registerFusedKernels } from './fused-kernels.js';

// The fused training ops' JS kernels serve the pure-JS backend whoever selects it (tests, 'cpu', fallback).
registerFusedKernels('cpu', fusedKernelsJs);

export type EngineName = 'auto' | 'cpu' | 'native' | 'tfjs-node';

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
  native?: { onednn: string; isa: string; threads: number; addonPath: string; kernels: string[] };
}

const ENGINES: readonly EngineName[] = ['auto', 'cpu', 'native', 'tfjs-node'];

let current: EngineInfo | null = null;
let warned = false;

function parseEngine(name: string, source: string): EngineName {
  if ((ENGINES as readonly string[]).includes(name)) return name as EngineName;
  throw new Error(`${source}: unknown engine '${name}'; use one of ${ENGINES.join(', ')}`);
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
 * Picks and initialises the backend. Without an argument, NEXTRAY_ENGINE (if set) or 'auto' decides.
 * 'native' and 'tfjs-node' throw when unavailable; 'auto' falls back to pure JS with one stderr line.
 */
export async function initEngine(name?: EngineName): Promise<EngineInfo> {
  const envName = process.env.NEXTRAY_ENGINE;
  const wanted: EngineName = name ?? (envName ? parseEngine(envName, 'NEXTRAY_ENGINE') : 'auto');
  if (current && (wanted === 'auto' || wanted === current.engine)) return current;
  // tfjs-core alone registers no gradients; every engine needs them for training.
  await registerGradients();

  if (wanted === 'tfjs-node' || wanted === 'auto') {
    if (await tryTfjsNode()) {
      current = { backend: 'tensorflow', engine: 'tfjs-node', description: 'tfjs-node (native libtensorflow)' };
      return current;
    }
    if (wanted === 'tfjs-node') throw new Error("engine 'tfjs-node' requested but @tensorflow/tfjs-node is not installed or failed to load");
  }
  if (wanted === 'cpu') return (current = await useCpu());

  const load = loadNativeAddon();
  if (!load.ok) {
    if (wanted === 'native') throw new Error(`engine 'native' unavailable: ${load.reason}`);
    if (!warned) {
      process.stderr.write(`nextray: using the slow pure-JS TF.js backend: ${load.reason}\n`);
      warned = true;
    }
    return (current = await useCpu(load.reason));
  }
  // NEXTRAY_THREADS: oneDNN's threads (default: all cores, via OpenMP); NEXTRAY_ELEMENTWISE_THREADS: threads
  // for the memory-bound kernels (default 1, see native/src/common.h).
  const threads = Number(process.env.NEXTRAY_THREADS ?? 0);
  if (threads > 0) load.addon.setThreads(threads);
  const ewThreads = Number(process.env.NEXTRAY_ELEMENTWISE_THREADS ?? 0);
  if (ewThreads > 0) load.addon.setElementwiseThreads(ewThreads);
  registerNativeBackend(load.addon);
  await tf.setBackend(NATIVE_BACKEND);
  await tf.ready();
  const i = load.addon.info();
  current = {
    backend: NATIVE_BACKEND,
    engine: 'native',
    description: `native (oneDNN ${i.onednn}, ${i.isa}, ${i.threads} threads) over the TF.js cpu backend`,
    native: { onednn: i.onednn, isa: i.isa, threads: i.threads, addonPath: load.path, kernels: nativeKernelNames(load.addon) },
  };
  return current;
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
