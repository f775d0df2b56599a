/**
 * Test fixtures for the image tests: a minimal PNG encoder written from the PNG specification (signature,
 * IHDR, one zlib IDAT with filter type 0, IEND), independent of sharp, so the pixels a test defines are exactly
 * the pixels in the file. Also builds the bad files (header-only huge PNG, truncated PNG) the tests need.
 */
import { deflateSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** PNG colour types: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA. */
export type PngColourType = 0 | 2 | 4 | 6;
const CHANNELS: Record<PngColourType, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

function ihdr(width: number, height: number, bitDepth: number, colourType: number): Buffer {
  const h = Buffer.alloc(13);
  h.writeUInt32BE(width, 0);
  h.writeUInt32BE(height, 4);
  h[8] = bitDepth;
  h[9] = colourType;
  h[10] = 0; // deflate
  h[11] = 0; // adaptive filtering
  h[12] = 0; // no interlace
  return chunk('IHDR', h);
}

/**
 * Encodes samples (row-major, interleaved channels; integers 0..255 or 0..65535) as a PNG.
 */
export function encodePng(
  samples: ArrayLike<number>,
  width: number,
  height: number,
  opts: { bitDepth?: 8 | 16; colourType?: PngColourType } = {},
): Buffer {
  const bitDepth = opts.bitDepth ?? 8;
  const colourType = opts.colourType ?? 0;
  const ch = CHANNELS[colourType];
  if (samples.length !== width * height * ch) throw new Error(`encodePng: ${samples.length} samples for ${width}x${height}x${ch}`);
  const bps = bitDepth / 8;
  const rowBytes = 1 + width * ch * bps;
  const raw = Buffer.alloc(rowBytes * height);
  for (let y = 0; y < height; y++) {
    raw[y * rowBytes] = 0; // filter: none
    for (let i = 0; i < width * ch; i++) {
      const v = samples[y * width * ch + i] as number;
      const off = y * rowBytes + 1 + i * bps;
      if (bps === 2) raw.writeUInt16BE(v, off);
      else raw[off] = v;
    }
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    ihdr(width, height, bitDepth, colourType),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

export function writePng(path: string, ...args: Parameters<typeof encodePng>): string {
  writeFileSync(path, encodePng(...args));
  return path;
}

/**
 * A PNG whose header claims width x height but which carries only a tiny IDAT: a decoder that trusted the
 * header would try to allocate the full image. Nothing of that size is allocated here.
 */
export function hugeHeaderPng(width: number, height: number): Buffer {
  return Buffer.concat([
    PNG_SIGNATURE,
    ihdr(width, height, 8, 0),
    chunk('IDAT', deflateSync(Buffer.alloc(64))),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** A valid PNG cut short in its IDAT chunk. */
export function truncatedPng(): Buffer {
  const w = 64;
  const h = 64;
  const px = new Uint8Array(w * h);
  // Noise-like content so the compressed IDAT is long enough to cut in the middle.
  let s = 12345;
  for (let i = 0; i < px.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    px[i] = s >>> 24;
  }
  const full = encodePng(px, w, h);
  return full.subarray(0, Math.floor(full.length * 0.6));
}
