/**
 * The batch loader: every image exactly once per epoch, seeded per-epoch order (resumable), identical batches for
 * 0, 1 and 2 workers, batch contents equal to the single-image pipeline, bad images skipped and counted, clean
 * shutdown (a forgotten close() does not hang the process).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { BatchLoader, ImageCache, epochOrder, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import { decodeGrey, makePreprocessing, normaliseToChannels, preprocessImage, resizeToInput } from '../../src/data/images.js';
import { applyAugment, augmentRng, drawAugmentParams } from '../../src/data/augment.js';
import type { ImageRecord, Label } from '../../src/data/types.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../helpers/paths.js';
import { encodePng, hugeHeaderPng, truncatedPng } from './images-fixtures.js';

const tmp = tempDir('nextray-loader-');
after(() => tmp.cleanup());

const SIZE = 12;
const prep = makePreprocessing({ size: SIZE });
const N = 23;
const records: ImageRecord[] = [];

function record(i: number, file: string, label: Label): ImageRecord {
  return {
    path: `MURA-v1.1/train/XR_WRIST/patient${String(i).padStart(5, '0')}/study1_${label ? 'positive' : 'negative'}/image1.png`,
    absPath: file,
    study: `MURA-v1.1/train/XR_WRIST/patient${String(i).padStart(5, '0')}/study1_${label ? 'positive' : 'negative'}/`,
    patient: `patient${String(i).padStart(5, '0')}`,
    region: 'XR_WRIST',
    label,
    split: 'train',
  };
}

before(() => {
  // Distinct, non-symmetric content per image (so flips and order mix-ups show), varied sizes and aspect ratios.
  for (let i = 0; i < N; i++) {
    const w = 10 + (i % 5) * 3;
    const h = 8 + (i % 3) * 4;
    const px: number[] = [];
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.push((i * 11 + x * 7 + y * 3) % 256);
    const file = join(tmp.dir, `img${i}.png`);
    writeFileSync(file, encodePng(px, w, h));
    records.push(record(i, file, (i % 3 === 0 ? 1 : 0) as Label));
  }
});

async function collect(loader: BatchLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

async function run(opts: LoaderOptions, epochs: number[], recs: ImageRecord[] = records): Promise<{ batches: Batch[][]; loader: BatchLoader }> {
  const loader = new BatchLoader(recs, { preprocessing: prep, ...opts });
  try {
    const batches: Batch[][] = [];
    for (const e of epochs) batches.push(await collect(loader, e));
    return { batches, loader };
  } finally {
    await loader.close();
  }
}

test('every image exactly once per epoch, batches of batchSize with a smaller last one', async () => {
  const { batches } = await run({ batchSize: 5, seed: 3, workers: 0 }, [0, 1]);
  for (const epoch of batches) {
    assert.deepEqual(epoch.map((b) => b.n), [5, 5, 5, 5, 3]);
    const seen = epoch.flatMap((b) => b.indices).sort((a, b) => a - b);
    assert.deepEqual(seen, Array.from({ length: N }, (_, i) => i));
    for (const b of epoch) {
      assert.equal(b.x.length, b.n * SIZE * SIZE * 3);
      assert.deepEqual([...b.y], b.indices.map((i) => (i % 3 === 0 ? 1 : 0)));
      assert.deepEqual(b.records, b.indices.map((i) => records[i]));
    }
  }
  const dropped = await run({ batchSize: 5, seed: 3, workers: 0, dropLast: true }, [0]);
  assert.deepEqual(dropped.batches[0]!.map((b) => b.n), [5, 5, 5, 5]);
});

test('order: different per epoch, same for the same seed, reproducible when resuming at an epoch', async () => {
  const a = await run({ batchSize: 4, seed: 'run-1', workers: 0 }, [0, 1, 2]);
  const order = (bs: Batch[]) => bs.flatMap((b) => b.indices);
  assert.notDeepEqual(order(a.batches[0]!), order(a.batches[1]!));
  assert.notDeepEqual(order(a.batches[1]!), order(a.batches[2]!));
  // The documented derivation: Rng(seed).fork('epoch-' + e) shuffles 0..N-1.
  const expected = new Rng('run-1').fork('epoch-2').shuffle(Array.from({ length: N }, (_, i) => i));
  assert.deepEqual(order(a.batches[2]!), expected);
  assert.deepEqual(epochOrder(N, 'run-1', 2), expected);
  // A fresh loader that starts at epoch 2 (a resumed run) yields the very same batches.
  const resumed = await run({ batchSize: 4, seed: 'run-1', workers: 0 }, [2]);
  assert.deepEqual(resumed.batches[0]!.map((b) => [b.indices, [...b.x]]), a.batches[2]!.map((b) => [b.indices, [...b.x]]));
  const other = await run({ batchSize: 4, seed: 'run-2', workers: 0 }, [2]);
  assert.notDeepEqual(order(other.batches[0]!), order(a.batches[2]!));
  const unshuffled = await run({ batchSize: 4, seed: 1, workers: 0, shuffle: false }, [5]);
  assert.deepEqual(order(unshuffled.batches[0]!), Array.from({ length: N }, (_, i) => i));
});

test('identical batches with 0, 1 and 2 workers (with augmentation)', async () => {
  const opts = { batchSize: 6, seed: 99, augment: { maxRotationDeg: 30 }, prefetch: 1 };
  const results = [];
  for (const workers of [0, 1, 2]) results.push((await run({ ...opts, workers }, [0, 1])).batches);
  const flat = (r: Batch[][]) => r.map((e) => e.map((b) => ({ i: b.indices, x: [...b.x], y: [...b.y], batch: b.batch })));
  assert.deepEqual(flat(results[1]!), flat(results[0]!));
  assert.deepEqual(flat(results[2]!), flat(results[0]!));
});

test('image cache: identical batches, no file read after the first epoch, shared between loaders, bounded', async () => {
  const opts = { batchSize: 6, seed: 99, augment: { maxRotationDeg: 30, hflipProbability: 0.5 } };
  const flat = (r: Batch[][]) => r.map((e) => e.map((b) => ({ i: b.indices, x: [...b.x], y: [...b.y] })));
  const plain = (await run({ ...opts, workers: 0 }, [0, 1, 2])).batches;
  for (const workers of [0, 2]) {
    const cache = new ImageCache(1e9);
    assert.deepEqual(flat((await run({ ...opts, workers, cache }, [0, 1, 2])).batches), flat(plain), `workers ${workers}`);
    assert.equal(cache.size, N);
    assert.equal(cache.bytes, N * SIZE * SIZE * 4);
  }
  // A cache filled by one loader serves another (the trainer's validation passes): with every file gone, the
  // second loader still yields the same batches, so nothing was decoded.
  const cache = new ImageCache(1e9);
  await run({ ...opts, workers: 0, cache }, [0]);
  const moved = records.map((r) => ({ ...r, absPath: r.absPath }));
  const { renameSync } = await import('node:fs');
  for (const r of records) renameSync(r.absPath, `${r.absPath}.away`);
  try {
    const again = await run({ ...opts, workers: 2, cache }, [1, 2], moved);
    assert.deepEqual(flat(again.batches), flat(plain.slice(1)));
    assert.equal(again.loader.badImageCount, 0);
  } finally {
    for (const r of records) renameSync(`${r.absPath}.away`, r.absPath);
  }
  // A budget for 5 images keeps 5 and decodes the rest every time, with the same batches.
  const small = new ImageCache(5 * SIZE * SIZE * 4);
  assert.deepEqual(flat((await run({ ...opts, workers: 1, cache: small }, [0, 1, 2])).batches), flat(plain));
  assert.equal(small.size, 5);
  assert.throws(() => new ImageCache(-1), /must be >= 0/);
});

test('batch contents equal the single-image pipeline; augmentation is the one drawn for (seed, epoch, index)', async () => {
  const plain = await run({ batchSize: 7, seed: 5, workers: 0 }, [0]);
  const b0 = plain.batches[0]![0]!;
  const per = SIZE * SIZE * 3;
  for (let k = 0; k < b0.n; k++) {
    const expected = await preprocessImage(records[b0.indices[k]!]!.absPath, prep);
    assert.deepEqual(b0.x.subarray(k * per, (k + 1) * per), expected);
  }
  const aug = { maxRotationDeg: 20, hflipProbability: 0.5 };
  const augmented = await run({ batchSize: 7, seed: 5, workers: 0, augment: aug }, [3]);
  const b = augmented.batches[0]![1]!;
  for (let k = 0; k < b.n; k++) {
    const index = b.indices[k]!;
    const img = await decodeGrey(records[index]!.absPath);
    const params = drawAugmentParams(augmentRng(5, 3, index), aug);
    const grey = applyAugment(resizeToInput(img.data, img.width, img.height, prep), SIZE, SIZE, params, aug);
    assert.deepEqual(b.x.subarray(k * per, (k + 1) * per), normaliseToChannels(grey, prep));
  }
  // And it really is augmented (rotation angles are continuous, so never exactly 0).
  assert.notDeepEqual(b.x.subarray(0, per), await preprocessImage(records[b.indices[0]!]!.absPath, prep));
});

test('bad images are skipped, counted once, reported with their problem, and not decoded again', async () => {
  const bad: [string, Buffer | string, RegExp][] = [
    ['zero.png', '', /empty file/],
    ['trunc.png', truncatedPng(), /truncated or corrupt/],
    ['notes.png', 'this is a text file, not a radiograph\n', /not an image/],
    ['huge.png', hugeHeaderPng(30000, 30000), /too large: 30000 x 30000/],
  ];
  const recs = [...records];
  bad.forEach(([name, content], k) => {
    const file = join(tmp.dir, name);
    writeFileSync(file, content);
    recs.splice(3 + k * 5, 0, { ...record(100 + k, file, 1), path: `bad/${name}` });
  });
  const reported: string[] = [];
  for (const workers of [0, 2]) {
    reported.length = 0;
    const { batches, loader } = await run({ batchSize: 4, seed: 8, workers, onBadImage: (b) => reported.push(b.path) }, [0, 1], recs);
    for (const epoch of batches) {
      const seen = epoch.flatMap((b) => b.records.map((r) => r.path));
      assert.equal(seen.length, N, 'all good images, once');
      assert.equal(new Set(seen).size, N);
      assert.ok(seen.every((p) => !p.startsWith('bad/')));
      // Skipped images are replaced by the next ones: only the last batch may be short.
      assert.ok(epoch.slice(0, -1).every((b) => b.n === 4));
    }
    assert.equal(loader.badImageCount, 4);
    assert.equal(reported.length, 4, `workers=${workers}: each bad image reported once over two epochs`);
    const byPath = new Map(loader.badImages.map((b) => [b.path, b.problem]));
    for (const [name, , problem] of bad) assert.match(byPath.get(`bad/${name}`) ?? '', problem, name);
  }
});

test('loader options are validated and a closed loader refuses new epochs', async () => {
  assert.throws(() => new BatchLoader(records, { batchSize: 0 }), /batchSize/);
  assert.throws(() => new BatchLoader(records, { workers: -1 }), /workers/);
  assert.throws(() => new BatchLoader(records, { preprocessing: { ...prep, resize: 'zoom' as 'pad' } }), /resize/);
  const loader = new BatchLoader(records, { preprocessing: prep, workers: 1 });
  const it = loader.epoch(0);
  assert.equal((await it.next()).done, false);
  await loader.close();
  await loader.close();
  await assert.rejects(collect(loader, 1), /closed/);
});

test('a loader with workers that is never closed does not keep the process alive', () => {
  // Run in a child: iterate part of an epoch with 2 workers, break out, never call close(). The child must exit.
  const self = import.meta.url;
  const fromSource = self.endsWith('.ts');
  const loaderUrl = new URL(`../../src/data/loader.${fromSource ? 'ts' : 'js'}`, self).href;
  const files = JSON.stringify(records.slice(0, 8));
  const script = `
    const { BatchLoader } = await import(${JSON.stringify(loaderUrl)});
    const loader = new BatchLoader(${files}, { workers: 2, batchSize: 2, preprocessing: ${JSON.stringify(prep)} });
    let n = 0;
    for await (const b of loader.epoch(0)) { n += b.n; if (n >= 4) break; }
    console.log('got', n);
  `;
  const args = fromSource ? ['--import', import.meta.resolve('tsx')] : [];
  const r = spawnSync(process.execPath, [...args, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.error, undefined, 'child did not exit by itself (timeout)');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /got 4/);
});

test('images that decode but look wrong are kept and listed in warnings once', async () => {
  const flat = join(tmp.dir, 'flat.png');
  writeFileSync(flat, encodePng(new Array(15 * 10).fill(90), 15, 10));
  const recs = [...records.slice(0, 5), { ...record(200, flat, 0), path: 'flat/image1.png' }];
  const seen: string[] = [];
  const { batches, loader } = await run({ batchSize: 4, workers: 0, onWarning: (w) => seen.push(w.path) }, [0, 1], recs);
  assert.equal(batches[0]!.reduce((s, b) => s + b.n, 0), 6);
  assert.deepEqual(seen, ['flat/image1.png']);
  assert.equal(loader.warnings.length, 1);
  assert.match(loader.warnings[0]!.message, /same value/);
  assert.equal(loader.badImageCount, 0);
});
