/**
 * Prediction over files (Node host): decode on worker threads ahead of inference (a bounded window, so memory stays
 * flat on any folder), batch, run the ensemble, group studies. Bad files are reported (callback + list) and
 * skipped; the rest go on.
 */
import { availableParallelism } from 'node:os';
import type { Ensemble } from '../core/ensemble.js';
import { predictBatch, type ImagePrediction, type PredictBatchOptions, type PreparedImage } from '../core/predict.js';
import { aggregateStudies, studyKeyOf, type StudyResult } from '../core/study.js';
import { createDecoder } from './pool.js';
import type { DecodeReply } from './decode.js';

export interface BadFile {
  file: string;
  problem: string;
}

export interface PredictFilesOptions extends PredictBatchOptions {
  /** Images per ensemble run (default 8). */
  batchSize?: number;
  /** Decoding threads (default min(2, cores); 0 = in this thread). */
  workers?: number;
  maxPixels?: number;
  /** After each file (decoded or failed): files done, total. */
  onProgress?: (done: number, total: number) => void;
  onBadFile?: (bad: BadFile) => void;
  onWarning?: (file: string, warning: string) => void;
  /** The bytes to open for a file whose name is not UTF-8 (expandInputs' openPaths); others are opened by name. */
  openPaths?: ReadonlyMap<string, Uint8Array>;
}

export interface PredictFilesResult {
  images: ImagePrediction[];
  studies: StudyResult[];
  bad: BadFile[];
  /** Wall seconds for the whole job, and inside the engines. */
  seconds: number;
  inferenceSeconds: number;
}

export async function predictFiles(ensemble: Ensemble, files: readonly string[], opts: PredictFilesOptions = {}): Promise<PredictFilesResult> {
  const t0 = performance.now();
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  const workers = Math.min(opts.workers ?? Math.min(2, availableParallelism()), files.length);
  const decoder = createDecoder(workers);
  const window = 2 * batchSize + 2 * Math.max(1, workers);
  const pending: Promise<DecodeReply>[] = [];
  let next = 0;
  const preprocessings = ensemble.preprocessings;
  const fill = (): void => {
    while (next < files.length && pending.length < window) {
      const path = opts.openPaths?.get(files[next]!);
      pending.push(decoder.decode({ id: next, file: files[next]!, ...(path ? { path } : {}), preprocessings, ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}) }));
      next++;
    }
  };
  const images: ImagePrediction[] = [];
  const bad: BadFile[] = [];
  let done = 0;
  let inferenceSeconds = 0;
  let batch: PreparedImage[] = [];
  const flush = async (): Promise<void> => {
    if (!batch.length) return;
    const s0 = performance.now();
    const b = batch;
    batch = [];
    images.push(...(await predictBatch(ensemble, b, opts)));
    inferenceSeconds += (performance.now() - s0) / 1000;
    done += b.length;
    opts.onProgress?.(done, files.length);
  };
  try {
    fill();
    while (pending.length) {
      const r = await pending.shift()!;
      fill();
      const file = files[r.id]!;
      if (!r.ok) {
        const b = { file, problem: r.problem };
        bad.push(b);
        opts.onBadFile?.(b);
        done++;
        opts.onProgress?.(done, files.length);
        continue;
      }
      for (const w of r.warnings) opts.onWarning?.(file, w);
      batch.push({
        image: file,
        inputs: r.inputs,
        study: studyKeyOf(file, r.studyUid),
        width: r.width,
        height: r.height,
        format: r.format,
        warnings: r.warnings,
        ...(r.dicom ? { dicom: r.dicom } : {}),
      });
      if (batch.length >= batchSize) await flush();
    }
    await flush();
  } finally {
    await decoder.close();
  }
  return {
    images,
    studies: aggregateStudies(images.map((im) => ({ image: im.image, probability: im.probability, study: { key: im.study, source: im.studySource, ...(im.label !== undefined ? { label: im.label } : {}), ...(im.region ? { region: im.region } : {}) } })), ensemble.threshold),
    bad,
    seconds: (performance.now() - t0) / 1000,
    inferenceSeconds,
  };
}
