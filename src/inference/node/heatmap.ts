/**
 * Heatmap files in Node: `<stem>.png` (the class activation map in viridis over the greyscale radiograph at its
 * original size and aspect, letterbox undone, with a colour-bar legend) and `<stem>.cam.npy` (float32, the model's
 * input resolution, ReLU'd, divided by its maximum). The arithmetic is the browser-safe core's
 * (src/inference/core/cam.ts, colormap.ts); only PNG encoding (sharp, which renders the legend's SVG) and the
 * atomic file writes live here.
 */
import sharp from 'sharp';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { decodeGrey } from '../../data/images.js';
import { isDicom, readDicom } from '../../data/dicom/index.js';
import { nodeFrameDecoders } from '../../data/dicom/node-codecs.js';
import { resizeGrey, type Preprocessing } from '../../data/preprocess.js';
import { camAtInput, camOnImage } from '../core/cam.js';
import { VIRIDIS, overlayHeatmap, type OverlayOptions } from '../core/colormap.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { writeNpyFile } from '../../models/weights/files.js';

export interface HeatmapInput {
  /** The decoded grey image at its original size, values in [0, 1]. */
  grey: Float32Array;
  width: number;
  height: number;
  /** The raw map over the model's input grid, row-major camH x camW (the ONNX `cam` output or TF.js CAM). */
  cam: Float32Array;
  camH: number;
  camW: number;
  preprocessing: Pick<Preprocessing, 'size' | 'resize'>;
  /** Printed beside the legend, e.g. 'P(abnormal) 0.87'. */
  caption?: string;
}

/** An SVG colour bar (viridis, low at the bottom) with labels, sized for an image of the given size. */
function legendSvg(width: number, height: number, caption: string | undefined): { svg: Buffer; left: number; top: number } {
  const font = Math.max(7, Math.round(Math.min(width, height) * 0.045));
  const barH = Math.max(24, Math.round(height * 0.25));
  const barW = Math.max(5, Math.round(font * 0.8));
  const pad = Math.max(2, Math.round(font * 0.4));
  const textW = (t: string): number => Math.ceil(t.length * font * 0.62);
  const boxW = Math.min(width, Math.max(pad * 3 + barW + textW('max'), pad * 2 + textW('CAM'), caption ? pad * 2 + textW(caption) : 0));
  const boxH = Math.min(height, barH + pad * 2 + font * 1.2 + (caption ? font * 1.3 : 0));
  const stops: string[] = [];
  for (let i = 0; i <= 10; i++) {
    const k = Math.min(255, Math.round(i * 25.5));
    stops.push(`<stop offset="${i / 10}" stop-color="rgb(${VIRIDIS[3 * k]},${VIRIDIS[3 * k + 1]},${VIRIDIS[3 * k + 2]})"/>`);
  }
  const x0 = pad;
  const y0 = pad + font * 1.1;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${boxW}" height="${boxH}">` +
    `<defs><linearGradient id="g" x1="0" y1="1" x2="0" y2="0">${stops.join('')}</linearGradient></defs>` +
    `<rect width="${boxW}" height="${boxH}" fill="black" fill-opacity="0.6"/>` +
    `<text x="${x0}" y="${pad + font * 0.8}" font-family="sans-serif" font-size="${font}" fill="white">CAM</text>` +
    `<rect x="${x0}" y="${y0}" width="${barW}" height="${barH}" fill="url(#g)" stroke="white" stroke-width="1"/>` +
    `<text x="${x0 + barW + pad}" y="${y0 + font * 0.8}" font-family="sans-serif" font-size="${font}" fill="white">max</text>` +
    `<text x="${x0 + barW + pad}" y="${y0 + barH}" font-family="sans-serif" font-size="${font}" fill="white">0</text>` +
    (caption ? `<text x="${x0}" y="${y0 + barH + font * 1.1}" font-family="sans-serif" font-size="${font}" fill="white">${caption.replace(/[<>&"]/g, '')}</text>` : '') +
    `</svg>`;
  return { svg: Buffer.from(svg), left: Math.max(0, width - boxW), top: 0 };
}

/**
 * The overlay PNG (original size; with `maxSide`, scaled down so its longest side is at most that, the grey image
 * resized with the project's antialiased resize) as bytes.
 */
export async function heatmapPng(input: HeatmapInput, opts: OverlayOptions & { legend?: boolean; maxSide?: number } = {}): Promise<Buffer> {
  if (opts.maxSide !== undefined) {
    const scale = Math.min(1, opts.maxSide / Math.max(input.width, input.height));
    const w = Math.max(1, Math.round(input.width * scale));
    const h = Math.max(1, Math.round(input.height * scale));
    const { maxSide: _maxSide, ...rest } = opts;
    return heatmapPng({ ...input, grey: resizeGrey(input.grey, input.width, input.height, w, h), width: w, height: h }, rest);
  }
  const map = camOnImage(input.cam, input.camH, input.camW, input.width, input.height, input.preprocessing);
  const rgba = overlayHeatmap(input.grey, map, input.width, input.height, opts);
  let img = sharp(Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength), { raw: { width: input.width, height: input.height, channels: 4 } });
  if (opts.legend ?? true) {
    const lg = legendSvg(input.width, input.height, input.caption);
    img = sharp(await img.png().toBuffer()).composite([{ input: lg.svg, left: lg.left, top: lg.top }]);
  }
  return img.png().toBuffer();
}

/** Writes DIR/<stem>.png and DIR/<stem>.cam.npy (atomically); returns both paths. */
export async function writeHeatmap(dir: string, stem: string, input: HeatmapInput, opts: OverlayOptions = {}): Promise<{ png: string; npy: string }> {
  mkdirSync(dir, { recursive: true });
  const png = join(dir, `${stem}.png`);
  const npy = join(dir, `${stem}.cam.npy`);
  writeFileAtomic(png, await heatmapPng(input, opts));
  const size = input.preprocessing.size;
  writeNpyFile(npy, [size, size], camAtInput(input.cam, input.camH, input.camW, size), 'F32');
  return { png, npy };
}

/** The original grey pixels of an image file (PNG/JPEG via sharp, DICOM via the C.11 pipeline), for the overlay. */
export async function decodeOriginalGrey(file: string, path: string | Uint8Array = file): Promise<{ grey: Float32Array; width: number; height: number }> {
  const bytes = new Uint8Array(await readFile(typeof path === 'string' ? path : Buffer.from(path)));
  if (isDicom(bytes.subarray(0, 132))) {
    const d = await readDicom(bytes, { source: file, decoders: nodeFrameDecoders, gate: false });
    return { grey: d.grey, width: d.width, height: d.height };
  }
  const g = await decodeGrey(bytes);
  return { grey: g.data, width: g.width, height: g.height };
}

/** File stems for heatmaps: the base name without extension, or the whole path flattened where base names repeat. */
export function heatmapStems(files: readonly string[]): Map<string, string> {
  const base = (f: string): string => f.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
  const count = new Map<string, number>();
  for (const f of files) count.set(base(f), (count.get(base(f)) ?? 0) + 1);
  return new Map(files.map((f) => [f, count.get(base(f))! > 1 ? f.replace(/^\.?[\\/]+/, '').replace(/\.[^.\\/]*$/, '').replace(/[^A-Za-z0-9._-]+/g, '_') : base(f)]));
}
