/**
 * One image's trip from file to model input for the batch loader: decode -> resize to the input grid ->
 * augment -> replicate + normalise. `runDecodeJob` is the whole job; the loader calls it directly in
 * `workers: 0` mode, and this same file is the worker_threads entry point otherwise (the message loop at the
 * bottom only starts inside a loader worker, so importing the module has no side effects).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { decodeGrey, ImageError, greyWarnings, normaliseToChannels, resizeToInput, type Preprocessing } from './images.js';
import { applyAugment, type AugmentOptions, type AugmentParams } from './augment.js';

export interface DecodeJob {
  id: number;
  /** Absolute path of the image. */
  file: string;
  preprocessing: Preprocessing;
  /** Drawn on the loader thread from (seed, epoch, index); null = no augmentation. */
  augment: { params: AugmentParams; options: AugmentOptions } | null;
  maxPixels?: number;
  /** Also return the resized grey image before augmentation (for the loader's ImageCache). */
  keepGrey?: boolean;
}

export type DecodeResult =
  | { id: number; ok: true; x: Float32Array; warnings: string[]; grey?: Float32Array }
  | { id: number; ok: false; problem: string };

/** Marker the loader passes in workerData so only its workers start the message loop. */
export const DECODE_WORKER_ROLE = 'nextray-decode-worker';

/** Decodes and prepares one image; never throws for a bad image (the problem comes back in words). */
export async function runDecodeJob(job: DecodeJob): Promise<DecodeResult> {
  try {
    const img = await decodeGrey(job.file, job.maxPixels === undefined ? {} : { maxPixels: job.maxPixels });
    const grey = resizeToInput(img.data, img.width, img.height, job.preprocessing, job.file);
    const r: DecodeResult = { id: job.id, ok: true, x: finishFromGrey(grey, job), warnings: greyWarnings(img.data, img.bitDepth) };
    // Its own buffer, so that it can be transferred beside x.
    if (job.keepGrey) r.grey = grey.byteOffset === 0 && grey.byteLength === grey.buffer.byteLength ? grey : grey.slice();
    return r;
  } catch (err) {
    const problem = err instanceof ImageError ? err.problem : err instanceof Error ? err.message : String(err);
    return { id: job.id, ok: false, problem };
  }
}

/**
 * The per-epoch part of a job, from the resized grey image: augment, then replicate + normalise (into `out` at
 * `offset` when given, e.g. straight into a batch).
 */
export function finishFromGrey(grey: Float32Array, job: Pick<DecodeJob, 'preprocessing' | 'augment'>, out?: Float32Array, offset = 0): Float32Array {
  const p = job.preprocessing;
  let g = grey;
  // Augment on the model grid (cheaper than at full resolution, and rotation then fills with the same
  // background as the letterbox bars). applyAugment returns a new array, so `grey` stays as it was.
  if (job.augment) {
    const { hflipProbability, maxRotationDeg } = job.augment.options;
    const options: AugmentOptions = { hflipProbability, maxRotationDeg, background: job.augment.options.background ?? p.background };
    g = applyAugment(grey, p.size, p.size, job.augment.params, options);
  }
  return normaliseToChannels(g, p, out, offset);
}

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === DECODE_WORKER_ROLE) {
  const port = parentPort;
  port.on('message', (job: DecodeJob) => {
    void runDecodeJob(job).then((r) => {
      // Transfer, not copy, the pixels back.
      const transfer = r.ok ? [r.x.buffer as ArrayBuffer, ...(r.grey ? [r.grey.buffer as ArrayBuffer] : [])] : [];
      port.postMessage(r, transfer);
    });
  });
}
