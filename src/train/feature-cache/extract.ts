/**
 * Extraction: compute the frozen prefix's output for every image and variant a run needs and append it to the
 * store, as a long job that can be killed at any moment and resumed.
 *
 * Determinism. The images are cut into fixed chunks of EXTRACT_BATCH in a fixed order (the caller's list, each
 * content hash once); a chunk is one prefix call per variant (the images as stored; the same batch mirrored),
 * padded to the prefix batch (prefix.ts). A sample's bits depend only on the call's size, never on the other
 * samples, so an entry equals what an uncached training step computes for that image, and a resumed extraction
 * (which recomputes only the chunks with a missing entry and writes only the missing entries) leaves the store
 * byte for byte as an uninterrupted run does.
 *
 * Before starting: missing entries x bytes per record = disk needed, against the free space (statfs); too little
 * is a FeatureCacheError before any work. A full disk part way through leaves the store consistent (store.ts).
 */
import { statfsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { BatchLoader, type BadImage } from '../../data/loader.js';
import type { Preprocessing } from '../../data/preprocess.js';
import type { ImageRecord } from '../../data/types.js';
import type { Model } from '../../models/index.js';
import { createProgress } from '../../util/progress.js';
import { FeatureCacheError } from './errors.js';
import { forwardFrozenFixed, PREFIX_BATCH } from './prefix.js';
import type { FeatureStore, Variant } from './store.js';

/** Images per forward batch during extraction: the prefix batch (prefix.ts), so entries are an uncached step's bits. */
export const EXTRACT_BATCH = PREFIX_BATCH;

/** Free space kept on the cache's disk beyond what extraction needs (the index, the log, other writers). */
const DISK_MARGIN_BYTES = 2 ** 20;

/** One image to extract: its record (for decoding), its content hash, the variants wanted. */
export interface ExtractItem {
  record: ImageRecord;
  hash: string;
  variants: readonly Variant[];
}

export interface ExtractOptions {
  preprocessing: Preprocessing;
  workers: number;
  quiet?: boolean;
  /** Progress bar label. */
  label?: string;
  log?: (line: string) => void;
  /** Called after each chunk is written (entries written so far); tests use it to fill a disk part way. */
  onChunk?: (written: number) => void;
  /** Called once per image that cannot be decoded. */
  onBadImage?: (bad: BadImage, item: ExtractItem) => void;
  /**
   * Index commits at most this often (default 60 s; every chunk when 0). A commit is an fdatasync, which on a disk
   * other processes write to can take seconds, so the interval also grows to ten times the last commit's duration
   * (commits then cost at most ~10% of the job). Between commits a kill -9 loses nothing (the page cache has the
   * records; the next open checks them); only a power cut can lose the records after the last commit.
   */
  commitEveryMs?: number;
}

export interface ExtractStats {
  /** Entries (image x variant) the job covers. */
  entries: number;
  /** Of those, already in the store when it started. */
  present: number;
  /** Entries computed and written now. */
  written: number;
  /** Images that could not be decoded (no entry). */
  badImages: number;
  seconds: number;
}

/** What extraction of `items` would add to `store`: missing entries and their bytes. */
export function extractionNeeds(store: FeatureStore, items: readonly ExtractItem[]): { entries: number; missing: number; bytes: number } {
  let entries = 0;
  let missing = 0;
  for (const it of items) {
    for (const v of it.variants) {
      entries++;
      if (!store.has(it.hash, v)) missing++;
    }
  }
  return { entries, missing, bytes: missing * store.recordBytes + missing * 33 };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Bytes free to this user on the file system holding `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/**
 * Throws FeatureCacheError when the missing entries cannot fit on the store's disk; returns the numbers otherwise.
 */
export function checkDiskSpace(store: FeatureStore, items: readonly ExtractItem[]): { missing: number; bytes: number; free: number; images: number } {
  const need = extractionNeeds(store, items);
  const free = freeBytes(store.dir);
  const images = items.length;
  if (need.missing && need.bytes + DISK_MARGIN_BYTES > free) {
    throw new FeatureCacheError(
      `${store.dir}: the feature cache needs ${need.missing} more entries x ${formatBytes(store.recordBytes)} = ${formatBytes(need.bytes)} ` +
        `(plus ${formatBytes(DISK_MARGIN_BYTES)} to spare), but only ${formatBytes(free)} is free on that disk`,
      {
        code: 'ERR_FEATURE_CACHE_SPACE',
        hint:
          'free some space, give --feature-cache a folder on a bigger disk' +
          (store.keySet.storage === 'fp32' ? ', store half the bytes with --feature-precision fp16' : '') +
          ', or train without the cache (--no-feature-cache)',
      },
    );
  }
  return { missing: need.missing, bytes: need.bytes, free, images };
}

/**
 * Computes and appends every missing entry of `items` (see the module comment). The caller runs it inside the
 * precision the training steps use (withPrecision). Throws FeatureCacheError on a full disk (the store stays
 * consistent and keeps what was written).
 */
export async function extractFeatures(model: Model, store: FeatureStore, items: readonly ExtractItem[], opts: ExtractOptions): Promise<ExtractStats> {
  const started = Date.now();
  const need = extractionNeeds(store, items);
  const stats: ExtractStats = { entries: need.entries, present: need.entries - need.missing, written: 0, badImages: 0, seconds: 0 };
  if (!need.missing) return stats;
  // Chunks with anything missing, in order.
  const chunks: ExtractItem[][] = [];
  for (let c = 0; c < items.length; c += EXTRACT_BATCH) {
    const chunk = items.slice(c, c + EXTRACT_BATCH);
    if (chunk.some((it) => it.variants.some((v) => !store.has(it.hash, v)))) chunks.push(chunk);
  }
  const flat = chunks.flat();
  const chunkOf = chunks.flatMap((ch, k) => ch.map(() => k));
  const size = opts.preprocessing.size;
  const per = size * size * 3;
  const progress = createProgress({ label: opts.label ?? 'feature cache', total: need.missing, quiet: !!opts.quiet, fields: ['ips'] });
  // Decoding runs ahead on the loader's workers while the main thread computes; one record per loader batch so a
  // bad image never shifts another chunk's images.
  const byPath = new Map(flat.map((it) => [it.record.absPath, it]));
  const loader = new BatchLoader(
    flat.map((it) => it.record),
    {
      batchSize: 1,
      shuffle: false,
      augment: false,
      preprocessing: opts.preprocessing,
      workers: opts.workers,
      prefetch: 2 * EXTRACT_BATCH,
      onBadImage: (bad) => {
        stats.badImages++;
        opts.onBadImage?.(bad, byPath.get(bad.absPath)!);
      },
    },
  );
  let lastCommit = Date.now();
  let commitEvery = opts.commitEveryMs ?? 60000;
  let pending: { k: number; items: ExtractItem[]; x: Float32Array[] } | null = null;
  const flush = (c: { k: number; items: ExtractItem[]; x: Float32Array[] }) => {
    const n = c.items.length;
    if (!n) return;
    const xs = new Float32Array(n * per);
    c.x.forEach((x, i) => xs.set(x, i * per));
    for (const variant of [0, 1] as const) {
      const wanted = c.items.map((it) => it.variants.includes(variant) && !store.has(it.hash, variant));
      if (!wanted.some(Boolean)) continue;
      const feats = tf.tidy(() => {
        const x = tf.tensor4d(xs, [n, size, size, 3]);
        // The mirrored batch is the flip augmentation's input exactly: normalisation is per pixel, so mirroring the
        // normalised image equals normalising the mirrored one.
        return forwardFrozenFixed(model, variant === 1 ? (tf.reverse(x, 2) as tf.Tensor4D) : x);
      });
      const data = feats.dataSync() as Float32Array;
      feats.dispose();
      const each = store.values;
      for (let i = 0; i < n; i++) {
        if (!wanted[i]) continue;
        // Unrounded: append rounds to fp16 itself and counts what overflows. Rounding here first would hand it
        // +/-Infinity, which encodes as Infinity without counting as an overflow.
        store.append(c.items[i]!.hash, variant, data.subarray(i * each, (i + 1) * each));
        stats.written++;
        progress.tick(1, { ips: (stats.written / Math.max((Date.now() - started) / 1000, 1e-3)).toFixed(1) });
      }
    }
    if (Date.now() - lastCommit >= commitEvery) {
      const t = Date.now();
      store.commit();
      lastCommit = Date.now();
      if (commitEvery > 0) commitEvery = Math.max(commitEvery, 10 * (lastCommit - t));
    }
    opts.onChunk?.(stats.written);
  };
  try {
    for await (const b of loader.epoch(0)) {
      const i = b.indices[0]!;
      const k = chunkOf[i]!;
      if (pending && pending.k !== k) {
        flush(pending);
        pending = null;
      }
      if (!pending) pending = { k, items: [], x: [] };
      pending.items.push(flat[i]!);
      pending.x.push(b.x);
    }
    if (pending) flush(pending);
    store.commit();
  } finally {
    progress.stop();
    await loader.close();
    stats.seconds = (Date.now() - started) / 1000;
  }
  return stats;
}
