/**
 * The feature cache as the trainer sees it: `setUpFeatureCache` decides, once per run, whether the frozen prefix's
 * output is cached and where, hashes the images, extracts what is missing, and hands back a session whose epochs
 * are batches of features instead of images.
 *
 * The batches of a cached epoch are exactly the batch loader's (src/data/loader.ts): the order of epoch e is
 * epochOrder(n, seed, e), the flip of image i in epoch e is drawn from augmentRng(seed, e, i), bad images are
 * skipped and the batch is filled from the next ones. Only where an image's pixels would be decoded and pushed
 * through the frozen prefix, its entry (image content hash, variant) is read from the store instead. A missing or
 * damaged entry is computed on the spot (decoded, prefix run, rounded to the storage precision) and appended, so a
 * run never depends on what the cache held: with fp16 storage every feature the trainable part sees is rounded
 * to float16, read or computed, and where no store can be used at all the trainer still rounds ('computed' mode).
 *
 * The one decision, in order: `--no-feature-cache` -> off. A configuration whose prefix output is not a fixed
 * function of the image (rotation augmentation, nothing frozen, a trainable layer, dropout or a batch-statistics
 * batchnorm inside the prefix) -> off with one line; with an explicit `--feature-cache DIR` that is a usage error
 * (FeatureCacheUsageError, exit 2) naming the reason. Otherwise the store opens in the given folder, or in the
 * default (NEXTRAY_FEATURE_CACHE, else `nextray-features` beside the dataset's MURA-v1.1 folder, else
 * ~/.cache/nextray/features). The default cache is optional: no writable folder, too little disk or a full disk
 * only cost speed (one line each), never the run. An explicit folder's problems are errors.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { augmentRng, drawAugmentParams, type AugmentOptions } from '../../data/augment.js';
import { runDecodeJob } from '../../data/decode-worker.js';
import { epochOrder, type BadImage } from '../../data/loader.js';
import type { Preprocessing } from '../../data/preprocess.js';
import type { ImageRecord } from '../../data/types.js';
import { bf16Unavailable, withPrecision, type EngineInfo, type Precision } from '../../engine/index.js';
import type { Model } from '../../models/index.js';
import { createProgress } from '../../util/progress.js';
import type { TrainConfig } from '../config.js';
import { FeatureCacheError, FeatureCacheUsageError } from './errors.js';
import { checkDiskSpace, extractFeatures, formatBytes, type ExtractItem, type ExtractStats } from './extract.js';
import { roundToFp16 } from './fp16.js';
import { forwardFrozenFixed } from './prefix.js';
import { configBlocker, hashImageFiles, makeKeySet, prefixBlocker, prefixOutputShape, prefixTensorHash, type StoragePrecision } from './key.js';
import { FeatureStore, fp16RangeError, type Variant } from './store.js';

/** Memory one image's index entry takes (a 64-hex-digit key, a two-slot array, the Map's slot: ~180 B measured), for the log. */
const INDEX_BYTES_PER_IMAGE = 200;

/** The folders tried, in order, when no --feature-cache DIR is given. */
export function defaultCacheRoots(datasetBase: string): string[] {
  const env = process.env.NEXTRAY_FEATURE_CACHE;
  if (env) return [resolve(env)];
  const home = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return [join(datasetBase, 'nextray-features'), join(home, 'nextray', 'features')];
}

/** Whether a config asks for a specific folder (then the cache's problems are errors, not notes). */
export function explicitCacheDir(config: Pick<TrainConfig, 'featureCache'>): string | null {
  return config.featureCache === 'auto' || config.featureCache === 'off' ? null : config.featureCache;
}

/**
 * Refuses, before a run directory is written, a configuration that names a cache folder but cannot be cached
 * exactly (FeatureCacheUsageError, exit 2). Model-level reasons are checked again once the model is built.
 */
export function checkFeatureCacheConfig(config: TrainConfig): void {
  const dir = explicitCacheDir(config);
  const why = dir ? configBlocker(config) : null;
  if (dir && why) throw usageError(dir, why);
}

/**
 * For a sweep's log: how its configurations group by frozen prefix (what the cache keys on, as far as the config
 * decides it), e.g. '6 of 6 configurations share 1 frozen prefix: ...'; null when no configuration can cache.
 */
