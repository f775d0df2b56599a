/**
 * A tiny, easily learnable dataset in the MURA-v1.1 layout for training tests: 48 px grey PNGs, a "bone" bar on
 * noise; abnormal studies carry a bright square somewhere on the image. Small enough that a few epochs of a tiny
 * network run in seconds, learnable enough that a working training loop must beat chance.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.js';
import { REGIONS } from '../../src/data/types.js';

export interface TinyDatasetOptions {
  /** Patients in train / valid (one study each). */
  trainPatients: number;
  validPatients: number;
  size?: number;
  seed?: number;
}

async function image(rng: Rng, size: number, abnormal: boolean): Promise<Buffer> {
  const px = new Uint8Array(size * size);
  const barX = Math.floor(size / 2 + rng.uniform(-6, 6));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 30 + rng.uniform(0, 25);
      if (Math.abs(x - barX) < 5) v += 90;
      px[y * size + x] = v;
    }
  }
  if (abnormal) {
    const s = Math.floor(size / 5);
    const x0 = rng.int(size - s);
    const y0 = rng.int(size - s);
    for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) px[y * size + x] = 250;
  }
  return sharp(Buffer.from(px), { raw: { width: size, height: size, channels: 1 } }).png().toBuffer();
}

/** Writes the dataset under `dir` (dir/MURA-v1.1/...). Half the studies are abnormal, regions rotate. */
export async function writeTinyDataset(dir: string, opts: TinyDatasetOptions): Promise<void> {
  const rng = new Rng(opts.seed ?? 1);
  const size = opts.size ?? 48;
  const root = join(dir, 'MURA-v1.1');
  let patient = 1;
  for (const [split, count] of [
    ['train', opts.trainPatients],
    ['valid', opts.validPatients],
  ] as const) {
    const imagePaths: string[] = [];
    const studies: string[] = [];
    for (let i = 0; i < count; i++, patient++) {
      const region = REGIONS[i % REGIONS.length]!;
      const label = i % 2 === 0 ? 1 : 0;
      const studyKey = `MURA-v1.1/${split}/${region}/patient${String(patient).padStart(5, '0')}/study1_${label ? 'positive' : 'negative'}/`;
      mkdirSync(join(dir, studyKey), { recursive: true });
      const views = 1 + (i % 2);
      for (let v = 1; v <= views; v++) {
        const p = `${studyKey}image${v}.png`;
        writeFileSync(join(dir, p), await image(rng, size, label === 1));
        imagePaths.push(p);
      }
      studies.push(`${studyKey},${label}`);
    }
    writeFileSync(join(root, `${split}_image_paths.csv`), imagePaths.map((p) => p + '\n').join(''));
    writeFileSync(join(root, `${split}_labeled_studies.csv`), studies.map((s) => s + '\n').join(''));
  }
}
