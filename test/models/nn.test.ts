/**
 * Layer-level checks of src/models/nn.ts against independent plain-JS reference implementations of PyTorch's
 * definitions (naive loops written here, not the code under test): symmetric conv padding at stride 2, -inf
 * max-pool padding, BatchNorm's training update (biased batch variance for normalising, unbiased for the running
 * estimate, momentum 0.1), Linear, seeded Dropout.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import { BatchNorm2d, Conv2d, Dropout, Linear, convBn, maxPool2d, avgPool2d, globalAvgPool } from '../../src/models/nn.js';
import { Rng } from '../../src/util/rng.js';

before(async () => {
  await initEngine();
});

function randArray(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** PyTorch Conv2d on NHWC data with HWIO kernel, zero padding p on every side, floor output size. */
function refConv(
  x: Float32Array, [n, h, w, c]: number[],
  k: Float32Array, kh: number, o: number, stride: number, pad: number,
): { y: Float32Array; oh: number; ow: number } {
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const ow = Math.floor((w! + 2 * pad - kh) / stride) + 1;
  const y = new Float32Array(n! * oh * ow * o);
  for (let b = 0; b < n!; b++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let oc = 0; oc < o; oc++) {
          let s = 0;
          for (let di = 0; di < kh; di++)
            for (let dj = 0; dj < kh; dj++) {
              const yi = i * stride - pad + di;
              const xj = j * stride - pad + dj;
              if (yi < 0 || yi >= h! || xj < 0 || xj >= w!) continue;
              for (let ic = 0; ic < c!; ic++) {
                s += x[((b * h! + yi) * w! + xj) * c! + ic]! * k[((di * kh + dj) * c! + ic) * o + oc]!;
              }
            }
          y[((b * oh + i) * ow + j) * o + oc] = s;
        }
  return { y, oh, ow };
}

test('Conv2d pads symmetrically like PyTorch (7x7 stride 2 pad 3, 3x3 stride 2 pad 1, even and odd sizes)', () => {
  for (const [h, k, stride, pad] of [
    [10, 7, 2, 3],
    [9, 3, 2, 1],
    [8, 3, 1, 1],
    [6, 1, 2, 0],
  ] as const) {
    const shape = [2, h, h + 1, 3];
    const x = randArray(2 * h * (h + 1) * 3, h * 100 + k);
    const conv = new Conv2d(3, 4, k, { stride, padding: pad });
    conv.materialize(k * 7 + stride);
    const kernel = conv.weight.v.dataSync() as Float32Array;
    const ref = refConv(x, shape, kernel, k, 4, stride, pad);
    const before = tf.memory().numTensors;
    const xt = tf.tensor4d(x, shape as [number, number, number, number]);
    const y = conv.forward(xt);
    assert.deepEqual(y.shape, [2, ref.oh, ref.ow, 4], `output size for k=${k} s=${stride} p=${pad}`);
    assert.ok(maxAbsDiff(y.dataSync(), ref.y) < 1e-4, `values for k=${k} s=${stride} p=${pad}`);
    tf.dispose([xt, y]);
    assert.equal(tf.memory().numTensors, before);
    conv.dispose();
  }
});

test('maxPool2d(3, 2, 1) never selects padding: all-negative input keeps negative borders', () => {
  // 1x4x4x1 input of -16..-1; PyTorch's MaxPool2d(3, 2, 1) gives 2x2: windows rows/cols {0,1},{1,2,3}.
  const vals = Float32Array.from({ length: 16 }, (_, i) => -16 + i);
  const y = tf.tidy(() => maxPool2d(tf.tensor4d(vals, [1, 4, 4, 1]), 3, 2, 1));
  assert.deepEqual(y.shape, [1, 2, 2, 1]);
  // out[0,0] = max of rows 0-1, cols 0-1 = x[1][1] = -16 + 5 = -11; out[0,1] = rows 0-1, cols 1-3 = x[1][3] = -9;
  // out[1,0] = rows 1-3, cols 0-1 = x[3][1] = -3; out[1,1] = x[3][3] = -1.
  assert.deepEqual([...y.dataSync()], [-11, -9, -3, -1]);
  y.dispose();
});

