/** Deterministic test data: a 32-bit LCG, so every backend and every run sees the same values. */
export function randArray(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  let s = seed >>> 0;
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = (s / 2 ** 31 - 1) * scale + shift;
  }
  return v;
}
