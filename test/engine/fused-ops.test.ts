/**
 * The fused training ops (src/engine/fused-ops.ts) against independent references: batch normalisation in
 * training mode (values and gradients, with and without ReLU, gradients through the returned statistics)
 * against TF.js's own autodiff of moments() + batchNorm4d(), on the pure-JS kernels, the native kernels and
 * the composed fallback; Adam's fused update against the textbook float32 formula, bit for bit; a hand-worked
 * example; and no tensor leaks.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, registerGradients, tf, batchNormTraining, adamUpdate, addRelu, fusedBatchNormAvailable } from '../../src/engine/index.js';
import { loadNativeAddon } from '../../src/engine/native-addon.js';
import { nativeSkip } from './require-native.js';
import { NATIVE_BACKEND } from '../../src/engine/native-backend.js';
import { BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, ADAM_UPDATE } from '../../src/engine/fused-ops.js';
import { randArray } from '../helpers/random.js';

const load = loadNativeAddon();

interface Case {
  shape: [number, number, number, number];
  relu: boolean;
  /** Mean of x, to exercise the shifted sums. */
  shift: number;
}

const EPS = 1e-5;

/** y, mean, variance and d(sum(y * r) + a*sum(mean) + b*sum(variance))/d(x, scale, offset), as plain arrays. */
function run(c: Case, fused: boolean, statsWeight = 0): Float32Array[] {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const C = c.shape[3];
  const x = tf.tensor4d(randArray(n, 1, 2, c.shift), c.shape);
  const scale = tf.tensor1d(randArray(C, 2, 0.5, 1));
  const offset = tf.tensor1d(randArray(C, 3, 0.3));
  const r = tf.tensor4d(randArray(n, 4), c.shape);
  const outs = tf.tidy(() => {
    const f = (xx: tf.Tensor, ss: tf.Tensor, oo: tf.Tensor) => {
      let y: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor;
      if (fused) ({ y, mean, variance } = batchNormTraining(xx as tf.Tensor4D, ss as tf.Tensor1D, oo as tf.Tensor1D, EPS, c.relu));
      else {
        ({ mean, variance } = tf.moments(xx, [0, 1, 2]));
        y = tf.batchNorm4d(xx as tf.Tensor4D, mean as tf.Tensor1D, variance as tf.Tensor1D, oo as tf.Tensor1D, ss as tf.Tensor1D, EPS);
        if (c.relu) y = tf.relu(y);
      }
      let loss = tf.sum(tf.mul(y, r));
      if (statsWeight) loss = tf.add(loss, tf.add(tf.mul(tf.sum(mean), statsWeight), tf.mul(tf.sum(tf.mul(variance, tf.range(1, C + 1))), 0.5)));
      return { y, mean, variance, loss };
    };
    const fwd = f(x, scale, offset);
    const grads = tf.grads((xx: tf.Tensor, ss: tf.Tensor, oo: tf.Tensor) => f(xx, ss, oo).loss)([x, scale, offset]);
    return [fwd.y, fwd.mean, fwd.variance, ...grads];
  });
  const res = outs.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose([...outs, x, scale, offset, r]);
  return res;
}

function assertClose(name: string, got: Float32Array, want: Float32Array, tol = 1e-4): void {
  assert.equal(got.length, want.length, `${name}: length`);
  let maxRef = 1;
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]!));
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
  }
  assert.ok(maxDiff <= tol * maxRef, `${name}: differs by ${maxDiff} (scale ${maxRef})`);
}

const NAMES = ['y', 'mean', 'variance', 'dx', 'dscale', 'doffset'];
const CASES: Case[] = [
  { shape: [4, 5, 6, 3], relu: false, shift: 0 },
  { shape: [4, 5, 6, 3], relu: true, shift: 0 },
  { shape: [8, 16, 16, 17], relu: true, shift: 0.3 },
  // Large |mean| against a small spread: naive sum-of-squares variance would lose digits here.
  { shape: [2, 8, 8, 5], relu: false, shift: 300 },
  // Big enough for the native kernels' parallel path (>= 65536 elements).
  { shape: [16, 32, 32, 16], relu: true, shift: -0.5 },
];

async function checkBackend(backend: string): Promise<void> {
  await tf.setBackend(backend);
  assert.ok(fusedBatchNormAvailable(), `${backend} should have the fused batch-norm kernels`);
  for (const c of CASES) {
    const before = tf.memory().numTensors;
    const got = run(c, true);
    const want = run(c, false);
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
    got.forEach((g, i) => assertClose(`${backend} [${c.shape}] relu=${c.relu} ${NAMES[i]}`, g, want[i]!));
  }
  // Gradients that flow through the returned statistics as well.
  const c = CASES[2]!;
  run(c, true, 0.7).forEach((g, i) => assertClose(`${backend} through stats ${NAMES[i]}`, g, run(c, false, 0.7)[i]!));
}

