/**
 * A small, careful ZIP reader for `torch.save` archives (and .npz): it trusts only the central directory (PyTorch
 * writes local headers with zero sizes and a data descriptor), supports ZIP64, and returns stored entries as views
 * into the archive bytes so a 240 MB ResNet-152 is never copied. Deflated entries are inflated with fflate.
 */
import { inflateSync } from 'fflate';
import { WeightFormatError } from './types.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's (compressed) data in the archive. */
  dataOffset: number;
}

export interface ZipArchive {
  entries: Map<string, ZipEntry>;
  /** The entry's bytes: a view for stored entries, a fresh array for deflated ones. */
  read(name: string): Uint8Array;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/** A ZIP64 size or offset; past 2^53 no file held in memory can have it, so the archive is damaged (`fail`). */
function u64(dv: DataView, off: number, fail: (msg: string) => never): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`ZIP64 field at byte ${off} holds ${v}, far past the end of the file: damaged`);
  return Number(v);
}

/** Index a ZIP archive held in memory. `source` names it in errors. */
export function openZip(bytes: Uint8Array, source = '<bytes>'): ZipArchive {
  const fail = (msg: string): never => {
    throw new WeightFormatError(source, `ZIP archive: ${msg}`);
  };
  const len = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes.
  let eocd = -1;
  for (let p = len - 22; p >= Math.max(0, len - 22 - 0xffff); p--) {
    if (dv.getUint32(p, true) === SIG_EOCD) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) fail('end of central directory not found (file truncated or not a ZIP)');
  let count = dv.getUint16(eocd + 10, true);
  let cdSize = dv.getUint32(eocd + 12, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || dv.getUint32(loc, true) !== SIG_ZIP64_LOCATOR) fail('ZIP64 locator missing');
    const z64 = u64(dv, loc + 8, fail);
    if (z64 + 56 > len || dv.getUint32(z64, true) !== SIG_ZIP64_EOCD) fail('ZIP64 end record missing or out of range');
    count = u64(dv, z64 + 32, fail);
    cdSize = u64(dv, z64 + 40, fail);
    cdOffset = u64(dv, z64 + 48, fail);
  }
  if (cdOffset + cdSize > len) fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end (${len} bytes): truncated`);

  const decoder = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > len || dv.getUint32(p, true) !== SIG_CENTRAL) fail(`central directory entry ${i} is damaged`);
    const method = dv.getUint16(p + 10, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localOffset = dv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen > len) fail(`central directory entry ${i} runs past the end`);
    const name = decoder.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: only the fields saturated in the fixed header are present, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = dv.getUint16(x, true);
      const sz = dv.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        if (size === 0xffffffff && q + 8 <= x + 4 + sz) (size = u64(dv, q, fail)), (q += 8);
        if (compressedSize === 0xffffffff && q + 8 <= x + 4 + sz) (compressedSize = u64(dv, q, fail)), (q += 8);
        if (localOffset === 0xffffffff && q + 8 <= x + 4 + sz) localOffset = u64(dv, q, fail);
      }
      x += 4 + sz;
    }
    if (localOffset + 30 > len || dv.getUint32(localOffset, true) !== SIG_LOCAL) fail(`local header of '${name}' is damaged`);
    const dataOffset = localOffset + 30 + dv.getUint16(localOffset + 26, true) + dv.getUint16(localOffset + 28, true);
    if (dataOffset + compressedSize > len) {
      fail(`entry '${name}' [${dataOffset}, ${dataOffset + compressedSize}) runs past the end (${len} bytes): truncated`);
    }
    entries.set(name, { name, method, compressedSize, size, dataOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }

  return {
    entries,
    read(name: string): Uint8Array {
      const e = entries.get(name);
      if (!e) return fail(`entry '${name}' not found`);
      const raw = bytes.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
      if (e.method === 0) {
        if (e.size !== e.compressedSize) fail(`stored entry '${name}' has size ${e.size} != ${e.compressedSize}`);
        return raw;
      }
      if (e.method === 8) {
        let out: Uint8Array;
        try {
          out = inflateSync(raw, { out: new Uint8Array(e.size) });
        } catch (err) {
          return fail(`entry '${name}' does not inflate: ${(err as Error).message}`);
        }
        if (out.byteLength !== e.size) fail(`entry '${name}' inflated to ${out.byteLength} bytes, expected ${e.size}`);
        return out;
      }
      return fail(`entry '${name}' uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
    },
  };
}