export function sharedPrefixes(configs: readonly TrainConfig[]): string | null {
  const groups = new Map<string, number>();
  for (const c of configs) {
    if (c.featureCache === 'off' || configBlocker(c)) continue;
    const k = JSON.stringify([
      resolve(c.data),
      c.arch,
      c.weights ? resolve(c.weights) : `random init, seed ${c.seed}`,
      c.frozenLayers,
      c.inputSize,
      c.resize,
      c.engine,
      c.precision,
      c.featurePrecision,
      c.featureCache,
    ]);
    groups.set(k, (groups.get(k) ?? 0) + 1);
  }
  const cached = [...groups.values()].reduce((a, b) => a + b, 0);
  if (!cached) return null;
  return (
    `feature cache: ${cached} of ${configs.length} configuration(s) share ${groups.size} frozen prefix(es); ` +
    `each prefix's features are extracted once, by its first run, and read by the others`
  );
}

function usageError(dir: string, why: string): FeatureCacheUsageError {
  return new FeatureCacheUsageError(`--feature-cache ${dir}: the frozen prefix's output cannot be cached exactly: ${why}`, {
    hint: 'leave out --feature-cache (training then runs uncached with one line saying why) or change the configuration',
  });
}

export interface FeatureCacheContext {
  config: TrainConfig;
  model: Model;
  train: readonly ImageRecord[];
  val: readonly ImageRecord[];
  preprocessing: Preprocessing;
  /** The folder MURA's CSV paths are relative to (the parent of MURA-v1.1): the default cache sits in it. */
  datasetBase: string;
  engine: EngineInfo;
  log: (line: string) => void;
  quiet: boolean;
}

/**
 * off: features are computed in every step, as they come (no cache in play).
 * computed: the cache applies but no store could be used: features are computed in every step and rounded to the
 *   storage precision, so the run's numbers are those of a cached run.
 * cached: a session reads (and where needed computes and appends) the features.
 */
export type FeatureMode =
  | { kind: 'off'; fixedPrefix: boolean }
  | { kind: 'computed'; storage: StoragePrecision; log: (line: string) => void; fp16Exceeded?: boolean }
  | { kind: 'cached'; session: FeatureCacheSession };

/** One training batch as features: what BatchLoader's Batch carries, with the prefix's output instead of pixels. */
export interface FeatureBatch {
  /** n x H x W x C features. */
  features: Float32Array;
  shape: [number, number, number];
  y: Float32Array;
  records: ImageRecord[];
  n: number;
  indices: number[];
  /** Samples read from the store / computed here. */
  cached: number;
  computed: number;
}

export interface CachedInference {
  records: ImageRecord[];
  logits: Float32Array;
  badImages: BadImage[];
  cached: number;
  computed: number;
}

/** The training steps' compute precision as it will be in effect (bf16 only where the engine has it). */
function effectivePrecision(p: Precision): Precision {
  return p === 'bf16' && bf16Unavailable() === null ? 'bf16' : 'fp32';
}

/** Sets up the run's feature cache (see the module comment). */
export async function setUpFeatureCache(c: FeatureCacheContext): Promise<FeatureMode> {
  const { config, model, log } = c;
  const explicit = explicitCacheDir(config);
  const blocker = configBlocker(config) ?? prefixBlocker(model);
  // A cacheable prefix runs at the fixed prefix batch even uncached, so --no-feature-cache gives a cached run's bits.
  if (config.featureCache === 'off') return { kind: 'off', fixedPrefix: blocker === null };
  if (blocker) {
    if (explicit) throw usageError(explicit, blocker);
    log(`feature cache: off: ${blocker}; training runs uncached`);
    return { kind: 'off', fixedPrefix: false };
  }
  const storage = config.featurePrecision;
  const computed: FeatureMode = { kind: 'computed', storage, log };
  const size = c.preprocessing.size;
  const shape = prefixOutputShape(model, size);
  const prefixHash = prefixTensorHash(model);
  const trainPrecision = effectivePrecision(config.precision);
  const common = { model, preprocessing: c.preprocessing, engine: c.engine, storage, shape, prefixHash };
  const trainKey = makeKeySet({ ...common, computePrecision: trainPrecision });
  // Validation runs in float32 (trainer.ts), so its entries do too.
  const valKey = trainPrecision === 'fp32' ? trainKey : makeKeySet({ ...common, computePrecision: 'fp32' });

  const roots = explicit ? [resolve(explicit)] : defaultCacheRoots(c.datasetBase);
  let trainStore: FeatureStore | null = null;
  let valStore: FeatureStore | null = null;
  const problems: string[] = [];
  for (const root of roots) {
    try {
      trainStore = FeatureStore.open(root, trainKey);
      valStore = valKey === trainKey ? trainStore : FeatureStore.open(root, valKey);
      // The default location must be writable to be worth it; a read-only one is tried after the others.
      if (!explicit && !trainStore.canWrite && root !== roots[roots.length - 1]) {
        problems.push(`${root}: ${trainStore.report.readOnlyReason}`);
        closeStores(trainStore, valStore);
        trainStore = valStore = null;
        continue;
      }
      break;
    } catch (err) {
      closeStores(trainStore, valStore);
      trainStore = valStore = null;
      if (explicit) throw err;
      problems.push((err as Error).message);
    }
  }
  if (!trainStore || !valStore) {
    log(`feature cache: no usable folder (${problems.join('; ')}); training runs uncached`);
    return computed;
  }
  const session = new FeatureCacheSession(model, trainStore, valStore, c, shape);
  try {
    return await session.prepare(explicit !== null, computed);
  } catch (err) {
    session.close();
    throw err;
  }
}

