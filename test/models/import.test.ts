/**
 * state_dict import rules (src/models/import.ts) on real torchvision state_dicts (the small in-repo fixtures of
 * test/fixtures/torchvision-small, always; the same rules on resnet18/densenet121 are exercised by parity.test.ts): strict errors that name every
 * missing/unexpected/mis-shaped key with both shapes, nothing copied when strict loading fails, ImageNet weights
 * into the binary head with ignoreClassifier, DataParallel `module.` prefixes, DenseNet's legacy `norm.1` keys, old
 * checkpoints without num_batches_tracked, and export -> import round trips in both layouts.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import { StateDictMismatchError, buildResNet, createCustomModel, detectLayout, type Model, type NetworkModel } from '../../src/models/index.js';
import { readStateDict } from '../../src/models/weights/files.js';
import { compareStateDicts } from '../../src/models/weights/state-dict.js';
import type { StateDict } from '../../src/models/weights/types.js';
import { BASIC_NARROW, DENSENET_NARROW, fixturePath } from '../helpers/torchvision.js';

/** The BasicBlock fixture's state_dict (ResNet layers [2, 1, 1, 1], widths 8/16/32/64, fc 10 x 64). */
let r18: StateDict;

before(async () => {
  await initEngine();
  r18 = await readStateDict(fixturePath(BASIC_NARROW, 'basic_narrow.safetensors'));
});

/** The fixture's network (layers [2, 1, 1, 1]) or a deeper one; 'binary' puts the MURA head in place of fc. */
function narrow(opts: { layers?: [number, number, number, number]; head?: 'binary' } = {}): NetworkModel<string> {
  return createCustomModel(
    'basic_narrow',
    (h) => buildResNet({ block: 'basic', layers: opts.layers ?? [2, 1, 1, 1], widths: [8, 16, 32, 64] }, h),
    opts.head === 'binary' ? { init: 'none', head: 'binary' } : { init: 'none', numClasses: 10 },
  );
}

function sameState(a: Pick<Model, 'stateDict'>, b: Pick<Model, 'stateDict'>, skip: (k: string) => boolean = () => false): void {
  const sb = b.stateDict();
  for (const [k, v] of a.stateDict()) {
    if (skip(k)) continue;
    assert.deepEqual(v.dataSync(), sb.get(k)!.dataSync(), k);
  }
}

test('strict load into the wrong architecture fails, lists the missing keys and copies nothing', () => {
  const m = narrow({ layers: [3, 1, 2, 1] });
  try {
    const before = m.stateDict().get('conv1.weight')!.dataSync().slice();
    assert.throws(
      () => m.loadStateDict(r18, { source: 'basic_narrow.safetensors' }),
      (err: unknown) => {
        assert.ok(err instanceof StateDictMismatchError);
        assert.match(err.message, /^basic_narrow\.safetensors: state_dict does not match the model/);
        assert.match(err.message, /missing key\(s\): .*layer1\.2\.conv1\.weight/);
        assert.ok(err.report.missing.includes('layer3.1.bn2.running_var'));
        assert.deepEqual(err.report.unexpected, []);
        return true;
      },
    );
    assert.deepEqual(m.stateDict().get('conv1.weight')!.dataSync(), before, 'nothing copied');
  } finally {
    m.dispose();
  }
});

