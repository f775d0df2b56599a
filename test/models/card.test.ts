/**
 * The model card (src/models/card.ts) and its three serialisations: JSON, the ONNX export's metadata_props and the
 * checkpoint's model.json. Each serialise / parse pair gives back the card it was given, every field included;
 * files from before the card (ONNX metadata without `model_card`, a model.json as calibration wrote it) still give
 * a card, with the values they hold (written out by hand below); the exporter writes the card into a real .onnx
 * file and the reader finds it there. Stub check: a serialiser that leaves a section out fails the round trips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePreprocessing } from '../../src/data/preprocess.js';
import {
  cardFromCheckpoint,
  cardFromJson,
  cardFromOnnxMetadata,
  cardToCheckpoint,
  cardToJson,
  cardToOnnxMetadata,
  ModelCardError,
  type ModelCard,
} from '../../src/models/card.js';
import { initEngine } from '../../src/engine/index.js';
import { buildModel } from '../../src/train/archs.js';
import { exportOnnx } from '../../src/models/onnx/export.js';
import { parseClassifierInfo } from '../../src/models/onnx/info.js';

const FULL: ModelCard = {
  name: 'r152',
  arch: 'resnet152',
  inputSize: 320,
  preprocessing: makePreprocessing({ size: 320 }),
  head: { kind: 'binary', outputs: 1, dropout: 0.5 },
  decisionThreshold: 0.37,
  operatingPoint: { rule: 'sensitivity-target', threshold: 0.37, targetSensitivity: 0.9, sensitivity: 0.91, specificity: 0.7, cases: 200, positives: 90, level: 'study', fittedOn: 'validation' },
  temperature: { value: 1.7, level: 'image', fittedOn: 'validation', images: 500, nllBefore: 0.6, nllAfter: 0.5, eceBefore: 0.1, eceAfter: 0.03 },
  ood: { method: 'mahalanobis', threshold: 123.5, quantile: 0.99, fittedOn: 'train', thresholdFittedOn: 'validation', images: 4000, layers: ['stem', 'layer1'], dim: 192 },
  training: { epochs: 12, bestEpoch: 9, selectBy: 'recall', loss: 'bce', learningRate: 1e-5, batchSize: 16, seed: 0, engine: 'native', validationMetrics: { val_auc: 0.91 } },
  dataset: { fingerprint: 'sha256:abc', kind: 'mura', name: 'MURA-v1.1', trainImages: 36000, valImages: 1600 },
  versions: { package: '0.1.0', tfjs: '4.22.0' },
  sha256: 'a'.repeat(64),
  adaptation: { baseSha256: 'b'.repeat(64), images: 300, studies: 120, date: '2026-01-15', metrics: { auc: 0.88 } },
};

test('JSON: the card round-trips; a broken field is named', () => {
  assert.deepEqual(cardFromJson(cardToJson(FULL)), FULL);
  assert.throws(() => cardFromJson(JSON.stringify({ ...FULL, temperature: { value: -1, level: 'image', fittedOn: 'v' } }), 'card.json'), (e: unknown) => e instanceof ModelCardError && /card\.json: model card field 'temperature'/.test((e as Error).message));
  assert.throws(() => cardFromJson('{', 'card.json'), ModelCardError);
});

test('ONNX metadata: the card round-trips; metadata without model_card (older exports) still gives a card', () => {
  const meta = cardToOnnxMetadata(FULL);
  assert.equal(meta.decision_threshold, '0.37');
  assert.equal(meta.temperature, '1.7');
  assert.deepEqual(cardFromOnnxMetadata(meta, 'r152'), FULL);
  // An export of before: shape keys, temperature and the gate's own metadata, no model_card.
  const old: Record<string, string> = {
    arch: 'resnet18',
    input_size: '224',
    preprocessing: JSON.stringify(makePreprocessing({ size: 224 })),
    head: JSON.stringify({ kind: 'binary', outputs: 1 }),
    decision_threshold: '0.5',
    temperature: '2',
    ood: JSON.stringify({ method: 'mahalanobis', output: 'ood_score', layers: ['stem'], threshold: 40, quantile: 0.95, shrinkage: 0.1, dim: 64, images: 100 }),
    nextray_version: '0.0.9',
  };
  assert.deepEqual(cardFromOnnxMetadata(old, 'old'), {
    name: 'old',
    arch: 'resnet18',
    inputSize: 224,
    preprocessing: makePreprocessing({ size: 224 }),
    head: { kind: 'binary', outputs: 1 },
    decisionThreshold: 0.5,
    temperature: { value: 2, level: 'image', fittedOn: 'unknown' },
    ood: { method: 'mahalanobis', threshold: 40, quantile: 0.95, fittedOn: 'unknown', images: 100, layers: ['stem'], dim: 64 },
    versions: { nextray: '0.0.9' },
  });
  // An export of a checkpoint from before model_card: what it was trained on and its validation scores, in the keys
  // `export --checkpoint` wrote beside the graph's (the page's research-use notice depends on the data kind).
  const facts = {
    ...old,
    dataset: JSON.stringify({ kind: 'mura', name: 'MURA-v1.1', fingerprint: 'sha256:abc', train_images: 36000, val_images: 1600 }),
    validation_metrics: JSON.stringify({ epoch: 7, val_auc: 0.81, val_loss: 0.52 }),
  };
  const withFacts = cardFromOnnxMetadata(facts, 'old');
  assert.deepEqual(withFacts.dataset, { fingerprint: 'sha256:abc', kind: 'mura', name: 'MURA-v1.1', trainImages: 36000, valImages: 1600 });
  assert.deepEqual(withFacts.training, { validationMetrics: { val_auc: 0.81, val_loss: 0.52 } });
  // A plain-text dataset name has no fingerprint: no dataset section (nothing invented).
  assert.equal(cardFromOnnxMetadata({ ...old, dataset: 'MURA-v1.1' }, 'old').dataset, undefined);
  // Stub check: leaving the optional sections out loses them.
  const { model_card: _dropped, ...stub } = meta;
  assert.notDeepEqual(cardFromOnnxMetadata(stub, 'r152'), FULL);
});

test("model.json: the card round-trips; a checkpoint as calibration wrote it gives its card", () => {
  const fields = cardToCheckpoint(FULL);
  assert.deepEqual(fields.inputShape, [320, 320, 3]);
  assert.equal(fields.decisionThreshold, 0.37);
  assert.deepEqual(cardFromCheckpoint(fields, 'r152', 'a'.repeat(64)), FULL);
  // What `nextray train` + `nextray calibrate` wrote before the card: extra.trust with the gate's statistics.
  const meta = {
    arch: 'resnet-slim',
    inputShape: [128, 128, 3],
    preprocessing: makePreprocessing({ size: 128 }),
    head: { kind: 'dropout-dense-sigmoid', dropout: 0.2, units: 1 },
    decisionThreshold: 0.42,
    training: { config: { lr: 0.003, batchSize: 32, seed: 0, loss: 'bce', selectBy: 'auc' }, state: { epoch: 18, bestEpoch: 15 }, engine: 'cpu' },
    dataset: { fingerprint: 'sha256:def', root: '/data/synthetic/MURA-v1.1', split_seed: 0, train_images: 6000, val_images: 800 },
    versions: { package: '0.1.0' },
    extra: {
      trust: {
        temperature: { value: 1.3, fittedOn: 'validation', images: 800, nllBefore: 0.4, nllAfter: 0.38, eceBefore: 0.05, eceAfter: 0.02 },
        ood: { method: 'mahalanobis', features: 'layer-statistics', layers: ['stem'], dim: 32, mean: 'AAAA', precision: 'AAAA', threshold: 77, quantile: 0.99, shrinkage: 0.2, images: 6000, fittedOn: 'train' },
        operatingPoint: { threshold: 0.42, targetSensitivity: 0.9, validationSensitivity: 0.92, validationSpecificity: null, validationCases: 150, validationPositives: 60, level: 'study', fittedOn: 'validation' },
      },
    },
  };
  assert.deepEqual(cardFromCheckpoint(meta, 'run'), {
    name: 'run',
    arch: 'resnet-slim',
    inputSize: 128,
    preprocessing: makePreprocessing({ size: 128 }),
    head: { kind: 'binary', outputs: 1, dropout: 0.2 },
    decisionThreshold: 0.42,
    operatingPoint: { rule: 'sensitivity-target', threshold: 0.42, targetSensitivity: 0.9, sensitivity: 0.92, specificity: null, cases: 150, positives: 60, level: 'study', fittedOn: 'validation' },
    temperature: { value: 1.3, level: 'image', fittedOn: 'validation', images: 800, nllBefore: 0.4, nllAfter: 0.38, eceBefore: 0.05, eceAfter: 0.02 },
    ood: { method: 'mahalanobis', threshold: 77, quantile: 0.99, fittedOn: 'train', images: 6000, layers: ['stem'], dim: 32 },
    training: { epochs: 18, bestEpoch: 15, selectBy: 'auc', loss: 'bce', learningRate: 0.003, batchSize: 32, seed: 0, engine: 'cpu' },
    dataset: { fingerprint: 'sha256:def', name: 'MURA-v1.1', trainImages: 6000, valImages: 800 },
    versions: { package: '0.1.0' },
  });
  // Rewriting it with the card keeps the gate's statistics and the free-form training record.
  const again = cardToCheckpoint(cardFromCheckpoint(meta, 'run'), meta);
  assert.equal((again.extra!.trust as { ood: { mean: string } }).ood.mean, 'AAAA');
  assert.deepEqual(again.training, meta.training);
});

test('the exporter writes the card into the .onnx metadata and the reader finds it', async () => {
  await initEngine('cpu');
  const model = buildModel('resnet-slim', { dropout: 0.5, seed: 1 });
  try {
    const { name: _n, arch: _a, inputSize: _i, preprocessing: _p, head: _h, decisionThreshold: _d, sha256: _s, ...sections } = FULL;
    const bytes = exportOnnx(model, { inputSize: 64, preprocessing: makePreprocessing({ size: 64 }), decisionThreshold: 0.37, temperature: 1.7, card: sections }).toBytes();
    const info = parseClassifierInfo(bytes, 'dir/slim.onnx');
    assert.deepEqual(info.card, {
      ...sections,
      name: 'slim',
      arch: 'resnet-slim',
      inputSize: 64,
      preprocessing: makePreprocessing({ size: 64 }),
      head: { kind: 'binary', outputs: 1, dropout: 0.5 },
      decisionThreshold: 0.37,
    });
    // Without a card the export is as before: no model_card key.
    const plain = parseClassifierInfo(exportOnnx(model, { inputSize: 64 }).toBytes(), 'plain.onnx');
    assert.equal(plain.metadata.model_card, undefined);
    assert.equal(plain.card.decisionThreshold, 0.5);
  } finally {
    model.dispose();
  }
});
