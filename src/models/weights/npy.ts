/**
 * NumPy `.npy` (one array) and `.npz` (a zip of .npy files) reader and writer, for golden inputs/outputs from
 * PyTorch/NumPy reference runs and for exchanging arrays with Python. Format:
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * `\x93NUMPY`, version (1.0: u16 header length, 2.0/3.0: u32), an ASCII/UTF-8 Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded so the data starts 64-byte aligned, then the
 * raw C-order data.
 */
import { bytesOf, typedFromBytes } from './dtype.js';
import { DTYPE_SIZE, numel, WeightFormatError, type DType, type RawTensor, type StateDict, type TensorData } from './types.js';
import { openZip } from './zip.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** A parsed .npy array: a RawTensor in C order (Fortran-order files are refused, not silently transposed). */
export type NpyArray = RawTensor & { fortranOrder: false };

/** NumPy type codes (without byte-order character) -> dtype. */
const DESCR_DTYPES: Record<string, DType> = {
  f8: 'F64',
  f4: 'F32',
  f2: 'F16',
  i8: 'I64',
  i4: 'I32',
  i2: 'I16',
  i1: 'I8',
  u1: 'U8',
  b1: 'BOOL',
};

const DTYPE_DESCRS: Record<DType, string | null> = {
  F64: '<f8',
  F32: '<f4',
  F16: '<f2',
  BF16: null, // NumPy has no bfloat16
  I64: '<i8',
  I32: '<i4',
  I16: '<i2',
  I8: '|i1',
  U8: '|u1',
  BOOL: '|b1',
};

export function isNpy(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 6 && MAGIC.every((b, i) => bytes[i] === b);
}

export interface NpyParseOptions {
  /** Name used in error messages (a file path). */
  source?: string;
  /** Always copy instead of viewing `bytes`. */
  copy?: boolean;
}

/** Parse one .npy file held in memory. */
export function parseNpy(bytes: Uint8Array, opts: NpyParseOptions = {}): NpyArray {
  const src = opts.source ?? '<bytes>';
  const fail = (msg: string): never => {
    throw new WeightFormatError(src, msg);
  };
  if (!isNpy(bytes)) fail('not a .npy file (missing the \\x93NUMPY magic)');
  if (bytes.byteLength < 10) fail('.npy file truncated inside its preamble');
  const major = bytes[6] as number;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) fail('.npy file truncated inside its preamble');
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    return fail(`unsupported .npy format version ${major}.${bytes[7]}`);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > bytes.byteLength) fail(`header length ${headerLen} runs past the end of the file (${bytes.byteLength} bytes)`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));

  const descrM = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(header);
  if (!descrM) {
    if (/['"]descr['"]\s*:\s*\[/.test(header)) fail('structured (record) arrays are not supported');
    fail(`header has no 'descr': ${header.trim()}`);
  }
  const descr = descrM![2]!;
  const fortM = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header);
  if (!fortM) fail(`header has no 'fortran_order': ${header.trim()}`);
  if (fortM![1] === 'True') {
    fail("array is stored in Fortran (column-major) order; re-save it with np.save(f, np.ascontiguousarray(a))");
  }
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header);
  if (!shapeM) fail(`header has no 'shape': ${header.trim()}`);
  const shape = shapeM![1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(n) || n < 0) fail(`bad dimension '${s}' in shape (${shapeM![1]})`);
      return n;
    });

  const order = descr[0];
  const code = descr.slice(1);
  const dtype = DESCR_DTYPES[code];
  if (!dtype || (order !== '<' && order !== '>' && order !== '|' && order !== '=')) {
    fail(`unsupported dtype '${descr}' (supported: float64/32/16, int64/32/16/8, uint8, bool)`);
  }
  const d = dtype!;
  const count = numel(shape);
  const need = count * DTYPE_SIZE[d];
  const have = bytes.byteLength - dataStart;
  if (have < need) fail(`data truncated: shape [${shape.join(', ')}] of ${descr} needs ${need} bytes, file has ${have}`);
  if (have > need) fail(`${have - need} unexpected bytes after the data of shape [${shape.join(', ')}] (${descr})`);
  const data = typedFromBytes(d, bytes.subarray(dataStart), count, { copy: opts.copy, bigEndian: order === '>' });
  return { dtype: d, shape, data, fortranOrder: false } as NpyArray;
}

function dtypeOfArray(data: TensorData): DType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof Uint8Array) return 'U8';
  throw new TypeError('Uint16Array data is ambiguous (F16 or BF16 bits): pass the dtype');
}

/**
 * Serialise an array as a version 1.0 .npy file (2.0 if the header is too long), little-endian, C order.
 * The dtype follows the array type (Float32Array -> '<f4', ...) unless given; F16 takes raw half bits in a
 * Uint16Array. BF16 has no NumPy equivalent and is refused.
 */
export function serializeNpy(shape: number[], data: TensorData, dtype?: DType): Uint8Array {
  const d = dtype ?? dtypeOfArray(data);
  const descr = DTYPE_DESCRS[d];
  if (!descr) throw new TypeError(`${d} has no NumPy dtype; convert it with toFloat32 first`);
  if (!shape.every((n) => Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`bad shape [${shape.join(', ')}]`);
  if (numel(shape) !== data.length) throw new RangeError(`shape [${shape.join(', ')}] needs ${numel(shape)} values, got ${data.length}`);
  if (data.BYTES_PER_ELEMENT !== DTYPE_SIZE[d]) throw new TypeError(`${d} needs ${DTYPE_SIZE[d]}-byte elements, the array has ${data.BYTES_PER_ELEMENT}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let version = 1;
  let pre = 10;
  if (dict.length + 1 + pre > 0xffff) {
    version = 2;
    pre = 12;
  }
  // NumPy pads with spaces and ends with '\n' so the data starts 64-byte aligned.
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  dict = dict + ' '.repeat(total - pre - dict.length - 1) + '\n';
  const payload = bytesOf(data);
  const out = new Uint8Array(total + payload.byteLength);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, dict.length, true);
  else dv.setUint32(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[pre + i] = dict.charCodeAt(i);
  out.set(payload, total);
  return out;
}

/** Serialise a RawTensor as .npy. */
export function serializeNpyTensor(t: RawTensor): Uint8Array {
  return serializeNpy(t.shape, t.data, t.dtype);
}

/** Parse a .npz archive (np.savez / np.savez_compressed) into arrays by name (without the '.npy' suffix). */
export function parseNpz(bytes: Uint8Array, opts: NpyParseOptions = {}): StateDict {
  const src = opts.source ?? '<bytes>';
  const zip = openZip(bytes, src);
  const out: StateDict = new Map();
  for (const name of zip.entries.keys()) {
    if (!name.endsWith('.npy')) throw new WeightFormatError(src, `.npz entry '${name}' is not a .npy file`);
    const arr = parseNpy(zip.read(name), { source: `${src}:${name}`, copy: opts.copy });
    out.set(name.slice(0, -4), { dtype: arr.dtype, shape: arr.shape, data: arr.data } as RawTensor);
  }
  if (out.size === 0) throw new WeightFormatError(src, '.npz archive is empty');
  return out;
}
