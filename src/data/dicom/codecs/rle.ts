/**
 * RLE Lossless (1.2.840.10008.1.2.5), written here against DICOM PS3.5 Annex G rather than taken from a package:
 * the format is a 64-byte header and PackBits segments (about 60 lines), and the npm packages that decode it are
 * either part of a viewer bundle (@cornerstonejs/dicom-image-loader, with comlink, pako, uuid and five wasm codecs)
 * or a single-maintainer package without a release in years (dicom-rle). Verified against dcmtk's `dcmdrle`,
 * gdcm and pydicom's own RLE files in test/data/dicom-codecs.test.ts. Browser-safe, pure TypeScript.
 *
 * G.3: the header is 16 little-endian uint32 — the number of segments (1-15), then each segment's byte offset
 * from the start of the header (unused ones 0). G.2: segment k holds byte (k mod B) of sample (k div B), most
 * significant byte first, B = Bits Allocated / 8; each segment is one byte per pixel. G.3.1 (PackBits): a header
 * byte n in 0..127 copies the next n + 1 bytes, -127..-1 repeats the next byte 1 - n times, -128 does nothing.
 */
import { CodecError, type DecodedFrame, type DicomFrameDecoder, type DicomFrameInfo } from './types.js';
import { TS } from '../transfer-syntax.js';

/** Decodes one PackBits segment into exactly `out.length` bytes; throws if it runs short. */
function unpackSegment(src: Uint8Array, start: number, end: number, out: Uint8Array): void {
  let i = start;
  let o = 0;
  const n = out.length;
  while (o < n && i < end) {
    const h = src[i++]!;
    if (h < 128) {
      const count = h + 1;
      if (i + count > end) throw new CodecError('an RLE literal run goes past the end of its segment');
      const take = Math.min(count, n - o);
      out.set(src.subarray(i, i + take), o);
      o += take;
      i += count;
    } else if (h > 128) {
      const count = 257 - h;
      if (i >= end) throw new CodecError('an RLE replicate run goes past the end of its segment');
      const v = src[i++]!;
      const take = Math.min(count, n - o);
      out.fill(v, o, o + take);
      o += take;
    }
    // h === 128 (-128): no operation.
  }
  if (o < n) throw new CodecError(`an RLE segment decodes to ${o} bytes, ${n} expected (truncated data)`);
}

/** One RLE frame -> samples, pixel-interleaved. */
export function decodeRle(frame: Uint8Array, info: Pick<DicomFrameInfo, 'rows' | 'columns' | 'bitsAllocated' | 'samplesPerPixel'>): DecodedFrame {
  const { rows, columns, bitsAllocated, samplesPerPixel: spp } = info;
  if (bitsAllocated !== 8 && bitsAllocated !== 16) throw new CodecError(`RLE with Bits Allocated ${bitsAllocated} is not supported (8 or 16)`);
  if (frame.length < 64) throw new CodecError(`the RLE frame is ${frame.length} bytes, shorter than its 64-byte header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  const bytesPerSample = bitsAllocated / 8;
  if (segments !== spp * bytesPerSample) {
    throw new CodecError(`the RLE header has ${segments} segments, ${spp * bytesPerSample} expected for ${spp} sample(s) of ${bitsAllocated} bits`);
  }
  const pixels = rows * columns;
  const offsets: number[] = [];
  for (let k = 0; k < segments; k++) offsets.push(view.getUint32(4 + 4 * k, true));
  for (let k = 0; k < segments; k++) {
    const lo = offsets[k]!;
    const hi = k + 1 < segments ? offsets[k + 1]! : frame.length;
    if (lo < 64 || lo > frame.length || hi < lo) throw new CodecError(`RLE segment ${k + 1} has an invalid offset ${lo}`);
  }
  const plane = new Uint8Array(pixels);
  const out = bitsAllocated === 8 ? new Uint8Array(pixels * spp) : new Uint16Array(pixels * spp);
  for (let k = 0; k < segments; k++) {
    const sample = Math.floor(k / bytesPerSample);
    const shift = 8 * (bytesPerSample - 1 - (k % bytesPerSample));
    unpackSegment(frame, offsets[k]!, k + 1 < segments ? offsets[k + 1]! : frame.length, plane);
    for (let i = 0; i < pixels; i++) out[i * spp + sample] |= plane[i]! << shift;
  }
  return { samples: out, samplesPerPixel: spp };
}

export const rleFrameDecoder: DicomFrameDecoder = {
  name: 'RLE (PS3.5 Annex G, in neXt-Ray)',
  transferSyntaxes: [TS.rle],
  async decode(frame, info) {
    return decodeRle(frame, info);
  },
};