function closeStores(a: FeatureStore | null, b: FeatureStore | null): void {
  a?.close();
  if (b && b !== a) b.close();
}

interface Slot {
  index: number;
  variant: Variant;
  /** Decoded model input of a miss (n/a for a hit). */
  x?: Float32Array;
}

export class FeatureCacheSession {
  readonly shape: [number, number, number];
  readonly values: number;
  readonly storage: StoragePrecision;
  private trainHashes: Array<string | null> = [];
  private valHashes: Array<string | null> = [];
  private trainProblems = new Map<number, string>();
  private valProblems = new Map<number, string>();
  /** Training images found unusable (each once), as the batch loader keeps them. */
  readonly trainBad = new Map<number, BadImage>();
  /** What extraction did in this process, per store. */
  readonly extraction: ExtractStats[] = [];
  private writeFailed = false;
  /** Whether the run named its folder (--feature-cache DIR): then the cache's refusals are errors, not notes. */
  private explicit = false;
  /**
   * Set when fp16 storage meets features beyond float16's range after extraction (in a step's computed miss): the
   * default cache then steps aside for the rest of the run, which computes every feature in float32 and reads and
   * writes nothing, as a run whose cache stepped aside during extraction does.
   */
  private steppedAside: string | null = null;

  constructor(
    private readonly model: Model,
    readonly trainStore: FeatureStore,
    readonly valStore: FeatureStore,
    private readonly c: FeatureCacheContext,
    shape: [number, number, number],
  ) {
    this.shape = shape;
    this.values = shape[0] * shape[1] * shape[2];
    this.storage = c.config.featurePrecision;
  }

  get dir(): string {
    return this.trainStore.dir;
  }

