/**
 * The recycling of native kernels' output arrays, in a module of its own so that the backend (native-backend.ts)
 * and the fused training kernels (fused-kernels.ts) both allocate through it without importing each other.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

/**
 * Recycles the output arrays of native kernels. A fresh 8 MB Float32Array costs ~2,000 page faults when first
 * written (measured here: 24 ms for one batch-norm gradient that computes in 1.7 ms), and V8 frees a disposed
 * tensor's array only at its next garbage collection, so without reuse most large outputs land on fresh pages.
 * Only arrays this backend allocated for a native kernel are recycled, and never one that may be seen from
 * elsewhere: an array read out (dataSync/data) or passed to a JS kernel (some return views of their input,
 * e.g. a contiguous Slice) is disowned for good. Arrays under 64 KB are left to V8.
 */
export class ArrayPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owned = new WeakSet<Float32Array>();
  private bytes = 0;
  static readonly MIN_LENGTH = 16384;

  /** Free-list budget; 0 turns recycling off (the engine option poolMb / NEXTRAY_POOL_MB, default 512 MiB). */
  constructor(public maxBytes: number) {}

  /** An array of length n, dirty unless `zero`: the caller must write every element or ask for zeros. */
  take(n: number, zero = false): Float32Array {
    if (n < ArrayPool.MIN_LENGTH || this.maxBytes <= 0) return new Float32Array(n);
    const a = this.free.get(n)?.pop();
    if (a) {
      this.bytes -= a.byteLength;
      if (zero) a.fill(0);
      return a;
    }
    const b = new Float32Array(n);
    this.owned.add(b);
    return b;
  }

  /** Back to the free list when it is ours and the pool has room. */
  release(a: Float32Array): void {
    if (!this.owned.has(a) || this.bytes + a.byteLength > this.maxBytes) return;
    let list = this.free.get(a.length);
    if (!list) this.free.set(a.length, (list = []));
    list.push(a);
    this.bytes += a.byteLength;
  }

  /** Never recycle this array (it may be referenced outside the backend's bookkeeping). */
  disown(a: unknown): void {
    if (a instanceof Float32Array) this.owned.delete(a);
  }

  get freeBytes(): number {
    return this.bytes;
  }
}

/** A float32 output array for a native kernel: recycled when the backend pools, zero-filled only on request. */
export function allocOutput(backend: MathBackendCPU, n: number, zero = false): Float32Array {
  const pool = (backend as Partial<{ pool: unknown }>).pool;
  return pool instanceof ArrayPool ? pool.take(n, zero) : new Float32Array(n);
}
