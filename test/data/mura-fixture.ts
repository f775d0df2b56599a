/**
 * Builds tiny MURA-format datasets in temporary folders for the data tests: real PNGs (written with sharp), the
 * four CSVs exactly as MURA writes them, and helpers to break them in specific ways.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import type { Label, MuraSplit, Region } from '../../src/data/types.js';

export interface StudySpec {
  split: MuraSplit;
  region: Region;
  /** Number, formatted as patient%05d. */
  patient: number;
  study: number;
  label: Label;
  images: number;
}

/**
 * The reference dataset of the tests. Its Table-1 counts, worked out by hand:
 *   train XR_ELBOW   images 2, studies 1, patients 1, abnormal 1, normal 0
 *   train XR_HAND    images 4, studies 1, patients 1, abnormal 0, normal 1
 *   train XR_WRIST   images 6, studies 3, patients 2, abnormal 1, normal 2
 *   valid XR_ELBOW   images 4, studies 2, patients 1, abnormal 1, normal 1
 *   valid XR_WRIST   images 2, studies 1, patients 1, abnormal 1, normal 0
 */
export const REFERENCE_STUDIES: StudySpec[] = [
  { split: 'train', region: 'XR_WRIST', patient: 1, study: 1, label: 1, images: 3 },
  { split: 'train', region: 'XR_WRIST', patient: 1, study: 2, label: 0, images: 2 },
  { split: 'train', region: 'XR_WRIST', patient: 2, study: 1, label: 0, images: 1 },
  { split: 'train', region: 'XR_ELBOW', patient: 2, study: 1, label: 1, images: 2 },
  { split: 'train', region: 'XR_HAND', patient: 3, study: 1, label: 0, images: 4 },
  { split: 'valid', region: 'XR_WRIST', patient: 10, study: 1, label: 1, images: 2 },
  { split: 'valid', region: 'XR_ELBOW', patient: 11, study: 1, label: 0, images: 1 },
  { split: 'valid', region: 'XR_ELBOW', patient: 11, study: 2, label: 1, images: 3 },
];

export function studyPath(s: Pick<StudySpec, 'split' | 'region' | 'patient' | 'study' | 'label'>): string {
  const pol = s.label ? 'positive' : 'negative';
  return `MURA-v1.1/${s.split}/${s.region}/patient${String(s.patient).padStart(5, '0')}/study${s.study}_${pol}/`;
}

let pngCache: Buffer | null = null;

/** A small valid greyscale PNG (a gradient, so it is not constant). */
export async function tinyPng(): Promise<Buffer> {
  if (!pngCache) {
    const px = Buffer.alloc(16 * 12);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 256;
    pngCache = await sharp(px, { raw: { width: 16, height: 12, channels: 1 } }).png().toBuffer();
  }
  return pngCache;
}

/**
 * Writes the studies under `dir/MURA-v1.1/` with their CSVs; returns the MURA-v1.1 folder. Images are
 * `image1.png` ... `imageN.png`; CSV lines follow the spec order.
 */
export async function buildMura(dir: string, studies: readonly StudySpec[] = REFERENCE_STUDIES): Promise<string> {
  const root = join(dir, 'MURA-v1.1');
  const png = await tinyPng();
  const csv: Record<string, string[]> = {
    'train_image_paths.csv': [],
    'train_labeled_studies.csv': [],
    'valid_image_paths.csv': [],
    'valid_labeled_studies.csv': [],
  };
  for (const s of studies) {
    const sp = studyPath(s);
    csv[`${s.split}_labeled_studies.csv`]!.push(`${sp},${s.label}`);
    for (let m = 1; m <= s.images; m++) {
      const rel = `${sp}image${m}.png`;
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), png);
      csv[`${s.split}_image_paths.csv`]!.push(rel);
    }
  }
  mkdirSync(root, { recursive: true });
  for (const [name, lines] of Object.entries(csv)) writeFileSync(join(root, name), lines.map((l) => l + '\n').join(''));
  return root;
}

export function appendLine(root: string, csv: string, line: string): void {
  appendFileSync(join(root, csv), line + '\n');
}

export function readLines(root: string, csv: string): string[] {
  return readFileSync(join(root, csv), 'utf8').split('\n').filter(Boolean);
}

export function writeLines(root: string, csv: string, lines: string[]): void {
  writeFileSync(join(root, csv), lines.map((l) => l + '\n').join(''));
}

function crc32(buf: Uint8Array): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * A PNG whose header claims `width x height` 8-bit grey pixels but carries almost no data: enough to be refused
 * from the header as too large without allocating the pixels.
 */
export function hugeHeaderPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
