/**
 * Splitting the forward at the frozen boundary (NetworkModel.forwardFrozen / forwardTrainable, see head.ts):
 * for ResNet-18, a Bottleneck ResNet [1, 1, 1, 1] and DenseNet-121 at small inputs, with several frozen counts
 * (a whole-step boundary, a boundary inside a block, everything but the head, nothing), the split training
 * forward gives bit-identical logits, loss, gradients of every trainable variable and batchnorm statistics to
 * the unsplit one; the prefix covers whole steps only; inside the gradient tape the split path holds less memory;
 * custom networks without a trunk fall back to "nothing split"; nothing leaks.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import {
  BatchNorm2d,
  Conv2d,
  Module,
  buildResNet,
  createCustomModel,
  createModel,
  type HeadFactory,
  type HeadModule,
  type LayerUnit,
  type Network,
  type NetworkModel,
  type TrunkChain,
} from '../../src/models/index.js';
import type { Model } from '../../src/models/index.js';

before(async () => {
  await initEngine();
});

type AnyModel = Model | NetworkModel;

/** Variable names are `label#id/key`; the key part is the same in two instances of one architecture. */
const key = (name: string): string => name.slice(name.indexOf('/') + 1);

interface StepResult {
  logits: Float32Array;
  loss: number;
  grads: Map<string, Float32Array>;
  /** Bytes held while inside the gradient function, right after the forward. */
  tapeBytes: number;
}

/** One training-mode forward + backward (BCE against fixed labels) over the model's trainable variables. */
function step(model: AnyModel, x: tf.Tensor4D, y: tf.Tensor2D, split: boolean): StepResult {
  let logits: tf.Tensor2D | null = null;
  let tapeBytes = 0;
  const feats = split ? model.forwardFrozen(x) : null;
  const { value, grads } = tf.variableGrads(() => {
    const z = split ? model.forwardTrainable(feats!, true) : model.forward(x, true);
    tapeBytes = tf.memory().numBytes;
    logits = tf.keep(z);
    return tf.losses.sigmoidCrossEntropy(y, z) as tf.Scalar;
  }, model.trainableVariables());
  feats?.dispose();
  const out: StepResult = {
    logits: (logits as unknown as tf.Tensor2D).dataSync() as Float32Array,
    loss: value.dataSync()[0]!,
    grads: new Map(Object.entries(grads).map(([n, g]) => [key(n), g.dataSync() as Float32Array])),
    tapeBytes,
  };
  tf.dispose([logits as unknown as tf.Tensor2D, value, ...Object.values(grads)]);
  return out;
}

/** Every batchnorm running statistic of the model, by state_dict key. */
function bnStats(model: AnyModel): Map<string, Float32Array> {
  return new Map(
    [...model.stateDict()].filter(([k]) => /running_(mean|var)$/.test(k)).map(([k, v]) => [k, v.dataSync() as Float32Array]),
  );
}

interface Case {
  frozen: number;
  /** Layers forwardFrozen covers, counted by hand from the architecture (whole steps only). */
  prefixLayers: number;
  /** forwardFrozen's output shape, derived by hand (strides, channel counts). */
  featureShape: number[];
}

/**
 * Two identically seeded instances: `a` trains unsplit, `b` split, through every case in turn (their batchnorm
 * statistics evolve identically if and only if the two paths are the same computation).
 */
function checkSplit(build: () => AnyModel, inputShape: [number, number, number, number], cases: Case[]): void {
  const a = build();
  const b = build();
  const x = tf.randomNormal(inputShape, 0, 1, 'float32', 11) as tf.Tensor4D;
  const y = tf.tensor2d(Array.from({ length: inputShape[0] }, (_, i) => i % 2), [inputShape[0], 1]);
  try {
    for (const c of cases) {
      const label = `${a.arch}, ${c.frozen} frozen`;
      a.freezeLayers(c.frozen);
      b.freezeLayers(c.frozen);
      a.reseedDropout(`case-${c.frozen}`);
      b.reseedDropout(`case-${c.frozen}`);
      assert.equal(b.frozenPrefixLayers(), c.prefixLayers, `${label}: layers in the frozen prefix`);
      const feats = b.forwardFrozen(x);
      assert.deepEqual(feats.shape, c.featureShape, `${label}: frozen-prefix output shape`);
      feats.dispose();

      // Frozen units keep their batch norm folded into the convolution (nn.ts convBn), made on first use, so the
      // first step may add those cached tensors; a second step must add nothing.
      const ra = step(a, x, y, false);
      const rb = step(b, x, y, true);
      assert.deepEqual(rb.logits, ra.logits, `${label}: logits`);
      assert.equal(rb.loss, ra.loss, `${label}: loss`);
      assert.deepEqual([...rb.grads.keys()], [...ra.grads.keys()], `${label}: same trainable variables`);
      assert.ok(ra.grads.size > 0);
      for (const [k, g] of ra.grads) assert.deepEqual(rb.grads.get(k), g, `${label}: gradient of ${k}`);
      assert.deepEqual(bnStats(b), bnStats(a), `${label}: batchnorm running statistics after the step`);
      if (c.prefixLayers > 0) {
        assert.ok(rb.tapeBytes < ra.tapeBytes, `${label}: split holds less under the tape (${rb.tapeBytes} vs ${ra.tapeBytes} bytes)`);
      }
      const tensorsBefore = tf.memory().numTensors;
      step(a, x, y, false);
      step(b, x, y, true);
      assert.equal(tf.memory().numTensors, tensorsBefore, `${label}: no tensor leaks`);
    }
  } finally {
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
  }
}

