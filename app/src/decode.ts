/**
 * Browser side of decoding: a dropped or picked file to a grey image in [0, 1], the same values the Node host gets
 * from sharp for 8-bit PNG/JPEG (the browser's decoder gives 8-bit RGBA; the grey rule is the shared
 * `samplesToGrey`). Colour management is turned off so the file's own sample values come through unchanged.
 */
import { samplesToGrey } from '../../src/data/preprocess.js';
import { DicomError, readDicom } from '../../src/data/dicom/index.js';

export interface DecodedImage {
  data: Float32Array;
  width: number;
  height: number;
  /** The image as the browser shows it (for drawing under the heatmap). */
  bitmap: ImageBitmap;
  /** DICOM Study Instance UID, when the file has one. */
  studyUid?: string;
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

export async function decodeRaster(file: Blob, name: string): Promise<DecodedImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new BrowserImageError(`${name}: truncated or corrupt image: the browser cannot decode it`);
  }
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) throw new BrowserImageError(`${name}: image too large (${width} x ${height})`);
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new BrowserImageError(`${name}: no 2D canvas in this browser`);
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
  return { data: samplesToGrey(rgba, width * height, 4, 255), width, height, bitmap, warnings: [] };
}

/**
 * DICOM through the library's reader (the PS3.3 C.11 display pipeline, the same code as Node). Uncompressed
 * transfer syntaxes only in the page: compressed ones need a frame decoder, which only the Node host supplies.
 */
export async function decodeDicom(file: File): Promise<DecodedImage> {
  let d;
  try {
    d = await readDicom(new Uint8Array(await file.arrayBuffer()), { source: file.name, maxPixels: MAX_PIXELS });
  } catch (err) {
    if (err instanceof DicomError) throw new BrowserImageError(err.message);
    throw err;
  }
  const rgba = new Uint8ClampedArray(d.width * d.height * 4);
  for (let i = 0; i < d.grey.length; i++) {
    const v = Math.round(d.grey[i]! * 255);
    rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = v;
    rgba[4 * i + 3] = 255;
  }
  const bitmap = await createImageBitmap(new ImageData(rgba, d.width, d.height));
  return { data: d.grey, width: d.width, height: d.height, bitmap, warnings: d.warnings, ...(d.studyInstanceUid ? { studyUid: d.studyInstanceUid } : {}) };
}
