/**
 * Radiograph image I/O for every stage that reads pixels: checking a file is a usable image (`checkImage`),
 * decoding PNG/JPEG (8 or 16 bit, grey, grey+alpha, RGB, RGBA) into a greyscale Float32Array in [0, 1]
 * (`decodeGrey`), and turning it into the model input (`preprocessImage`, `preprocessGrey`).
 *
 * Decoding uses `sharp` (libvips) and only runs in Node. The pure-array half (`preprocessGrey`, `resizeGrey`,
 * `greyWarnings`, the `Preprocessing` description and its default) lives in ./preprocess.ts, which has no Node
 * imports so the browser app can import it directly; it is re-exported here for Node callers.
 *
 * This module knows nothing of models: it produces plain Float32Arrays; the trainer wraps them in tensors.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { DEFAULT_PREPROCESSING, greyWarnings, preprocessGrey, samplesToGrey, type Preprocessing } from './preprocess.js';
import sharp, { type Metadata, type OutputInfo, type Sharp, type Stats } from 'sharp';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/**
 * The largest image (width x height, in pixels) we decode. MURA radiographs are at most 512 px on a side and
 * full-resolution clinical exports rarely exceed ~4300 x 3500 (15 Mpx); 100 Mpx leaves a wide margin while
 * bounding the decode buffer (100 Mpx x 4 bytes per float = 400 MB). Larger files are refused from their header,
 * before any pixel is decoded, so a hostile or mislabelled 30000 x 30000 file cannot exhaust memory.
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

/** Formats we decode. Others (GIF, WebP, SVG, ...) are refused with a message that says what the file is. */
export const SUPPORTED_FORMATS = ['png', 'jpeg'] as const;

export type CheckImageResult =
  | {
      ok: true;
      width: number;
      height: number;
      /** Channels stored in the file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. */
      channels: number;
      /** Bits per sample stored in the file (1, 2, 4, 8 or 16 for PNG; 8 for JPEG). */
      bitDepth: number;
      /** Things that decode fine but are probably not what the user meant (e.g. every pixel the same value). */
      warnings?: string[];
    }
  | { ok: false; problem: string };

