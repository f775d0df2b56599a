/**
 * Never a stale hit: an entry is found only under the key it was written with. For every key component, one
 * change of it alone and the entry written under the original key is a miss (a different key-set folder, or a
 * different image hash / variant inside one). And the things that must not matter (the trainable layers, the head's
 * dropout) leave the key alone, so runs differing only in them share the cache.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readFileSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { tempDir } from '../../helpers/paths.js';
import { initEngine } from '../../../src/engine/index.js';
import { createModel, type Model } from '../../../src/models/index.js';
import { makePreprocessing, type Preprocessing } from '../../../src/data/preprocess.js';
import { hashImageFiles, keySetId, makeKeySet, prefixOutputShape, prefixTensorHash, type KeySet } from '../../../src/train/feature-cache/key.js';
import { FeatureStore } from '../../../src/train/feature-cache/store.js';

const tmp = tempDir('nextray-fkey-');
after(() => tmp.cleanup());
let model: Model;
const prep = makePreprocessing({ size: 32, resize: 'pad' });
const engine = { engine: 'native' as const, native: { onednn: '2.6.3', isa: 'avx512_core', threads: 2, addonPath: '', kernels: [], bf16: false } };

before(async () => {
  await initEngine();
  model = createModel('resnet-slim', { head: 'binary', seed: 4 });
  model.freezeLayers(7);
});

function keyOf(m: Model, p: Preprocessing = prep, over: Partial<KeySet> = {}): KeySet {
  return { ...makeKeySet({ model: m, preprocessing: p, engine, computePrecision: 'fp32', storage: 'fp32', shape: prefixOutputShape(m, p.size) }), ...over };
}

const HASH = 'ab'.repeat(32);
const root = () => join(tmp.dir, 'cache');

/** Writes one entry under `k`, returns whether a lookup under `k2` finds it. */
function hitUnder(k: KeySet, k2: KeySet): boolean {
  const s = FeatureStore.open(root(), k);
  if (!s.has(HASH, 0)) s.append(HASH, 0, new Float32Array(s.values).fill(1));
  s.close();
  const t = FeatureStore.open(root(), k2);
  const hit = t.has(HASH, 0);
  t.close();
  return hit;
}

test('the unchanged key hits', () => {
  assert.equal(hitUnder(keyOf(model), keyOf(model)), true);
});

test('frozen weights: one value of one prefix tensor changed by one float32 step is a miss', () => {
  const base = keyOf(model);
  const w = model.stateDict().get('layer2.0.conv1.weight')!;
  const old = w.dataSync().slice() as Float32Array;
  const bumped = old.slice();
  const bits = new Uint32Array(bumped.buffer);
  bits[17] = bits[17]! + 1; // the next float32 after it
  w.assign(tf.tensor(bumped, w.shape));
  try {
    const changed = keyOf(model);
    assert.notEqual(changed.prefixTensors, base.prefixTensors);
    assert.notEqual(keySetId(changed), keySetId(base));
    assert.equal(hitUnder(base, changed), false);
  } finally {
    w.assign(tf.tensor(old, w.shape));
  }
  assert.equal(keyOf(model).prefixTensors, base.prefixTensors, 'restored');
});

test('weights outside the prefix (the trainable block, the head) and the head\'s dropout do not enter the key', () => {
  const base = keyOf(model);
  const fc = model.stateDict().get('fc.weight')!;
  const old = fc.dataSync().slice() as Float32Array;
  fc.assign(tf.tensor(old.map((v) => v + 1), fc.shape));
  const tail = model.stateDict().get('layer4.0.conv1.weight')!;
  const oldTail = tail.dataSync().slice() as Float32Array;
  tail.assign(tf.tensor(oldTail.map((v) => v * 2), tail.shape));
  try {
    assert.equal(keySetId(keyOf(model)), keySetId(base));
  } finally {
    fc.assign(tf.tensor(old, fc.shape));
    tail.assign(tf.tensor(oldTail, tail.shape));
  }
  const other = createModel('resnet-slim', { head: 'binary', seed: 4, dropout: 0.7 });
  other.freezeLayers(7);
  assert.equal(prefixTensorHash(other), base.prefixTensors, 'same seed, other dropout: same prefix');
  other.dispose();
});

test('architecture, prefix boundary, input size, resize, mean, std, background: each alone is a miss', () => {
  const base = keyOf(model);
  const r18 = createModel('resnet18', { head: 'binary', seed: 4 });
  r18.freezeLayers(15);
  const shallower = createModel('resnet-slim', { head: 'binary', seed: 4 });
  shallower.freezeLayers(5);
  const cases: Array<[string, KeySet]> = [
    ['architecture', keyOf(r18)],
    ['architecture name alone', { ...base, arch: 'resnet-slim-2' }],
    ['prefix boundary', keyOf(shallower)],
    ['input size', keyOf(model, makePreprocessing({ size: 48, resize: 'pad' }))],
    ['resize mode', keyOf(model, makePreprocessing({ size: 32, resize: 'stretch' }))],
    ['mean', keyOf(model, makePreprocessing({ size: 32, mean: [0.5, 0.456, 0.406] }))],
    ['std', keyOf(model, makePreprocessing({ size: 32, std: [0.229, 0.224, 0.2251] }))],
    ['background', keyOf(model, makePreprocessing({ size: 32, background: 0.5 }))],
    ['engine ISA', { ...base, engine: 'native/avx2' }],
    ['engine', { ...base, engine: 'cpu' }],
    ['compute precision', { ...base, computePrecision: 'bf16' }],
    ['storage precision', { ...base, storage: 'fp16' }],
    ['prefix batch', { ...base, prefixBatch: 8 }],
  ];
  for (const [what, k] of cases) {
    assert.notEqual(keySetId(k), keySetId(base), what);
    assert.equal(hitUnder(base, k), false, `${what}: a stale hit`);
  }
  assert.equal(keyOf(shallower).prefixLayers, 5);
  r18.dispose();
  shallower.dispose();
});

test('variant: the mirrored image is a different entry from the image as stored', () => {
  const s = FeatureStore.open(root(), keyOf(model));
  const h = 'cd'.repeat(32);
  s.append(h, 0, new Float32Array(s.values).fill(2));
  assert.equal(s.has(h, 0), true);
  assert.equal(s.has(h, 1), false);
  assert.equal(s.read(h, 1, new Float32Array(s.values)), false);
  s.close();
});

test('image content: one byte of the file changed (same size, same name) gives another hash', async () => {
  const f = join(tmp.dir, 'img.png');
  writeFileSync(f, Buffer.from('not really a png, but bytes are bytes: 0123456789'));
  const [a] = await hashImageFiles([f]);
  const [again] = await hashImageFiles([f]);
  assert.deepEqual(again, a, 'stable');
  const fd = openSync(f, 'r+');
  writeSync(fd, Buffer.from('N'), 0, 1, 0);
  closeSync(fd);
  const [b] = await hashImageFiles([f]);
  assert.ok(a && 'hash' in a && b && 'hash' in b);
  assert.notEqual(b.hash, a.hash);
  // The hash is SHA-256 of the bytes (an independent computation: Node's crypto over the file read whole).
  const { createHash } = await import('node:crypto');
  assert.equal(b.hash, createHash('sha256').update(readFileSync(f)).digest('hex'));
  const [missing] = await hashImageFiles([join(tmp.dir, 'nope.png')]);
  assert.ok(missing && 'problem' in missing && /ENOENT/.test(missing.problem));
});

