/**
 * The page's PNG/JPEG decoder, handed to the facade's `load()` as `decodeImage` (DICOM files the facade reads itself,
 * with the page's frame codecs, codecs.ts): bytes to a grey image in [0, 1], the same values the Node host gets from
 * sharp for 8-bit PNG/JPEG (the browser's decoder gives 8-bit RGBA; the grey rule is the shared `samplesToGrey`).
 * Colour management is turned off so the file's own sample values come through unchanged. The kind of file is told
 * by its first bytes, not its name.
 */
import { errors, preprocessing, type DecodedImage, type ImageDecoder } from 'nextray/browser';

/** A file the page cannot use as an image; `problem` says why in words (the facade reports it per file). */
export class PageImageError extends errors.NextrayError {
  constructor(
    file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`, { code: 'ERR_IMAGE', exitStatus: errors.EXIT_USAGE });
    this.name = 'PageImageError';
  }
}

export type FileKind = 'png' | 'jpeg' | 'dicom' | 'unknown';

export function sniff(head: Uint8Array): FileKind {
  if (head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47) return 'png';
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 132 && String.fromCharCode(...head.subarray(128, 132)) === 'DICM') return 'dicom';
  return 'unknown';
}

/** Largest image decoded in the page (as the server's default). */
export const MAX_PIXELS = 50_000_000;

/** The warning a colour picture gets: radiographs are grey. */
export const COLOUR_WARNING = 'a colour picture: radiographs are grey, so this is unlikely to be one';

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

/** PNG or JPEG bytes through the browser's decoder (a canvas), as the facade's `decodeImage`. */
export const decodeImage: ImageDecoder = async (bytes, name, opts) => {
  if (bytes.length === 0) throw new PageImageError(name, 'empty file (0 bytes)');
  const kind = sniff(bytes.subarray(0, 132));
  if (kind !== 'png' && kind !== 'jpeg') throw new PageImageError(name, 'not an image: the file is neither PNG, JPEG nor DICOM data');
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as Uint8Array<ArrayBuffer>]), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new PageImageError(name, 'truncated or corrupt image: the browser cannot decode it');
  }
  const { width, height } = bitmap;
  if (width * height > (opts.maxPixels ?? MAX_PIXELS)) {
    bitmap.close();
    throw new PageImageError(name, `image too large (${width} x ${height})`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new PageImageError(name, 'no 2D canvas in this browser');
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
  const n = width * height;
  const grey = preprocessing.samplesToGrey(rgba, n, 4, 255);
  const image: DecodedImage = { grey, width, height, format: kind, warnings: preprocessing.greyWarnings(grey, 8), colour: isColour(rgba, n) };
  return image;
};
