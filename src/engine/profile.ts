/**
 * Per-kernel wall-time accounting for the native backend: which kernels ran natively or fell back to JS,
 * how often, and how long they took. Off unless enabled (engine option profile / NEXTRAY_PROFILE=1, or enableKernelProfile()), so
 * the normal path costs one boolean test per kernel call.
 */
import { performance } from 'node:perf_hooks';

export interface KernelStat {
  kernel: string;
  /** 'native' when the oneDNN/OpenMP kernel ran, 'js' when the pure-JS kernel did. */
  path: 'native' | 'js';
  calls: number;
  ms: number;
}

let enabled = false;
const stats = new Map<string, KernelStat>();

export function enableKernelProfile(on = true): void {
  enabled = on;
}

export function resetKernelProfile(): void {
  stats.clear();
}

/** Kernel statistics, slowest first. */
export function kernelProfile(): KernelStat[] {
  return [...stats.values()].sort((a, b) => b.ms - a.ms);
}

function record(kernel: string, path: 'native' | 'js', ms: number): void {
  const key = `${kernel}/${path}`;
  const s = stats.get(key);
  if (s) {
    s.calls++;
    s.ms += ms;
  } else stats.set(key, { kernel, path, calls: 1, ms });
}

/** Runs the native kernel when it accepts the inputs (non-null result), else the JS one; times it if enabled. */
export function timeKernel<T>(kernel: string, native: (() => T | null) | null, js: () => T): T {
  if (!enabled) {
    const r = native ? native() : null;
    return r ?? js();
  }
  const t0 = performance.now();
  const r = native ? native() : null;
  if (r !== null) {
    record(kernel, 'native', performance.now() - t0);
    return r;
  }
  const t1 = performance.now();
  const j = js();
  record(kernel, 'js', performance.now() - t1);
  return j;
}
