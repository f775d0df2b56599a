/**
 * The WebAssembly codecs of the cornerstone family — CharLS (JPEG-LS), libjpeg-turbo (8-bit JPEG baseline) and
 * OpenJPEG (JPEG 2000) — behind the DicomFrameDecoder contract. Browser-safe: this module never loads a codec
 * itself. Each codec package ships an Emscripten module factory (`<pkg>/decodewasmjs`) and its wasm binary
 * (`<pkg>/decodewasm`); the host hands both in through `CodecModuleLoaders`, and `loadEmscriptenCodec` starts the
 * module from the binary's bytes (Emscripten's `wasmBinary`), so Node and the page start the same wasm the same
 * way and neither reaches for the file system or the network on its own:
 *
 *   Node (src/data/dicom/node-codecs.ts): createRequire(...)('<pkg>/decodewasmjs') + readFile(require.resolve('<pkg>/decodewasm'))
 *   page (Vite):  import factory from '<pkg>/decodewasmjs'; import url from '<pkg>/decodewasm?url';
 *                 () => fetch(url).then((r) => r.arrayBuffer()).then((b) => loadEmscriptenCodec(factory, b))
 *
 * Modules start on first use, once each.
 */
import { TS } from '../transfer-syntax.js';
import { readJpegFrameHeader, sofName } from './jpeg-header.js';
import { decodeJpeg12 } from './jpeg12.js';
import { checkSize, CodecError, interleavePlanes, type DicomFrameDecoder } from './types.js';

