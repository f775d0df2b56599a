/**
 * The zoo's bookkeeping: parameter counts equal torchvision's published `num_params` for all eight architectures
 * (counted from the module tree's shapes), the binary head's count and the freezing arithmetic (computed here by
 * hand from layer shapes), layer counts/names for freezeLayers, and an actual ResNet-152 build + forward that
 * leaks no tensors.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import { ARCHS, archInfo, buildSpec, countParams, createModel, listArchs } from '../../src/models/index.js';

before(async () => {
  await initEngine();
});

// torchvision 0.14 `num_params` of the IMAGENET1K weights (torchvision/models/resnet.py, densenet.py).
const TORCHVISION_PARAMS = {
  resnet18: 11_689_512,
  resnet34: 21_797_672,
  resnet50: 25_557_032,
  resnet101: 44_549_160,
  resnet152: 60_192_808,
  densenet121: 7_978_856,
  densenet169: 14_149_480,
  densenet201: 20_013_928,
} as const;

const FEATURES = { resnet18: 512, resnet34: 512, resnet50: 2048, resnet101: 2048, resnet152: 2048, densenet121: 1024, densenet169: 1664, densenet201: 1920 };

test('parameter counts with the 1000-class classifier equal torchvision for every architecture', () => {
  assert.deepEqual([...ARCHS].sort(), Object.keys(TORCHVISION_PARAMS).sort());
  for (const arch of ARCHS) {
    assert.equal(countParams(buildSpec(arch)), TORCHVISION_PARAMS[arch], arch);
    assert.equal(archInfo(arch).params, TORCHVISION_PARAMS[arch], `${arch} archInfo`);
  }
});

test('binary head: the 1000-way Linear (F*1000 + 1000) becomes Linear(F, 1) (F + 1)', () => {
  for (const info of ARCHS.map((a) => archInfo(a))) {
    const f = FEATURES[info.arch as keyof typeof FEATURES];
    assert.equal(info.features, f, info.arch);
    assert.equal(info.paramsBinaryHead, TORCHVISION_PARAMS[info.arch as keyof typeof TORCHVISION_PARAMS] - (f * 1000 + 1000) + (f + 1), info.arch);
  }
});

test('resnet-slim is in the one registry: parameters counted by hand, 10 layers, listed after the zoo', () => {
  // conv1 3*16*9 + bn1 2*16; layer1 16->16: 2 convs 16*16*9 + 2 bn 2*16; layer2 16->32: 16*32*9 + 32*32*9 + 2*2*32
  // + downsample 16*32 + 2*32; layer3 32->64 and layer4 64->128 likewise; binary fc 128 + 1.
  const byHand = 432 + 32 + (2 * 2304 + 64) + (4608 + 9216 + 128 + 512 + 64) + (18432 + 36864 + 256 + 2048 + 128) + (73728 + 147456 + 512 + 8192 + 256) + 129;
  assert.equal(byHand, 307_665);
  assert.equal(countParams(buildSpec('resnet-slim', { head: 'binary' })), byHand);
  assert.equal(archInfo('resnet-slim').paramsBinaryHead, byHand);
  assert.equal(archInfo('resnet-slim').layers, 10);
  assert.deepEqual(listArchs().map((i) => i.arch), [...ARCHS, 'resnet-slim']);
  const m = createModel('resnet-slim', { head: 'binary', seed: 1 });
  try {
    assert.equal(m.arch, 'resnet-slim');
    assert.equal(m.parameterCount().total, byHand);
  } finally {
    m.dispose();
  }
});

test('layer counts: stem + main-path convs + classifier equal the depth in the name', () => {
  for (const arch of ARCHS) assert.equal(archInfo(arch).layers, Number(arch.replace(/\D+/g, '')), arch);
  const r18 = buildSpec('resnet18').layerUnits().map((u) => u.name);
  assert.deepEqual(r18.slice(0, 4), ['conv1', 'layer1.0.conv1', 'layer1.0.conv2', 'layer1.1.conv1']);
  assert.equal(r18.at(-1), 'fc');
  const d121 = buildSpec('densenet121').layerUnits().map((u) => u.name);
  assert.deepEqual(d121.slice(0, 3), ['features.conv0', 'features.denseblock1.denselayer1.conv1', 'features.denseblock1.denselayer1.conv2']);
  // block 1 has 6 dense layers (12 convs) after the stem, then transition1.
  assert.equal(d121[13], 'features.transition1.conv');
  assert.equal(d121.at(-1), 'classifier');
});

test('ResNet-152 with the binary head: 152 layers, freezing 148 leaves layer4.2 + head trainable; forward leaks nothing', () => {
  const model = createModel('resnet152', { head: 'binary', init: 'none' });
  try {
    assert.equal(model.layerCount(), 152);
    const names = model.layerNames();
    assert.deepEqual(names.slice(148), ['layer4.2.conv1', 'layer4.2.conv2', 'layer4.2.conv3', 'fc']);
    assert.equal(model.parameterCount().total, TORCHVISION_PARAMS.resnet152 - 2048 * 1000 - 1000 + 2048 + 1);
    assert.equal(model.parameterCount().trainable, model.parameterCount().total);

    model.freezeLayers(148);
    // By hand: layer4.2 is Bottleneck(2048 -> 512 -> 2048): conv1 1x1 2048->512, conv2 3x3 512->512,
    // conv3 1x1 512->2048, each followed by a BatchNorm (weight + bias); then fc 2048 -> 1 with bias.
    const conv1 = 1 * 1 * 2048 * 512;
    const conv2 = 3 * 3 * 512 * 512;
    const conv3 = 1 * 1 * 512 * 2048;
    const bns = 2 * 512 + 2 * 512 + 2 * 2048;
    const fc = 2048 + 1;
    const expected = conv1 + conv2 + conv3 + bns + fc;
    assert.equal(expected, 4_464_641);
    assert.equal(model.parameterCount().trainable, expected);
    assert.equal(model.trainableVariables().length, 3 + 6 + 2);
    assert.equal(model.frozenLayers(), 148);
    const trainable = new Set(model.trainableVariables());
    const sd = model.stateDict();
    assert.ok(trainable.has(sd.get('layer4.2.bn3.weight')!));
    assert.ok(!trainable.has(sd.get('layer4.1.conv3.weight')!));
    assert.ok(!trainable.has(sd.get('layer4.0.downsample.0.weight')!));
    assert.ok(!trainable.has(sd.get('layer4.2.bn3.running_mean')!), 'buffers are never trainable');
    assert.deepEqual(model.regularizedWeights(), [sd.get('fc.weight')]);

    // Freezing is a setting, not cumulative: unfreezing everything restores the total.
    model.freezeLayers(0);
    assert.equal(model.parameterCount().trainable, model.parameterCount().total);
    assert.throws(() => model.freezeLayers(153), /\[0, 152\]/);

    // Forward at 64x64 (ResNet-152 at 320x320 takes minutes on the pure-JS backend: see bench/).
    const x = tf.randomNormal([1, 64, 64, 3]) as tf.Tensor4D;
    model.predictProba(x).dispose(); // warm-up: folds batch norms into convolutions once (nn.ts convBn)
    const before = tf.memory().numTensors;
    const p = model.predictProba(x);
    assert.deepEqual(p.shape, [1]);
    const v = p.dataSync()[0]!;
    assert.ok(v >= 0 && v <= 1);
    p.dispose();
    const logits = model.forward(x, false);
    assert.deepEqual(logits.shape, [1, 1]);
    logits.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensor leak');
    x.dispose();
  } finally {
    model.dispose();
  }
});

test('DenseNet-121 freezing: the classifier unit carries norm5; the last dense layer is two layers (121 = 118 + 3)', () => {
  const model = createModel('densenet121', { head: 'binary', init: 'none' });
  try {
    assert.equal(model.layerCount(), 121);
    assert.deepEqual(model.layerNames().slice(118), [
      'features.denseblock4.denselayer16.conv1',
      'features.denseblock4.denselayer16.conv2',
      'classifier',
    ]);
    model.freezeLayers(118);
    // Trainable by hand: denseblock4.denselayer16 = norm1 (BN over 512 + 15*32 = 992 channels), conv1 1x1 992->128,
    // norm2 (128), conv2 3x3 128->32; then norm5 (1024) + classifier 1024 -> 1.
    const expected = 2 * 992 + 992 * 128 + 2 * 128 + 9 * 128 * 32 + 2 * 1024 + 1024 + 1;
    assert.equal(model.parameterCount().trainable, expected);
    model.freezeLayers(121);
    assert.equal(model.parameterCount().trainable, 0);
  } finally {
    model.dispose();
  }
});

test('createModel validates its options', () => {
  assert.throws(() => createModel('resnet9' as never), /unknown architecture "resnet9"/);
  assert.throws(() => createModel('resnet18', { head: 'binary', numClasses: 3 }), /exactly one output/);
  assert.throws(() => createModel('resnet18', { dropout: 1 }), /dropout/);
  const m = createModel('resnet18', { numClasses: 7, init: 'none' });
  assert.equal(m.numOutputs, 7);
  assert.throws(() => m.predictProba(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D), /binary/);
  assert.throws(() => m.forward(tf.zeros([1, 32, 32, 1]) as tf.Tensor4D, false), /\[N, H, W, 3\]/);
  m.dispose();
  assert.throws(() => m.forward(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D, false), /disposed/);
});
