/**
 * The feature cache inside `train()`, end to end on a tiny learnable dataset (resnet-slim from a weight file, 7 of
 * 10 layers frozen: the stem and the first three blocks are the cached prefix; 32 px; batches of 8 so the prefix's
 * fixed batch of 16 is padded; hflip on, so half the samples of an epoch are the mirrored variant).
 *
 * - fp32 cached == uncached (--no-feature-cache) byte for byte: checkpoints (weights, batchnorm statistics, Adam
 *   moments) and every metric. The tolerance is zero because both paths compute each image's prefix at the same
 *   batch size (src/train/feature-cache/prefix.ts); anything looser would hide a cache that returns slightly
 *   wrong features. Fails on a cache returning zeros or ignoring the flip (both checked here by patching the store).
 * - the counts: the first run extracts every entry, the second extracts none, and every epoch reads every sample
 *   from the cache (fails on a cache that always recomputes).
 * - fp16: a run whose cache folder is unusable (so every feature is computed, then rounded) equals a cached run
 *   byte for byte: the run never depends on what the cache held.
 * - a changed prefix weight is a miss: everything is extracted again (fails on a key without the weight hash).
 * - fp16 features beyond 65504 (the stem's conv scaled 1e5): a named folder refuses (exit 2, hint fp32), the default
 *   cache steps aside, a run without a folder keeps float32; both of these train on finite features. Fails on an
 *   extraction that rounds to fp16 before the store checks the range (infinities stored, nothing rejected).
 * - the same range met only in a training step (the store read-only, so nothing was extracted): a named folder
 *   refuses the same way (exit 2) and the default cache steps aside, training on in float32, bit for bit as the run
 *   that stepped aside during extraction. Fails on a step that throws the disk-type error (exit 1) instead.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { tempDir } from '../helpers/paths.js';
import { writeTinyDataset } from './fixture.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { initEngine } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { readStateDict, writeSafetensorsFile } from '../../src/models/weights/files.js';
import { FeatureStore } from '../../src/train/feature-cache/store.js';
import { FeatureCacheUsageError } from '../../src/train/feature-cache/errors.js';

const tmp = tempDir('nextray-fcache-train-');
const data = join(tmp.dir, 'data');
const weights = join(tmp.dir, 'slim.safetensors');
const weights2 = join(tmp.dir, 'slim-changed.safetensors');
const weightsHuge = join(tmp.dir, 'slim-huge.safetensors');
const cache = join(tmp.dir, 'cache');

before(async () => {
  await writeTinyDataset(data, { trainPatients: 14, validPatients: 10, size: 40, seed: 6 });
  await initEngine();
  const m = createModel('resnet-slim', { seed: 21 });
  const sd = m.exportStateDict();
  writeSafetensorsFile(weights, sd);
  // The same weights but one value of the stem's conv (inside the frozen prefix) one part in a million off.
  const w = sd.get('conv1.weight')!;
  const changed = (w.data as Float32Array).slice();
  changed[5] = changed[5]! * (1 + 1e-6) + 1e-9;
  sd.set('conv1.weight', { ...w, data: changed } as typeof w);
  writeSafetensorsFile(weights2, sd);
  // The stem's conv 100,000 times larger: the prefix's outputs leave float16's range (max 65504).
  sd.set('conv1.weight', { ...w, data: (w.data as Float32Array).map((v) => v * 1e5) } as typeof w);
  writeSafetensorsFile(weightsHuge, sd);
  m.dispose();
});
after(() => tmp.cleanup());

const config = (extra: Partial<TrainConfig>) =>
  resolveConfig([
    {
      values: {
        data,
        arch: 'resnet-slim',
        weights,
        inputSize: 32,
        frozenLayers: 7,
        lr: 0.003,
        l2: 0.01,
        dropout: 0.3,
        batchSize: 8,
        epochs: 2,
        hflip: true,
        workers: 0,
        seed: 3,
        plateauPatience: 0,
        earlyStopPatience: 0,
        ...extra,
      },
      source: 'test',
    },
  ]);

type Metrics = Record<string, number | boolean | string | null>;
const metrics = (dir: string): Metrics[] => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Metrics);
/** What must agree between a cached and an uncached run: everything but timing and the cache's own counts. */
const comparable = (m: Metrics) => {
  const { seconds: _s, images_per_second: _i, features_cached: _a, features_computed: _b, val_features_cached: _c, val_features_computed: _d, ...rest } = m;
  return rest;
};
const log = (dir: string) => readFileSync(join(dir, 'train.log'), 'utf8');
const FILES = ['checkpoints/last/model.safetensors', 'checkpoints/last/optimizer.safetensors', 'checkpoints/best/model.safetensors'];
function sameBytes(a: string, b: string): boolean {
  return FILES.every((f) => Buffer.compare(readFileSync(join(a, f)), readFileSync(join(b, f))) === 0);
}
const run = async (name: string, extra: Partial<TrainConfig>) => {
  const dir = join(tmp.dir, name);
  await train(config(extra), { runDir: dir, quiet: true, echo: null });
  return dir;
};

