/**
 * The shared vocabulary of the weight-file readers: element types, a framework-free tensor (`RawTensor`), a
 * state_dict (`StateDict`) and the error every reader throws on bad input. Nothing here touches TF.js or node:fs,
 * so the readers run unchanged in Node and in the browser on plain ArrayBuffers.
 */
import { EXIT_USAGE, NextrayError } from '../../util/errors.js';

/** Element types, spelled as safetensors spells them. */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPES: readonly DType[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];

/**
 * The typed array that holds each dtype's elements, little-endian host order:
 * F64 Float64Array, F32 Float32Array, F16/BF16 Uint16Array (raw bit patterns; decode with `toFloat32`),
 * I64 BigInt64Array, I32 Int32Array, I16 Int16Array, I8 Int8Array, U8 and BOOL Uint8Array (BOOL is 0/1).
 */
export interface DTypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

export type TensorData = DTypeArrays[DType];

/**
 * A dense, row-major (C order), contiguous tensor with no framework attached.
 *
 * `data.length` always equals the product of `shape` (1 for a scalar, shape `[]`). Readers may return `data` as a
 * view into the bytes they were given (no copy for the 100+ MB of a ResNet-152): do not mutate it unless you own
 * the source buffer, and copy it (`data.slice()`) if you need the source buffer to be garbage-collected.
 * It is a union discriminated by `dtype`: `if (t.dtype === 'F32') t.data` is a Float32Array.
 */
export type RawTensor<D extends DType = DType> = {
  [K in D]: { dtype: K; shape: number[]; data: DTypeArrays[K] };
}[D];

/** Tensors by name, in file order (torchvision key names such as `layer1.0.conv1.weight`). */
export type StateDict = Map<string, RawTensor>;

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && (DTYPES as readonly string[]).includes(s);
}

/**
 * Thrown for any malformed, truncated, unsafe or unsupported weight file. `source` names the file (or `<bytes>`
 * when parsing an anonymous buffer) and `tensor` the tensor concerned, when there is one; both are also in the
 * message so a CLI can print `err.message` as is.
 */
export class WeightFormatError extends NextrayError {
  readonly source: string;
  readonly tensor: string | undefined;
  constructor(source: string, message: string, tensor?: string) {
    super(`${source}: ${tensor !== undefined ? `tensor '${tensor}': ` : ''}${message}`, { code: 'ERR_WEIGHT_FORMAT', exitStatus: EXIT_USAGE });
    this.name = 'WeightFormatError';
    this.source = source;
    this.tensor = tensor;
  }
}

/** Product of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
