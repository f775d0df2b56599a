/**
 * ONNX export + onnxruntime-node inference: torchvision parity on the torchvision fixtures (logits computed by
 * torchvision 0.14 itself; the small in-repo ones always, the large ../shared ones when present) to 1e-4 relative
 * (max |ours - torch| / max |torch|) for a BasicBlock ResNet, a Bottleneck ResNet with downsample branches and a
 * DenseNet, with BatchNorm
 * folded and kept, NHWC and NCHW inputs; the binary (MURA) head against the TF.js model's own forward and sigmoid;
 * dynamic batch and size; metadata; clear errors for bad inputs and foreign files; no TF.js tensor leaks.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { initEngine, tf } from '../../../src/engine/index.js';
import { buildResNet, createCustomModel, createModel, type NetworkModel } from '../../../src/models/index.js';
import { readNpyFile, readStateDict } from '../../../src/models/weights/files.js';
import { exportOnnx, type OnnxExportOptions } from '../../../src/models/onnx/export.js';
import { concatChunks, encodeModel, readModelInfo } from '../../../src/models/onnx/graph.js';
import { saveOnnx } from '../../../src/models/onnx/files.js';
import { OnnxModelError } from '../../../src/models/onnx/info.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { modelSkeleton, readModelSkeleton } from '../../../src/models/onnx/skeleton.js';
import { Rng } from '../../../src/util/rng.js';
import { SHARED_FIXTURES_SKIP, tempDir } from '../../helpers/paths.js';
import {
  BASIC_NARROW,
  BOTTLENECK_MINI,
  BOTTLENECK_NARROW,
  DENSENET121,
  DENSENET_NARROW,
  RESNET18,
  fixturePath,
  type TorchvisionFixture,
} from '../../helpers/torchvision.js';

before(async () => {
  await initEngine();
});

function relError(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    maxRef = Math.max(maxRef, Math.abs(want[i]!));
  }
  return maxDiff / maxRef;
}

/** NCHW -> NHWC by index arithmetic (independent of TF.js). */
function nchwToNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) out[((b * h + y) * w + xx) * c + ch] = x[((b * c + ch) * h + y) * w + xx]!;
  return out;
}

function randomBatch(n: number, size: number, seed: string): Float32Array {
  const rng = new Rng(42).fork(seed);
  return Float32Array.from({ length: n * size * size * 3 }, () => rng.normal(0, 1));
}

async function torchvisionParity(fx: TorchvisionFixture, opts: Omit<OnnxExportOptions, 'inputSize'>) {
  const name = fx.name;
  const model = fx.build();
  const k = fx.numClasses;
  const sd = await readStateDict(fixturePath(fx, `${name}.safetensors`));
  model.loadStateDict(sd);
  const before = tf.memory().numTensors;
  const exported = exportOnnx(model, { inputSize: 64, ...opts });
  assert.equal(tf.memory().numTensors, before, 'export allocates no TF.js tensors');
  model.dispose();

  const input = await readNpyFile(fixturePath(fx, `${name}.input.npy`));
  const want = (await readNpyFile(fixturePath(fx, `${name}.logits.npy`))).data as Float32Array;
  assert.deepEqual(input.shape, [2, 3, 64, 64]);
  const x = opts.inputLayout === 'nchw' ? (input.data as Float32Array) : nchwToNhwc(input.data as Float32Array, 2, 3, 64, 64);
  const clf = await OnnxClassifier.create(exported.toBytes(), { threads: 2 });
  try {
    assert.equal(clf.info.inputLayout, opts.inputLayout ?? 'nhwc');
    assert.equal(clf.info.head.kind, 'imagenet');
    const r = await clf.run(x, 2);
    assert.equal(r.numOutputs, k);
    const rel = relError(r.logits, want);
    assert.ok(rel < 1e-4, `${name} (${JSON.stringify(opts)}): relative error ${rel} >= 1e-4`);
    // Softmax rows sum to 1 and keep the argmax.
    for (let row = 0; row < 2; row++) {
      const p = r.probabilities.subarray(row * k, (row + 1) * k);
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      const lg = r.logits.subarray(row * k, (row + 1) * k);
      assert.equal(p.indexOf(Math.max(...p)), lg.indexOf(Math.max(...lg)));
    }
  } finally {
    await clf.release();
  }
  return exported;
}

