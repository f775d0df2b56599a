/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {k: v}}`, then the
 * raw little-endian tensor bytes, offsets relative to the end of the header. No code, no pickle: the format the
 * project prefers for weights and checkpoints.
 *
 * Parsing validates everything a damaged or hostile file could get wrong and names the file and tensor in the
 * error. Tensors come back as views into the given bytes where alignment allows (no copy of a 240 MB model).
 */
import { typedFromBytes, bytesOf } from './dtype.js';
import { DTYPE_SIZE, isDType, numel, WeightFormatError, type DType, type RawTensor, type StateDict } from './types.js';

export interface ParseOptions {
  /** Name used in error messages (a file path); `<bytes>` by default. */
  source?: string;
  /** Always copy tensor data instead of returning views into `bytes`. */
  copy?: boolean;
}

export interface SafetensorsFile {
  tensors: StateDict;
  /** The optional `__metadata__` map (string to string); `{}` when absent. */
  metadata: Record<string, string>;
}

/** Larger JSON headers are refused as corrupt (the reference implementation's limit is 100 MB too). */
const MAX_HEADER_BYTES = 100_000_000;

/** Other safetensors dtypes exist (U16, U32, U64, F8_E4M3, F8_E5M2, ...); they are reported, not guessed at. */
const KNOWN_UNSUPPORTED = ['U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64'];

/** True when `bytes` starts like a safetensors file (a plausible header length followed by `{`). */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 10) return false;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  return n >= 2n && n <= BigInt(bytes.byteLength - 8) && bytes[8] === 0x7b; // '{'
}

/** One tensor's entry in a safetensors header; `begin`/`end` are byte offsets from `dataStart`. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Tensors in file (offset) order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** The header length a safetensors file declares (its first 8 bytes), to know how much to read for the header. */
export function safetensorsHeaderLength(first8: Uint8Array): number {
  if (first8.byteLength < 8) return -1;
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/**
 * Parse and validate only the header: `head` holds at least the first 8 + N bytes of a file of `fileSize` bytes.
 * Lets a tool list a 240 MB file's tensors after reading a few KB.
 */
export function parseSafetensorsHeader(head: Uint8Array, fileSize: number = head.byteLength, opts: { source?: string } = {}): SafetensorsHeader {
  const bytes = head;
  const src = opts.source ?? '<bytes>';
  const fail = (msg: string, tensor?: string): never => {
    throw new WeightFormatError(src, msg, tensor);
  };
  if (fileSize < 8 || bytes.byteLength < 8) fail(`not a safetensors file: ${fileSize} bytes is shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = dv.getBigUint64(0, true);
  if (headerLen64 > BigInt(fileSize - 8)) {
    fail(
      `header length ${headerLen64} runs past the end of the file (${fileSize} bytes): ` +
        'truncated download or not a safetensors file',
    );
  }
  const headerLen = Number(headerLen64);
  if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes; file is corrupt`);
  if (headerLen < 2) fail(`header length ${headerLen} is too small for a JSON object`);
  if (bytes.byteLength < 8 + headerLen) throw new RangeError(`parseSafetensorsHeader needs the first ${8 + headerLen} bytes, got ${bytes.byteLength}`);
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid UTF-8 JSON (${(err as Error).message}); not a safetensors file or corrupt`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header JSON is not an object');
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;

  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__['${k}'] is ${typeof v}, safetensors metadata values must be strings`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('header entry is not an object', name);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) {
      const known = typeof dtype === 'string' && KNOWN_UNSUPPORTED.includes(dtype);
      fail(
        known
          ? `dtype ${dtype} is valid safetensors but not supported here (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)`
          : `unknown dtype ${JSON.stringify(dtype)}`,
        name,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`, name);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLen) {
      fail(`data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes): file truncated?`, name);
    }
    const d = dtype as RawTensor['dtype'];
    const shp = shape as number[];
    const expected = numel(shp) * DTYPE_SIZE[d];
    if (end - begin !== expected) {
      fail(
        `holds ${end - begin} bytes but dtype ${d} with shape [${shp.join(', ')}] needs ${expected}`,
        name,
      );
    }
    entries.push({ name, dtype: d, shape: [...shp], begin, end });
  }

  // File order (JSON.parse reorders integer-like keys, offsets do not lie), and no two tensors may share bytes.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let reach: (typeof entries)[number] | null = null; // the non-empty tensor ending furthest so far
  for (const cur of entries) {
    if (cur.end === cur.begin) continue;
    if (reach && cur.begin < reach.end) {
      fail(`data_offsets [${cur.begin}, ${cur.end}] overlap tensor '${reach.name}' [${reach.begin}, ${reach.end}]`, cur.name);
    }
    if (!reach || cur.end > reach.end) reach = cur;
  }

  return { entries, metadata, dataStart };
}

/** Parse a whole safetensors file held in memory. */
export function parseSafetensors(bytes: Uint8Array, opts: ParseOptions = {}): SafetensorsFile {
  const { entries, metadata, dataStart } = parseSafetensorsHeader(bytes, bytes.byteLength, opts);
  const data = bytes.subarray(dataStart);
  const tensors: StateDict = new Map();
  for (const e of entries) {
    const tensorData = typedFromBytes(e.dtype, data.subarray(e.begin, e.end), numel(e.shape), { copy: opts.copy });
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: tensorData } as RawTensor);
  }
  return { tensors, metadata };
}

/**
 * The safetensors file as a list of byte chunks: the length + header first, then each tensor's bytes (views of
 * the tensors' own memory, no copy). Writers stream these to disk so saving a 240 MB model needs no second
 * 240 MB buffer. The header is padded with spaces so the data starts 8-byte aligned, as the reference writer
 * does, which lets readers view F64/I64 data in place.
 */
export function serializeSafetensorsChunks(tensors: StateDict, metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`safetensors metadata '${k}' must be a string, got ${typeof v}`);
    }
    header['__metadata__'] = metadata;
  }
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new TypeError(`a tensor cannot be named '__metadata__'`);
    if (!isDType(t.dtype)) throw new TypeError(`tensor '${name}': unknown dtype ${String(t.dtype)}`);
    const n = numel(t.shape);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || n !== t.data.length) {
      throw new RangeError(`tensor '${name}': shape [${t.shape.join(', ')}] needs ${n} values, data has ${t.data.length}`);
    }
    if (t.data.BYTES_PER_ELEMENT !== DTYPE_SIZE[t.dtype]) {
      throw new TypeError(`tensor '${name}': ${t.dtype} needs ${DTYPE_SIZE[t.dtype]}-byte elements, data has ${t.data.BYTES_PER_ELEMENT}`);
    }
    const b = bytesOf(t.data);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + b.byteLength] };
    if (b.byteLength) parts.push(b);
    offset += b.byteLength;
  }
  let json = JSON.stringify(header);
  let headerBytes = new TextEncoder().encode(json);
  const pad = (8 - (headerBytes.byteLength % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    headerBytes = new TextEncoder().encode(json);
  }
  const head = new Uint8Array(8 + headerBytes.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  head.set(headerBytes, 8);
  return [head, ...parts];
}

/** Serialise tensors (in the Map's order) and optional string metadata into one safetensors file. */
export function serializeSafetensors(tensors: StateDict, metadata?: Record<string, string>): Uint8Array {
  const chunks = serializeSafetensorsChunks(tensors, metadata);
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}
