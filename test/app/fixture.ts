/**
 * What the page tests share beyond test/serve/fixture.ts: DICOM views of named patients (PatientID, name, StudyDate,
 * BodyPartExamined, ViewPosition), a model whose heatmap is near zero everywhere, the CLI's probabilities
 * (`nextray predict --json`: onnxruntime-node + sharp, a path independent of the page), and page helpers.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/engine/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { exportOnnxFile } from '../../src/models/onnx/files.js';
import { buildModel } from '../../src/train/archs.js';
import { Rng } from '../../src/util/rng.js';
import { writeDicom, type DicomElement } from '../helpers/dicom-writer.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { greyPixels, SIZE } from '../serve/fixture.js';

export interface Patient {
  id: string;
  name: string;
  studyUid: string;
  studyDate: string;
  bodyPart: string;
  viewPosition: string;
}

/** A DICOM view (MONOCHROME2, explicit VR LE) of a patient's study, with the identity attributes set. */
export function writePatientView(dir: string, file: string, p: Patient, variant: number, size: [number, number] = [90, 120]): string {
  const [w, h] = size;
  const extra: DicomElement[] = [
    { group: 0x0008, element: 0x0020, vr: 'DA', value: p.studyDate },
    { group: 0x0008, element: 0x0060, vr: 'CS', value: 'CR' },
    { group: 0x0010, element: 0x0010, vr: 'PN', value: p.name },
    { group: 0x0010, element: 0x0020, vr: 'LO', value: p.id },
    { group: 0x0018, element: 0x0015, vr: 'CS', value: p.bodyPart },
    { group: 0x0018, element: 0x5101, vr: 'CS', value: p.viewPosition },
  ];
  const path = join(dir, file);
  writeFileSync(path, writeDicom({ rows: h, columns: w, bitsAllocated: 8, photometric: 'MONOCHROME2', pixels: greyPixels(w, h, variant), studyUid: p.studyUid, extra }));
  return path;
}

/**
 * A model whose class activation map is near zero everywhere: the tiny resnet-slim with its head's weights scaled
 * by 1e-5 (the map is the head's weights times the last features), the bias kept.
 */
export async function writeFlatHeatmapModel(dir: string, name = 'flat.onnx'): Promise<string> {
  await initEngine();
  const model = buildModel('resnet-slim', { dropout: 0, seed: 7 });
  const rng = new Rng(7);
  for (const [key, v] of model.stateDict()) {
    const n = v.size;
    if (key.endsWith('running_var')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.uniform(0.5, 2)), v.shape));
    else if (key.endsWith('running_mean')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.normal(0, 0.2)), v.shape));
    else if (key === 'fc.weight') v.assign(tf.tidy(() => tf.mul(v, 1e-5)));
  }
  const path = join(dir, name);
  exportOnnxFile(model, path, { inputSize: SIZE, preprocessing: makePreprocessing({ size: SIZE }), decisionThreshold: 0.5, cam: true });
  model.dispose();
  return path;
}

/** A generated grey non-radiograph: a 96 x 96 checkerboard of 8-pixel squares (grey, so only the gate can reject it). */
export async function writeCheckerboard(dir: string): Promise<string> {
  const w = 96;
  const px = Buffer.alloc(w * w);
  for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) px[y * w + x] = ((x >> 3) + (y >> 3)) % 2 ? 230 : 20;
  const path = join(dir, 'checkerboard.png');
  await sharp(px, { raw: { width: w, height: w, channels: 1 } }).png().toFile(path);
  return path;
}

/** P(abnormal) per image from `nextray predict --json` (the CLI: onnxruntime-node, sharp / the Node DICOM host). */
export function cliProbabilities(model: string, files: string[]): Map<string, number> {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'nextray.js'), 'predict', '--model', model, ...files, '--json', '--quiet', '--threads', '1'], { encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 1) throw new Error(`nextray predict failed (${r.status}): ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { predictions: { image: string; probability: number }[] };
  return new Map(j.predictions.map((p) => [p.image, p.probability]));
}

/** Picks files through the page's file input and waits for the result. */
export async function pick(page: Page, files: string[]): Promise<void> {
  await page.evaluate(() => (document.body.dataset.state = 'picking'));
  await page.setInputFiles('input[type=file]', files);
  await page.waitForSelector('body[data-state=done]', { timeout: 60_000 });
}

/** The study cards: title, the decision, the probability (raw), the study line and the left-out line. */
export async function studyCards(page: Page): Promise<{ title: string; decision: string; probability: number | null; line: string; leftOut: string | null; facts: string; text: string }[]> {
  return page.$$eval('[data-testid=study]', (els) =>
    els.map((e) => {
      const q = (s: string): HTMLElement | null => e.querySelector(s);
      const p = q('[data-testid=probability]');
      return {
        title: q('h2')?.textContent ?? '',
        decision: q('[data-testid=decision]')?.textContent ?? '',
        probability: p ? Number(p.dataset.value) : null,
        line: q('[data-testid=study-line]')?.textContent ?? '',
        leftOut: q('[data-testid=left-out]')?.textContent ?? null,
        facts: q('dl')?.textContent ?? '',
        text: e.textContent ?? '',
      };
    }),
  );
}

/** Pixels of a canvas by test id. */
export function canvasPixels(page: Page, id: string): Promise<{ w: number; h: number; px: number[] }> {
  return page.$eval(`[data-testid=${id}]`, (c) => {
    const cv = c as HTMLCanvasElement;
    return { w: cv.width, h: cv.height, px: [...cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data] };
  });
}

/** Whether any pixel of an RGBA array has colour (channels differ by more than `tol`). */
export function hasColour(px: number[], tol = 2): boolean {
  for (let i = 0; i < px.length; i += 4) {
    if (Math.abs(px[i]! - px[i + 1]!) > tol || Math.abs(px[i]! - px[i + 2]!) > tol) return true;
  }
  return false;
}