describe('fused batch normalisation (training mode)', () => {
  before(async () => {
    await registerGradients();
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  it('works out a 4-value example by hand', async () => {
    await tf.setBackend('cpu');
    // x = 1, 2, 3, 4 in one channel: mean 2.5, biased variance 1.25, y = (x - 2.5) / sqrt(1.25 + eps) * 2 + 1.
    const x = tf.tensor4d([1, 2, 3, 4], [4, 1, 1, 1]);
    const { y, mean, variance } = batchNormTraining(x, tf.tensor1d([2]), tf.tensor1d([1]), EPS, true);
    const k = 2 / Math.sqrt(1.25 + EPS);
    const want = [1, 2, 3, 4].map((v) => Math.max(0, (v - 2.5) * k + 1));
    assertClose('y', y.dataSync() as Float32Array, Float32Array.from(want), 1e-6);
    assert.ok(Math.abs(mean.dataSync()[0]! - 2.5) < 1e-6);
    assert.ok(Math.abs(variance.dataSync()[0]! - 1.25) < 1e-6);
    tf.dispose([x, y, mean, variance]);
  });

  it('matches TF.js autodiff of moments + batchNorm on the pure-JS kernels', async () => {
    await checkBackend('cpu');
  });

  it('matches it on the native kernels', { skip: nativeSkip() }, async () => {
    await initEngine('native');
    await checkBackend(NATIVE_BACKEND);
  });

  it('composes standard ops on a backend without the kernels, with the same results', async () => {
    // A backend that is the cpu one under another name, with every cpu kernel but the fused ones.
    const name = 'cpu-without-fused';
    if (!tf.findBackend(name)) {
      const { MathBackendCPU } = await import('@tensorflow/tfjs-backend-cpu');
      tf.registerBackend(name, () => new MathBackendCPU());
      for (const k of tf.getKernelsForBackend('cpu')) {
        if ([BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, ADAM_UPDATE].includes(k.kernelName)) continue;
        tf.registerKernel({ ...k, backendName: name });
      }
    }
    await tf.setBackend(name);
    assert.equal(fusedBatchNormAvailable(), false);
    for (const c of CASES.slice(0, 3)) {
      const got = run(c, true);
      const want = run(c, false);
      got.forEach((g, i) => assertClose(`composed [${c.shape}] relu=${c.relu} ${NAMES[i]}`, g, want[i]!));
    }
    await tf.setBackend('cpu');
  });
});

describe('fused Adam update', () => {
  /** Adam as PyTorch documents it, in float32 one operation at a time (Math.fround after each). */
  function reference(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, b1: number, b2: number, stepSize: number, bc2: number, eps: number) {
    const f = Math.fround;
    const out = [new Float32Array(p.length), new Float32Array(p.length), new Float32Array(p.length)];
    for (let i = 0; i < p.length; i++) {
      const mi = f(f(m[i]! * f(b1)) + f(g[i]! * f(1 - b1)));
      const vi = f(f(v[i]! * f(b2)) + f(f(g[i]! * g[i]!) * f(1 - b2)));
      const denom = f(f(f(Math.sqrt(vi)) / f(bc2)) + f(eps));
      out[0]![i] = f(p[i]! - f(f(mi / denom) * f(stepSize)));
      out[1]![i] = mi;
      out[2]![i] = vi;
    }
    return out;
  }

  async function check(backend: string): Promise<void> {
    await tf.setBackend(backend);
    const n = 1000;
    const p = randArray(n, 11), m = randArray(n, 12, 0.01), v = randArray(n, 13, 0.001, 0.001), g = randArray(n, 14, 0.1);
    const attrs = { beta1: 0.9, beta2: 0.999, stepSize: 1e-3 / (1 - 0.9 ** 3), bc2Sqrt: Math.sqrt(1 - 0.999 ** 3), epsilon: 1e-8 };
    const before = tf.memory().numTensors;
    const outs = tf.tidy(() => adamUpdate(tf.tensor1d(p), tf.tensor1d(m), tf.tensor1d(v), tf.tensor1d(g), attrs));
    const got = outs.map((t) => t.dataSync());
    tf.dispose(outs);
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
    const want = reference(p, m, v, g, attrs.beta1, attrs.beta2, attrs.stepSize, attrs.bc2Sqrt, attrs.epsilon);
    for (let k = 0; k < 3; k++) assert.deepEqual(Array.from(got[k]!), Array.from(want[k]!), `${backend}: output ${k} not bit-identical`);
  }

  it('equals the float32 formula bit for bit on the pure-JS kernel', async () => {
    await check('cpu');
  });

  it('and on the native kernel', { skip: nativeSkip() }, async () => {
    await initEngine('native');
    await check(NATIVE_BACKEND);
    await tf.setBackend('cpu');
  });
});

describe('fused residual add + ReLU', () => {
  before(async () => {
    await registerGradients();
  });

  /** relu(a + b) and the gradients of sum(relu(a + b) * r) for a and b, and for a + a (one input twice). */
  function runAddRelu(fused: boolean): Float32Array[] {
    const shape = [4, 6, 6, 8];
    const n = 4 * 6 * 6 * 8;
    const a = tf.tensor(randArray(n, 21), shape);
    const b = tf.tensor(randArray(n, 22), shape);
    const r = tf.tensor(randArray(n, 23), shape);
    const f = (x: tf.Tensor, y: tf.Tensor) => (fused ? addRelu(x, y) : tf.relu(tf.add(x, y)));
    const outs = tf.tidy(() => [
      f(a, b),
      ...tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), r)))([a, b]),
      tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x, x), r)))(a),
    ]);
    const res = outs.map((t) => Float32Array.from(t.dataSync()));
    tf.dispose([...outs, a, b, r]);
    return res;
  }

  for (const backend of ['cpu', NATIVE_BACKEND]) {
    it(`matches relu(add) and its gradients on ${backend}`, { skip: backend === 'cpu' ? false : nativeSkip() }, async () => {
      if (backend !== 'cpu') await initEngine('native');
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const got = runAddRelu(true);
      const want = runAddRelu(false);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
      ['y', 'da', 'db', 'd(a+a)'].forEach((name, i) => assertClose(`${backend} ${name}`, got[i]!, want[i]!, 1e-6));
      await tf.setBackend('cpu');
    });
  }
});