test('ImageNet weights into the binary head: strict names both fc shapes; ignoreClassifier loads the backbone', () => {
  const bin = narrow({ head: 'binary' });
  const full = narrow();
  try {
    assert.throws(() => bin.loadStateDict(r18), /fc\.weight: checkpoint \[10, 64\], model needs \[1, 64\].*ignoreClassifier/s);
    const fcBefore = bin.stateDict().get('fc.weight')!.dataSync().slice();
    const rep = bin.loadStateDict(r18, { ignoreClassifier: true });
    assert.deepEqual(rep.skipped.sort(), ['fc.bias', 'fc.weight']);
    assert.equal(rep.loaded.length, r18.size - 2);
    assert.deepEqual(bin.stateDict().get('fc.weight')!.dataSync(), fcBefore, 'the binary head keeps its own weights');
    full.loadStateDict(r18);
    sameState(bin, full, (k) => k.startsWith('fc.'));

    // Non-strict: load what fits, report the rest.
    const bin2 = narrow({ head: 'binary' });
    const rep2 = bin2.loadStateDict(r18, { strict: false });
    assert.deepEqual(rep2.mismatched.map((m) => m.key).sort(), ['fc.bias', 'fc.weight']);
    assert.deepEqual(rep2.mismatched.find((m) => m.key === 'fc.bias'), { key: 'fc.bias', expected: [1], got: [10] });
    bin2.dispose();
  } finally {
    bin.dispose();
    full.dispose();
  }
});

test('DataParallel module. prefixes and a missing num_batches_tracked (pre-0.4.1 checkpoints) are tolerated', () => {
  const wrapped: StateDict = new Map();
  for (const [k, t] of r18) if (!k.endsWith('num_batches_tracked')) wrapped.set(`module.${k}`, t);
  const a = narrow();
  const b = narrow();
  try {
    const rep = a.loadStateDict(wrapped);
    assert.equal(rep.renamed, wrapped.size);
    assert.equal(rep.defaulted.length, 14); // one BatchNorm per conv: stem 1 + 5 blocks x 2 + 3 downsample
    assert.ok(rep.defaulted.includes('layer2.0.downsample.1.num_batches_tracked'));
    b.loadStateDict(r18);
    sameState(a, b, (k) => k.endsWith('num_batches_tracked'));
    assert.equal(a.stateDict().get('bn1.num_batches_tracked')!.dataSync()[0], 0);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test("torchvision's official DenseNet files use legacy keys (denselayer1.norm.1.weight): they load like the new names", async () => {
  const sd = await readStateDict(fixturePath(DENSENET_NARROW, 'densenet_narrow.safetensors'));
  const legacy: StateDict = new Map();
  for (const [k, t] of sd) legacy.set(k.replace(/(denselayer\d+)\.(norm|conv)([12])\./, '$1.$2.$3.'), t);
  assert.ok(legacy.has('features.denseblock1.denselayer1.norm.1.weight'));
  const a = DENSENET_NARROW.build();
  const b = DENSENET_NARROW.build();
  try {
    const rep = a.loadStateDict(legacy);
    // 8 dense layers x (norm1: 5 tensors, conv1: 1, norm2: 5, conv2: 1).
    assert.equal(rep.renamed, 8 * 12);
    b.loadStateDict(sd);
    sameState(a, b);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('exportStateDict round-trips: torch layout equals the torchvision file, tfjs layout reloads with layout tfjs/auto', () => {
  const a = narrow();
  const b = narrow();
  try {
    a.loadStateDict(r18);
    const torchSd = a.exportStateDict();
    assert.deepEqual(compareStateDicts(torchSd, r18), []);
    assert.equal(detectLayout(b.network, torchSd), 'torch');

    const tfjsSd = a.exportStateDict('tfjs');
    assert.deepEqual(tfjsSd.get('conv1.weight')!.shape, [7, 7, 3, 8]);
    assert.equal(detectLayout(b.network, tfjsSd), 'tfjs');
    assert.throws(() => b.loadStateDict(tfjsSd), /conv1\.weight: checkpoint \[7, 7, 3, 8\], model needs \[8, 3, 7, 7\]/);
    b.loadStateDict(tfjsSd, { layout: 'auto' });
    sameState(a, b);
    const n = tf.memory().numTensors;
    b.loadStateDict(tfjsSd, { layout: 'tfjs' });
    assert.equal(tf.memory().numTensors, n, 'loading leaks no tensors');
  } finally {
    a.dispose();
    b.dispose();
  }
});
