/**
 * The batch loader: streams ImageRecords to the trainer as NHWC Float32Array batches, decoding ahead of the
 * consumer on worker threads.
 *
 * - Deterministic: the order of epoch e is a shuffle drawn from `new Rng(seed).fork('epoch-' + e)`, and the
 *   augmentation of image i in epoch e from `augmentRng(seed, e, i)` (drawn here, applied in the worker), so
 *   batches are identical for 0, 1 or N workers and a run resumed at epoch e sees exactly the batches an
 *   uninterrupted run would have.
 * - Flat memory: never loads the dataset; at most `prefetch` batches' worth of images are in flight or waiting,
 *   whatever the dataset size.
 * - Goes on past bad images: each is skipped (the batch is filled from the next images), recorded once with its
 *   problem in `badImages`, and not decoded again in later epochs.
 * - Clean shutdown: `close()` terminates the workers; idle workers are unref'd, so a forgotten close() never
 *   keeps the process alive.
 *
 * Workers: the worker file is resolved relative to this module (import.meta.url), so it works from dist/ after
 * `npm run build`. Under tsx (dev) this module is a .ts file and the worker is started from decode-worker.ts;
 * Node passes the parent's execArgv (which carries tsx's loader) to workers, so that works as well. `workers: 0`
 * decodes in-process (tests, the browser, debugging).
 *
 * This module knows nothing of models: batches are plain Float32Arrays; the trainer wraps them in tensors.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { Rng, type Seed } from '../util/rng.js';
import { startSiblingWorker } from '../util/worker.js';
import type { ImageRecord } from './types.js';
import { DEFAULT_PREPROCESSING, validatePreprocessing, type Preprocessing } from './preprocess.js';
import { augmentRng, drawAugmentParams, type AugmentOptions } from './augment.js';
import { DECODE_WORKER_ROLE, finishFromGrey, runDecodeJob, type DecodeJob, type DecodeResult } from './decode-worker.js';

export interface LoaderOptions {
  /** Images per batch (default 16, the report's batch size). */
  batchSize?: number;
  /** Seed for the per-epoch shuffle and the augmentation draws (default 0). */
  seed?: Seed;
  /** Shuffle each epoch (default true); false keeps the records' order (evaluation). */
  shuffle?: boolean;
  /** Augmentation options, or false for none (default false: evaluation and prediction must not augment). */
  augment?: AugmentOptions | false;
  preprocessing?: Preprocessing;
  /** Decoding threads; 0 decodes in this thread (default: min(2, cores)). */
  workers?: number;
  /** Batches decoded ahead of the consumer (default 2). Bounds memory: prefetch * batchSize images at most. */
  prefetch?: number;
  /** Drop a final batch smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Pixel limit per image (default MAX_IMAGE_PIXELS). */
  maxPixels?: number;
  /** Called the first time an image turns out unusable. */
  onBadImage?: (bad: BadImage) => void;
  /** Called the first time an image decodes but looks wrong (e.g. all one value). */
  onWarning?: (warning: ImageWarning) => void;
  /**
   * Keeps decoded, resized images in memory so later epochs (and other loaders given the same cache, such as
   * each epoch's validation pass) skip decoding; batches are identical with or without it.
   */
  cache?: ImageCache;
}

/**
 * Decoded images on the model grid (grey, size x size, before augmentation and normalisation), kept across
 * epochs and loaders up to `maxBytes`. Decoding a small radiograph costs ~2 ms of CPU against ~0.1 ms for the
 * per-epoch flip and normalisation, so on a dataset that fits (the demo's: 8,000 images at 128 px = 0.5 GB)
 * every epoch after the first runs without touching the files. Images beyond the budget are decoded each time.
 */
export class ImageCache {
  private readonly entries = new Map<string, Float32Array>();
  private used = 0;

  constructor(readonly maxBytes: number) {
    if (!(maxBytes >= 0)) throw new RangeError(`image cache size must be >= 0 bytes, got ${maxBytes}`);
  }

  /** Everything that shapes the grey image (not mean/std, which normalisation applies afterwards). */
  static key(file: string, p: Preprocessing): string {
    return `${p.size}|${p.resize}|${p.interpolation}|${p.valueScaling}|${p.background}|${file}`;
  }

  get(key: string): Float32Array | undefined {
    return this.entries.get(key);
  }

  /** Whether an image of `bytes` more would fit. */
  fits(bytes: number): boolean {
    return this.used + bytes <= this.maxBytes;
  }

  add(key: string, grey: Float32Array): void {
    if (this.entries.has(key) || !this.fits(grey.byteLength)) return;
    this.entries.set(key, grey);
    this.used += grey.byteLength;
  }

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }
}

export interface Batch {
  /** n x size x size x 3, NHWC, normalised. */
  x: Float32Array;
  /** n labels (0 normal, 1 abnormal). */
  y: Float32Array;
  records: ImageRecord[];
  n: number;
  /** Positions of these images in the loader's records array. */
  indices: number[];
  epoch: number;
  /** 0-based batch number within the epoch. */
  batch: number;
}

