/**
 * IEEE 754 binary16 ("half") storage for cached features: float32 -> float16 with round-to-nearest-even (what
 * numpy's astype(float16) and PyTorch's .half() do), and float16 -> float32 exactly through a 65,536-entry table.
 * Node 20 has no Float16Array, so the conversion works on the bit patterns (a Uint32Array view of the floats).
 *
 * Pure TypeScript (no Node imports).
 */

/** Largest finite half: 65504. Values that round beyond it become +/-Infinity (counted by encodeFp16). */
export const FP16_MAX = 65504;

/**
 * Encodes `src` into `dst` (same length) and returns how many finite inputs overflowed to +/-Infinity. NaN stays
 * NaN (a quiet NaN), +/-Infinity stays infinite (not counted), -0 stays -0, values below the smallest subnormal
 * (2^-25, ties to even) become signed zero.
 */
export function encodeFp16(src: Float32Array, dst: Uint16Array): number {
  if (dst.length !== src.length) throw new RangeError(`encodeFp16: ${src.length} values into ${dst.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  let overflow = 0;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const e = (x >>> 23) & 0xff;
    const m = x & 0x7fffff;
    if (e === 0xff) {
      dst[i] = sign | 0x7c00 | (m ? 0x200 : 0);
      continue;
    }
    const he = e - 112; // rebias: 127 -> 15
    if (he >= 0x1f) {
      dst[i] = sign | 0x7c00;
      overflow++;
      continue;
    }
    if (he <= 0) {
      // Subnormal half (or zero): the 24-bit significand (implicit 1 included) shifted right by 14 - he.
      if (he < -10) {
        dst[i] = sign;
        continue;
      }
      const full = m | 0x800000;
      const shift = 14 - he;
      let hm = full >>> shift;
      const rem = full & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && hm & 1)) hm++; // a carry into the exponent field is the right result
      dst[i] = sign | hm;
      continue;
    }
    let h = sign | (he << 10) | (m >>> 13);
    const rem = m & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry may reach the exponent or Infinity: both correct
    if ((h & 0x7fff) === 0x7c00) overflow++;
    dst[i] = h;
  }
  return overflow;
}

let table: Float32Array | null = null;

/** float32 value of every half bit pattern. */
function halfTable(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = sign * m * 2 ** -24;
    else if (e === 0x1f) t[h] = m ? NaN : sign * Infinity;
    else t[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  table = t;
  return t;
}

/** Decodes `src` halves into `dst` at `offset` (exact: every half is a float32). */
export function decodeFp16(src: Uint16Array, dst: Float32Array, offset = 0): void {
  if (offset + src.length > dst.length) throw new RangeError('decodeFp16: output too small');
  const t = halfTable();
  for (let i = 0; i < src.length; i++) dst[offset + i] = t[src[i]!]!;
}

/** Rounds `values` to the nearest half in place (encode + decode): what a value read back from fp16 storage is. */
export function roundToFp16(values: Float32Array): number {
  const h = new Uint16Array(values.length);
  const overflow = encodeFp16(values, h);
  decodeFp16(h, values);
  return overflow;
}
