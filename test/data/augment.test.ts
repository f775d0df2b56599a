/**
 * Augmentation: hflip is an exact mirror, rotation matches torchvision's rotate (golden values from
 * test/data/golden/make-augment-golden.py), and parameters are deterministic per (seed, epoch, image).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  applyAugment,
  augment,
  augmentRng,
  drawAugmentParams,
  hflip,
  rotate,
} from '../../src/data/augment.js';
import { Rng } from '../../src/util/rng.js';
import { REPO_ROOT } from '../helpers/paths.js';

const golden = JSON.parse(readFileSync(join(REPO_ROOT, 'test/data/golden/augment-golden.json'), 'utf8')) as {
  rotate: { w: number; h: number; angle: number; values: number[] }[];
};

function source(w: number, h: number): Float32Array {
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = ((x * 37 + y * 91) % 256) / 255;
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

test('hflip is an exact mirror (grey and HWC) and its own inverse', () => {
  // 3 x 2 grey:  [1 2 3; 4 5 6] -> [3 2 1; 6 5 4]
  assert.deepEqual([...hflip(Float32Array.from([1, 2, 3, 4, 5, 6]), 3, 2)], [3, 2, 1, 6, 5, 4]);
  // 2 x 1 with 3 channels: pixels (1,2,3) (4,5,6) swap as a whole.
  assert.deepEqual([...hflip(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 1, 3)], [4, 5, 6, 1, 2, 3]);
  const img = source(17, 11);
  assert.deepEqual(hflip(hflip(img, 17, 11), 17, 11), img);
});

test('rotation by 0 is the identity; by 90 and 180 degrees moves pixels exactly', () => {
  const n = 7;
  const img = source(n, n);
  assert.deepEqual(rotate(img, n, n, 0), img);
  // Counter-clockwise quarter turn (numpy's rot90): out[y][x] = in[x][n-1-y].
  const r90 = rotate(img, n, n, 90);
  const expect90 = new Float32Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) expect90[y * n + x] = img[x * n + (n - 1 - y)]!;
  assert.ok(maxDiff(r90, expect90) < 1e-6);
  // Half turn: out[y][x] = in[n-1-y][n-1-x].
  const r180 = rotate(img, n, n, 180);
  const expect180 = new Float32Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) expect180[y * n + x] = img[(n - 1 - y) * n + (n - 1 - x)]!;
  assert.ok(maxDiff(r180, expect180) < 1e-6);
});

test('rotation matches torchvision rotate(bilinear) with zero fill', () => {
  for (const g of golden.rotate) {
    const got = rotate(source(g.w, g.h), g.w, g.h, g.angle, 0);
    const d = maxDiff(got, g.values);
    assert.ok(d < 1e-5, `${g.w}x${g.h} at ${g.angle} deg: max diff ${d}`);
  }
});

test('rotated-in corners take the background value', () => {
  const img = new Float32Array(21 * 21).fill(0.5);
  const r = rotate(img, 21, 21, 45, 0.9);
  assert.ok(Math.abs(r[0]! - 0.9) < 1e-6, 'corner is background');
  assert.ok(Math.abs(r[10 * 21 + 10]! - 0.5) < 1e-6, 'centre is image');
});

test('HWC rotation equals rotating each channel alone', () => {
  const w = 9;
  const h = 6;
  const grey = source(w, h);
  const hwc = new Float32Array(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) hwc[i * 3 + c] = grey[i]! * (c + 1) * 0.3;
  const r = rotate(hwc, w, h, 23, 0, 3);
  for (let c = 0; c < 3; c++) {
    const single = rotate(Float32Array.from(grey, (v) => v * (c + 1) * 0.3), w, h, 23, 0);
    const channel = Float32Array.from({ length: w * h }, (_, i) => r[i * 3 + c]!);
    assert.ok(maxDiff(channel, single) < 1e-6);
  }
});

test('parameters are deterministic per (seed, epoch, image) and independent of draw order', () => {
  const a = drawAugmentParams(augmentRng(42, 3, 17));
  // Another stream consumed in between changes nothing.
  drawAugmentParams(augmentRng(42, 3, 16));
  const b = drawAugmentParams(augmentRng(42, 3, 17));
  assert.deepEqual(a, b);
  const img = source(8, 8);
  assert.deepEqual(augment(img, 8, 8, augmentRng(7, 0, 1)), augment(img, 8, 8, augmentRng(7, 0, 1)));
  // Different images / epochs / seeds get different draws (angles are continuous, so a tie means a bug).
  const angles = new Set<number>();
  for (const [s, e, i] of [[42, 3, 17], [42, 3, 18], [42, 4, 17], [43, 3, 17]] as const)
    angles.add(drawAugmentParams(augmentRng(s, e, i)).angleDeg);
  assert.equal(angles.size, 4);
});

test('flip probability 0.5 and angles uniform within +/- 30 degrees', () => {
  const rng = new Rng('augment-distribution');
  let flips = 0;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  const N = 4000;
  for (let i = 0; i < N; i++) {
    const p = drawAugmentParams(rng);
    if (p.flip) flips++;
    min = Math.min(min, p.angleDeg);
    max = Math.max(max, p.angleDeg);
    sum += p.angleDeg;
  }
  // Binomial(4000, 0.5): sd 31.6; 5 sd = 158.
  assert.ok(Math.abs(flips - N / 2) < 158, `flips ${flips}`);
  assert.ok(min >= -30 && max <= 30);
  assert.ok(min < -29 && max > 29, `range ${min}..${max}`);
  // Mean of U(-30, 30) is 0 with sd 30/sqrt(3)/sqrt(4000) = 0.27.
  assert.ok(Math.abs(sum / N) < 1.4);
  const noRot = drawAugmentParams(new Rng(1), { maxRotationDeg: 0, hflipProbability: 1 });
  assert.deepEqual(noRot, { flip: true, angleDeg: 0 });
  assert.throws(() => drawAugmentParams(new Rng(1), { hflipProbability: 2 }), /hflipProbability/);
});

test('applyAugment: flip then rotate, never mutating its input', () => {
  const img = source(6, 5);
  const copy = img.slice();
  const out = applyAugment(img, 6, 5, { flip: true, angleDeg: 0 });
  assert.deepEqual(out, hflip(copy, 6, 5));
  assert.deepEqual(img, copy);
  const same = applyAugment(img, 6, 5, { flip: false, angleDeg: 0 });
  assert.notEqual(same, img);
  assert.deepEqual(same, img);
  const both = applyAugment(img, 6, 5, { flip: true, angleDeg: 12 }, { background: 0.25 });
  assert.deepEqual(both, rotate(hflip(copy, 6, 5), 6, 5, 12, 0.25));
});