test('fp32: a cached run equals the uncached run byte for byte, and reads every sample from the cache', async () => {
  const tensors = tf.memory().numTensors;
  const off = await run('off', { featureCache: 'off' });
  const cached = await run('fp32', { featureCache: cache, featurePrecision: 'fp32' });
  assert.equal(tf.memory().numTensors, tensors, 'no tensor leaks');
  assert.doesNotMatch(log(off), /feature cache/);
  const m = metrics(cached);
  const trainImages = m[0]!.train_images as number;
  const valImages = m[0]!.val_images as number;
  assert.match(log(cached), new RegExp(`feature cache: .*: 0 of ${trainImages * 2 + valImages} entries present; extracting ${trainImages * 2 + valImages} `));
  for (const e of m) {
    assert.equal(e.features_cached, trainImages, `epoch ${e.epoch}: every training sample from the cache`);
    assert.equal(e.features_computed, 0);
    assert.equal(e.val_features_cached, valImages);
    assert.equal(e.val_features_computed, 0);
  }
  assert.match(log(cached), new RegExp(`epoch 2/2: .*features: ${trainImages} cached, 0 computed`));
  assert.deepEqual(m.map(comparable), metrics(off).map(comparable));
  assert.ok(sameBytes(cached, off), 'checkpoints of the cached and the uncached run differ');

  // A second run over the same cache extracts nothing and gives the same bytes again.
  const again = await run('fp32-again', { featureCache: cache, featurePrecision: 'fp32' });
  assert.match(log(again), /nothing to extract/);
  assert.doesNotMatch(log(again), /extracted \d+ entries/);
  assert.ok(sameBytes(again, off));
  const summary = JSON.parse(readFileSync(join(again, 'summary.json'), 'utf8')) as { feature_cache: { extracted: number; entries: number } };
  assert.equal(summary.feature_cache.extracted, 0);
  assert.equal(summary.feature_cache.entries, trainImages * 2 + valImages);
});

test('the comparison catches a cache that returns zeros or ignores the flip', async () => {
  const off = join(tmp.dir, 'off');
  const proto = FeatureStore.prototype;
  const read = proto.read;
  try {
    proto.read = function (this: FeatureStore, hash, _variant, out, offset = 0) {
      return read.call(this, hash, 0, out, offset); // always the image as stored
    };
    const noFlip = await run('stub-noflip', { featureCache: cache, featurePrecision: 'fp32' });
    assert.notDeepEqual(metrics(noFlip).map(comparable), metrics(off).map(comparable));
    proto.read = function (this: FeatureStore, hash, variant, out, offset = 0) {
      const ok = read.call(this, hash, variant, out, offset);
      out.fill(0, offset, offset + this.values);
      return ok;
    };
    const zeros = await run('stub-zeros', { featureCache: cache, featurePrecision: 'fp32' });
    assert.notDeepEqual(metrics(zeros).map(comparable), metrics(off).map(comparable));
  } finally {
    proto.read = read;
  }
});

/** The refusal of features beyond float16's range in a named cache folder: a usage error whose hint names fp32. */
function isFloat16Refusal(err: unknown): boolean {
  return err instanceof FeatureCacheUsageError && err.exitStatus === 2 && /exceed the float16 range/.test(err.message) && /--feature-precision fp32/.test(err.hint ?? '');
}

/** Runs `fn` with NEXTRAY_FEATURE_CACHE set to `value`, and puts the variable back as it was afterwards. */
async function withFeatureCacheEnv<T>(value: string, fn: () => Promise<T>): Promise<T> {
  const was = process.env.NEXTRAY_FEATURE_CACHE;
  process.env.NEXTRAY_FEATURE_CACHE = value;
  try {
    return await fn();
  } finally {
    if (was === undefined) delete process.env.NEXTRAY_FEATURE_CACHE;
    else process.env.NEXTRAY_FEATURE_CACHE = was;
  }
}

test('fp16: a run that cannot use any cache folder computes and rounds every feature, and equals the cached run', async () => {
  const cached = await run('fp16', { featureCache: cache, featurePrecision: 'fp16' });
  assert.match(log(cached), /entries of 2x2x64 fp16/);
  // The default location pointed at a regular file: no folder can be made there, so the run trains uncached.
  const notADir = join(tmp.dir, 'not-a-folder');
  writeFileSync(notADir, 'x');
  const computed = await withFeatureCacheEnv(notADir, () => run('fp16-computed', { featureCache: 'auto', featurePrecision: 'fp16' }));
  assert.match(log(computed), /feature cache: no usable folder .*training runs uncached/);
  const mc = metrics(computed);
  assert.equal(mc[1]!.features_cached, 0);
  assert.equal(mc[1]!.features_computed, mc[1]!.train_images);
  assert.deepEqual(mc.map(comparable), metrics(cached).map(comparable));
  assert.ok(sameBytes(computed, cached));
  // ... and differs from fp32 (the rounding is real), if only a little.
  const off = metrics(join(tmp.dir, 'off'));
  assert.notDeepEqual(mc.map(comparable), off.map(comparable));
  assert.ok(Math.abs((mc[1]!.train_loss as number) - (off[1]!.train_loss as number)) < 0.05);
});

