/**
 * The exporter works from module structure, not class names: the trainer's SlimResNet (`resnet-slim`, a custom
 * Network of zoo BasicBlocks, 3x3/2 stem, with and without the stem max-pool, binary head) exports and runs in ONNX
 * Runtime with the TF.js model's logits and probabilities to 1e-4, with BatchNorm folded and kept; a network whose
 * forward the exporter cannot know (no stemPool flag) or that holds parameters outside the recognised structure is
 * refused with a message naming them, instead of exporting a graph that silently differs.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../../src/engine/index.js';
import { Conv2d, createCustomModel, type NetworkModel } from '../../../src/models/index.js';
import { exportOnnx } from '../../../src/models/onnx/export.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { SlimResNet } from '../../../src/models/slim.js';
import { Rng } from '../../../src/util/rng.js';

before(async () => {
  await initEngine();
});

/** Random BatchNorm statistics and affine terms, so folding has something to fold. */
function perturbBatchNorms(model: NetworkModel, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, v] of model.stateDict()) {
    const n = v.size;
    const draw = (f: () => number) => v.assign(tf.tensor(Float32Array.from({ length: n }, f), v.shape));
    if (name.endsWith('running_var')) draw(() => rng.uniform(0.5, 2));
    else if (name.endsWith('running_mean')) draw(() => rng.normal(0, 0.3));
    else if (/(bn\d|downsample\.1)\.(weight|bias)$/.test(name)) draw(() => rng.uniform(-0.5, 1.5));
  }
}

function slim(stemPool: boolean, seed: number): NetworkModel {
  const m = createCustomModel('resnet-slim', (h) => new SlimResNet([16, 32, 64, 128], [1, 1, 1, 1], h, stemPool), { head: 'binary', seed });
  perturbBatchNorms(m, seed);
  return m;
}

for (const stemPool of [true, false]) {
  for (const foldBatchNorm of [true, false]) {
    test(`SlimResNet (stem max-pool ${stemPool ? 'on' : 'off'}, BatchNorm ${foldBatchNorm ? 'folded' : 'kept'}) in ONNX Runtime equals TF.js to 1e-4`, async () => {
      const model = slim(stemPool, stemPool ? 3 : 4);
      const n = 3;
      const size = 64;
      const rng = new Rng(9);
      const x = Float32Array.from({ length: n * size * size * 3 }, () => rng.normal(0, 1));
      const want = tf.tidy(() => model.forward(tf.tensor4d(x, [n, size, size, 3]), false).dataSync() as Float32Array);
      const before = tf.memory().numTensors;
      const exported = exportOnnx(model, { inputSize: size, foldBatchNorm });
      assert.equal(tf.memory().numTensors, before);
      model.dispose();
      assert.equal(exported.metadata.arch, 'resnet-slim');
      const clf = await OnnxClassifier.create(exported.toBytes(), { threads: 1 });
      try {
        const r = await clf.run(x, n);
        for (let i = 0; i < n; i++) {
          assert.ok(Math.abs(r.logits[i]! - want[i]!) <= 1e-4 * Math.max(1, Math.abs(want[i]!)), `image ${i}: ${r.logits[i]} vs ${want[i]}`);
          const p = 1 / (1 + Math.exp(-want[i]!));
          assert.ok(Math.abs(r.probabilities[i]! - p) <= 1e-4);
        }
        assert.ok(Math.abs(want[0]! - want[1]!) > 1e-4, 'different images give different logits');
      } finally {
        await clf.release();
      }
    });
  }
}

test('the stem max-pool is in the graph exactly when the network pools', () => {
  const on = slim(true, 7);
  const off = slim(false, 7);
  const a = exportOnnx(on, { inputSize: 64 });
  const b = exportOnnx(off, { inputSize: 64 });
  on.dispose();
  off.dispose();
  assert.equal(a.nodeCount, b.nodeCount + 1);
  assert.equal(a.initializerCount, b.initializerCount);
});

test('a ResNet-shaped network without a stemPool flag, or with parameters the walk misses, is refused', () => {
  const noFlag = slim(true, 5);
  Object.defineProperty(noFlag.network, 'stemPool', { value: undefined });
  assert.throws(() => exportOnnx(noFlag, { inputSize: 64 }), /resnet-slim: unsupported network type SlimResNet .*boolean stemPool/);
  noFlag.dispose();

  class SlimPlus extends SlimResNet {
    readonly extra: Conv2d;
    constructor(...args: ConstructorParameters<typeof SlimResNet>) {
      super(...args);
      this.extra = this.child('extra', new Conv2d(128, 128, 1, { bias: false }));
    }
  }
  const plus = createCustomModel('slim-plus', (h) => new SlimPlus([16, 32, 64, 128], [1, 1, 1, 1], h, true), { head: 'binary', seed: 6 });
  assert.throws(() => exportOnnx(plus, { inputSize: 64 }), /slim-plus: cannot export: parameter\(s\) extra\.weight are not part of the recognised structure/);
  plus.dispose();
});
