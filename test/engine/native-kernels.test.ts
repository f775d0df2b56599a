/**
 * Each native kernel against the pure-JS cpu backend on random inputs: convolutions (1x1/3x3/7x7, strides
 * 1 and 2, same/valid/explicit padding, dilation, batch > 1) and their gradients, matrix products, pooling
 * and its gradients, the elementwise/reduction ops batch normalisation and Adam are built from, and the gradients of
 * a small conv net through tf.grad. Agreement means max |native - js| <= 1e-4 * max(1, max |js|).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf, kernelProfile, resetKernelProfile, enableKernelProfile } from '../../src/engine/index.js';
import { loadNativeAddon } from '../../src/engine/native-addon.js';
import { nativeSkip } from './require-native.js';
import { NATIVE_BACKEND } from '../../src/engine/native-backend.js';

const load = loadNativeAddon();
const skip = nativeSkip();

type Build = () => tf.Tensor | tf.Tensor[];

/** Runs `build` on a backend and returns plain copies of the outputs (no tensors survive). */
async function runOn(backend: string, build: Build): Promise<{ shape: number[]; values: Float32Array }[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(() => {
    const r = build();
    return Array.isArray(r) ? r : [r];
  });
  const res = outs.map((t) => ({ shape: t.shape, values: Float32Array.from(t.dataSync()) }));
  tf.dispose(outs);
  return res;
}

/** Inputs are created as plain arrays so both backends see identical data. */
function rand(shape: number[], seed: number): () => tf.Tensor {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const vals = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    vals[i] = s / 2 ** 31 - 1;
  }
  return () => tf.tensor(vals, shape);
}

async function assertSame(name: string, build: Build, expectNative: string[] = []): Promise<void> {
  const js = await runOn('cpu', build);
  resetKernelProfile();
  enableKernelProfile(true);
  const nat = await runOn(NATIVE_BACKEND, build);
  enableKernelProfile(false);
  assert.equal(nat.length, js.length, `${name}: output count`);
  for (let o = 0; o < js.length; o++) {
    assert.deepEqual(nat[o].shape, js[o].shape, `${name}: output ${o} shape`);
    let maxRef = 1;
    let maxDiff = 0;
    for (let i = 0; i < js[o].values.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(js[o].values[i]));
      const d = Math.abs(nat[o].values[i] - js[o].values[i]);
      if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    }
    assert.ok(maxDiff <= 1e-4 * maxRef, `${name}: output ${o} differs by ${maxDiff} (scale ${maxRef})`);
  }
  const ranNative = new Set(kernelProfile().filter((s) => s.path === 'native').map((s) => s.kernel));
  for (const k of expectNative) assert.ok(ranNative.has(k), `${name}: kernel ${k} did not run natively`);
}

