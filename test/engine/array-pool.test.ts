/**
 * The native backend's recycling of kernel output arrays (ArrayPool in src/engine/native-backend.ts): the
 * pool's own rules, and that recycling never changes a result: arrays read out or viewed by JS kernels are
 * never reused, and a recycled array's cached filter layout is forgotten (a stale one once changed training).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import { loadNativeAddon } from '../../src/engine/native-addon.js';
import { nativeSkip } from './require-native.js';
import { ArrayPool, NativeBackend } from '../../src/engine/native-backend.js';
import { buildModel, Adam, weightedBceMean } from '../../src/train/index.js';

const load = loadNativeAddon();

describe('ArrayPool', () => {
  it('recycles only its own large arrays, within its budget, zero-filled on request', () => {
    const pool = new ArrayPool(3 * 4 * ArrayPool.MIN_LENGTH);
    const n = ArrayPool.MIN_LENGTH;
    const a = pool.take(n);
    a.fill(7);
    pool.release(a);
    assert.equal(pool.freeBytes, 4 * n);
    const b = pool.take(n);
    assert.equal(b, a, 'the released array comes back');
    assert.equal(b[0], 7, 'dirty unless zero is asked for');
    pool.release(b);
    assert.equal(pool.take(n, true)[0], 0);
    // Not ours, too small, disowned, over budget: never kept.
    pool.release(new Float32Array(n));
    const small = pool.take(n - 1);
    pool.release(small);
    const gone = pool.take(n);
    pool.disown(gone);
    pool.release(gone);
    assert.equal(pool.freeBytes, 0);
    const many = [pool.take(n), pool.take(n), pool.take(n), pool.take(n)];
    many.forEach((m) => pool.release(m));
    assert.equal(pool.freeBytes, 3 * 4 * n);
  });
});

describe('recycling on the native backend', { skip: nativeSkip() }, () => {
  let backend: NativeBackend;
  let budget = 0;
  before(async () => {
    await initEngine('native');
    backend = tf.backend() as NativeBackend;
    budget = backend.pool.maxBytes;
  });
  after(() => {
    backend.pool.maxBytes = budget;
  });

  /** A few resnet-slim training steps with an inference pass (which caches filter layouts) after each. */
  function train(poolBytes: number): number[] {
    backend.pool.maxBytes = poolBytes;
    const model = buildModel('resnet-slim', { dropout: 0, seed: 3 });
    const vars = model.trainableVariables();
    const adam = new Adam(vars.map((v, i) => ({ name: String(i), variable: v })), { lr: 3e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    let s = 5;
    const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const out: number[] = [];
    for (let step = 0; step < 4; step++) {
      const x = tf.tensor4d(Float32Array.from({ length: 8 * 48 * 48 * 3 }, rnd), [8, 48, 48, 3]);
      const y = tf.tensor1d([0, 1, 0, 1, 1, 0, 0, 1]);
      out.push(tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => weightedBceMean(model.forward(x, true), y), vars);
        adam.apply(grads);
        return value.dataSync()[0]!;
      }));
      // Inference twice on the same weights: the second use caches each filter's oneDNN layout.
      for (let k = 0; k < 2; k++) out.push(...tf.tidy(() => Array.from(model.forward(x, false).dataSync())));
      tf.dispose([x, y]);
    }
    adam.dispose();
    model.dispose();
    return out;
  }

  it('gives the same training and inference numbers with and without recycling', () => {
    const without = train(0);
    const withPool = train(512 * 2 ** 20);
    assert.deepEqual(withPool, without);
  });

  it('forgets a recycled array\'s cached filter layout', () => {
    backend.pool.maxBytes = 512 * 2 ** 20;
    const x = tf.randomNormal([2, 8, 8, 64], 0, 1, 'float32', 1);
    const conv = (w: tf.Tensor4D) => tf.conv2d(x as tf.Tensor4D, w, 1, 'same');
    // Native outputs, so the arrays are the pool's; 3x3x64x64 is above its minimum length.
    const w1 = tf.add(tf.randomNormal([3, 3, 64, 64], 0, 1, 'float32', 2), 0) as tf.Tensor4D;
    conv(w1).dispose();
    conv(w1).dispose(); // seen twice: its oneDNN layout is cached under its array
    const arrayOf = (t: tf.Tensor) => (backend.data.get(t.dataId) as { values: Float32Array }).values;
    const first = arrayOf(w1);
    w1.dispose();
    const w2 = tf.add(tf.randomNormal([3, 3, 64, 64], 0, 1, 'float32', 3), 0) as tf.Tensor4D;
    assert.equal(arrayOf(w2), first, 'the pool should have handed the same array back (LIFO)');
    const got = [conv(w2), conv(w2)].map((t) => {
      const v = Array.from(t.dataSync());
      t.dispose();
      return v;
    });
    backend.pool.maxBytes = 0;
    const fresh = tf.add(w2, 0) as tf.Tensor4D; // a copy in a never-cached array
    const want = conv(fresh);
    const wantV = Array.from(want.dataSync());
    assert.deepEqual(got[0], wantV);
    assert.deepEqual(got[1], wantV);
    tf.dispose([x, w2, fresh, want]);
  });

  it('never reuses an array that was read out or viewed by a JS kernel', () => {
    backend.pool.maxBytes = 512 * 2 ** 20;
    const n = 4 * ArrayPool.MIN_LENGTH;
    const make = (v: number) => tf.relu(tf.add(tf.fill([n], v), 0)); // native outputs: pool-owned arrays
    const t = make(2);
    const read = t.dataSync() as Float32Array;
    t.dispose();
    const u = make(3);
    const view = tf.slice(u, [0], [n / 2]); // a contiguous Slice is a view of u's array
    u.dispose();
    const churn = Array.from({ length: 6 }, (_, i) => make(10 + i));
    assert.ok(read.every((v) => v === 2), 'an array given to dataSync was recycled');
    assert.ok((view.dataSync() as Float32Array).every((v) => v === 3), 'a sliced view lost its data');
    tf.dispose([view, ...churn]);
  });
});