test('avgPool2d(2, 2) floors odd sizes and globalAvgPool averages H and W', () => {
  const vals = Float32Array.from({ length: 9 }, (_, i) => i); // 3x3
  const [a, g] = tf.tidy(() => {
    const x = tf.tensor4d(vals, [1, 3, 3, 1]);
    return [avgPool2d(x, 2, 2), globalAvgPool(x)];
  });
  assert.deepEqual(a!.shape, [1, 1, 1, 1]);
  assert.deepEqual([...a!.dataSync()], [(0 + 1 + 3 + 4) / 4]);
  assert.deepEqual(g!.shape, [1, 1]);
  assert.deepEqual([...g!.dataSync()], [4]);
  tf.dispose([a!, g!]);
});

test('BatchNorm2d: eval uses running stats; training normalises by batch stats and updates running stats like PyTorch', () => {
  const bn = new BatchNorm2d(2);
  bn.materialize(0);
  // Channel 0 values 1, 2, 3, 6; channel 1 values 0, 0, 4, 4 (N=1, H=2, W=2).
  const x = tf.tensor4d([1, 0, 2, 0, 3, 4, 6, 4], [1, 2, 2, 2]);
  bn.weight.v.assign(tf.tensor1d([2, 1]));
  bn.bias.v.assign(tf.tensor1d([0.5, 0]));

  const ev = bn.forward(x, false);
  // running stats 0 / 1: y = x / sqrt(1 + 1e-5) * gamma + beta.
  const s = 1 / Math.sqrt(1 + 1e-5);
  assert.ok(maxAbsDiff(ev.dataSync(), [1 * s * 2 + 0.5, 0, 2 * s * 2 + 0.5, 0, 3 * s * 2 + 0.5, 4 * s, 6 * s * 2 + 0.5, 4 * s]) < 1e-5);
  assert.equal(bn.numBatchesTracked.v.dataSync()[0], 0, 'eval does not count batches');

  const tr = bn.forward(x, true);
  // channel 0: mean 3, biased var (4+1+0+9)/4 = 3.5, unbiased 14/3; channel 1: mean 2, biased var 4, unbiased 16/3.
  const y0 = (v: number) => ((v - 3) / Math.sqrt(3.5 + 1e-5)) * 2 + 0.5;
  const y1 = (v: number) => (v - 2) / Math.sqrt(4 + 1e-5);
  assert.ok(maxAbsDiff(tr.dataSync(), [y0(1), y1(0), y0(2), y1(0), y0(3), y1(4), y0(6), y1(4)]) < 1e-5);
  assert.ok(maxAbsDiff(bn.runningMean.v.dataSync(), [0.1 * 3, 0.1 * 2]) < 1e-6);
  assert.ok(maxAbsDiff(bn.runningVar.v.dataSync(), [0.9 + 0.1 * (14 / 3), 0.9 + 0.1 * (16 / 3)]) < 1e-6);
  assert.equal(bn.numBatchesTracked.v.dataSync()[0], 1);

  // Frozen: training forward behaves like eval and touches nothing.
  bn.frozen = true;
  const meanBefore = [...bn.runningMean.v.dataSync()];
  const fz = bn.forward(x, true);
  const ev2 = bn.forward(x, false);
  assert.deepEqual([...fz.dataSync()], [...ev2.dataSync()]);
  assert.deepEqual([...bn.runningMean.v.dataSync()], meanBefore);
  assert.equal(bn.numBatchesTracked.v.dataSync()[0], 1);
  tf.dispose([x, ev, tr, fz, ev2]);
  bn.dispose();
});

