/**
 * A small protocol-buffers writer and reader, just enough for ONNX files (no dependency, no code generation, runs
 * unchanged in Node and the browser).
 *
 * Why not protobufjs: an ONNX export needs a handful of message shapes and one property a generic library does not
 * give cheaply — the 100-250 MB of weights must not be copied again. `ProtoWriter` therefore keeps its output as a
 * list of chunks: small fields are packed into a scratch buffer, large byte fields (tensor `raw_data`) are kept as
 * *views* of the caller's arrays, and nested messages are measured before their length prefix is written, so a
 * ResNet-152 model is serialised with no extra copy until the caller concatenates (or streams) the chunks.
 *
 * Wire format (https://protobuf.dev/programming-guides/encoding/): each field is a varint key
 * `(field_number << 3) | wire_type`, then a varint (type 0), 8 bytes (type 1), a varint length and that many bytes
 * (type 2), or 4 bytes (type 5). int64 values are varints of their two's complement (10 bytes when negative).
 */
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const SCRATCH = 4096;
const utf8 = new TextEncoder();

/** Bytes of the varint encoding of a non-negative integer (or of an int64's two's complement). */
export function varintSize(value: number | bigint): number {
  let v = toUint64(value);
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

function toUint64(value: number | bigint): bigint {
  let v = typeof value === 'bigint' ? value : BigInt(checkInteger(value));
  if (v < -(1n << 63n) || v >= 1n << 64n) throw new RangeError(`protobuf varint out of the int64/uint64 range: ${value}`);
  if (v < 0n) v += 1n << 64n; // int64 two's complement, as protobuf encodes negative int64 fields
  return v;
}

function checkInteger(v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf integer field needs a safe integer, got ${v}`);
  return v;
}

/** Serialises one message; nested messages are written by a child writer passed to `message()`. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private buf = new Uint8Array(SCRATCH);
  private pos = 0;
  private flushedBytes = 0;

  /** Total bytes written so far (chunks + scratch). */
  get length(): number {
    return this.flushedBytes + this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = new Uint8Array(Math.max(n, SCRATCH));
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.flushedBytes += this.pos;
    this.buf = new Uint8Array(SCRATCH);
    this.pos = 0;
  }

  private rawVarint(value: number | bigint): void {
    this.ensure(10);
    // Fast path for the common small non-negative numbers (tags, lengths, dims).
    if (typeof value === 'number' && value >= 0 && value < 0x10000000 && Number.isInteger(value)) {
      let v = value;
      while (v >= 0x80) {
        this.buf[this.pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.pos++] = v;
      return;
    }
    let v = toUint64(value);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  private key(field: number, wire: number): void {
    if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff) throw new RangeError(`bad protobuf field number ${field}`);
    this.rawVarint(field * 8 + wire);
  }

  /** int32 / int64 / uint64 / enum / bool field (varint). */
  varint(field: number, value: number | bigint | boolean): this {
    this.key(field, WIRE_VARINT);
    this.rawVarint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
    return this;
  }

  /** `float` field (fixed 32-bit, little-endian). */
  float(field: number, value: number): this {
    this.key(field, WIRE_I32);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).setFloat32(0, value, true);
    this.pos += 4;
    return this;
  }

  /** `string` field, UTF-8. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /**
   * `bytes` field. Arrays of at least 1 KiB are kept as a view (not copied): the caller must not change them
   * until the chunks have been consumed.
   */
  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LEN);
    this.rawVarint(value.byteLength);
    this.append(value);
    return this;
  }

  /** A packed repeated varint field (`repeated int64 x = n [packed]`, proto3 default; accepted by proto2 parsers). */
  packedVarints(field: number, values: ReadonlyArray<number | bigint>): this {
    let size = 0;
    for (const v of values) size += varintSize(v);
    this.key(field, WIRE_LEN);
    this.rawVarint(size);
    for (const v of values) this.rawVarint(v);
    return this;
  }

  /** One element of a non-packed repeated varint field (what proto2 `repeated int64` writes by default). */
  repeatedVarints(field: number, values: ReadonlyArray<number | bigint>): this {
    for (const v of values) this.varint(field, v);
    return this;
  }

  /** A nested message field: `build` fills a fresh writer whose bytes are then length-prefixed and appended. */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const child = new ProtoWriter();
    build(child);
    return this.embed(field, child);
  }

  /** Append an already-built child message as field `field`. */
  embed(field: number, child: ProtoWriter): this {
    this.key(field, WIRE_LEN);
    this.rawVarint(child.length);
    for (const c of child.finishChunks()) this.append(c);
    return this;
  }

  private append(bytes: Uint8Array): void {
    if (bytes.byteLength < 1024) {
      this.ensure(bytes.byteLength);
      this.buf.set(bytes, this.pos);
      this.pos += bytes.byteLength;
      return;
    }
    this.flush();
    this.chunks.push(bytes);
    this.flushedBytes += bytes.byteLength;
  }

  /** The serialised message as chunks (views; concatenate or stream them in order). */
  finishChunks(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }

  /** The serialised message as one array (copies once). */
  finish(): Uint8Array {
    const chunks = this.finishChunks();
    if (chunks.length === 1) return chunks[0]!;
    const out = new Uint8Array(this.flushedBytes);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  }
}

/** One decoded field: numbers for varints/fixed, a byte view for length-delimited fields. */
export type ProtoField =
  | { field: number; wire: typeof WIRE_VARINT; value: bigint }
  | { field: number; wire: typeof WIRE_I64; value: Uint8Array }
  | { field: number; wire: typeof WIRE_LEN; value: Uint8Array; offset: number }
  | { field: number; wire: typeof WIRE_I32; value: Uint8Array };

/** Thrown for bytes that are not a well-formed protobuf message. */
export class ProtoDecodeError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_PROTO_DECODE', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'ProtoDecodeError';
  }
}

/** Read a varint at `pos`; returns the value and the position after it. */
export function readVarint(bytes: Uint8Array, pos: number): { value: bigint; next: number } {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.byteLength) throw new ProtoDecodeError(`truncated varint at byte ${pos}`);
    const b = bytes[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: result & ((1n << 64n) - 1n), next: pos };
    shift += 7n;
  }
  throw new ProtoDecodeError(`varint longer than 10 bytes at byte ${pos}`);
}

/** Interpret a varint as a signed int64 (two's complement). */
export function asInt64(v: bigint): bigint {
  return v >= 1n << 63n ? v - (1n << 64n) : v;
}

/**
 * The fields of one message, in order. Length-delimited values are views (no copy); `base` is added to the
 * reported offsets (useful when `bytes` is a window of a larger file).
 */
export function* readFields(bytes: Uint8Array, base = 0): Generator<ProtoField> {
  let pos = 0;
  while (pos < bytes.byteLength) {
    const k = readVarint(bytes, pos);
    pos = k.next;
    const field = Number(k.value >> 3n);
    const wire = Number(k.value & 7n);
    if (field < 1) throw new ProtoDecodeError(`invalid field number 0 at byte ${base + pos}`);
    switch (wire) {
      case WIRE_VARINT: {
        const v = readVarint(bytes, pos);
        pos = v.next;
        yield { field, wire, value: v.value };
        break;
      }
      case WIRE_I64:
      case WIRE_I32: {
        const n = wire === WIRE_I64 ? 8 : 4;
        if (pos + n > bytes.byteLength) throw new ProtoDecodeError(`truncated fixed-width field ${field} at byte ${base + pos}`);
        yield { field, wire, value: bytes.subarray(pos, pos + n) };
        pos += n;
        break;
      }
      case WIRE_LEN: {
        const len = readVarint(bytes, pos);
        pos = len.next;
        const n = Number(len.value);
        if (pos + n > bytes.byteLength) {
          throw new ProtoDecodeError(`field ${field} claims ${n} bytes at byte ${base + pos} but only ${bytes.byteLength - pos} remain`);
        }
        yield { field, wire, value: bytes.subarray(pos, pos + n), offset: base + pos };
        pos += n;
        break;
      }
      default:
        throw new ProtoDecodeError(`unsupported wire type ${wire} (field ${field}) at byte ${base + pos}`);
    }
  }
}

const utf8d = new TextDecoder('utf-8', { fatal: true });

/** Decode a length-delimited field as UTF-8 text. */
export function decodeString(bytes: Uint8Array): string {
  try {
    return utf8d.decode(bytes);
  } catch {
    throw new ProtoDecodeError('string field is not valid UTF-8');
  }
}
