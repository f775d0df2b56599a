/**
 * Transpose of a typed array, for the native backend's Transpose kernel. TF.js's cpu kernel computes every
 * element's source index through generic index arithmetic (~40 ns per element here); loading ResNet-152's
 * torchvision weights moves 60 M filter values OIHW -> HWIO that way and the ONNX export moves them back (5 s).
 * This walks the output in order with the source offset advanced incrementally (one add per element), the
 * innermost output axis as a tight strided loop; axes that stay adjacent and in order are merged first, so a
 * transpose that keeps the innermost axes moves whole runs.
 */
type Typed = Float32Array | Int32Array | Uint8Array;

/** out[...] = x transposed by `perm` (out has x's length). */
export function transposeInto<T extends Typed>(x: T, shape: readonly number[], perm: readonly number[], out: T): T {
  // Merge output axes that are consecutive input axes (perm[k+1] == perm[k] + 1): one longer axis.
  const dims: number[] = [];
  const order: number[] = [];
  for (let k = 0; k < perm.length; k++) {
    const p = perm[k]!;
    if (shape[p] === 1) continue; // size-1 axes move nothing
    const last = order.length - 1;
    if (last >= 0 && order[last] === p - 1 - countOnesBetween(shape, order[last]!, p)) {
      dims[last]! *= shape[p]!;
      order[last] = p;
    } else {
      dims.push(shape[p]!);
      order.push(p);
    }
  }
  // Input strides of the merged axes: the stride of an axis group is that of its innermost member.
  const inStride = new Array<number>(shape.length).fill(1);
  for (let a = shape.length - 2; a >= 0; a--) inStride[a] = inStride[a + 1]! * shape[a + 1]!;
  const st = order.map((p) => inStride[p]!);
  const rank = dims.length;
  if (rank <= 1) {
    out.set(x);
    return out;
  }
  const n = dims[rank - 1]!;
  const s = st[rank - 1]!;
  const idx = new Array<number>(rank - 1).fill(0);
  const outer = x.length / n;
  let base = 0;
  let o = 0;
  if (s === 1) {
    for (let k = 0; k < outer; k++) {
      out.set(x.subarray(base, base + n), o);
      o += n;
      base = step(idx, dims, st, base, rank);
    }
  } else {
    for (let k = 0; k < outer; k++) {
      for (let j = 0, i = base; j < n; j++, i += s) out[o++] = x[i]!;
      base = step(idx, dims, st, base, rank);
    }
  }
  return out;
}

/** Advances the odometer over the outer axes; returns the new source offset. */
function step(idx: number[], dims: number[], st: number[], base: number, rank: number): number {
  for (let a = rank - 2; a >= 0; a--) {
    idx[a]!++;
    base += st[a]!;
    if (idx[a]! < dims[a]!) return base;
    base -= st[a]! * dims[a]!;
    idx[a] = 0;
  }
  return base;
}

/** Size-1 input axes strictly between a and b (they do not break adjacency). */
function countOnesBetween(shape: readonly number[], a: number, b: number): number {
  let c = 0;
  for (let i = a + 1; i < b; i++) if (shape[i] === 1) c++;
  return c;
}