/** An image that could not be used, with the file named and the reason in plain words. */
export class ImageError extends NextrayError {
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`, { code: 'ERR_IMAGE', exitStatus: EXIT_USAGE });
    this.name = 'ImageError';
    this.file = file;
    this.problem = problem;
  }
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (default MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

/** A decoded greyscale image: `data[y * width + x]` in [0, 1] (8-bit /255, 16-bit /65535). */
export interface GreyImage {
  data: Float32Array;
  width: number;
  height: number;
  /** Bits per sample of the decoded samples (8 or 16; 1/2/4-bit PNGs are expanded to 8 by the decoder). */
  bitDepth: number;
  /** Channels stored in the file. */
  channels: number;
}

type Input = string | Uint8Array;

function describeInput(input: Input): string {
  return typeof input === 'string' ? input : `<buffer of ${input.byteLength} bytes>`;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

async function readHead(input: Input, n: number): Promise<Uint8Array> {
  if (typeof input !== 'string') return input.subarray(0, n);
  const fh = await open(input, 'r');
  try {
    const buf = new Uint8Array(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Names what a file that libvips cannot read actually is, from its first bytes, so the message says what to fix. */
function sniffUnreadable(head: Uint8Array): string {
  const starts = (sig: number[]) => sig.every((b, i) => head[i] === b);
  if (starts(PNG_SIGNATURE)) return 'damaged PNG: the signature is there but the header is damaged or cut short';
  if (starts([0xff, 0xd8, 0xff])) return 'damaged JPEG: the signature is there but the header is damaged or cut short';
  if (head.length >= 132 && String.fromCharCode(...head.subarray(128, 132)) === 'DICM')
    return 'DICOM file, not a PNG or JPEG; export it to PNG first';
  const text = head.subarray(0, 64);
  const printable = text.length > 0 && text.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  if (printable) return 'not an image: the file contains text, not PNG or JPEG data';
  return 'not an image: the file is neither PNG nor JPEG data';
}

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Where a PNG or JPEG whose header reads fine goes wrong, found from its bytes (chunk lengths and CRCs for PNG, the
 * end-of-image marker for JPEG). The decoder's own words cannot be used: libvips keeps one error buffer for the
 * whole process, so when two decodes fail at once (decode worker threads, libuv's pool) one may read the other's
 * message, both messages, or none ("Unknown error"). This answer depends on the file alone.
 */
export function whereDamaged(bytes: Uint8Array): string {
  const at = (i: number): number => ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    let off = 8;
    while (off + 8 <= bytes.length) {
      const len = at(off);
      const type = String.fromCharCode(...bytes.subarray(off + 4, off + 8));
      if (off + 12 + len > bytes.length) return `cut short: the file ends inside its ${type} chunk (${bytes.length} bytes, the chunk needs ${off + 12 + len})`;
      if (crc32(bytes, off + 4, off + 8 + len) !== at(off + 8 + len)) return `the ${type} chunk at byte ${off} is damaged (checksum mismatch)`;
      if (type === 'IEND') return 'the compressed pixel data is damaged';
      off += 12 + len;
    }
    return `cut short: no IEND chunk after ${bytes.length} bytes`;
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    const n = bytes.length;
    const hasEnd = n >= 2 && bytes[n - 2] === 0xff && bytes[n - 1] === 0xd9;
    return hasEnd ? 'the compressed pixel data is damaged' : `cut short: no end-of-image marker after ${n} bytes`;
  }
  return 'the pixel data is damaged';
}

/**
 * Turns a pixel-decoding failure into what a user can act on. It is only called after the header was read
 * successfully, so the file's pixel data is cut short or damaged; where, comes from the file (whereDamaged), never
 * from libvips' message, which is not stable under concurrent decodes.
 */
async function explainDecodeError(input: Input): Promise<string> {
  let detail: string;
  try {
    detail = whereDamaged(typeof input === 'string' ? new Uint8Array(await readFile(input)) : input);
  } catch {
    detail = 'the pixel data is damaged';
  }
  return `truncated or corrupt image: the header is readable but the pixel data is not (${detail})`;
}

interface Header {
  format: string;
  width: number;
  height: number;
  channels: number;
  bitDepth: number;
  is16: boolean;
}

/**
 * Reads the header only and decides whether the file may be decoded. Returns the problem in words, or the
 * header. Never decodes pixel data, so it is safe on huge files.
 */
async function inspect(input: Input, maxPixels: number): Promise<{ problem: string } | Header> {
  if (typeof input === 'string') {
    let st;
    try {
      st = await stat(input);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { problem: 'file not found' };
      if (code === 'EACCES') return { problem: 'permission denied: cannot read the file' };
      return { problem: `file cannot be read: ${(err as Error).message}` };
    }
    if (st.isDirectory()) return { problem: 'this is a folder, not an image file' };
    if (st.size === 0) return { problem: 'empty file (0 bytes); it was probably not copied completely' };
  } else if (input.byteLength === 0) {
    return { problem: 'empty image data (0 bytes)' };
  }
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch {
    return { problem: sniffUnreadable(await readHead(input, 132)) };
  }
  const format = String(meta.format ?? 'unknown');
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(format))
    return { problem: `unsupported format: this is a ${format.toUpperCase()} image; only PNG and JPEG are supported` };
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (!(width > 0 && height > 0)) return { problem: `invalid image size in the header (${width} x ${height})` };
  if (width * height > maxPixels)
    return {
      problem:
        `image too large: ${width} x ${height} = ${(width * height / 1e6).toFixed(1)} Mpx exceeds the limit of ` +
        `${(maxPixels / 1e6).toFixed(1)} Mpx; downscale it first (MURA images are at most 512 px on a side)`,
    };
  const is16 = meta.depth === 'ushort';
  const bitDepth = meta.bitsPerSample ?? (is16 ? 16 : 8);
  return { format, width, height, channels: meta.channels ?? 1, bitDepth, is16 };
}

function sharpFor(input: Input, header: Header, maxPixels: number): Sharp {
  // failOn 'error': truncated or corrupt data fails, but libpng's harmless warnings (e.g. an sRGB profile it
  // calls "known incorrect", common in exported radiographs) do not reject an otherwise good image.
  // limitInputPixels is a second guard behind the header check above.
  const s = sharp(input, { failOn: 'error', limitInputPixels: maxPixels });
  // Keep the file's own sample layout: libvips would otherwise convert to 8-bit sRGB, losing 16-bit precision.
  const rgb = header.channels >= 3;
  // libvips' 8-bit 'b-w' drops an alpha channel (grey16 keeps it), so 8-bit grey+alpha goes through sRGB,
  // where its grey content stays exact (R = G = B = grey).
  const alpha = header.channels === 2 || header.channels === 4;
  const space = header.is16 ? (rgb ? 'rgb16' : 'grey16') : rgb || alpha ? 'srgb' : 'b-w';
  return s.toColourspace(space);
}

/**
 * Checks that a file is an image we can use: reads the header (refusing files above the pixel limit without
 * decoding them) and then decodes every pixel, so a truncated or corrupt file fails here rather than mid-training.
 * Never throws for a bad file; the problem comes back in words a user understands.
 */
export async function checkImage(path: string, options: DecodeOptions = {}): Promise<CheckImageResult> {
  const maxPixels = options.maxPixels ?? MAX_IMAGE_PIXELS;
  let header: Awaited<ReturnType<typeof inspect>>;
  try {
    header = await inspect(path, maxPixels);
  } catch (err) {
    return { ok: false, problem: `file cannot be read: ${(err as Error).message}` };
  }
  if ('problem' in header) return { ok: false, problem: header.problem };
  let stats: Stats;
  try {
    // stats() decodes the whole image in strips without keeping the pixels, so checking is cheap in memory.
    stats = await sharpFor(path, header, maxPixels).stats();
  } catch {
    return { ok: false, problem: await explainDecodeError(path) };
  }
  const warnings: string[] = [];
  const colour = stats.channels.slice(0, header.channels >= 3 ? 3 : 1);
  if (colour.every((c) => c.min === c.max && c.min === colour[0]!.min))
    warnings.push(`every pixel has the same value (${colour[0]!.min}); the image carries no information`);
  return {
    ok: true,
    width: header.width,
    height: header.height,
    channels: header.channels,
    bitDepth: header.bitDepth,
    ...(warnings.length ? { warnings } : {}),
  };
}

/**
 * Decodes a PNG or JPEG (path or bytes) to greyscale in [0, 1]. Colour images become grey by ITU-R BT.601 luma
 * (0.299 R + 0.587 G + 0.114 B, what PIL's convert('L') uses), which is exact for the usual RGB-with-grey-content
 * radiograph export. Alpha is composited over black (transparent = background). 16-bit samples keep their
 * precision (/65535). Throws ImageError naming the file.
 */
export async function decodeGrey(input: Input, options: DecodeOptions = {}): Promise<GreyImage> {
  const name = describeInput(input);
  const maxPixels = options.maxPixels ?? MAX_IMAGE_PIXELS;
  let header: Awaited<ReturnType<typeof inspect>>;
  try {
    header = await inspect(input, maxPixels);
  } catch (err) {
    throw new ImageError(name, `file cannot be read: ${(err as Error).message}`);
  }
  if ('problem' in header) throw new ImageError(name, header.problem);
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharpFor(input, header, maxPixels)
      .raw({ depth: header.is16 ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch {
    throw new ImageError(name, await explainDecodeError(input));
  }
  const { width, height, channels } = raw.info;
  const n = width * height;
  const samples: ArrayLike<number> = header.is16
    ? new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2)
    : raw.data;
  if (samples.length !== n * channels)
    throw new ImageError(name, `decoded to ${samples.length} samples, expected ${n * channels}`);
  const out = samplesToGrey(samples, n, channels, header.is16 ? 65535 : 255);
  return { data: out, width, height, bitDepth: header.is16 ? 16 : 8, channels: header.channels };
}

export * from './preprocess.js';

export interface PreprocessImageOptions extends DecodeOptions {
  /** Called with each warning about a suspicious input (e.g. all one value); the file name is included. */
  onWarning?: (message: string) => void;
}

/**
 * Decodes an image file (or its bytes) and turns it into model input as `preprocessing` describes:
 * size*size*3 floats, HWC, ImageNet-normalised. Throws ImageError naming the file when it cannot be used.
 */
export async function preprocessImage(
  pathOrBuffer: string | Uint8Array,
  preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
  options: PreprocessImageOptions = {},
): Promise<Float32Array> {
  const img = await decodeGrey(pathOrBuffer, options);
  if (options.onWarning)
    for (const w of greyWarnings(img.data, img.bitDepth)) options.onWarning(`${describeInput(pathOrBuffer)}: ${w}`);
  return preprocessGrey(img.data, img.width, img.height, preprocessing);
}
