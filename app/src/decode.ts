/**
 * Browser side of decoding: a dropped or picked file to a grey image in [0, 1], the same values the Node host gets
 * from sharp for 8-bit PNG/JPEG (the browser's decoder gives 8-bit RGBA; the grey rule is the shared
 * `samplesToGrey`). Colour management is turned off so the file's own sample values come through unchanged.
 */
import { samplesToGrey } from '../../src/data/preprocess.js';
import { DicomError, readDicom } from '../../src/data/dicom/index.js';
import { pageDecoders } from './codecs.js';
import { dicomIdentity, type ViewIdentity } from './identity.js';

export interface DecodedImage {
  /** Grey values in [0, 1], row-major (for a DICOM file: after its display pipeline). */
  data: Float32Array;
  width: number;
  height: number;
  format: 'png' | 'jpeg' | 'dicom';
  /** Whether the picture is in colour (a photograph, a screenshot): radiographs are grey. */
  colour: boolean;
  identity: ViewIdentity;
  warnings: string[];
}

export class BrowserImageError extends Error {}

export type FileKind = 'png' | 'jpeg' | 'dicom' | 'unknown';

export function sniff(head: Uint8Array): FileKind {
  if (head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47) return 'png';
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 132 && String.fromCharCode(...head.subarray(128, 132)) === 'DICM') return 'dicom';
  return 'unknown';
}

/** Largest image decoded in the page (as the server's default). */
export const MAX_PIXELS = 50_000_000;

/**
 * Whether RGBA pixels are a colour picture: more than 2% of the pixels have channels more than 24 levels apart
 * (a grey radiograph saved as RGB JPEG keeps its channels within a few levels of each other).
 */
export function isColour(rgba: Uint8ClampedArray | Uint8Array, n: number): boolean {
  let coloured = 0;
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const r = rgba[o]!;
    const g = rgba[o + 1]!;
    const b = rgba[o + 2]!;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 24) coloured++;
  }
  return coloured > 0.02 * n;
}

export async function decodeRaster(file: Blob, name: string, format: 'png' | 'jpeg'): Promise<DecodedImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new BrowserImageError(`${name}: truncated or corrupt image: the browser cannot decode it`);
  }
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) {
    bitmap.close();
    throw new BrowserImageError(`${name}: image too large (${width} x ${height})`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new BrowserImageError(`${name}: no 2D canvas in this browser`);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
  const n = width * height;
  return { data: samplesToGrey(rgba, n, 4, 255), width, height, format, colour: isColour(rgba, n), identity: {}, warnings: [] };
}

/**
 * DICOM through the library's reader (the PS3.3 C.11 display pipeline, the same code as Node), with the page's frame
 * decoders for compressed transfer syntaxes (codecs.ts: RLE, JPEG lossless, JPEG-LS, JPEG baseline, JPEG 2000).
 */
export async function decodeDicom(file: File): Promise<DecodedImage> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let d;
  try {
    d = await readDicom(bytes, { source: file.name, maxPixels: MAX_PIXELS, decoders: pageDecoders() });
  } catch (err) {
    if (err instanceof DicomError) throw new BrowserImageError(err.message);
    throw err;
  }
  const identity = dicomIdentity(bytes);
  if (!identity.studyUid && d.studyInstanceUid) identity.studyUid = d.studyInstanceUid;
  if (!identity.bodyPart && d.bodyPart) identity.bodyPart = d.bodyPart;
  const colour = !/^MONOCHROME/.test(d.photometric);
  return { data: d.grey, width: d.width, height: d.height, format: 'dicom', colour, identity, warnings: d.warnings };
}

/** Reads one file: PNG, JPEG or DICOM by its first bytes (not its name). Throws BrowserImageError naming the file. */
export async function decodeFile(file: File): Promise<DecodedImage> {
  if (file.size === 0) throw new BrowserImageError(`${file.name}: empty file (0 bytes)`);
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  const kind = sniff(head);
  if (kind === 'unknown') throw new BrowserImageError(`${file.name}: not an image: the file is neither PNG, JPEG nor DICOM data`);
  return kind === 'dicom' ? decodeDicom(file) : decodeRaster(file, file.name, kind);
}