/** Convolutions and BatchNorms of a BasicBlock ResNet fixture: resnet18 20/20, basic_narrow (layers [2, 1, 1, 1]) 14/14. */
const resnetConvs = (fx: TorchvisionFixture): number => (fx === RESNET18 ? 20 : 14);

function basicTests(fx: TorchvisionFixture): void {
  test(`${fx.name} (BasicBlock, ${fx.size}), BN folded, NHWC input: ONNX Runtime matches torchvision logits`, async () => {
    const ex = await torchvisionParity(fx, {});
    const info = readModelInfo(ex.toBytes());
    assert.deepEqual(info.inputs, [{ name: 'input', elemType: 1, shape: ['batch', 64, 64, 3] }]);
    assert.deepEqual(info.outputs, [{ name: 'logits', elemType: 1, shape: ['batch', fx.numClasses] }]);
    assert.equal(info.metadata.arch, fx.name);
    assert.equal(info.metadata.input_size, '64');
    assert.equal(info.metadata.batchnorm, 'folded');
    assert.equal(JSON.parse(info.metadata.preprocessing!).size, 64);
    // Folded: every conv with a bias from its BN, and the fc weight + bias; no BN tensors.
    assert.equal(info.initializerCount, resnetConvs(fx) * 2 + 2);
  });

  test(`${fx.name} (${fx.size}) with BatchNormalization kept, NCHW input: matches torchvision logits`, async () => {
    const ex = await torchvisionParity(fx, { foldBatchNorm: false, inputLayout: 'nchw' });
    assert.equal(readModelInfo(ex.toBytes()).metadata.batchnorm, 'kept');
    // conv weights, BNs x 4 tensors, fc weight + bias.
    assert.equal(ex.initializerCount, resnetConvs(fx) * 5 + 2);
  });
}

function bottleneckTests(fx: TorchvisionFixture): void {
  test(`${fx.name}: ResNet(Bottleneck, [1, 1, 1, 1]) with downsample branches (${fx.size}): matches torchvision logits`, async () => {
    await torchvisionParity(fx, { inputLayout: 'nchw' });
  });
}

function densenetTests(fx: TorchvisionFixture, layers: number, transitions: number): void {
  test(`${fx.name} (${fx.size}; Concat, AveragePool, pre-activation BatchNormalization nodes): matches torchvision logits`, async () => {
    const ex = await torchvisionParity(fx, {});
    // Folded: conv0+norm0 and each layer's conv1+norm2; kept: each layer's norm1, the transition norms, norm5.
    const convs = 1 + layers * 2 + transitions;
    const keptBns = layers + transitions + 1;
    assert.equal(ex.initializerCount, convs + (1 + layers) + keptBns * 4 + 2);
  });
}

basicTests(BASIC_NARROW);
bottleneckTests(BOTTLENECK_NARROW);
densenetTests(DENSENET_NARROW, 8, 3);
describe('large torchvision fixtures (../shared/fixtures/torchvision)', { skip: SHARED_FIXTURES_SKIP }, () => {
  basicTests(RESNET18);
  bottleneckTests(BOTTLENECK_MINI);
  densenetTests(DENSENET121, 58, 3);
});