  /** Hashes the images, checks the disk, extracts what is missing. Returns the mode the run trains in. */
  async prepare(explicit: boolean, computed: FeatureMode): Promise<FeatureMode> {
    const { config, log, quiet } = this.c;
    const ts = this.trainStore;
    this.explicit = explicit;
    if (!ts.canWrite) log(`feature cache: ${ts.dir} is read-only here (${ts.report.readOnlyReason}); missing entries are computed in each step`);
    if (ts.report.recovered || ts.report.dropped) {
      log(`feature cache: ${ts.dir}: ${ts.report.recovered} entr${ts.report.recovered === 1 ? 'y' : 'ies'} written after the last commit recovered, ${ts.report.dropped} torn record(s) dropped (recomputed below)`);
    }
    const all = [...this.c.train, ...this.c.val];
    const progress = createProgress({ label: 'hashing images', total: all.length, quiet });
    const hashes = await hashImageFiles(all.map((r) => r.absPath), { onProgress: () => progress.tick() });
    progress.stop();
    hashes.forEach((h, i) => {
      const isTrain = i < this.c.train.length;
      const j = isTrain ? i : i - this.c.train.length;
      (isTrain ? this.trainHashes : this.valHashes)[j] = 'hash' in h ? h.hash : null;
      if ('problem' in h) (isTrain ? this.trainProblems : this.valProblems).set(j, h.problem);
    });
    const trainItems = uniqueItems(this.c.train, this.trainHashes, config.hflip ? [0, 1] : [0]);
    const valItems = uniqueItems(this.c.val, this.valHashes, [0]);

    const stores = this.valStore === ts ? [{ store: ts, items: [...trainItems, ...valItems] }] : [{ store: ts, items: trainItems }, { store: this.valStore, items: valItems }];
    if (ts.canWrite) {
      try {
        for (const s of stores) {
          const d = checkDiskSpace(s.store, s.items);
          const entries = s.items.reduce((n, it) => n + it.variants.length, 0);
          log(
            `feature cache: ${s.store.dir}: ${entries - d.missing} of ${entries} entries present; ` +
              (d.missing
                ? `extracting ${d.missing} (${d.images} images, ${config.hflip ? 'as stored + hflip for training' : 'as stored'}) x ${formatBytes(s.store.recordBytes)} = ${formatBytes(d.bytes)}, ${formatBytes(d.free)} free`
                : 'nothing to extract'),
          );
        }
      } catch (err) {
        if (explicit || !(err instanceof FeatureCacheError)) throw err;
        log(`feature cache: ${err.message}; training runs uncached`);
        this.close();
        return computed;
      }
      try {
        // A training image that does not decode is bad for the whole run, as the loader keeps it (logged once).
        const trainIndex = new Map(this.c.train.map((r, i) => [r.absPath, i]));
        const onBadImage = (bad: BadImage) => {
          const i = trainIndex.get(bad.absPath);
          if (i === undefined) log(`bad image skipped: ${bad.path}: ${bad.problem}`);
          else this.markBad(i, bad.problem);
        };
        const opts = { preprocessing: this.c.preprocessing, workers: config.workers, quiet, log, onBadImage };
        await withPrecision(config.precision, async () => {
          this.extraction.push(await extractFeatures(this.model, ts, trainItems, { ...opts, label: 'feature cache (training images)' }));
        }, 'extracting features');
        this.extraction.push(await extractFeatures(this.model, this.valStore, valItems, { ...opts, label: 'feature cache (validation images)' }));
      } catch (err) {
        if (err instanceof FeatureCacheError && err.code === 'ERR_FEATURE_CACHE_FP16_RANGE') {
          // Not a disk problem: these features cannot be fp16 at all. Named folder: say what to do; default: step aside.
          if (explicit) throw new FeatureCacheUsageError(`--feature-cache ${this.dir}: ${err.message.replace(/^[^:]*: /, '')}`, { hint: err.hint ?? '' });
          log(`feature cache: off: ${err.message.replace(/^[^:]*: /, '')} (--feature-precision fp32 caches them); training runs uncached`);
          this.close();
          return { kind: 'off', fixedPrefix: true };
        }
        if (explicit || !(err instanceof FeatureCacheError)) throw err;
        // The default cache is optional: keep what was written, compute the rest in each step.
        this.writeFailed = true;
        log(`feature cache: ${err.message.replace(/ \(free some space.*$/, '')}; the missing entries are computed in each step`);
      }
      const written = this.extraction.reduce((n, e) => n + e.written, 0);
      const secs = this.extraction.reduce((n, e) => n + e.seconds, 0);
      if (written) log(`feature cache: extracted ${written} entries in ${secs.toFixed(1)} s (${(written / Math.max(secs, 1e-3)).toFixed(1)} entries/s)`);
    }
    const images = ts.images + (this.valStore === ts ? 0 : this.valStore.images);
    log(
      `feature cache: ${ts.dir}: ${ts.size + (this.valStore === ts ? 0 : this.valStore.size)} entries of ${this.shape.join('x')} ${this.storage} ` +
        `(${formatBytes(ts.recordBytes)} each); index ${images} images, ~${formatBytes(images * INDEX_BYTES_PER_IMAGE)} in memory, index.bin ${formatBytes(ts.indexFileBytes)}`,
    );
    return { kind: 'cached', session: this };
  }

  /** Training images that are bad (hash unreadable or not decodable), reported like the loader's. */
  private markBad(index: number, problem: string): void {
    if (this.trainBad.has(index)) return;
    const r = this.c.train[index]!;
    const bad = { path: r.path || r.absPath, absPath: r.absPath, problem };
    this.trainBad.set(index, bad);
    this.c.log(`bad image skipped: ${bad.path}: ${bad.problem}`);
  }

