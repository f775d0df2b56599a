/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib, PNG and gzip) over byte ranges: the per-record checksum of the feature
 * cache, which finds a record torn by a kill, a full disk or a power cut. zlib's native crc32 where Node has it
 * (20.15+), else a table-driven JavaScript loop giving the same values.
 */
import * as zlib from 'node:zlib';

const native = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

let table: Uint32Array | null = null;

function crcTable(): Uint32Array {
  if (table) return table;
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  table = t;
  return t;
}

/** The JavaScript implementation (exported for the test that checks it against zlib's). */
export function crc32Js(data: Uint8Array): number {
  const t = crcTable();
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC-32 of `data` as an unsigned 32-bit number. */
export function crc32(data: Uint8Array): number {
  return native ? native(data) >>> 0 : crc32Js(data);
}

/** Whether Node's native zlib.crc32 is in use. */
export const nativeCrc32 = typeof native === 'function';