test('binary MURA head: logits and probability match the TF.js forward / predictProba; dynamic batch; metadata', async () => {
  // Backbone from the fixture (real BatchNorm statistics), seeded random binary head.
  const model = createCustomModel('basic_narrow', (h) => buildResNet({ block: 'basic', layers: [2, 1, 1, 1], widths: [8, 16, 32, 64] }, h), {
    head: 'binary',
    seed: 7,
  });
  model.loadStateDict(await readStateDict(fixturePath(BASIC_NARROW, 'basic_narrow.safetensors')), { ignoreClassifier: true });
  const exported = exportOnnx(model, { inputSize: 64, decisionThreshold: 0.37, nextrayVersion: '9.9.9', extraMetadata: { note: 'test' } });
  const clf = await OnnxClassifier.create(exported.toBytes(), { threads: 2, maxBatch: 2 });
  try {
    assert.equal(clf.info.head.kind, 'binary');
    assert.equal(clf.info.head.outputs, 1);
    assert.equal(clf.info.head.dropout, 0.5);
    assert.equal(clf.info.decisionThreshold, 0.37);
    assert.equal(clf.info.nextrayVersion, '9.9.9');
    assert.equal(clf.info.metadata.note, 'test');
    assert.equal(clf.info.arch, 'basic_narrow');
    assert.deepEqual(clf.info.model.outputs.map((o) => o.name), ['logits', 'probability']);

    const n = 3; // with maxBatch 2: split into runs of 2 and 1
    const x = randomBatch(n, 64, 'binary');
    tf.tidy(() => model.forward(tf.zeros([1, 64, 64, 3]) as tf.Tensor4D, false)); // warm-up: folds batch norms once (nn.ts convBn)
    const before = tf.memory().numTensors;
    const [wantLogits, wantProba] = tf.tidy(() => {
      const t = tf.tensor4d(x, [n, 64, 64, 3]);
      return [model.forward(t, false).dataSync() as Float32Array, model.predictProba(t).dataSync() as Float32Array];
    });
    assert.equal(tf.memory().numTensors, before);
    const r = await clf.run(x, n);
    assert.equal(r.numOutputs, 1);
    assert.ok(relError(r.logits, wantLogits) < 1e-4, `logits rel ${relError(r.logits, wantLogits)}`);
    assert.ok(relError(r.probabilities, wantProba) < 1e-4, `probability rel ${relError(r.probabilities, wantProba)}`);
    // One image alone gives the same answer as inside a batch (dynamic batch dimension).
    const one = await clf.predictProba(x.subarray(64 * 64 * 3, 2 * 64 * 64 * 3), 1);
    assert.ok(Math.abs(one[0]! - r.probabilities[1]!) < 1e-6);
  } finally {
    await clf.release();
    model.dispose();
  }
});

test('dynamic spatial size: a 96 px batch through a model exported at 64 matches TF.js at 96', async () => {
  const model = BOTTLENECK_NARROW.build();
  model.loadStateDict(await readStateDict(fixturePath(BOTTLENECK_NARROW, 'bottleneck_narrow.safetensors')));
  const exported = exportOnnx(model, { inputSize: 64, dynamicSize: true });
  assert.deepEqual(readModelInfo(exported.toBytes()).inputs[0]!.shape, ['batch', 'height', 'width', 3]);
  const clf = await OnnxClassifier.create(exported.toBytes(), { threads: 2 });
  try {
    const x = randomBatch(1, 96, 'dyn');
    const want = tf.tidy(() => model.forward(tf.tensor4d(x, [1, 96, 96, 3]), false).dataSync() as Float32Array);
    const got = await clf.run(x, 1, { size: [96, 96] });
    assert.ok(relError(got.logits, want) < 1e-4);
  } finally {
    await clf.release();
    model.dispose();
  }
});

test('bad inputs and foreign files give errors that say what is wrong', async () => {
  const model = createCustomModel('bottleneck_mini', (h) => buildResNet({ block: 'bottleneck', layers: [1, 1, 1, 1] }, h), { head: 'binary', init: 'none' });
  assert.throws(() => exportOnnx(model, { inputSize: 16 }), /inputSize must be an integer in \[32, 4096\]/);
  assert.throws(() => exportOnnx(model, { inputSize: 64, decisionThreshold: 2 }), /decisionThreshold must be in \[0, 1\]/);
  assert.throws(() => exportOnnx(model, { inputSize: 64, extraMetadata: { arch: 'x' } }), /reserved/);
  assert.throws(() => exportOnnx({} as NetworkModel, { inputSize: 64 }), /needs a model built by createModel/);
  const bytes = exportOnnx(model, { inputSize: 64 }).toBytes();
  model.dispose();

  const clf = await OnnxClassifier.create(bytes, { threads: 1 });
  try {
    const one = 64 * 64 * 3;
    await assert.rejects(clf.run(new Float32Array(one * 2), 1), (e: Error) => {
      assert.ok(e instanceof OnnxModelError);
      assert.match(e.message, /input has 24576 values, expected 12288 for shape \[1, 64, 64, 3\] \(NHWC\); that is 2 image\(s\)/);
      return true;
    });
    await assert.rejects(clf.run(new Float32Array(100), 1), /expected 12288 for shape \[1, 64, 64, 3\]/);
    await assert.rejects(clf.run(new Float32Array(one), 0), /image count must be a positive integer, got 0/);
    await assert.rejects(clf.run(Array.from({ length: one }) as unknown as Float32Array, 1), /must be a Float32Array, got Array/);
    const nan = new Float32Array(one * 2);
    nan[one + 5] = Number.NaN;
    await assert.rejects(clf.run(nan, 2), /input value 12293 \(image 1\) is NaN; inputs must be finite/);
    await assert.rejects(clf.run(new Float32Array(96 * 96 * 3), 1, { size: [96, 96] }), /exported for 64x64 images only/);
    // The session still works after rejected calls.
    assert.equal((await clf.run(new Float32Array(one), 1)).n, 1);
  } finally {
    await clf.release();
  }
  await assert.rejects(clf.run(new Float32Array(64 * 64 * 3), 1), /released/);

  const { dir, cleanup } = tempDir('nextray-onnx-');
  try {
    await assert.rejects(OnnxClassifier.create(join(dir, 'missing.onnx')), /missing\.onnx: file not found/);
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'definitely not a protobuf');
    await assert.rejects(OnnxClassifier.create(junk), (e: Error) => e instanceof OnnxModelError && e.message.startsWith(`${junk}: not a readable ONNX model`));
    // A valid ONNX model from elsewhere (no nextray metadata) is refused: its layout and normalisation are unknown.
    const foreign = concatChunks(
      encodeModel(
        {
          name: 'g',
          nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
          initializers: [],
          inputs: [{ name: 'x', elemType: 'float32', shape: [1] }],
          outputs: [{ name: 'y', elemType: 'float32', shape: [1] }],
        },
        { producerName: 'other', producerVersion: '1', metadata: {} },
      ),
    );
    await assert.rejects(OnnxClassifier.create(foreign), /ONNX model without nextray metadata .* export it with 'nextray export'/);
  } finally {
    cleanup();
  }
});

