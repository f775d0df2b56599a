/**
 * Training behaviour of the models: seeded torchvision-style initialisation, a training-mode forward + backward
 * on a small ResNet with the binary head (gradients match finite differences through conv + batchnorm in batch
 * mode; loss goes down), and freezing semantics across an optimiser step (frozen weights and frozen batchnorm
 * statistics unchanged, trainable ones moved, nothing leaks).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import { BatchNorm2d, Conv2d, buildResNet, createCustomModel, createModel } from '../../src/models/index.js';

before(async () => {
  await initEngine();
});

function std(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m += a[i]!;
  m /= a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i]! - m) ** 2;
  return Math.sqrt(v / a.length);
}

test('initialisation is seeded and torchvision-like (kaiming normal fan_out convs, BN 1/0, uniform Linear)', () => {
  const a = createModel('resnet18', { seed: 3 });
  const b = createModel('resnet18', { seed: 3 });
  const c = createModel('resnet18', { seed: 4 });
  try {
    const w = a.stateDict().get('conv1.weight')!.dataSync();
    assert.deepEqual(w, b.stateDict().get('conv1.weight')!.dataSync());
    assert.notDeepEqual(w, c.stateDict().get('conv1.weight')!.dataSync());
    const expectedStd = Math.sqrt(2 / (64 * 7 * 7)); // fan_out = out_channels * kh * kw
    assert.ok(Math.abs(std(w) / expectedStd - 1) < 0.03, `conv1 std ${std(w)} vs ${expectedStd}`);
    const w3 = a.stateDict().get('layer4.1.conv2.weight')!.dataSync();
    const expected3 = Math.sqrt(2 / (512 * 9));
    assert.ok(Math.abs(std(w3) / expected3 - 1) < 0.01);
    assert.deepEqual([...new Set(a.stateDict().get('layer1.0.bn1.weight')!.dataSync())], [1]);
    assert.deepEqual([...new Set(a.stateDict().get('layer1.0.bn1.bias')!.dataSync())], [0]);
    const fc = a.stateDict().get('fc.weight')!.dataSync() as Float32Array;
    const bound = 1 / Math.sqrt(512);
    assert.ok(fc.every((v) => Math.abs(v) <= bound) && fc.reduce((m, v) => Math.max(m, v), -Infinity) > 0.9 * bound);
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
  }
});

test('conv + batchnorm (batch statistics) gradients match finite differences', () => {
  const conv = new Conv2d(2, 3, 3, { stride: 2, padding: 1 });
  const bn = new BatchNorm2d(3);
  conv.materialize(1);
  bn.materialize(2);
  bn.weight.v.assign(tf.tensor1d([1.5, 0.7, -1.2]));
  bn.bias.v.assign(tf.tensor1d([0.1, -0.2, 0.3]));
  const x = tf.randomNormal([3, 5, 5, 2], 0, 1, 'float32', 7) as tf.Tensor4D;
  const proj = tf.randomNormal([3, 3, 3, 3], 0, 1, 'float32', 8);
  // A training forward normalises with the batch's own statistics, so the running-stat updates it makes do not
  // change later evaluations of the loss.
  const loss = (): tf.Scalar => tf.sum(tf.mul(tf.relu(bn.forward(conv.forward(x), true)), proj)) as tf.Scalar;
  const { grads } = tf.variableGrads(loss, [conv.weight.v]);
  const g = grads[conv.weight.v.name]!.dataSync();
  const w0 = (conv.weight.v.dataSync() as Float32Array).slice();
  const lossAt = (w: Float32Array): number => tf.tidy(() => {
    conv.weight.v.assign(tf.tensor(w, conv.weight.v.shape));
    return loss().dataSync()[0]!;
  });
  const h = 1e-2;
  for (const i of [0, 7, 20, 41, 53]) {
    const plus = w0.slice();
    plus[i]! += h;
    const minus = w0.slice();
    minus[i]! -= h;
    const fd = (lossAt(plus) - lossAt(minus)) / (2 * h);
    assert.ok(Math.abs(fd - g[i]!) < 2e-2 * Math.max(1, Math.abs(fd)), `d loss / d w[${i}]: autodiff ${g[i]} vs finite difference ${fd}`);
  }
  tf.dispose([x, proj, ...Object.values(grads)]);
  conv.dispose();
  bn.dispose();
});

test('a training step on a small ResNet: frozen layers and their batchnorm stats stay, the rest learns, nothing leaks', () => {
  const model = createCustomModel('tiny_resnet', (h) => buildResNet({ block: 'basic', layers: [1, 1, 1, 1] }, h), {
    head: 'binary',
    dropout: 0.5,
    seed: 11,
  });
  try {
    // Layers: conv1, layer1.0.conv1, layer1.0.conv2, layer2.0.conv1, layer2.0.conv2 (+ its downsample), ... fc.
    assert.equal(model.layerCount(), 10);
    model.freezeLayers(5);
    const sd = model.stateDict();
    const snap = (k: string) => sd.get(k)!.dataSync().slice();
    const frozenKeys = ['conv1.weight', 'bn1.running_mean', 'bn1.running_var', 'bn1.weight', 'layer2.0.bn2.running_var',
      'layer2.0.downsample.0.weight', 'layer2.0.downsample.1.running_mean', 'layer2.0.bn2.num_batches_tracked'];
    const liveKeys = ['layer3.0.conv1.weight', 'layer3.0.bn1.running_mean', 'layer3.0.bn1.running_var', 'layer4.0.downsample.1.running_var', 'fc.weight', 'fc.bias'];
    const before = new Map([...frozenKeys, ...liveKeys].map((k) => [k, snap(k)]));

    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const y = tf.tensor2d([1, 0, 1, 0], [4, 1]);
    const opt = tf.train.adam(1e-2);
    const step = (): number => {
      const l = opt.minimize(
        () => tf.losses.sigmoidCrossEntropy(y, model.forward(x, true)) as tf.Scalar,
        true,
        model.trainableVariables(),
      )!;
      const v = l.dataSync()[0]!;
      l.dispose();
      return v;
    };
    const first = step(); // creates Adam's slot variables
    const count = tf.memory().numTensors;
    const losses = [first];
    for (let i = 0; i < 6; i++) losses.push(step());
    assert.equal(tf.memory().numTensors, count, 'training steps leak no tensors');
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses.at(-1)! < losses[0]!, `loss went down: ${losses.map((l) => l.toFixed(4)).join(' ')}`);

    for (const k of frozenKeys) assert.deepEqual(snap(k), before.get(k), `${k} frozen`);
    for (const k of liveKeys) assert.notDeepEqual(snap(k), before.get(k), `${k} updated`);
    assert.equal(sd.get('layer3.0.bn1.num_batches_tracked')!.dataSync()[0], 7);
    assert.equal(sd.get('bn1.num_batches_tracked')!.dataSync()[0], 0);

    // Dropout is active in training only: eval forwards agree, training forwards differ.
    const [e1, e2, t1, t2] = [false, false, true, true].map((tr) => model.forward(x, tr));
    assert.deepEqual(e1!.dataSync(), e2!.dataSync());
    assert.notDeepEqual(t1!.dataSync(), t2!.dataSync());
    tf.dispose([e1!, e2!, t1!, t2!, x, y]);
    opt.dispose();
  } finally {
    model.dispose();
  }
});

test('reseedDropout makes the binary head masks a function of the seed alone', () => {
  const build = () =>
    createCustomModel('tiny_resnet', (h) => buildResNet({ block: 'basic', layers: [1, 1, 1, 1] }, h), { head: 'binary', seed: 3 });
  const a = build();
  const b = build();
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
  try {
    a.forward(x, true).dispose(); // a has drawn one mask more than b
    a.reseedDropout('run/epoch-2');
    b.reseedDropout('run/epoch-2');
    const [ya, yb] = [a.forward(x, true), b.forward(x, true)];
    assert.deepEqual(ya.dataSync(), yb.dataSync());
    b.reseedDropout('run/epoch-3');
    const yc = b.forward(x, true);
    assert.notDeepEqual(yc.dataSync(), ya.dataSync());
    tf.dispose([ya, yb, yc]);
  } finally {
    x.dispose();
    a.dispose();
    b.dispose();
  }
});
