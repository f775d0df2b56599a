/**
 * Running a batch function over image records in the loader's batches (decoded, preprocessed, in order, unusable
 * images counted and left out): what the trainer's validation pass and the inference of a dataset split share.
 * The function computes one output per image (a logit); this module knows nothing of the model behind it.
 */
import { BatchLoader, type BadImage, type ImageCache } from './loader.js';
import type { Preprocessing } from './preprocess.js';
import type { ImageRecord } from './types.js';

/** One output (logit) per image for `n` preprocessed NHWC images (`x` holds n * size * size * 3 values). */
export type RecordBatchFn = (x: Float32Array, n: number) => Promise<Float32Array>;

export interface InferenceResult {
  /** Records that produced an output, in the records' order (bad images left out). */
  records: ImageRecord[];
  /** One logit per kept record. */
  logits: Float32Array;
  badImages: BadImage[];
}

export interface InferenceOptions {
  preprocessing: Preprocessing;
  batchSize?: number;
  workers?: number;
  /** Decoded images kept across calls (the trainer's validation passes); see ImageCache. */
  cache?: ImageCache;
  /** Called after each batch with the number of images done. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * `run` over every record: the loader's batching and ordering, with `run` producing each batch's logits (a TF.js
 * model, an ONNX Runtime session, ...).
 */
export async function inferRecordsWith(run: RecordBatchFn, records: readonly ImageRecord[], opts: InferenceOptions): Promise<InferenceResult> {
  const loader = new BatchLoader(records, {
    batchSize: opts.batchSize ?? 16,
    shuffle: false,
    augment: false,
    preprocessing: opts.preprocessing,
    workers: opts.workers ?? 2,
    ...(opts.cache ? { cache: opts.cache } : {}),
  });
  const out: { index: number; logit: number }[] = [];
  try {
    let done = 0;
    for await (const batch of loader.epoch(0)) {
      const logits = await run(batch.x, batch.n);
      batch.indices.forEach((index, k) => out.push({ index, logit: logits[k]! }));
      done += batch.n;
      opts.onProgress?.(done, records.length);
    }
  } finally {
    await loader.close();
  }
  out.sort((a, b) => a.index - b.index);
  return {
    records: out.map((o) => records[o.index]!),
    logits: Float32Array.from(out.map((o) => o.logit)),
    badImages: loader.badImages,
  };
}