test('Linear computes x W + b with the [in, out] kernel; init bounds follow torchvision', () => {
  const lin = new Linear(3, 2);
  lin.materialize(5);
  const w = lin.weight.v.dataSync();
  const bound = 1 / Math.sqrt(3);
  assert.ok([...w].every((v) => Math.abs(v) <= bound));
  lin.weight.v.assign(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]));
  lin.bias.v.assign(tf.tensor1d([0.5, -1]));
  const y = tf.tidy(() => lin.forward(tf.tensor2d([1, 1, 2], [1, 3])));
  // [1 + 3 + 10 + 0.5, 2 + 4 + 12 - 1]
  assert.deepEqual([...y.dataSync()], [14.5, 17]);
  y.dispose();
  lin.dispose();
});

test('Dropout: identity in eval; in training zeroes about p, scales the rest by 1/(1-p), reproducible from the seed', () => {
  const x = tf.ones([100, 100]);
  const d1 = new Dropout(0.5, 42);
  const d2 = new Dropout(0.5, 42);
  const ev = d1.forward(x, false);
  assert.deepEqual([...new Set(ev.dataSync())], [1]);
  const a = d1.forward(x, true);
  const b = d2.forward(x, true);
  const av = a.dataSync();
  assert.deepEqual([...new Set(av)].sort(), [0, 2]);
  const zeros = av.filter((v) => v === 0).length;
  assert.ok(zeros > 4700 && zeros < 5300, `about half dropped, got ${zeros}`);
  assert.deepEqual([...av], [...b.dataSync()], 'same seed, same mask');
  const c = d1.forward(x, true);
  assert.notDeepEqual([...c.dataSync()], [...av], 'a fresh mask per call');
  tf.dispose([x, ev, a, b, c]);
});

test('convBn folds a running-statistics batch norm into the convolution: same values, cached, refreshed, disposed', () => {
  const conv = new Conv2d(5, 6, 3, { stride: 2, padding: 1 });
  conv.materialize(11);
  const bn = new BatchNorm2d(6);
  bn.materialize(12);
  // Non-trivial statistics and affine parameters.
  bn.weight.v.assign(tf.tensor1d(randArray(6, 1).map((v) => 1 + v / 2)));
  bn.bias.v.assign(tf.tensor1d(randArray(6, 2)));
  bn.runningMean.v.assign(tf.tensor1d(randArray(6, 3)));
  bn.runningVar.v.assign(tf.tensor1d(randArray(6, 4).map((v) => 0.5 + Math.abs(v))));
  const x = tf.tensor4d(randArray(2 * 9 * 9 * 5, 5), [2, 9, 9, 5]);
  const unfolded = (relu: boolean) => tf.tidy(() => bn.forward(conv.forward(x), false, relu).dataSync());
  for (const relu of [false, true]) {
    const want = unfolded(relu);
    const got = tf.tidy(() => convBn(conv, bn, x, false, relu).dataSync());
    assert.ok(maxAbsDiff(got, want) < 1e-5, `relu=${relu}: folded equals conv then batch norm`);
  }
  // Cached: later calls allocate nothing that stays.
  const count = tf.memory().numTensors;
  tf.tidy(() => { convBn(conv, bn, x, false, true); });
  assert.equal(tf.memory().numTensors, count);
  // New weights (a load or a training step) are picked up.
  conv.weight.v.assign(tf.mul(conv.weight.v, 2));
  bn.runningMean.v.assign(tf.add(bn.runningMean.v, 0.5));
  assert.ok(maxAbsDiff(tf.tidy(() => convBn(conv, bn, x, false, true).dataSync()), unfolded(true)) < 1e-5, 'refreshed after a change');
  // Training a unit runs it unfolded (batch statistics, gradients to the weights): nothing new is cached.
  const n = tf.memory().numTensors;
  const trained = tf.tidy(() => convBn(conv, bn, x, true, true).dataSync());
  assert.equal(tf.memory().numTensors, n);
  assert.ok(maxAbsDiff(trained, unfolded(true)) > 1e-3, 'training mode normalises with the batch statistics');
  // Disposing the modules frees the folded filter and bias with the 1 + 5 variables.
  const base = tf.memory().numTensors;
  conv.dispose();
  bn.dispose();
  assert.equal(tf.memory().numTensors, base - 2 - 1 - 5);
  x.dispose();
});