test('ResNet-18 (BasicBlock): split forward/backward is bit-identical to the unsplit one', () => {
  const build = () => createModel('resnet18', { head: 'binary', seed: 5 });
  // Units: conv1 | layer1.0 (conv1, conv2) | layer1.1 ... | fc = 18. 32 px: stem /4 -> 8x8x64; layer4 -> 1x1x512.
  checkSplit(build, [2, 32, 32, 3], [
    { frozen: 4, prefixLayers: 3, featureShape: [2, 8, 8, 64] }, // layer1.1 half frozen: stays trainable
    { frozen: 17, prefixLayers: 17, featureShape: [2, 1, 1, 512] }, // everything but the head
  ]);
});

test('Bottleneck ResNet [1, 1, 1, 1]: split at stem, mid-block and last block', () => {
  const build = () =>
    createCustomModel('bottleneck_1111', (h) => buildResNet({ block: 'bottleneck', layers: [1, 1, 1, 1] }, h), { head: 'binary', seed: 8 });
  // Units: conv1 | layer1.0 (3) | layer2.0 (3) | layer3.0 (3) | layer4.0 (3) | fc = 14.
  // 32 px: stem /4 -> 8x8, layer2 -> 4x4, layer3 -> 2x2.
  checkSplit(build, [2, 32, 32, 3], [
    { frozen: 6, prefixLayers: 4, featureShape: [2, 8, 8, 256] }, // stem + layer1.0; layer2.0 partly frozen
    { frozen: 10, prefixLayers: 10, featureShape: [2, 2, 2, 1024] }, // through layer3.0 (the 148-of-152 shape)
    { frozen: 0, prefixLayers: 0, featureShape: [2, 32, 32, 3] }, // nothing frozen: forwardFrozen copies x
    { frozen: 2, prefixLayers: 1, featureShape: [2, 8, 8, 64] }, // the stem only
  ]);
});

// Boundaries late in the network: a backward through most of DenseNet-121 costs seconds per step on 2 cores.
test('DenseNet-121: split inside a dense block and after a transition', () => {
  const build = () => createModel('densenet121', { head: 'binary', seed: 2 });
  // Units: conv0 (1) | block1 6x2 -> 13 | transition1 -> 14 | block2 12x2 -> 38 | t2 -> 39 | block3 24x2 -> 87 |
  // t3 -> 88 | block4 16x2 -> 120 | classifier (with norm5) -> 121. Channels: 64 + 6*32 = 256 -> 128 -> +384 =
  // 512 -> 256 -> +768 = 1024 -> 512; 6 layers into block4: 512 + 6*32 = 704. Spatial at 32 px: 8, 4, 2, 1.
  checkSplit(build, [2, 32, 32, 3], [
    { frozen: 88, prefixLayers: 88, featureShape: [2, 1, 1, 512] }, // through transition3
    { frozen: 101, prefixLayers: 100, featureShape: [2, 1, 1, 704] }, // denselayer7 of block4 half frozen
  ]);
});

/** A custom network with no trunk(): conv -> bn -> relu -> mean -> head. */
class TinyNet extends Module implements Network {
  readonly classifierName = 'fc' as const;
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  readonly head: HeadModule;
  constructor(makeHead: HeadFactory) {
    super();
    this.conv = this.child('conv1', new Conv2d(3, 4, 3, { padding: 1 }));
    this.bn = this.child('bn1', new BatchNorm2d(4));
    this.head = this.child('fc', makeHead(4));
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => this.head.forward(tf.mean(tf.relu(this.bn.forward(this.conv.forward(x), training)), [1, 2]) as tf.Tensor2D, training));
  }
  layerUnits(): LayerUnit[] {
    return [
      { name: 'conv1', modules: [this.conv, this.bn], batchNorms: [this.bn] },
      { name: 'fc', modules: [this.head], batchNorms: [] },
    ];
  }
}

test('a custom network without trunk() falls back to nothing split, and still trains identically', () => {
  const build = () => createCustomModel('tiny', (h) => new TinyNet(h), { head: 'binary', seed: 1 });
  checkSplit(build, [3, 8, 8, 3], [{ frozen: 1, prefixLayers: 0, featureShape: [3, 8, 8, 3] }]);
  const m = build();
  const x = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
  try {
    m.freezeLayers(1);
    const f = m.forwardFrozen(x);
    assert.notEqual(f, x, 'a copy the caller may dispose');
    assert.deepEqual(f.dataSync(), x.dataSync());
    f.dispose();
  } finally {
    x.dispose();
    m.dispose();
  }
});

test('a trunk that reaches into the head is refused when the model is wrapped', () => {
  class BadTrunk extends TinyNet {
    trunk(): TrunkChain {
      return { steps: [{ name: 'everything', unitsEnd: 2, forward: (x) => tf.clone(x) }], tail: (x, t) => this.forward(x, t) };
    }
  }
  assert.throws(
    () => createCustomModel('bad', (h) => new BadTrunk(h), { head: 'binary' }),
    /trunk step everything ends at layer unit 2; steps must cover increasing unit ranges before the head \(2 units\)/,
  );
});

test('forwardFrozen checks its input like forward does', () => {
  const m = createCustomModel('tiny', (h) => buildResNet({ block: 'basic', layers: [1, 1, 1, 1] }, h), { head: 'binary' });
  const bad = tf.zeros([1, 32, 32, 1]) as tf.Tensor4D;
  try {
    m.freezeLayers(3);
    assert.throws(() => m.forwardFrozen(bad), /tiny: expected an NHWC batch \[N, H, W, 3\], got shape \[1, 32, 32, 1\]/);
  } finally {
    bad.dispose();
    m.dispose();
  }
});