  /**
   * The batches of epoch `epoch` as features, the loader's batches exactly (see the module comment). Run inside
   * the training steps' precision, so a computed miss matches an extracted entry.
   */
  async *trainEpoch(epoch: number): AsyncGenerator<FeatureBatch, void, undefined> {
    const { config } = this.c;
    const records = this.c.train;
    const order = epochOrder(records.length, config.seed, epoch, true);
    const aug: AugmentOptions | false = config.hflip ? { hflipProbability: 0.5, maxRotationDeg: 0 } : false;
    let next = 0;
    for (;;) {
      const taken: Slot[] = [];
      let computed = 0;
      while (taken.length < config.batchSize && next < order.length) {
        const index = order[next++]!;
        if (this.trainBad.has(index)) continue;
        const hash = this.trainHashes[index];
        if (!hash) {
          this.markBad(index, this.trainProblems.get(index) ?? 'cannot read the file');
          continue;
        }
        const variant: Variant = aug && drawAugmentParams(augmentRng(config.seed, epoch, index), aug).flip ? 1 : 0;
        if (!this.steppedAside && this.trainStore.has(hash, variant)) taken.push({ index, variant });
        else {
          const x = await this.decode(records[index]!, variant);
          if ('problem' in x) this.markBad(index, x.problem);
          else taken.push({ index, variant, x: x.x });
        }
      }
      if (!taken.length) return;
      const features = await this.fill(taken, this.trainStore, records, this.trainHashes, (i, p) => this.markBad(i, p));
      computed = features.computed;
      const kept = features.slots;
      const n = kept.length;
      if (!n) continue;
      yield {
        features: features.data,
        shape: this.shape,
        y: Float32Array.from(kept.map((s) => records[s.index]!.label)),
        records: kept.map((s) => records[s.index]!),
        n,
        indices: kept.map((s) => s.index),
        cached: n - computed,
        computed,
      };
    }
  }

  /**
   * Logits of the model in inference mode over the validation images (as stored), from cached features: what
   * inferRecords gives (records in order, bad images left out).
   */
  async validate(model: Model): Promise<CachedInference> {
    const records = this.c.val;
    const bad = new Map<number, BadImage>();
    const markBad = (index: number, problem: string) => {
      const r = records[index]!;
      bad.set(index, { path: r.path || r.absPath, absPath: r.absPath, problem });
    };
    const outRecords: ImageRecord[] = [];
    const logits: number[] = [];
    let cached = 0;
    let computed = 0;
    const b = this.c.config.batchSize;
    for (let start = 0; start < records.length; start += b) {
      const taken: Slot[] = [];
      for (let index = start; index < Math.min(start + b, records.length); index++) {
        const hash = this.valHashes[index];
        if (!hash) {
          markBad(index, this.valProblems.get(index) ?? 'cannot read the file');
          continue;
        }
        if (!this.steppedAside && this.valStore.has(hash, 0)) taken.push({ index, variant: 0 });
        else {
          const x = await this.decode(records[index]!, 0);
          if ('problem' in x) markBad(index, x.problem);
          else taken.push({ index, variant: 0, x: x.x });
        }
      }
      if (!taken.length) continue;
      const f = await this.fill(taken, this.valStore, records, this.valHashes, markBad);
      const n = f.slots.length;
      if (!n) continue;
      const z = tf.tidy(() => model.forwardTrainable(tf.tensor4d(f.data, [n, ...this.shape]), false).dataSync() as Float32Array);
      f.slots.forEach((s, k) => {
        outRecords.push(records[s.index]!);
        logits.push(z[k]!);
      });
      cached += n - f.computed;
      computed += f.computed;
    }
    return { records: outRecords, logits: Float32Array.from(logits), badImages: [...bad.values()], cached, computed };
  }

  /** Decodes one image as the loader would (flipped for variant 1). */
  private async decode(record: ImageRecord, variant: Variant): Promise<{ x: Float32Array } | { problem: string }> {
    const r = await runDecodeJob({
      id: 0,
      file: record.absPath,
      preprocessing: this.c.preprocessing,
      augment: variant === 1 ? { params: { flip: true, angleDeg: 0 }, options: { hflipProbability: 0.5, maxRotationDeg: 0 } } : null,
    });
    return r.ok ? { x: r.x } : { problem: r.problem };
  }

