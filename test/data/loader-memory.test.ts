/**
 * The loader streams: memory after several epochs over 320 images is the same as over 40 images, and does not
 * grow from epoch to epoch. Holding every decoded image would cost 320 x 48 x 48 x 3 x 4 B = 8.8 MB more.
 * (Process RSS — workers, libvips — depends on the machine and allocator: measured in the bench, not asserted here.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BatchLoader } from '../../src/data/loader.js';
import { makePreprocessing } from '../../src/data/images.js';
import type { ImageRecord } from '../../src/data/types.js';
import { tempDir } from '../helpers/paths.js';
import { encodePng } from './images-fixtures.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const tmp = tempDir('nextray-loader-mem-');
after(() => tmp.cleanup());
const SIZE = 48;
const prep = makePreprocessing({ size: SIZE });
const records: ImageRecord[] = [];
const IMAGE_BYTES = SIZE * SIZE * 3 * 4;

before(() => {
  for (let i = 0; i < 320; i++) {
    const px: number[] = [];
    for (let y = 0; y < 40; y++) for (let x = 0; x < 48; x++) px.push((i * 5 + x * 3 + y * 7) % 256);
    const file = join(tmp.dir, `m${i}.png`);
    writeFileSync(file, encodePng(px, 48, 40));
    records.push({ path: `m${i}.png`, absPath: file, study: 's/', patient: 'p', region: 'XR_HAND', label: (i % 2) as 0 | 1, split: 'train' });
  }
});

function heap(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Iterates `epochs` epochs and returns the main-thread memory after each (after GC), with the loader still open. */
async function memoryOverEpochs(recs: ImageRecord[], epochs: number, workers: number): Promise<{ after: number[]; images: number }> {
  const loader = new BatchLoader(recs, { preprocessing: prep, batchSize: 16, seed: 1, workers, augment: {}, prefetch: 2 });
  const afterEpoch: number[] = [];
  let images = 0;
  let checksum = 0;
  try {
    for (let e = 0; e < epochs; e++) {
      for await (const b of loader.epoch(e)) {
        images += b.n;
        checksum += b.x[0]!; // consume the batch as a trainer would, then drop it
      }
      afterEpoch.push(heap());
    }
  } finally {
    await loader.close();
  }
  assert.ok(Number.isFinite(checksum));
  return { after: afterEpoch, images };
}

for (const workers of [0, 2]) {
  test(`memory stays flat as the dataset grows and over epochs (workers: ${workers})`, async () => {
    const small = await memoryOverEpochs(records.slice(0, 40), 3, workers);
    const large = await memoryOverEpochs(records, 3, workers);
    assert.equal(small.images, 120);
    assert.equal(large.images, 960);
    const growthWithData = large.after[2]! - small.after[2]!;
    const growthOverEpochs = large.after[2]! - large.after[0]!;
    const msg = `small ${small.after.map((b) => (b / 1e6).toFixed(1))} MB, large ${large.after.map((b) => (b / 1e6).toFixed(1))} MB`;
    // 8x the images must not cost anything like 280 more images (7.7 MB); allow a quarter of that for noise.
    assert.ok(growthWithData < (280 * IMAGE_BYTES) / 4, `heap grows with the dataset: ${msg}`);
    assert.ok(growthOverEpochs < (280 * IMAGE_BYTES) / 4, `heap grows over epochs: ${msg}`);
  });
}
