/**
 * What the server and browser tests share: a small exported model (resnet-slim at 64 px, random weights with
 * BatchNorm statistics spread out so different images give clearly different probabilities) and a few images,
 * good and bad, written to a temporary folder.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/engine/index.js';
import { makePreprocessing, preprocessGrey } from '../../src/data/preprocess.js';
import { pooledFeaturesAndLogits } from '../../src/calibrate/trust.js';
import { oodLayers } from '../../src/models/cam.js';
import { fitOodGate } from '../../src/calibrate/ood.js';
import { exportOnnxFile } from '../../src/models/onnx/files.js';
import { buildModel } from '../../src/train/archs.js';
import { Rng } from '../../src/util/rng.js';
import { saveCheckpoint } from '../../src/models/weights/index.js';
import type { OodStats } from '../../src/models/onnx/extras.js';
import type { ModelCard } from '../../src/models/card.js';
import { encapsulate, writeDicom } from '../helpers/dicom-writer.js';

export const SIZE = 64;

/** Writes `model.onnx` into `dir` and returns its path. */
export async function writeTinyModel(
  dir: string,
  opts: { seed?: number; threshold?: number; cam?: boolean; ood?: OodStats; fitOod?: boolean; name?: string; extraMetadata?: Record<string, string>; card?: Partial<ModelCard> } = {},
): Promise<string> {
  const model = await tinyModel(opts.seed ?? 7);
  let ood = opts.ood;
  if (opts.fitOod) ood = await fitGate(model);
  const path = join(dir, opts.name ?? 'model.onnx');
  exportOnnxFile(model, path, {
    inputSize: SIZE,
    preprocessing: makePreprocessing({ size: SIZE }),
    decisionThreshold: opts.threshold ?? 0.5,
    cam: opts.cam ?? true,
    ...(ood ? { ood } : {}),
    ...(opts.extraMetadata ? { extraMetadata: opts.extraMetadata } : {}),
    ...(opts.card ? { card: opts.card } : {}),
  });
  model.dispose();
  return path;
}

/** The tiny model writeTinyModel exports: resnet-slim, seeded, BatchNorm statistics spread out. */
async function tinyModel(seed: number): Promise<ReturnType<typeof buildModel>> {
  await initEngine();
  const model = buildModel('resnet-slim', { dropout: 0, seed });
  const rng = new Rng(seed);
  for (const [name, v] of model.stateDict()) {
    const n = v.size;
    if (name.endsWith('running_var')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.uniform(0.5, 2)), v.shape));
    else if (name.endsWith('running_mean')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.normal(0, 0.2)), v.shape));
  }
  return model;
}

/** The same model as writeTinyModel(dir, { seed, threshold }) as a checkpoint folder `dir/name`; returns its path. */
export async function writeTinyCheckpoint(dir: string, opts: { seed?: number; threshold?: number; name?: string } = {}): Promise<string> {
  const model = await tinyModel(opts.seed ?? 7);
  const path = join(dir, opts.name ?? 'ckpt');
  saveCheckpoint(path, {
    tensors: model.exportStateDict('torch'),
    metadata: {
      arch: 'resnet-slim',
      inputShape: [SIZE, SIZE, 3],
      preprocessing: makePreprocessing({ size: SIZE }),
      head: { kind: 'dropout-dense-sigmoid', dropout: 0, units: 1 },
      decisionThreshold: opts.threshold ?? 0.5,
    },
  });
  model.dispose();
  return path;
}

/**
 * An OOD gate fitted (trust's fitOodGate: Mahalanobis, Ledoit-Wolf) on the gate features (oodLayers) of 40 radiograph-like
 * pictures from greyPixels. The threshold is 4x their largest score: a random tiny network's features separate
 * new radiograph-like pictures from its 40 fitting images far less well than a trained model's, and these tests are
 * about what the server and page do with the gate's verdict (a colour photograph scores ~10x the threshold).
 */
async function fitGate(model: ReturnType<typeof buildModel>): Promise<OodStats> {
  const n = 40;
  const p = makePreprocessing({ size: SIZE });
  const x = new Float32Array(n * SIZE * SIZE * 3);
  for (let i = 0; i < n; i++) {
    const w = 70 + ((i * 7) % 50);
    const h = 70 + ((i * 11) % 50);
    const px = greyPixels(w, h, (i % 5) * 0.5);
    x.set(preprocessGrey(Float32Array.from(px, (v) => v / 255), w, h, p), i * SIZE * SIZE * 3);
  }
  const layers = oodLayers(model);
  const f = pooledFeaturesAndLogits(model, x, n, SIZE, layers);
  const g = fitOodGate(f.features, n, f.dim, 1, layers);
  return { method: 'mahalanobis', layers, mean: g.mean, precision: g.precision, threshold: 4 * g.threshold, quantile: g.quantile, shrinkage: g.shrinkage, images: g.images };
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
export async function writeImages(dir: string): Promise<Record<'png1' | 'png2' | 'jpeg' | 'photo' | 'dicom' | 'dicomMono1' | 'dicomLossless', string>> {
  const files = {
    png1: join(dir, 'view1.png'),
    png2: join(dir, 'view2.png'),
    jpeg: join(dir, 'view3.jpg'),
    photo: join(dir, 'photo.jpg'),
    /** view1.png's pixels as DICOM (MONOCHROME2, explicit VR little endian): the same grey image. */
    dicom: join(dir, 'view1.dcm'),
    /** The same picture stored inverted as MONOCHROME1: displays (and predicts) the same. */
    dicomMono1: join(dir, 'view1-mono1.dcm'),
    /** A JPEG Lossless DICOM: a transfer syntax no decoder here reads. */
    dicomLossless: join(dir, 'lossless.dcm'),
  };
  const px = greyPixels(90, 120, 0);
  writeFileSync(files.dicom, writeDicom({ rows: 120, columns: 90, bitsAllocated: 8, photometric: 'MONOCHROME2', pixels: px, studyUid: '1.2.3.4' }));
  writeFileSync(files.dicomMono1, writeDicom({ rows: 120, columns: 90, bitsAllocated: 8, photometric: 'MONOCHROME1', pixels: Array.from(px, (v) => 255 - v) }));
  writeFileSync(
    files.dicomLossless,
    writeDicom({ rows: 120, columns: 90, bitsAllocated: 8, photometric: 'MONOCHROME2', transferSyntax: '1.2.840.10008.1.2.4.201', pixelBytes: encapsulate([new Uint8Array([0xff, 0x4f, 0xff, 0x51, 0, 0])]) }),
  );
  writeFileSync(files.png1, await greyPng(90, 120, 0));
  writeFileSync(files.png2, await greyPng(120, 80, 2));
  writeFileSync(files.jpeg, await greyJpeg(100, 100, 1));
  writeFileSync(files.photo, await colourPhoto(96, 96));
  return files;
}
