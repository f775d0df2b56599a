/**
 * The native conv + folded batch norm (+ residual) + ReLU kernel (CONV_BN, src/engine/fused-ops.ts) against the
 * same maths on the pure-JS cpu backend (filter * scale, conv2d, + shift, + residual, relu), to 1e-4 relative:
 * 1x1 and 3x3 filters, stride 2, explicit padding, with and without residual and ReLU; gradients to x and the
 * residual against TF.js autodiff of the composed ops; the weight-layout cache never serving a copy folded with
 * other scales (or none); clear errors; and no tensor leaks. ResNet parity through convBn is covered by the
 * torchvision fixture tests, which run on both engines.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import { loadNativeAddon } from '../../src/engine/native-addon.js';
import { nativeSkip } from './require-native.js';
import { NATIVE_BACKEND } from '../../src/engine/native-backend.js';
import { convBnFused, convBnFusedAvailable, type ConvBnAttrs } from '../../src/engine/fused-ops.js';
import { randArray } from '../helpers/random.js';

const load = loadNativeAddon();
const skip = nativeSkip();

interface Case {
  name: string;
  x: [number, number, number, number];
  k: number;
  co: number;
  attrs: ConvBnAttrs;
  residual: boolean;
}

const pad1: ConvBnAttrs['pad'] = [[0, 0], [1, 1], [1, 1], [0, 0]];
const CASES: Case[] = [
  { name: '1x1, residual + relu (a Bottleneck conv3)', x: [2, 9, 9, 16], k: 1, co: 24, attrs: { strides: [1, 1], pad: 'valid', relu: true }, residual: true },
  { name: '3x3 stride 2, padding 1, relu', x: [2, 11, 11, 8], k: 3, co: 16, attrs: { strides: [2, 2], pad: pad1, relu: true }, residual: false },
  { name: '3x3, padding 1, residual + relu (a BasicBlock conv2)', x: [1, 8, 8, 16], k: 3, co: 16, attrs: { strides: [1, 1], pad: pad1, relu: true }, residual: true },
  { name: '1x1 stride 2, no relu (a downsample)', x: [3, 8, 8, 8], k: 1, co: 32, attrs: { strides: [2, 2], pad: 'valid', relu: false }, residual: false },
  { name: '7x7 stride 2, padding 3, 3 input channels (a stem)', x: [2, 20, 20, 3], k: 7, co: 16, attrs: { strides: [2, 2], pad: [[0, 0], [3, 3], [3, 3], [0, 0]], relu: true }, residual: false },
];

interface Inputs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  scale: tf.Tensor1D;
  shift: tf.Tensor1D;
  residual?: tf.Tensor4D;
}

function inputs(c: Case, seed = 1): Inputs {
  const outHW = (n: number) => {
    const p = c.attrs.pad === 'valid' ? 0 : (c.attrs.pad as number[][])[1]![0]!;
    return Math.floor((n + 2 * p - c.k) / c.attrs.strides[0]) + 1;
  };
  const [n, h, w, ci] = c.x;
  const outShape: [number, number, number, number] = [n, outHW(h), outHW(w), c.co];
  return {
    x: tf.tensor4d(randArray(n * h * w * ci, seed), c.x),
    filter: tf.tensor4d(randArray(c.k * c.k * ci * c.co, seed + 1, 0.5), [c.k, c.k, ci, c.co]),
    scale: tf.tensor1d(randArray(c.co, seed + 2, 0.5, 1)),
    shift: tf.tensor1d(randArray(c.co, seed + 3, 0.3)),
    ...(c.residual ? { residual: tf.tensor4d(randArray(outShape.reduce((a, b) => a * b, 1), seed + 4), outShape) } : {}),
  };
}

/** The reference: standard TF.js ops, differentiable by TF.js's own gradients. */
function composed(i: Inputs, attrs: ConvBnAttrs): tf.Tensor4D {
  return tf.tidy(() => {
    let z = tf.add(tf.mul(tf.conv2d(i.x, i.filter, attrs.strides, attrs.pad as 'valid'), i.scale), i.shift) as tf.Tensor4D;
    if (i.residual) z = tf.add(z, i.residual);
    return attrs.relu ? tf.relu(z) : z;
  });
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let ref = 1;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    ref = Math.max(ref, Math.abs(b[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / ref;
}

/** Values (and gradients of sum(y * r) to x and residual) on a backend, as plain arrays. */
async function evaluate(backend: string, c: Case, fused: boolean): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const i = inputs(c);
    const r = tf.tensor4d(randArray(i.residual?.size ?? composed(i, c.attrs).size, 99), (i.residual ?? composed(i, c.attrs)).shape);
    const f = fused ? (x: tf.Tensor4D, res?: tf.Tensor4D) => convBnFused(x, i.filter, i.scale, i.shift, c.attrs, res) : (x: tf.Tensor4D, res?: tf.Tensor4D) => composed({ ...i, x, residual: res }, c.attrs);
    const y = f(i.x, i.residual);
    const xs = i.residual ? [i.x, i.residual] : [i.x];
    const grads = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(f(args[0] as tf.Tensor4D, args[1] as tf.Tensor4D | undefined), r)))(xs);
    return [y, ...grads].map((t) => Float32Array.from(t.dataSync()));
  });
}

