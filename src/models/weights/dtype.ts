/**
 * Element-type plumbing shared by every reader: viewing raw little-endian bytes as the right typed array (without
 * copying when alignment allows, which matters for 240 MB ResNet-152 files), and converting any dtype to float32
 * (half and bfloat16 decoded bit-exactly) for TF.js, which computes in float32.
 */
import { DTYPE_SIZE, numel, type DType, type DTypeArrays, type RawTensor, type TensorData } from './types.js';

/** True on little-endian hosts (every platform Node and browsers run on today; checked, not assumed). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type TypedArrayCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData;
  new (length: number): TensorData;
  readonly BYTES_PER_ELEMENT: number;
};

const CTORS: Record<DType, TypedArrayCtor> = {
  F64: Float64Array as unknown as TypedArrayCtor,
  F32: Float32Array as unknown as TypedArrayCtor,
  F16: Uint16Array as unknown as TypedArrayCtor,
  BF16: Uint16Array as unknown as TypedArrayCtor,
  I64: BigInt64Array as unknown as TypedArrayCtor,
  I32: Int32Array as unknown as TypedArrayCtor,
  I16: Int16Array as unknown as TypedArrayCtor,
  I8: Int8Array as unknown as TypedArrayCtor,
  U8: Uint8Array as unknown as TypedArrayCtor,
  BOOL: Uint8Array as unknown as TypedArrayCtor,
};

/** A new zero-filled array for `count` elements of `dtype`. */
export function allocTyped<D extends DType>(dtype: D, count: number): DTypeArrays[D] {
  return new CTORS[dtype](count) as DTypeArrays[D];
}

/**
 * Elements `count` of `dtype` stored at `bytes[0..]`, little-endian (or big-endian when `bigEndian`).
 * Returns a view sharing `bytes`' memory when the host is little-endian, the data is little-endian and aligned;
 * otherwise a copy. Pass `copy: true` to always get an independent array.
 */
export function typedFromBytes<D extends DType>(
  dtype: D,
  bytes: Uint8Array,
  count: number,
  opts: { copy?: boolean; bigEndian?: boolean } = {},
): DTypeArrays[D] {
  const size = DTYPE_SIZE[dtype];
  const nbytes = count * size;
  if (bytes.byteLength < nbytes) throw new RangeError(`need ${nbytes} bytes for ${count} ${dtype}, have ${bytes.byteLength}`);
  const Ctor = CTORS[dtype];
  const littleSource = !opts.bigEndian;
  if (!opts.copy && littleSource === HOST_LITTLE_ENDIAN && bytes.byteOffset % size === 0) {
    return new Ctor(bytes.buffer, bytes.byteOffset, count) as DTypeArrays[D];
  }
  const out = new Ctor(count);
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, nbytes);
  if (littleSource === HOST_LITTLE_ENDIAN || size === 1) {
    outBytes.set(bytes.subarray(0, nbytes));
  } else {
    // Byte-swap each element (big-endian source on a little-endian host, or the reverse).
    for (let e = 0; e < nbytes; e += size) {
      for (let b = 0; b < size; b++) outBytes[e + b] = bytes[e + size - 1 - b] as number;
    }
  }
  return out as DTypeArrays[D];
}

/** The little-endian bytes of `data` (a view when the host is little-endian, which it practically always is). */
export function bytesOf(data: TensorData): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (HOST_LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return view;
  const size = data.BYTES_PER_ELEMENT;
  const out = new Uint8Array(view.length);
  for (let e = 0; e < view.length; e += size) for (let b = 0; b < size; b++) out[e + b] = view[e + size - 1 - b] as number;
  return out;
}

// Half precision: 1 sign, 5 exponent, 10 mantissa bits. A 64 K-entry table would be faster but costs 256 KB at
// import; the direct decode below is exact for every pattern (subnormals, infinities, NaN) and fast enough.
const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** Decode one IEEE 754 half-precision bit pattern exactly. */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encode a number as the nearest half-precision bit pattern (round half to even, overflow to infinity). */
export function numberToF16Bits(x: number): number {
  F32_SCRATCH[0] = x;
  const f = U32_SCRATCH[0] as number;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa right, rounding half to even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let out = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && out & 1)) out++; // carries into the exponent correctly
  return out;
}

/** Decode one bfloat16 bit pattern (the top half of a float32) exactly. */
export function bf16BitsToNumber(b: number): number {
  U32_SCRATCH[0] = (b & 0xffff) << 16;
  return F32_SCRATCH[0] as number;
}

/** Encode a number as bfloat16 (round half to even, NaN kept NaN). */
export function numberToBF16Bits(x: number): number {
  F32_SCRATCH[0] = x;
  const f = U32_SCRATCH[0] as number;
  if ((f & 0x7f800000) === 0x7f800000 && f & 0x7fffff) return ((f >>> 16) | 0x40) & 0xffff;
  const rounded = f + 0x7fff + ((f >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/**
 * The tensor's values as float32, for handing to TF.js. F32 returns `t.data` itself (no copy); F16 and BF16 are
 * decoded exactly; F64 rounds to nearest float32; integers and BOOL convert by value (I64 beyond 2^24 loses
 * precision, as it would in PyTorch's `.float()`).
 */
export function toFloat32(t: RawTensor): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data;
    case 'F16': {
      const src = t.data;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = f16BitsToNumber(src[i] as number);
      return out;
    }
    case 'BF16': {
      const src = t.data;
      const out = new Float32Array(src.length);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) outBits[i] = (src[i] as number) << 16;
      return out;
    }
    case 'I64': {
      const src = t.data;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i] as bigint);
      return out;
    }
    default:
      return Float32Array.from(t.data as ArrayLike<number>);
  }
}

/**
 * A float32 array converted to `dtype` (the inverse of `toFloat32`, for writing files): F16/BF16 round half to
 * even, integers truncate toward zero like PyTorch's `.to(torch.int32)`, BOOL is `x !== 0`.
 */
export function fromFloat32<D extends DType>(data: Float32Array, dtype: D): DTypeArrays[D] {
  const out = allocTyped(dtype, data.length);
  switch (dtype) {
    case 'F32':
      (out as Float32Array).set(data);
      break;
    case 'F16':
      for (let i = 0; i < data.length; i++) (out as Uint16Array)[i] = numberToF16Bits(data[i] as number);
      break;
    case 'BF16':
      for (let i = 0; i < data.length; i++) (out as Uint16Array)[i] = numberToBF16Bits(data[i] as number);
      break;
    case 'I64':
      for (let i = 0; i < data.length; i++) (out as BigInt64Array)[i] = BigInt(Math.trunc(data[i] as number));
      break;
    case 'BOOL':
      for (let i = 0; i < data.length; i++) (out as Uint8Array)[i] = data[i] !== 0 ? 1 : 0;
      break;
    default:
      for (let i = 0; i < data.length; i++) (out as Exclude<TensorData, BigInt64Array>)[i] = Math.trunc(data[i] as number);
  }
  return out;
}

/** A RawTensor from float32 values, checking that the shape matches the data. */
export function rawTensor<D extends DType = 'F32'>(shape: number[], data: Float32Array, dtype?: D): RawTensor<D> {
  const n = numel(shape);
  if (n !== data.length) throw new RangeError(`shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  const d = (dtype ?? 'F32') as D;
  return { dtype: d, shape: [...shape], data: d === 'F32' ? data : fromFloat32(data, d) } as RawTensor<D>;
}
