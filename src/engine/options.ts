/**
 * The engine's settings as one typed object. The NEXTRAY_* environment variables are read in one place
 * (engineOptionsFromEnv), once, when the engine starts, never at import time; initEngine(options) takes the
 * same settings from code, which override the environment.
 *
 *   NEXTRAY_ENGINE               auto | cpu | native | tfjs-node     (default auto)
 *   NEXTRAY_THREADS              oneDNN / OpenMP threads             (default: all cores)
 *   NEXTRAY_ELEMENTWISE_THREADS  threads of the memory-bound kernels (default 1, see native/src/common.h)
 *   NEXTRAY_NATIVE_ADDON         path of another addon build         (default native/build/Release/nextray_native.node)
 *   NEXTRAY_PROFILE=1            per-kernel timing from the start    (default off)
 *   NEXTRAY_POOL_MB              output-array recycling budget, MiB  (default 512; 0 = off)
 *   NEXTRAY_WEIGHT_CACHE=0       no oneDNN-layout filter copies      (default on)
 *   NEXTRAY_WEIGHT_CACHE_PIXELS  output pixels per call up to which filter copies are kept (default 4096)
 *   NEXTRAY_PRECISION            fp32 | bf16: the native convolutions' inputs (default fp32; bf16 where the CPU has it)
 *   NEXTRAY_WINOGRAD=0           direct convolutions only            (default on: Winograd for 3x3 stride-1
 *                                convolutions where oneDNN has a kernel, AVX-512; see native/src/conv.cc)
 *   NEXTRAY_SHORTCUT_POSTOP      binary | sum: how a residual joins a convolution (default binary; sum is a
 *                                diagnostic, measured slower: it copies the shortcut first)
 */
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/** A bad engine setting (an option value or a NEXTRAY_* variable): names it and the values it takes. */
export class EngineOptionError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_ENGINE_OPTION', exitStatus: EXIT_USAGE });
    this.name = 'EngineOptionError';
  }
}

export type EngineName = 'auto' | 'cpu' | 'native' | 'tfjs-node';

export const ENGINES: readonly EngineName[] = ['auto', 'cpu', 'native', 'tfjs-node'];

/**
 * What the native engine's convolutions compute in: 'bf16' converts their inputs (activations, filters, gradients)
 * to bfloat16 and accumulates and writes float32, so tensors, master weights, batch-norm statistics and Adam stay
 * float32 (native/src/conv.cc). Only on CPUs with avx512_core_bf16 or AMX; elsewhere float32.
 */
export type Precision = 'fp32' | 'bf16';

export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

export function parsePrecision(name: string, source: string): Precision {
  if ((PRECISIONS as readonly string[]).includes(name)) return name as Precision;
  throw new EngineOptionError(`${source}: unknown precision '${name}'; use one of ${PRECISIONS.join(', ')}`);
}

export interface EngineOptions {
  engine: EngineName;
  /** 0: OpenMP's default (all cores). */
  threads: number;
  /** 0: the addon's default (1). */
  elementwiseThreads: number;
  /** Addon file; undefined: the package's own build. */
  addonPath: string | undefined;
  profile: boolean;
  poolMb: number;
  weightCache: boolean;
  weightCachePixels: number;
  /** The native convolutions' precision from the start (training asks for its own, see setPrecision). */
  precision: Precision;
  /** oneDNN's Winograd algorithm for 3x3 stride-1 convolutions where the CPU has a kernel for it (AVX-512). */
  winograd: boolean;
  /** How a residual joins its convolution in oneDNN: a binary-add post-op (default) or a sum post-op. */
  shortcutPostOp: 'binary' | 'sum';
}

export const DEFAULT_ENGINE_OPTIONS: Readonly<EngineOptions> = {
  engine: 'auto',
  threads: 0,
  elementwiseThreads: 0,
  addonPath: undefined,
  profile: false,
  poolMb: 512,
  weightCache: true,
  weightCachePixels: 4096,
  precision: 'fp32',
  winograd: true,
  shortcutPostOp: 'binary',
};

export function parseEngineName(name: string, source: string): EngineName {
  if ((ENGINES as readonly string[]).includes(name)) return name as EngineName;
  throw new EngineOptionError(`${source}: unknown engine '${name}'; use one of ${ENGINES.join(', ')}`);
}

function count(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new EngineOptionError(`${name}='${v}' is not a whole number >= 0`);
  return n;
}

function flag(env: NodeJS.ProcessEnv, name: string, dflt: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new EngineOptionError(`${name}='${v}' must be 0 or 1`);
}

function postOp(v: string | undefined): EngineOptions['shortcutPostOp'] {
  if (v === undefined || v === '') return DEFAULT_ENGINE_OPTIONS.shortcutPostOp;
  if (v === 'binary' || v === 'sum') return v;
  throw new EngineOptionError(`NEXTRAY_SHORTCUT_POSTOP='${v}' must be binary or sum`);
}

/** The settings the NEXTRAY_* variables of `env` ask for (defaults where unset); throws naming a bad variable. */
export function engineOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): EngineOptions {
  return {
    engine: env.NEXTRAY_ENGINE ? parseEngineName(env.NEXTRAY_ENGINE, 'NEXTRAY_ENGINE') : DEFAULT_ENGINE_OPTIONS.engine,
    threads: count(env, 'NEXTRAY_THREADS', DEFAULT_ENGINE_OPTIONS.threads),
    elementwiseThreads: count(env, 'NEXTRAY_ELEMENTWISE_THREADS', DEFAULT_ENGINE_OPTIONS.elementwiseThreads),
    addonPath: env.NEXTRAY_NATIVE_ADDON || undefined,
    profile: flag(env, 'NEXTRAY_PROFILE', DEFAULT_ENGINE_OPTIONS.profile),
    poolMb: count(env, 'NEXTRAY_POOL_MB', DEFAULT_ENGINE_OPTIONS.poolMb),
    weightCache: flag(env, 'NEXTRAY_WEIGHT_CACHE', DEFAULT_ENGINE_OPTIONS.weightCache),
    weightCachePixels: count(env, 'NEXTRAY_WEIGHT_CACHE_PIXELS', DEFAULT_ENGINE_OPTIONS.weightCachePixels),
    precision: env.NEXTRAY_PRECISION ? parsePrecision(env.NEXTRAY_PRECISION, 'NEXTRAY_PRECISION') : DEFAULT_ENGINE_OPTIONS.precision,
    winograd: flag(env, 'NEXTRAY_WINOGRAD', DEFAULT_ENGINE_OPTIONS.winograd),
    shortcutPostOp: postOp(env.NEXTRAY_SHORTCUT_POSTOP),
  };
}

let fromEnv: EngineOptions | null = null;

/** engineOptionsFromEnv(process.env), read on first use and kept. */
export function envEngineOptions(): EngineOptions {
  return (fromEnv ??= engineOptionsFromEnv());
}
