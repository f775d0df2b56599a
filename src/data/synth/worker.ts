/**
 * Worker thread of the synthetic generator: receives batches of image jobs, renders, encodes and writes them,
 * and answers with one result per image (or the error, so the main thread can name the image that failed).
 */
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { runImageJob, type ImageJob, type JobContext } from './job.js';

// One libvips thread per worker: the parallelism comes from the workers themselves.
sharp.concurrency(1);
sharp.cache(false);

const ctx = workerData as JobContext;

parentPort!.on('message', (jobs: ImageJob[]) => {
  void (async () => {
    for (const job of jobs) {
      try {
        parentPort!.postMessage({ ok: true, result: await runImageJob(job, ctx) });
      } catch (err) {
        parentPort!.postMessage({ ok: false, path: job.path, error: err instanceof Error ? err.message : String(err) });
      }
    }
  })();
});
