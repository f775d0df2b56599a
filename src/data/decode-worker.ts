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
}

export type DecodeResult =
  | { id: number; ok: true; x: Float32Array; warnings: string[] }
  | { id: number; ok: false; problem: string };

/** Marker the loader passes in workerData so only its workers start the message loop. */
export const DECODE_WORKER_ROLE = 'nextray-decode-worker';

/** Decodes and prepares one image; never throws for a bad image (the problem comes back in words). */
export async function runDecodeJob(job: DecodeJob): Promise<DecodeResult> {
  try {
    const img = await decodeGrey(job.file, job.maxPixels === undefined ? {} : { maxPixels: job.maxPixels });
    const p = job.preprocessing;
    let grey = resizeToInput(img.data, img.width, img.height, p, job.file);
    // Augment on the model grid (cheaper than at full resolution, and rotation then fills with the same
    // background as the letterbox bars).
    if (job.augment) {
      const { hflipProbability, maxRotationDeg } = job.augment.options;
      const options: AugmentOptions = { hflipProbability, maxRotationDeg, background: job.augment.options.background ?? p.background };
      grey = applyAugment(grey, p.size, p.size, job.augment.params, options);
    }
    return { id: job.id, ok: true, x: normaliseToChannels(grey, p), warnings: greyWarnings(img.data, img.bitDepth) };
  } catch (err) {
    const problem = err instanceof ImageError ? err.problem : err instanceof Error ? err.message : String(err);
    return { id: job.id, ok: false, problem };
  }
}

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === DECODE_WORKER_ROLE) {
  const port = parentPort;
  port.on('message', (job: DecodeJob) => {
    void runDecodeJob(job).then((r) => {
      // Transfer, not copy, the pixels back.
      port.postMessage(r, r.ok ? [r.x.buffer as ArrayBuffer] : []);
    });
  });
}