describe('native conv + folded batch norm (+ residual) + relu', { skip }, () => {
  before(async () => {
    await initEngine('native');
  });

  it('is registered on the native engine only', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    assert.ok(convBnFusedAvailable());
    await tf.setBackend('cpu');
    assert.ok(!convBnFusedAvailable());
    await tf.setBackend(NATIVE_BACKEND);
  });

  for (const c of CASES) {
    it(`${c.name}: values and gradients match the composed ops on the cpu backend`, async () => {
      const before = tf.memory().numTensors;
      const ref = await evaluate('cpu', c, false);
      const got = await evaluate(NATIVE_BACKEND, c, true);
      const what = ['y', 'dx', 'dresidual'];
      for (let k = 0; k < ref.length; k++) {
        const d = maxRelDiff(got[k]!, ref[k]!);
        assert.ok(d <= 1e-4, `${what[k]} differs by ${d} (relative)`);
      }
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    });
  }

  it('never serves a filter layout cached with other scales (or none)', async () => {
    // Small pixel counts, so the addon caches the blocked filter under the filter array on the second call (this
    // geometry is one oneDNN wants a blocked filter layout for).
    await tf.setBackend(NATIVE_BACKEND);
    const c = CASES[1]!;
    tf.tidy(() => {
      const i = inputs(c);
      const other = tf.tensor1d(randArray(c.co, 42, 0.5, -1));
      const check = (scale: tf.Tensor1D, label: string) => {
        const want = composed({ ...i, scale }, c.attrs).dataSync() as Float32Array;
        for (let k = 0; k < 3; k++) {
          const got = convBnFused(i.x, i.filter, scale, i.shift, c.attrs, i.residual).dataSync() as Float32Array;
          const d = maxRelDiff(got, want);
          assert.ok(d <= 1e-4, `${label}, call ${k + 1}: differs by ${d}`);
        }
      };
      check(i.scale, 'first scale');
      check(other, 'second scale, same filter');
      check(i.scale, 'first scale again');
      // The same filter through the plain convolution (no scale) after its folded copies were cached.
      const plain = tf.conv2d(i.x, i.filter, c.attrs.strides, c.attrs.pad as 'valid').dataSync() as Float32Array;
      const plainRef = tf.div(tf.sub(composed({ ...i, residual: undefined }, { ...c.attrs, relu: false }), i.shift), i.scale).dataSync() as Float32Array;
      assert.ok(maxRelDiff(plain, plainRef) <= 1e-4, 'plain conv after cached folded copies');
    });
  });

  it('rejects mismatched scale and residual shapes with the kernel named', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const c = CASES[0]!;
    tf.tidy(() => {
      const i = inputs(c);
      assert.throws(() => convBnFused(i.x, i.filter, tf.ones([c.co + 1]) as tf.Tensor1D, i.shift, c.attrs), /NextrayConvBn: scale and shift need 24 values/);
      assert.throws(() => convBnFused(i.x, i.filter, i.scale, i.shift, c.attrs, tf.zeros([1, 2, 2, c.co]) as tf.Tensor4D), /NextrayConvBn: residual shape/);
    });
  });

  it('has no gradient for the folded weights, and says why', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const c = CASES[1]!;
    tf.tidy(() => {
      const i = inputs(c);
      assert.throws(() => tf.grad((w: tf.Tensor) => tf.sum(convBnFused(i.x, w as tf.Tensor4D, i.scale, i.shift, c.attrs)))(i.filter), /no gradient for the filter/);
    });
  });
});