  /**
   * The features of `taken` in order: hits read from `store`, misses (and hits whose record fails its checks)
   * computed in one batch, rounded to the storage precision and appended. Images that turn out unusable are
   * reported through `markBad` and left out. A computed miss beyond float16's range (fp16 storage) is a usage error
   * with a named folder; with the default one the cache steps aside (`steppedAside`) and the whole batch is
   * computed again in float32, so no feature of the run from here on was ever rounded or read.
   */
  private async fill(
    taken: Slot[],
    store: FeatureStore,
    records: readonly ImageRecord[],
    hashes: ReadonlyArray<string | null>,
    markBad: (index: number, problem: string) => void,
  ): Promise<{ data: Float32Array; slots: Slot[]; computed: number }> {
    const v = this.values;
    let slots = taken;
    let data = new Float32Array(slots.length * v);
    for (let k = 0; k < slots.length; k++) {
      const s = slots[k]!;
      if (s.x) continue;
      if (this.steppedAside || !store.read(hashes[s.index]!, s.variant, data, k * v)) {
        const x = await this.decode(records[s.index]!, s.variant);
        if ('problem' in x) markBad(s.index, x.problem);
        else s.x = x.x;
        if ('problem' in x) s.index = -1 - s.index; // dropped below
      }
    }
    if (slots.some((s) => s.index < 0)) {
      const keep = slots.map((s, k) => ({ s, k })).filter(({ s }) => s.index >= 0);
      const next = new Float32Array(keep.length * v);
      keep.forEach(({ k }, j) => next.set(data.subarray(k * v, (k + 1) * v), j * v));
      slots = keep.map(({ s }) => s);
      data = next;
    }
    const misses = slots.map((s, k) => ({ s, k })).filter(({ s }) => s.x);
    if (misses.length) {
      const size = this.c.preprocessing.size;
      const per = size * size * 3;
      const xs = new Float32Array(misses.length * per);
      misses.forEach(({ s }, j) => xs.set(s.x!, j * per));
      const f = tf.tidy(() => forwardFrozenFixed(this.model, tf.tensor4d(xs, [misses.length, size, size, 3])).dataSync() as Float32Array);
      if (this.steppedAside) {
        misses.forEach(({ k }, j) => data.set(f.subarray(j * v, (j + 1) * v), k * v));
        return { data, slots, computed: slots.length };
      }
      // Rounded (fp16) and checked before anything is appended: an entry beyond the range is never written.
      const rounded = misses.map((_m, j) => f.slice(j * v, (j + 1) * v));
      const overflow = this.storage === 'fp16' ? rounded.reduce((n, values) => n + roundToFp16(values), 0) : 0;
      if (overflow) {
        const err = fp16RangeError(this.dir, overflow);
        const what = err.message.replace(/^[^:]*: /, '');
        if (this.explicit) throw new FeatureCacheUsageError(`--feature-cache ${this.dir}: ${what}`, { hint: err.hint ?? '' });
        this.steppedAside = what;
        this.c.log(`feature cache: off from here on: ${what} (--feature-precision fp32 caches them); training goes on uncached, in float32`);
        return this.fill(slots, store, records, hashes, markBad);
      }
      misses.forEach(({ s, k }, j) => {
        data.set(rounded[j]!, k * v);
        this.appendQuietly(store, hashes[s.index]!, s.variant, rounded[j]!);
      });
    }
    return { data, slots, computed: misses.length };
  }

  /** Appends a computed entry when the store takes writes; a failure only stops further writes (one line). */
  private appendQuietly(store: FeatureStore, hash: string, variant: Variant, values: Float32Array): void {
    if (this.writeFailed || !store.canWrite) return;
    try {
      store.append(hash, variant, values);
    } catch (err) {
      this.writeFailed = true;
      this.c.log(`feature cache: ${(err as Error).message}; further missing entries are computed without being stored`);
    }
  }

  /** For summary.json: where the cache is, what it holds, what this process extracted. */
  summary(): Record<string, unknown> {
    return {
      dir: this.trainStore.dir,
      storage: this.storage,
      entry_shape: this.shape,
      record_bytes: this.trainStore.recordBytes,
      entries: this.trainStore.size + (this.valStore === this.trainStore ? 0 : this.valStore.size),
      extracted: this.extraction.reduce((n, e) => n + e.written, 0),
      extraction_seconds: this.extraction.reduce((n, e) => n + e.seconds, 0),
      stepped_aside: this.steppedAside,
    };
  }

  /** Commits the stores' indexes (e.g. at the end of an epoch). */
  commit(): void {
    for (const s of new Set([this.trainStore, this.valStore])) {
      try {
        if (s.canWrite) s.commit();
      } catch {
        // the next open checks the uncommitted tail
      }
    }
  }

  close(): void {
    closeStores(this.trainStore, this.valStore);
  }
}

/** Each content hash once, in record order, with the variants wanted. */
function uniqueItems(records: readonly ImageRecord[], hashes: ReadonlyArray<string | null>, variants: readonly Variant[]): ExtractItem[] {
  const seen = new Set<string>();
  const out: ExtractItem[] = [];
  records.forEach((record, i) => {
    const hash = hashes[i];
    if (!hash || seen.has(hash)) return;
    seen.add(hash);
    out.push({ record, hash, variants });
  });
  return out;
}
