/** Loss functions and Adam against values computed by hand and by PyTorch 1.13 (numbers quoted, not produced here). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { bceScalar, bceWithLogits, batchWeights, l2Penalty, muraClassWeights, regionWeightsFromValidation, weightedBceMean } from '../../src/train/losses.js';
import { Adam } from '../../src/train/adam.js';
import type { ImageRecord } from '../../src/data/types.js';

// The pure-JS backend: these checks are about the maths, and it registers the gradients tfjs-core lacks.
await initEngine('cpu');

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

// torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction='none'), float64:
// z = [0, 2, -3, 100, -100, 0.5], y = [1, 0, 1, 0, 0, 1]. By hand: ln 2; 2 + ln(1 + e^-2); 3 + ln(1 + e^-3); 100; 0.
const Z = [0, 2, -3, 100, -100, 0.5];
const Y = [1, 0, 1, 0, 0, 1];
const BCE = [0.6931471805599453, 2.1269280110429727, 3.048587351573742, 100.0, 0.0, 0.4740769841801067];

test('bceWithLogits equals the hand/PyTorch values and stays finite for |z| = 100', () => {
  const before = tf.memory().numTensors;
  const got = tf.tidy(() => bceWithLogits(tf.tensor1d(Z), tf.tensor1d(Y)).dataSync());
  BCE.forEach((want, i) => close(got[i]!, want, 1e-5 * Math.max(1, want), `bce[${i}]`));
  BCE.forEach((want, i) => close(bceScalar(Z[i]!, Y[i]!), want, 1e-12 * Math.max(1, want), `bceScalar[${i}]`));
  assert.equal(tf.memory().numTensors, before);
});

test('weighted BCE mean is sum(w * l) / n (PyTorch weight= semantics)', () => {
  const w = [0.25, 0.75, 0.25, 0.75, 0.75, 0.25];
  // PyTorch: binary_cross_entropy_with_logits(z, y, weight=w) = 12.941524814560113
  const got = tf.tidy(() => weightedBceMean(tf.tensor2d(Z, [6, 1]), tf.tensor1d(Y), tf.tensor1d(w)).dataSync()[0]!);
  close(got, 12.941524814560113, 1e-4, 'weighted mean');
  const plain = tf.tidy(() => weightedBceMean(tf.tensor2d(Z, [6, 1]), tf.tensor1d(Y)).dataSync()[0]!);
  close(plain, BCE.reduce((a, b) => a + b, 0) / 6, 1e-4, 'plain mean');
});

test('L2 penalty is factor * sum(w^2) with gradient 2 * factor * w (Keras kernel_regularizer)', () => {
  const w = tf.variable(tf.tensor1d([1, 2, -2]));
  const before = tf.memory().numTensors;
  const value = tf.tidy(() => l2Penalty([w], 0.1).dataSync()[0]!);
  close(value, 0.9, 1e-6, 'penalty'); // 0.1 * (1 + 4 + 4)
  const g = tf.tidy(() => tf.variableGrads(() => l2Penalty([w], 0.1), [w]).grads[w.name]!.dataSync());
  assert.deepEqual(Array.from(g).map((v) => Math.round(v * 1e6) / 1e6), [0.2, 0.4, -0.4]);
  assert.equal(tf.memory().numTensors, before);
  w.dispose();
});

const rec = (region: ImageRecord['region'], label: 0 | 1) => ({ region, label });

test('MURA-weighted class weights: w1 = |N|/(|A|+|N|), w0 = |A|/(|A|+|N|) per region, from image counts', () => {
  // XR_WRIST: 3 abnormal, 1 normal -> w1 = 1/4, w0 = 3/4. XR_HAND: 1 abnormal, 4 normal -> w1 = 4/5, w0 = 1/5.
  // XR_ELBOW: only normal images -> both 1 (a zero weight would silence the class).
  const images = [
    rec('XR_WRIST', 1), rec('XR_WRIST', 1), rec('XR_WRIST', 1), rec('XR_WRIST', 0),
    rec('XR_HAND', 1), rec('XR_HAND', 0), rec('XR_HAND', 0), rec('XR_HAND', 0), rec('XR_HAND', 0),
    rec('XR_ELBOW', 0),
  ];
  const w = muraClassWeights(images);
  assert.deepEqual(w.XR_WRIST, { w0: 0.75, w1: 0.25 });
  assert.deepEqual(w.XR_HAND, { w0: 0.2, w1: 0.8 });
  assert.deepEqual(w.XR_ELBOW, { w0: 1, w1: 1 });
  assert.equal(w.XR_FINGER, undefined);
  const bw = batchWeights('mura-weighted', [rec('XR_WRIST', 1), rec('XR_HAND', 0), rec('XR_HAND', 1)], w, {});
  assert.deepEqual(Array.from(bw!), [0.25, Math.fround(0.2), Math.fround(0.8)]);
  assert.equal(batchWeights('bce', [rec('XR_WRIST', 1)], w, {}), null);
});

test('region weights from validation loss: loss / mean loss, rescaled to average 1 over training images', () => {
  // Val losses: WRIST 0.9, HAND 0.3 -> raw 1.5 and 0.5 (mean 0.6); other regions 1.
  // Training images: 1 WRIST, 3 HAND -> raw mean (1.5 + 3 * 0.5) / 4 = 0.75 -> scale 4/3: WRIST 2, HAND 2/3, others 4/3.
  const w = regionWeightsFromValidation({ XR_WRIST: 0.9, XR_HAND: 0.3 }, [rec('XR_WRIST', 0), rec('XR_HAND', 0), rec('XR_HAND', 1), rec('XR_HAND', 0)]);
  close(w.XR_WRIST!, 2, 1e-12, 'wrist');
  close(w.XR_HAND!, 2 / 3, 1e-12, 'hand');
  close(w.XR_ELBOW!, 4 / 3, 1e-12, 'elbow');
});

test('Adam matches torch.optim.Adam(lr=0.1) over three steps', () => {
  const p = tf.variable(tf.tensor1d([0.5, -1.0, 2.0]));
  const adam = new Adam([{ name: 'p', variable: p }], { lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
  const before = tf.memory().numTensors;
  // PyTorch 1.13, float32: parameters after each step with these gradients.
  const steps: [number[], number[]][] = [
    [[1.0, -2.0, 0.5], [0.4000000059604645, -0.9000000357627869, 1.899999976158142]],
    [[0.5, 0.5, -1.0], [0.3067820370197296, -0.8530532121658325, 1.9366103410720825]],
    [[-1.0, 0.0, 2.0], [0.2957037389278412, -0.816763162612915, 1.8946447372436523]],
  ];
  for (const [g, want] of steps) {
    const grad = tf.tensor1d(g);
    adam.apply({ [p.name]: grad });
    grad.dispose();
    Array.from(p.dataSync()).forEach((v, i) => close(v, want[i]!, 2e-6, `step ${adam.step} p[${i}]`));
  }
  assert.equal(tf.memory().numTensors, before);
  // The saved state restores exactly.
  const sd = adam.stateDict();
  const q = tf.variable(tf.tensor1d([0, 0, 0]));
  const adam2 = new Adam([{ name: 'p', variable: q }], adam.options);
  adam2.loadState(sd, adam.step, adam.lr, 'test');
  assert.deepEqual(Array.from((adam2.stateDict().get('m.p')!.data as Float32Array)), Array.from(sd.get('m.p')!.data as Float32Array));
  assert.equal(adam2.step, 3);
  adam.dispose();
  adam2.dispose();
  p.dispose();
  q.dispose();
});