export interface BadImage {
  /** The record's path (MURA-relative) when it has one, else its absolute path. */
  path: string;
  absPath: string;
  problem: string;
}

export interface ImageWarning {
  path: string;
  message: string;
}

/** A decoder that runs jobs somewhere and resolves with their results (never rejects for a bad image). */
interface Decoder {
  run(job: DecodeJob): Promise<DecodeResult>;
  close(): Promise<void>;
}

class InProcessDecoder implements Decoder {
  run(job: DecodeJob): Promise<DecodeResult> {
    return runDecodeJob(job);
  }
  async close(): Promise<void> {}
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (r: DecodeResult) => void; reject: (e: Error) => void }>;
}

/** A fixed pool of decode workers; jobs beyond `perWorker` in flight per worker wait in a queue. */
class WorkerPool implements Decoder {
  private readonly slots: Slot[] = [];
  private readonly queue: { job: DecodeJob; resolve: (r: DecodeResult) => void; reject: (e: Error) => void }[] = [];
  private closed = false;
  private failure: Error | null = null;
  // Two jobs per worker keep a worker busy while the other job waits for file I/O.
  private readonly perWorker: number;

  /** `perWorker`: jobs sent ahead to each worker; the consumer's window, so workers keep decoding while the
   * main thread is busy in a long synchronous training step (they only hear of new jobs when it yields). */
  constructor(count: number, perWorker = 2) {
    this.perWorker = Math.max(2, perWorker);
    for (let i = 0; i < count; i++) {
      const worker = startSiblingWorker(import.meta.url, 'decode-worker', { workerData: { role: DECODE_WORKER_ROLE } });
      const slot: Slot = { worker, pending: new Map() };
      worker.on('message', (r: DecodeResult) => {
        const p = slot.pending.get(r.id);
        if (!p) return;
        slot.pending.delete(r.id);
        p.resolve(r);
        this.pump();
      });
      worker.on('error', (err) => this.fail(new Error(`image decode worker ${i} failed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`image decode worker ${i} exited unexpectedly (code ${code})`));
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const s of this.slots) {
      for (const p of s.pending.values()) p.reject(err);
      s.pending.clear();
    }
    for (const q of this.queue.splice(0)) q.reject(err);
  }

  private pump(): void {
    while (this.queue.length) {
      let best: Slot | null = null;
      for (const s of this.slots) if (s.pending.size < this.perWorker && (!best || s.pending.size < best.pending.size)) best = s;
      if (!best) break;
      const q = this.queue.shift()!;
      best.pending.set(q.job.id, { resolve: q.resolve, reject: q.reject });
      best.worker.postMessage(q.job);
    }
    // Only workers with work keep the process alive.
    for (const s of this.slots) if (s.pending.size) s.worker.ref();
    else s.worker.unref();
  }

  run(job: DecodeJob): Promise<DecodeResult> {
    if (this.closed) return Promise.reject(new Error('the batch loader is closed'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('the batch loader was closed');
    for (const s of this.slots) {
      for (const p of s.pending.values()) p.reject(err);
      s.pending.clear();
    }
    for (const q of this.queue.splice(0)) q.reject(err);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/** The order of epoch `epoch`: record indices, shuffled by the epoch's own stream. */
export function epochOrder(count: number, seed: Seed, epoch: number, shuffle = true): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  return shuffle ? new Rng(seed).fork(`epoch-${epoch}`).shuffle(order) : order;
}

export class BatchLoader {
  readonly records: readonly ImageRecord[];
  readonly batchSize: number;
  readonly seed: Seed;
  readonly preprocessing: Preprocessing;
  readonly workers: number;
  readonly prefetch: number;
  private readonly options: LoaderOptions;
  private decoder: Decoder | null = null;
  private closed = false;
  private nextJobId = 0;
  private readonly bad = new Map<number, BadImage>();
  private readonly warned = new Set<number>();
  private readonly warningList: ImageWarning[] = [];

  constructor(records: readonly ImageRecord[], options: LoaderOptions = {}) {
    this.records = records;
    this.options = options;
    this.batchSize = options.batchSize ?? 16;
    this.seed = options.seed ?? 0;
    this.preprocessing = validatePreprocessing(options.preprocessing ?? DEFAULT_PREPROCESSING);
    this.workers = options.workers ?? Math.min(2, availableParallelism());
    this.prefetch = options.prefetch ?? 2;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${this.batchSize}`);
    if (!Number.isInteger(this.workers) || this.workers < 0) throw new RangeError(`workers must be an integer >= 0, got ${this.workers}`);
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1) throw new RangeError(`prefetch must be an integer >= 1, got ${this.prefetch}`);
  }

  /** Images found unusable so far (each once), in the order they were found. */
  get badImages(): BadImage[] {
    return [...this.bad.values()];
  }

  get badImageCount(): number {
    return this.bad.size;
  }

  /** Images that decoded but look wrong (each once). */
  get warnings(): ImageWarning[] {
    return [...this.warningList];
  }

  /** Batches in an epoch if no image is bad (an upper bound otherwise). */
  get batchesPerEpoch(): number {
    const n = this.records.length;
    return this.options.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  private getDecoder(): Decoder {
    if (this.closed) throw new Error('the batch loader is closed');
    if (!this.decoder)
      this.decoder = this.workers === 0 ? new InProcessDecoder() : new WorkerPool(this.workers, Math.ceil((this.prefetch * this.batchSize) / this.workers));
    return this.decoder;
  }

  private job(index: number, epoch: number): DecodeJob {
    const record = this.records[index]!;
    const aug = this.options.augment;
    const job: DecodeJob = {
      id: this.nextJobId++,
      file: record.absPath,
      preprocessing: this.preprocessing,
      augment: aug ? { params: drawAugmentParams(augmentRng(this.seed, epoch, index), aug), options: aug } : null,
    };
    if (this.options.maxPixels !== undefined) job.maxPixels = this.options.maxPixels;
    return job;
  }

  private recordBad(index: number, problem: string): void {
    if (this.bad.has(index)) return;
    const r = this.records[index]!;
    const bad: BadImage = { path: r.path || r.absPath, absPath: r.absPath, problem };
    this.bad.set(index, bad);
    this.options.onBadImage?.(bad);
  }

  private recordWarnings(index: number, messages: string[]): void {
    if (!messages.length || this.warned.has(index)) return;
    this.warned.add(index);
    const r = this.records[index]!;
    for (const message of messages) {
      const w = { path: r.path || r.absPath, message };
      this.warningList.push(w);
      this.options.onWarning?.(w);
    }
  }

  /**
   * The batches of epoch `epoch`, in a deterministic order. Images are decoded ahead (up to `prefetch`
   * batches); breaking out of the loop early is fine.
   */
  async *epoch(epoch: number): AsyncGenerator<Batch, void, undefined> {
    if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be an integer >= 0, got ${epoch}`);
    const decoder = this.getDecoder();
    const order = epochOrder(this.records.length, this.seed, epoch, this.options.shuffle ?? true);
    const window = this.prefetch * this.batchSize;
    const cache = this.options.cache ?? null;
    const gridBytes = this.preprocessing.size * this.preprocessing.size * 4;
    // An image is either being decoded (result) or already on the model grid in the cache (finished straight into
    // the batch buffer when its batch is assembled).
    const inFlight: ({ index: number; result: Promise<DecodeResult> } | { index: number; job: DecodeJob; grey: Float32Array })[] = [];
    let next = 0;
    const fill = () => {
      while (next < order.length && inFlight.length < window) {
        const index = order[next++]!;
        if (this.bad.has(index)) continue; // known bad from an earlier epoch: do not decode again
        const job = this.job(index, epoch);
        const key = cache ? ImageCache.key(job.file, job.preprocessing) : '';
        const grey = cache?.get(key);
        if (grey) {
          inFlight.push({ index, job, grey }); // its warnings were reported when it was decoded
          continue;
        }
        if (cache?.fits(gridBytes)) job.keepGrey = true;
        const result = decoder.run(job).then((r) => {
          if (r.ok && r.grey) {
            cache!.add(key, r.grey);
            delete r.grey;
          }
          return r;
        });
        result.catch(() => {}); // awaited below; this only stops an unhandled-rejection report meanwhile
        inFlight.push({ index, result });
      }
    };
    const size = this.preprocessing.size;
    const per = size * size * 3;
    let batchNo = 0;
    for (;;) {
      const taken: ({ index: number; x: Float32Array } | { index: number; job: DecodeJob; grey: Float32Array })[] = [];
      while (taken.length < this.batchSize) {
        fill();
        const head = inFlight.shift();
        if (!head) break;
        if (!('result' in head)) {
          taken.push(head);
          continue;
        }
        const r = await head.result;
        if (r.ok) {
          this.recordWarnings(head.index, r.warnings);
          taken.push({ index: head.index, x: r.x });
        } else this.recordBad(head.index, r.problem);
      }
      fill(); // keep the decoders busy while the consumer works on this batch
      if (!taken.length || (this.options.dropLast && taken.length < this.batchSize)) return;
      const n = taken.length;
      const x = new Float32Array(n * per);
      const y = new Float32Array(n);
      taken.forEach((t, k) => {
        if ('x' in t) x.set(t.x, k * per);
        else finishFromGrey(t.grey, t.job, x, k * per);
        y[k] = this.records[t.index]!.label;
      });
      yield {
        x,
        y,
        records: taken.map((t) => this.records[t.index]!),
        n,
        indices: taken.map((t) => t.index),
        epoch,
        batch: batchNo++,
      };
    }
  }

  /** Stops the workers. Further epochs throw. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    const d = this.decoder;
    this.decoder = null;
    if (d) await d.close();
  }
}