describe('native kernels match the pure-JS cpu backend', { skip }, () => {
  let before0 = 0;
  before(async () => {
    await initEngine('native');
    before0 = tf.memory().numTensors;
  });
  after(async () => {
    assert.equal(tf.memory().numTensors, before0, 'tensors leaked');
    await tf.setBackend(NATIVE_BACKEND);
  });

  const convCases: { x: number[]; w: number[]; s: number; pad: 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]]; d?: number }[] = [
    { x: [2, 9, 11, 3], w: [1, 1, 3, 5], s: 1, pad: 'valid' },
    { x: [2, 13, 12, 6], w: [3, 3, 6, 8], s: 1, pad: 'same' },
    { x: [3, 13, 12, 6], w: [3, 3, 6, 8], s: 2, pad: 'same' },
    { x: [2, 12, 13, 4], w: [3, 3, 4, 7], s: 2, pad: 'valid' },
    { x: [2, 10, 9, 5], w: [3, 3, 5, 6], s: 1, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
    { x: [2, 21, 20, 3], w: [7, 7, 3, 16], s: 2, pad: 3 },
    { x: [2, 16, 16, 32], w: [1, 1, 32, 64], s: 2, pad: 'valid' },
    // 3x3 stride 1 with channels in multiples of 16: oneDNN's Winograd on AVX-512 (see the Winograd test below).
    { x: [2, 14, 13, 16], w: [3, 3, 16, 32], s: 1, pad: 'same' },
    { x: [3, 11, 12, 64], w: [3, 3, 64, 48], s: 1, pad: 'valid' },
  ];

  for (const c of convCases) {
    const label = `conv ${c.x} * ${c.w} stride ${c.s} pad ${JSON.stringify(c.pad)}`;
    it(`${label}: forward`, async () => {
      const x = rand(c.x, 1), w = rand(c.w, 2);
      await assertSame(label, () => tf.conv2d(x() as tf.Tensor4D, w() as tf.Tensor4D, c.s, c.pad), ['Conv2D']);
    });
    it(`${label}: gradients (backprop input and filter)`, async () => {
      const x = rand(c.x, 3), w = rand(c.w, 4);
      const probe = (xv: tf.Tensor4D, wv: tf.Tensor4D) => tf.conv2d(xv, wv, c.s, c.pad);
      const outShape = tf.tidy(() => probe(x() as tf.Tensor4D, w() as tf.Tensor4D).shape);
      const g = rand(outShape, 5);
      await assertSame(label, () => {
        const f = (xv: tf.Tensor, wv: tf.Tensor) => tf.sum(tf.mul(probe(xv as tf.Tensor4D, wv as tf.Tensor4D), g()));
        return tf.grads(f)([x(), w()]);
      }, ['Conv2DBackpropInput', 'Conv2DBackpropFilter']);
    });
  }

  it('3x3 stride-1 convolutions run oneDNN\'s Winograd where the CPU has it (AVX-512), direct with NEXTRAY_WINOGRAD=0', () => {
    if (!load.ok) return;
    const addon = load.addon;
    // [n,h,w,ci, oh,ow,co, kh,kw, sh,sw, pt,pb,pl,pr, dh,dw]
    const geom = Int32Array.from([2, 20, 20, 32, 20, 20, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1]);
    const avx512 = addon.info().isa.startsWith('avx512');
    const names = () => [0, 1, 2].map((k) => addon.convImpl(k as 0 | 1 | 2, geom));
    try {
      const on = names();
      for (const n of on) assert.equal(n.includes('_wino'), avx512, `with Winograd on (${addon.info().isa}): ${on.join(', ')}`);
      addon.setWinograd(false);
      const off = names();
      for (const n of off) assert.ok(!n.includes('_wino') && !n.startsWith('ref'), `with Winograd off: ${off.join(', ')}`);
      // Not for a strided or 7x7 convolution, nor for channel counts oneDNN's Winograd cannot block.
      addon.setWinograd(true);
      const strided = Int32Array.from([2, 20, 20, 32, 10, 10, 64, 3, 3, 2, 2, 1, 0, 1, 0, 1, 1]);
      const odd = Int32Array.from([2, 20, 20, 24, 20, 20, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1]);
      for (const g of [strided, odd]) assert.ok(!addon.convImpl(0, g).includes('_wino'), `${g}: ${addon.convImpl(0, g)}`);
    } finally {
      addon.setWinograd(true);
    }
  });

  it('NEXTRAY_SHORTCUT_POSTOP=sum switches how a residual joins its convolution (binary-add post-op by default)', () => {
    if (!load.ok) return;
    const addon = load.addon;
    const geom = Int32Array.from([1, 8, 8, 16, 8, 8, 32, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1]);
    try {
      assert.match(addon.convImpl(3, geom), /\(binary post-op\)$/);
      addon.setShortcutSum(true);
      assert.match(addon.convImpl(3, geom), /\(sum post-op\)$/);
    } finally {
      addon.setShortcutSum(false);
    }
  });

  it('a filter reused across calls (kept in oneDNN layout after its second use) gives the same results', async () => {
    const x = rand([2, 12, 12, 16], 50), w1 = rand([3, 3, 16, 32], 51), w2 = rand([3, 3, 16, 32], 52);
    await tf.setBackend('cpu');
    const [xc, w1c, w2c] = [x(), w1(), w2()];
    const ref1 = tf.tidy(() => tf.conv2d(xc as tf.Tensor4D, w1c as tf.Tensor4D, 1, 'same').dataSync().slice()) as Float32Array;
    const ref2 = tf.tidy(() => tf.conv2d(xc as tf.Tensor4D, w2c as tf.Tensor4D, 1, 'same').dataSync().slice()) as Float32Array;
    tf.dispose([xc, w1c, w2c]);
    await tf.setBackend(NATIVE_BACKEND);
    const [xn, w1n, w2n] = [x(), w1(), w2()];
    const close = (a: Float32Array, b: Float32Array) => a.every((v, i) => Math.abs(v - b[i]) <= 1e-4 * Math.max(1, Math.abs(b[i])));
    for (let round = 0; round < 3; round++) {
      for (const [w, ref] of [[w1n, ref1], [w2n, ref2]] as const) {
        const got = tf.tidy(() => tf.conv2d(xn as tf.Tensor4D, w as tf.Tensor4D, 1, 'same').dataSync().slice()) as Float32Array;
        assert.ok(close(got, ref), `round ${round}: cached filter gave a different result`);
      }
    }
    tf.dispose([xn, w1n, w2n]);
  });

  it('dilated conv (forward only, as TF.js has no dilated gradients)', async () => {
    const x = rand([2, 15, 14, 4], 6), w = rand([3, 3, 4, 5], 7);
    await assertSame('dilated', () => tf.conv2d(x() as tf.Tensor4D, w() as tf.Tensor4D, 1, 'same', 'NHWC', 2), ['Conv2D']);
  });

  it('fused conv with bias and relu, and with no activation', async () => {
    const x = rand([2, 11, 11, 6], 8), w = rand([3, 3, 6, 9], 9), b = rand([9], 10);
    for (const activation of ['relu', 'linear'] as const) {
      await assertSame(`fused ${activation}`, () =>
        tf.fused.conv2d({ x: x() as tf.Tensor4D, filter: w() as tf.Tensor4D, strides: 2, pad: 'same', bias: b(), activation }), ['FusedConv2D']);
    }
  });

  it("fused conv with an activation oneDNN path does not take (elu) falls back to JS and still agrees", async () => {
    const x = rand([1, 8, 8, 3], 11), w = rand([3, 3, 3, 4], 12), b = rand([4], 13);
    await assertSame('fused elu', () =>
      tf.fused.conv2d({ x: x() as tf.Tensor4D, filter: w() as tf.Tensor4D, strides: 1, pad: 'same', bias: b(), activation: 'elu' }));
  });

  it("'ceil' rounding that oneDNN cannot express falls back to JS", async () => {
    const x = rand([1, 8, 8, 2], 14), w = rand([3, 3, 2, 3], 15);
    await assertSame('ceil', () => tf.conv2d(x() as tf.Tensor4D, w() as tf.Tensor4D, 2, 0, 'NHWC', 1, 'ceil'));
  });

  it('matMul with transposes, batch broadcast, fused bias + relu, and its gradients', async () => {
    const a = rand([3, 7, 5], 16), b = rand([3, 5, 4], 17), bT = rand([4, 5], 18), aT = rand([5, 7], 19), bias = rand([4], 20);
    await assertSame('matmul', () => tf.matMul(a(), b()), ['BatchMatMul']);
    await assertSame('matmul tA tB', () => tf.matMul(aT(), bT(), true, true), ['BatchMatMul']);
    await assertSame('matmul broadcast', () => tf.matMul(a(), tf.transpose(bT())), ['BatchMatMul']);
    await assertSame('fused matmul', () =>
      tf.fused.matMul({ a: tf.reshape(a(), [21, 5]), b: tf.transpose(bT()), bias: bias(), activation: 'relu' }), ['_FusedMatMul']);
    await assertSame('matmul grads', () => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(p, q))))([a(), b()]));
  });

  const poolCases: { x: number[]; k: number; s: number; pad: 'same' | 'valid' | number }[] = [
    { x: [2, 16, 15, 8], k: 3, s: 2, pad: 'same' },
    { x: [2, 16, 16, 70], k: 3, s: 2, pad: 1 },
    { x: [3, 10, 10, 5], k: 2, s: 2, pad: 'valid' },
    { x: [1, 9, 9, 4], k: 3, s: 1, pad: 'same' },
  ];
  for (const c of poolCases) {
    const label = `pool ${c.x} k${c.k} s${c.s} pad ${c.pad}`;
    it(`${label}: max and avg, forward and gradients`, async () => {
      const x = rand(c.x, 21);
      const mp = (t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, c.k, c.s, c.pad, c.pad === 1 ? 'floor' : undefined);
      const ap = (t: tf.Tensor) => tf.avgPool(t as tf.Tensor4D, c.k, c.s, c.pad, c.pad === 1 ? 'floor' : undefined);
      const g = rand(tf.tidy(() => mp(x()).shape), 22);
      await assertSame(`${label} max`, () => mp(x()), ['MaxPool']);
      await assertSame(`${label} avg`, () => ap(x()), ['AvgPool']);
      await assertSame(`${label} max grad`, () => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(mp(t), g())))(x()), ['MaxPoolGrad']);
      await assertSame(`${label} avg grad`, () => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(ap(t), g())))(x()), ['AvgPoolGrad']);
    });
  }

  it('max-pool gradient goes to the first maximum on ties, as in TF.js', async () => {
    const x = () => tf.tensor4d([1, 1, 1, 1, 2, 2, 0, 2, 2], [1, 3, 3, 1]);
    await assertSame('ties', () => tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 1, 'valid')))(x()), ['MaxPoolGrad']);
    // A window of -Infinity only passes no gradient in TF.js (its first-maximum search starts at -Infinity); ties
    // between -0 and +0 go to the first.
    const inf = () => tf.tensor4d([-Infinity, -Infinity, 3, -Infinity, -Infinity, 3, -0, 0, 0], [1, 3, 3, 1]);
    await assertSame('-inf window', () => tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 1, 'valid')))(inf()), ['MaxPoolGrad']);
  });

  it('elementwise ops with per-channel and scalar broadcasting', async () => {
    const x = rand([2, 6, 5, 7], 23), y = rand([2, 6, 5, 7], 24), c = rand([7], 25), c4 = rand([1, 1, 1, 7], 26);
    const ops: [string, (p: tf.Tensor, q: tf.Tensor) => tf.Tensor][] = [
      ['Add', tf.add], ['Sub', tf.sub], ['Multiply', tf.mul], ['RealDiv', tf.div],
      ['SquaredDifference', tf.squaredDifference], ['Maximum', tf.maximum], ['Minimum', tf.minimum],
    ];
    for (const [k, op] of ops) {
      await assertSame(`${k} full`, () => op(x(), y()), [k]);
      await assertSame(`${k} channel`, () => op(x(), c()), [k]);
      await assertSame(`${k} channel 4d, left`, () => op(c4(), x()), [k]);
      await assertSame(`${k} scalar`, () => op(x(), tf.scalar(0.75)), [k]);
      await assertSame(`${k} scalar left`, () => op(tf.scalar(-1.5), x()), [k]);
    }
    const perBatch = rand([2, 1, 1, 7], 33);
    await assertSame('per batch and channel (average-pool gradient), left', () => tf.mul(perBatch(), x()), ['Multiply']);
    await assertSame('per batch and channel, right', () => tf.sub(x(), perBatch()), ['Sub']);
    // A broadcast the native kernel does not cover ([2,1,5,1] against [2,6,5,7]) must still agree.
    const odd = rand([2, 1, 5, 1], 27);
    await assertSame('odd broadcast', () => tf.add(x(), odd()));
  });

  it('relu, step, sums and means over leading and trailing axes, batchNorm, tile', async () => {
    const x = rand([3, 5, 4, 6], 28);
    const m = rand([6], 29), v = () => tf.add(tf.abs(rand([6], 30)()), 0.1), s = rand([6], 31), o = rand([6], 32);
    await assertSame('relu', () => tf.relu(x()), ['Relu']);
    await assertSame('step', () => tf.step(x()), ['Step']);
    await assertSame('sqrt of |x|', () => tf.sqrt(tf.abs(x())), ['Sqrt']);
    await assertSame('rsqrt of |x| + 0.1', () => tf.rsqrt(tf.add(tf.abs(x()), 0.1)), ['Rsqrt']);
    await assertSame('square', () => tf.square(x()), ['Square']);
    await assertSame('neg', () => tf.neg(x()), ['Neg']);
    await assertSame('sum leading', () => tf.sum(x(), [0, 1, 2]), ['Sum']);
    await assertSame('mean leading keepDims', () => tf.mean(x(), [0, 1, 2], true), ['Mean']);
    await assertSame('mean trailing', () => tf.mean(x(), [1, 2, 3]), ['Mean']);
    await assertSame('sum last', () => tf.sum(x(), -1), ['Sum']);
    await assertSame('mean middle (global average pool)', () => tf.mean(x(), [1, 2]), ['Mean']);
    await assertSame('sum middle keepDims', () => tf.sum(x(), [1, 2], true), ['Sum']);
    await assertSame('sum of non-adjacent axes (JS fallback)', () => tf.sum(x(), [0, 2]));
    await assertSame('moments', () => {
      const r = tf.moments(x(), [0, 1, 2]);
      return [r.mean, r.variance];
    });
    await assertSame('batchNorm', () => tf.batchNorm4d(x() as tf.Tensor4D, m() as tf.Tensor1D, v() as tf.Tensor1D, o() as tf.Tensor1D, s() as tf.Tensor1D, 1e-5), ['FusedBatchNorm']);
    await assertSame('batchNorm grads', () =>
      tf.grads((a: tf.Tensor, mm: tf.Tensor, vv: tf.Tensor, ss: tf.Tensor, oo: tf.Tensor) =>
        tf.sum(tf.square(tf.batchNorm4d(a as tf.Tensor4D, mm as tf.Tensor1D, vv as tf.Tensor1D, oo as tf.Tensor1D, ss as tf.Tensor1D, 1e-5))))(
        [x(), m(), v(), s(), o()]), ['Tile', 'Sum']);
    await assertSame('tile rows', () => tf.tile(tf.reshape(m(), [1, 1, 1, 6]), [3, 5, 4, 1]), ['Tile']);
  });

  it('gradients of a small conv net (conv-bn-relu-maxpool-conv/2-mean-dense) through tf.grad', async () => {
    const x = rand([4, 20, 20, 3], 40);
    const w1 = rand([7, 7, 3, 8], 41), w2 = rand([3, 3, 8, 16], 42), w3 = rand([1, 1, 8, 16], 43);
    const gamma = rand([8], 44), beta = rand([8], 45), dense = rand([16, 1], 46), bias = rand([1], 47);
    const net = (xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, g: tf.Tensor, be: tf.Tensor, d: tf.Tensor) => {
      let h = tf.conv2d(xi as tf.Tensor4D, a as tf.Tensor4D, 2, 3);
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      h = tf.relu(tf.batchNorm4d(h, mean as tf.Tensor1D, variance as tf.Tensor1D, be as tf.Tensor1D, g as tf.Tensor1D, 1e-5));
      h = tf.maxPool(h, 3, 2, 'same');
      const main = tf.conv2d(h, b as tf.Tensor4D, 2, 'same');
      const skipPath = tf.conv2d(h, c as tf.Tensor4D, 2, 'valid');
      h = tf.relu(tf.add(main, skipPath)) as tf.Tensor4D;
      const pooled = tf.mean(h, [1, 2]);
      const logits = tf.add(tf.matMul(pooled, d), bias());
      return tf.mean(tf.sigmoid(logits));
    };
    await assertSame('small net grads', () => tf.grads(net)([x(), w1(), w2(), w3(), gamma(), beta(), dense()]),
      ['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'FusedBatchNorm']);
  });
});
