/**
 * The native backend's Transpose (src/engine/transpose.ts, used by weight import OIHW -> HWIO and the ONNX export
 * back) against TF.js's own cpu kernel: random ranks 1-6, shapes with size-1 axes, every kind of permutation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/index.js';
import '@tensorflow/tfjs-backend-cpu';
import { transposeInto } from '../../src/engine/transpose.js';

describe('typed-array transpose', () => {
  it('matches tf.transpose on the cpu backend for 400 random shapes and permutations', async () => {
    await tf.setBackend('cpu');
    let seed = 7;
    const rnd = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let t = 0; t < 400; t++) {
      const rank = 1 + Math.floor(rnd() * 6);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(rnd() * 4));
      const perm = [...Array(rank).keys()].map((k) => [rnd(), k] as const).sort((a, b) => a[0] - b[0]).map(([, k]) => k);
      const n = shape.reduce((a, b) => a * b, 1);
      const x = Float32Array.from({ length: n }, (_, i) => i);
      const want = tf.tidy(() => tf.transpose(tf.tensor(x, shape), perm).dataSync());
      const got = transposeInto(x, shape, perm, new Float32Array(n));
      assert.deepEqual(Array.from(got), Array.from(want), `shape [${shape}] perm [${perm}]`);
    }
  });

  it('moves a torchvision filter OIHW -> HWIO (by hand: w[o][i][h][w] lands at [h][w][i][o])', () => {
    const [O, I, H, W] = [3, 2, 2, 2];
    const x = Float32Array.from({ length: O * I * H * W }, (_, k) => k);
    const y = transposeInto(x, [O, I, H, W], [2, 3, 1, 0], new Float32Array(x.length));
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
      assert.equal(y[((h * W + w) * I + i) * O + o], x[((o * I + i) * H + h) * W + w]);
    }
  });
});