test('predictProba needs the binary head', async () => {
  const model = createCustomModel('bottleneck_mini', (h) => buildResNet({ block: 'bottleneck', layers: [1, 1, 1, 1] }, h), { numClasses: 5, init: 'none' });
  const clf = await OnnxClassifier.create(exportOnnx(model, { inputSize: 32 }).toBytes(), { threads: 1 });
  model.dispose();
  try {
    assert.equal(clf.info.decisionThreshold, null);
    await assert.rejects(clf.predictProba(new Float32Array(32 * 32 * 3), 1), /needs the binary head; this model has 5 outputs/);
  } finally {
    await clf.release();
  }
});

test('a .onnx file opens by path with only its skeleton read in JS: same metadata, same outputs as from bytes', async () => {
  const model = createModel('resnet18', { head: 'binary', seed: 4 });
  const exported = exportOnnx(model, { inputSize: 32 });
  model.dispose();
  const { dir, cleanup } = tempDir('nextray-onnx-skel-');
  try {
    const path = join(dir, 'r18.onnx');
    saveOnnx(path, exported);
    const whole = readFileSync(path);
    const skeleton = readModelSkeleton(path);
    // Nodes and weights are left out (kept as empty entries, so still counted); everything readModelInfo reports is the same.
    assert.ok(skeleton.byteLength < whole.byteLength / 100, `skeleton ${skeleton.byteLength} B of ${whole.byteLength} B`);
    assert.deepEqual(readModelInfo(skeleton), readModelInfo(whole));
    // The same skeleton from the bytes in memory (what a cached graph keeps in its manifest).
    assert.deepEqual(modelSkeleton(whole), skeleton);
    assert.throws(() => modelSkeleton(whole.subarray(0, whole.byteLength >> 1)), /truncated|runs past the end/);

    const x = Float32Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => Math.sin(i));
    const fromPath = await OnnxClassifier.create(path, { threads: 1 });
    const fromBytes = await OnnxClassifier.create(new Uint8Array(whole), { threads: 1 });
    try {
      assert.deepEqual(fromPath.info.metadata, fromBytes.info.metadata);
      assert.deepEqual((await fromPath.run(x, 2)).logits, (await fromBytes.run(x, 2)).logits);
    } finally {
      await fromPath.release();
      await fromBytes.release();
    }

    // A file cut short is refused by the skeleton reader, with the file named.
    const cut = join(dir, 'cut.onnx');
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.byteLength / 2)));
    await assert.rejects(OnnxClassifier.create(cut), (e: Error) => e instanceof OnnxModelError && e.message.startsWith(`${cut}: not a readable ONNX model`));
  } finally {
    cleanup();
  }
});