test('a weight changed inside the frozen prefix is a miss: every entry is extracted again', async () => {
  const changed = await run('changed-weights', { featureCache: cache, featurePrecision: 'fp32', weights: weights2 });
  const m = metrics(changed);
  const n = (m[0]!.train_images as number) * 2 + (m[0]!.val_images as number);
  assert.match(log(changed), new RegExp(`: 0 of ${n} entries present; extracting ${n} `));
  assert.equal(m[1]!.features_cached, m[1]!.train_images);
  // Same weights file for the trainable part, but the features differ, so the run does.
  const sd1 = await readStateDict(join(tmp.dir, 'fp32', 'checkpoints', 'last', 'model.safetensors'));
  const sd2 = await readStateDict(join(changed, 'checkpoints', 'last', 'model.safetensors'));
  assert.notDeepEqual(sd2.get('fc.weight')!.data, sd1.get('fc.weight')!.data);
});

test('features beyond the float16 range: a named folder is a usage error naming fp32; the default cache steps aside', async () => {
  await assert.rejects(
    () => run('huge-explicit', { featureCache: join(tmp.dir, 'cache-huge'), featurePrecision: 'fp16', weights: weightsHuge }),
    isFloat16Refusal,
  );
  const dir = await withFeatureCacheEnv(join(tmp.dir, 'cache-huge-auto'), () =>
    run('huge-auto', { featureCache: 'auto', featurePrecision: 'fp16', weights: weightsHuge }),
  );
  assert.match(log(dir), /feature cache: off: .*exceed the float16 range .*training runs uncached/);
  const m = metrics(dir);
  assert.equal(m.length, 2);
  assert.equal(m[1]!.features_cached, undefined);
  assert.ok(Number.isFinite(m[1]!.train_loss as number), 'trained on finite features');

  // No usable folder at all: the features are computed in each step, and the run keeps them in float32.
  const notADir = join(tmp.dir, 'not-a-folder-huge');
  writeFileSync(notADir, 'x');
  const computed = await withFeatureCacheEnv(notADir, () =>
    run('huge-computed', { featureCache: 'auto', featurePrecision: 'fp16', weights: weightsHuge }),
  );
  assert.match(log(computed), /exceeds the float16 range; features stay float32 from here on/);
  // The same bits as the run whose cache stepped aside (float32 features at the fixed prefix batch).
  assert.deepEqual(metrics(computed).map(comparable), m.map(comparable));
});

test('features beyond the float16 range met in a step, after extraction: the same refusal, or the same stepping aside', async () => {
  // Another live process holds each store's writer lock, so the store opens read-only, nothing is extracted and
  // every feature is computed in the training steps: the range is first exceeded there, not during extraction.
  const lockAll = (root: string) => {
    const folders = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory());
    assert.ok(folders.length > 0, `${root}: no key-set folder from the previous test`);
    for (const d of folders) writeFileSync(join(root, d.name, 'writer.lock'), `${process.ppid}\n`);
  };
  lockAll(join(tmp.dir, 'cache-huge'));
  await assert.rejects(
    () => run('huge-explicit-step', { featureCache: join(tmp.dir, 'cache-huge'), featurePrecision: 'fp16', weights: weightsHuge }),
    isFloat16Refusal,
  );
  lockAll(join(tmp.dir, 'cache-huge-auto'));
  const dir = await withFeatureCacheEnv(join(tmp.dir, 'cache-huge-auto'), () =>
    run('huge-auto-step', { featureCache: 'auto', featurePrecision: 'fp16', weights: weightsHuge }),
  );
  assert.match(log(dir), /is read-only here \(process \d+ is writing it\)/);
  assert.match(log(dir), /feature cache: off from here on: .*exceed the float16 range .*training goes on uncached, in float32/);
  const m = metrics(dir);
  assert.equal(m.length, 2);
  assert.equal(m[1]!.features_cached, 0);
  assert.equal(m[1]!.features_computed, m[1]!.train_images);
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as { feature_cache: { stepped_aside: string | null } };
  assert.match(summary.feature_cache.stepped_aside ?? '', /exceed the float16 range/);
  // Every feature in float32, none rounded: the same bits as the run whose cache stepped aside during extraction.
  assert.deepEqual(m.map(comparable), metrics(join(tmp.dir, 'huge-auto')).map(comparable));
  assert.ok(sameBytes(dir, join(tmp.dir, 'huge-auto')));
});