/** What the codecs' embind decoders have in common. */
interface EmbindDecoder {
  getEncodedBuffer(n: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  delete(): void;
}

export interface CharLSModule {
  JpegLSDecoder: new () => EmbindDecoder & { getInterleaveMode(): number; getNearLossless(): number };
}
export interface LibJpegTurboModule {
  JPEGDecoder: new () => EmbindDecoder;
}
export interface OpenJpegModule {
  J2KDecoder: new () => EmbindDecoder;
}

/** An Emscripten MODULARIZE factory, as the codec packages export it. */
export type EmscriptenFactory<M> = (options: Record<string, unknown>) => Promise<M>;

/** Starts an Emscripten module from its wasm bytes, its log lines silenced (they would land in predict's CSV). */
export function loadEmscriptenCodec<M>(factory: EmscriptenFactory<M>, wasmBinary: ArrayBuffer | Uint8Array): Promise<M> {
  return factory({ wasmBinary, print: () => {}, printErr: () => {} });
}

/** How the host starts each wasm codec; a codec without a loader is simply not offered. */
export interface CodecModuleLoaders {
  charls?: () => Promise<CharLSModule>;
  libjpegTurbo?: () => Promise<LibJpegTurboModule>;
  openjpeg?: () => Promise<OpenJpegModule>;
}

function once<M>(load: () => Promise<M>): () => Promise<M> {
  let p: Promise<M> | null = null;
  return () => {
    p ??= load().catch((err: unknown) => {
      p = null; // a failed start (e.g. a page offline) may be retried
      throw err;
    });
    return p;
  };
}

/** Runs one embind decoder over a frame; copies the result out of the wasm heap and frees the decoder. */
function run<D extends EmbindDecoder, R>(d: D, frame: Uint8Array, after: (d: D, out: Uint8Array) => R): R {
  try {
    d.getEncodedBuffer(frame.length).set(frame);
    d.decode();
    return after(d, d.getDecodedBuffer().slice());
  } finally {
    d.delete();
  }
}

function typed(out: Uint8Array, bits: number, signed: boolean): Uint8Array | Uint16Array | Int16Array {
  if (bits <= 8) return out;
  return signed ? new Int16Array(out.buffer, out.byteOffset, out.byteLength >> 1) : new Uint16Array(out.buffer, out.byteOffset, out.byteLength >> 1);
}

/** JPEG-LS lossless and near-lossless (CharLS). Samples come back by plane when the scan is not interleaved. */
export function charlsFrameDecoder(load: () => Promise<CharLSModule>): DicomFrameDecoder {
  const module = once(load);
  return {
    name: '@cornerstonejs/codec-charls 1.2.7 (CharLS)',
    transferSyntaxes: [TS.jpegLsLossless, TS.jpegLsNearLossless],
    async decode(frame, info) {
      const m = await module();
      return run(new m.JpegLSDecoder(), frame, (d, out) => {
        const fi = d.getFrameInfo();
        checkSize('JPEG-LS', fi.width, fi.height, info);
        const samples = typed(out, fi.bitsPerSample, false);
        // Interleave mode 0 (none): one scan per component, so the output is plane after plane.
        const planar = fi.componentCount > 1 && d.getInterleaveMode() === 0;
        return { samples: planar ? interleavePlanes(samples, fi.width * fi.height, fi.componentCount) : samples, samplesPerPixel: fi.componentCount };
      });
    },
  };
}

/**
 * A colour JPEG's colour space as the DICOM header says it, written into the stream for libjpeg: an Adobe APP14
 * marker with transform 0 (RGB, no conversion) for Photometric Interpretation RGB, 1 (YCbCr) for YBR_*, replacing
 * any JFIF APP0 or Adobe APP14 marker before the frame header. Without it libjpeg guesses from the component IDs
 * (1, 2, 3 or 0, 1, 2 read as YCbCr) and converts RGB samples that were never transformed — dcmtk and gdcm follow
 * the header too (T.81 itself leaves the colour space to the application; PS3.5 8.2.1 puts it in the header).
 */
export function withColourSpaceMarker(frame: Uint8Array, rgb: boolean): Uint8Array {
  const keep: Uint8Array[] = [frame.subarray(0, 2)];
  let i = 2;
  while (i + 4 <= frame.length && frame[i] === 0xff) {
    const marker = frame[i + 1]!;
    if (marker === 0xd8 || (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xda) break;
    const length = (frame[i + 2]! << 8) | frame[i + 3]!;
    const id = String.fromCharCode(...frame.subarray(i + 4, i + 9));
    const drop = (marker === 0xe0 && id.startsWith('JFIF')) || (marker === 0xee && id.startsWith('Adobe'));
    if (!drop) keep.push(frame.subarray(i, i + 2 + length));
    i += 2 + length;
  }
  // APP14, length 14: 'Adobe', version 100, flags0 0, flags1 0, transform.
  const app14 = Uint8Array.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, rgb ? 0 : 1]);
  const parts = [keep[0]!, app14, ...keep.slice(1), frame.subarray(i)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** 8-bit JPEG baseline (libjpeg-turbo; YCbCr frames come back as RGB). */
export function libjpegTurboFrameDecoder(load: () => Promise<LibJpegTurboModule>): DicomFrameDecoder {
  const module = once(load);
  return {
    name: '@cornerstonejs/codec-libjpeg-turbo-8bit 1.2.8 (libjpeg-turbo)',
    transferSyntaxes: [TS.jpegBaseline, TS.jpegExtended],
    async decode(frame, info) {
      const h = readJpegFrameHeader(frame);
      if (!h) throw new CodecError('the frame is not a JPEG codestream (no SOI and frame header)');
      if (h.precision === 12 && h.components === 1 && (h.sof === 0xc0 || h.sof === 0xc1)) {
        // libjpeg-turbo's wasm build is 8-bit only: 12-bit grey frames go through our IJG-exact decoder (./jpeg12.ts).
        const d = decodeJpeg12(frame);
        checkSize('JPEG', d.width, d.height, info);
        return { samples: d.samples, samplesPerPixel: 1 };
      }
      if (h.precision !== 8) throw new CodecError(`${h.precision}-bit JPEG (${sofName(h.sof)}${h.components !== 1 ? `, ${h.components} components` : ''}) is not supported: libjpeg-turbo's wasm build decodes 8-bit samples only, and neXt-Ray's own 12-bit decoder one grey component of sequential Huffman JPEG; convert the file first, e.g. 'dcmdjpeg in.dcm out.dcm'`);
      const m = await module();
      const stream = h.components === 3 ? withColourSpaceMarker(frame, info.photometric === 'RGB') : frame;
      return run(new m.JPEGDecoder(), stream, (d, out) => {
        const fi = d.getFrameInfo();
        checkSize('JPEG', fi.width, fi.height, info);
        return { samples: out, samplesPerPixel: fi.componentCount };
      });
    },
  };
}

/** JPEG 2000, lossless and lossy (OpenJPEG), raw codestreams or JP2 files. */
export function openJpegFrameDecoder(load: () => Promise<OpenJpegModule>): DicomFrameDecoder {
  const module = once(load);
  return {
    name: '@cornerstonejs/codec-openjpeg 1.3.6 (OpenJPEG)',
    transferSyntaxes: [TS.jpeg2000Lossless, TS.jpeg2000],
    async decode(frame, info) {
      const m = await module();
      return run(new m.J2KDecoder(), frame, (d, out) => {
        const fi = d.getFrameInfo();
        checkSize('JPEG 2000', fi.width, fi.height, info);
        return { samples: typed(out, fi.bitsPerSample, !!fi.isSigned), samplesPerPixel: fi.componentCount };
      });
    },
  };
}
