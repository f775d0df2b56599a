/**
 * What the server and browser tests share: a small exported model (resnet-slim at 64 px, random weights with
 * BatchNorm statistics spread out so different images give clearly different probabilities) and a few images,
 * good and bad, written to a temporary folder.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/engine/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { exportOnnxFile } from '../../src/models/onnx/runtime.js';
import { buildModel } from '../../src/train/archs.js';
import { Rng } from '../../src/util/rng.js';
import type { OodStats } from '../../src/models/onnx/extras.js';

export const SIZE = 64;

/** Writes `model.onnx` into `dir` and returns its path. */
export async function writeTinyModel(
  dir: string,
  opts: { seed?: number; threshold?: number; cam?: boolean; ood?: OodStats; name?: string; extraMetadata?: Record<string, string> } = {},
): Promise<string> {
  await initEngine();
  const seed = opts.seed ?? 7;
  const model = buildModel('resnet-slim', { dropout: 0, seed });
  const rng = new Rng(seed);
  for (const [name, v] of model.stateDict()) {
    const n = v.size;
    if (name.endsWith('running_var')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.uniform(0.5, 2)), v.shape));
    else if (name.endsWith('running_mean')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.normal(0, 0.2)), v.shape));
  }
  const path = join(dir, opts.name ?? 'model.onnx');
  exportOnnxFile(model, path, {
    inputSize: SIZE,
    preprocessing: makePreprocessing({ size: SIZE }),
    decisionThreshold: opts.threshold ?? 0.5,
    cam: opts.cam ?? true,
    ...(opts.ood ? { ood: opts.ood } : {}),
    ...(opts.extraMetadata ? { extraMetadata: opts.extraMetadata } : {}),
  });
  model.dispose();
  return path;
}

/** An 8-bit grey picture of a bright bar on a dark, noisy background; `variant` moves and tilts the bar. */
export function greyPixels(width: number, height: number, variant: number): Uint8Array {
  const rng = new Rng(100 + variant);
  const px = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d = Math.abs(x - width * (0.3 + 0.1 * variant) - (y - height / 2) * 0.3 * (variant - 1));
      const v = (d < width * 0.08 ? 200 : 40) + rng.uniform(-20, 20);
      px[y * width + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return px;
}

export async function greyPng(width: number, height: number, variant: number): Promise<Buffer> {
  return sharp(Buffer.from(greyPixels(width, height, variant)), { raw: { width, height, channels: 1 } }).png().toBuffer();
}

export async function greyJpeg(width: number, height: number, variant: number): Promise<Buffer> {
  return sharp(Buffer.from(greyPixels(width, height, variant)), { raw: { width, height, channels: 1 } }).jpeg({ quality: 90 }).toBuffer();
}

/** A colourful "photograph": smooth hue gradients, nothing like a radiograph. */
export async function colourPhoto(width: number, height: number): Promise<Buffer> {
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      px[o] = Math.round((255 * x) / width);
      px[o + 1] = Math.round(255 * (0.5 + 0.5 * Math.sin(y / 7)));
      px[o + 2] = Math.round((255 * (width - x)) / width);
    }
  }
  return sharp(Buffer.from(px), { raw: { width, height, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();
}

/** Writes a set of good and bad inputs into `dir`; returns their paths. */
export async function writeImages(dir: string): Promise<Record<'png1' | 'png2' | 'jpeg' | 'photo', string>> {
  const files = {
    png1: join(dir, 'view1.png'),
    png2: join(dir, 'view2.png'),
    jpeg: join(dir, 'view3.jpg'),
    photo: join(dir, 'photo.jpg'),
  };
  writeFileSync(files.png1, await greyPng(90, 120, 0));
  writeFileSync(files.png2, await greyPng(120, 80, 2));
  writeFileSync(files.jpeg, await greyJpeg(100, 100, 1));
  writeFileSync(files.photo, await colourPhoto(96, 96));
  return files;
}
