/**
 * The TF.js fallback of a checkpoint with trust information (temperature, OOD gate) gives what the in-memory ONNX
 * export gives: temperature-scaled probabilities, the `cam` map and the `ood_score`, a card that advertises them with
 * the gate threshold, and no TF.js tensors left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/index.js';
import { makePreprocessing, preprocessGrey } from '../../src/data/preprocess.js';
import { createModel } from '../../src/models/index.js';
import { classActivationMap, layerStatistics, oodLayers } from '../../src/models/cam.js';
import { saveCheckpoint } from '../../src/models/weights/index.js';
import { openModel } from '../../src/inference/node/models.js';
import { loadTrainedModel, TfjsInferenceModel } from '../../src/inference/node/checkpoint.js';
import type { OodGate } from '../../src/inference/core/ood.js';
import type { SlimResNet } from '../../src/models/slim.js';
import type { NetworkModel } from '../../src/models/head.js';
import { mahalanobisScores, OodGateError, storeGate } from '../../src/inference/core/ood.js';
import { fitOodGate } from '../../src/calibrate/ood.js';
import { trustOutputs } from '../../src/inference/core/trust.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-tfjs-trust-');
const SIZE = 64;
const P = makePreprocessing({ size: SIZE });
const T = 1.7;
const PER = SIZE * SIZE * 3;
let x: Float32Array;
let threshold: number;
let gate: OodGate;
const N = 3;

function grey(w: number, h: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: w * h }, (_, i) => Math.min(1, Math.max(0, 0.3 + 0.4 * Math.sin((i % w) / (3 + seed)) * Math.cos(i / w / 5) + rng.normal(0, 0.05))));
}

before(async () => {
  await initEngine('cpu');
  const model = createModel('resnet-slim', { head: 'binary', seed: 5 });
  const rng = new Rng(3);
  for (const [name, v] of model.stateDict()) {
    if (name === 'fc.weight') v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal(0, 3)), v.shape));
    else if (name.endsWith('running_var')) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.uniform(0.5, 2)), v.shape));
    else if (name.endsWith('running_mean')) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal(0, 0.2)), v.shape));
  }
  // The gate: fitted on the layer statistics of 16 textured pictures.
  const nFit = 16;
  const fit = new Float32Array(nFit * PER);
  for (let i = 0; i < nFit; i++) fit.set(preprocessGrey(grey(70 + i, 60 + 2 * i, i + 1), 70 + i, 60 + 2 * i, P), i * PER);
  const layers = oodLayers(model);
  const feats = tf.tidy(() => layerStatistics(model, tf.tensor4d(fit, [nFit, SIZE, SIZE, 3]), layers).dataSync() as Float32Array);
  const g = fitOodGate(feats, nFit, feats.length / nFit, 0.99, layers);
  threshold = g.threshold;
  gate = { method: 'mahalanobis', layers, mean: g.mean, precision: g.precision, threshold: g.threshold, quantile: g.quantile, shrinkage: g.shrinkage, images: g.images };
  saveCheckpoint(join(tmp.dir, 'ckpt'), {
    tensors: model.exportStateDict('torch'),
    metadata: {
      arch: 'resnet-slim',
      inputShape: [SIZE, SIZE, 3],
      preprocessing: P,
      head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 },
      decisionThreshold: 0.4,
      extra: {
        trust: {
          temperature: { value: T, fittedOn: 'validation', images: 10, nllBefore: 1, nllAfter: 0.9, eceBefore: 0.2, eceAfter: 0.1 },
          ood: { ...storeGate({ method: 'mahalanobis', layers, mean: g.mean, precision: g.precision, threshold: g.threshold, quantile: g.quantile, shrinkage: g.shrinkage, images: g.images }), fittedOn: 'train' },
        },
      },
    },
  });
  model.dispose();
  // Two pictures like the fitting ones and a flat field (far out of distribution).
  x = new Float32Array(N * PER);
  x.set(preprocessGrey(grey(80, 50, 20), 80, 50, P), 0);
  x.set(preprocessGrey(grey(50, 90, 21), 50, 90, P), PER);
  x.set(preprocessGrey(new Float32Array(40 * 40).fill(0.5), 40, 40, P), 2 * PER);
});
after(() => tmp.cleanup());

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string, scale?: number): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    const s = scale ?? Math.max(1, Math.abs(b[i]!));
    assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4 * s, `${what}[${i}]: tfjs ${a[i]} vs onnx ${b[i]}`);
  }
}

test('TF.js fallback of a trust-fitted checkpoint: temperature, cam and ood_score as the ONNX export gives them', async () => {
  const onnx = await openModel(join(tmp.dir, 'ckpt'), { engine: 'onnx', threads: 1 });
  const want = await onnx.run(x, N, { outputs: ['cam', 'ood_score'] });
  const onnxCard = onnx.card;
  await onnx.release();

  const baseline = tf.memory().numTensors;
  const m = await openModel(join(tmp.dir, 'ckpt'), { engine: 'tfjs' });
  try {
    assert.match(m.card.engine, /^TF\.js/);
    for (const o of ['cam', 'ood_score']) assert.ok(m.card.outputs.includes(o), `card outputs ${m.card.outputs.join(', ')} lack ${o}`);
    assert.deepEqual(trustOutputs({ models: [m] } as never, { heatmaps: true, ood: true }), ['cam', 'ood_score']);
    assert.equal(JSON.parse(m.card.metadata.ood!).threshold, threshold);
    assert.equal(JSON.parse(m.card.metadata.ood!).threshold, JSON.parse(onnxCard.metadata.ood!).threshold);
    assert.equal(Number(m.card.metadata.temperature), T);
    assert.equal(m.card.threshold, onnxCard.threshold);

    let tensorsAfterFirst = -1;
    for (let run = 0; run < 3; run++) {
      const r = await m.run(x, N, { outputs: ['cam', 'ood_score'] });
      close(r.logits, want.logits, 'logits');
      close(r.probabilities, want.probabilities, 'probabilities');
      assert.deepEqual(r.extra.cam!.dims, want.extra.cam!.dims);
      assert.equal(r.extra.cam!.dims.length, 3);
      assert.equal(r.extra.cam!.dims[0], N);
      close(r.extra.cam!.data, want.extra.cam!.data, 'cam', Math.max(1, ...want.extra.cam!.data));
      assert.deepEqual(r.extra.ood_score!.dims, want.extra.ood_score!.dims);
      close(r.extra.ood_score!.data, want.extra.ood_score!.data, 'ood_score');
      assert.ok(r.extra.ood_score!.data[2]! > threshold, 'the flat field is out of distribution');
      // Without extra outputs: the same probabilities.
      const plain = await m.run(x, N);
      close(plain.probabilities, want.probabilities, 'probabilities (no extras)');
      assert.deepEqual(plain.extra, {});
      if (run === 0) tensorsAfterFirst = tf.memory().numTensors;
      else assert.equal(tf.memory().numTensors, tensorsAfterFirst, `tensors grow across runs (run ${run})`);
    }
    await assert.rejects(m.run(x, N, { outputs: ['nonsense'] }), /nonsense/);
  } finally {
    await m.release();
  }
  assert.equal(tf.memory().numTensors, baseline, 'no TF.js tensors left behind');
});

test('TF.js fallback: one pass through the network gives the logit, cam and ood_score (each as computed alone)', async () => {
  const { model } = loadTrainedModel(join(tmp.dir, 'ckpt'));
  // Count passes through the network: every route (model.forward, the CAM chain) goes through the first block.
  const block = ((model as unknown as NetworkModel).network as SlimResNet).stages[0]!.blocks[0]!;
  const blockForward = block.forward.bind(block);
  let passes = 0;
  block.forward = (t, training) => {
    passes++;
    return blockForward(t, training);
  };
  const input = tf.tensor4d(x, [N, SIZE, SIZE, 3]);
  const alone = tf.tidy(() => ({
    logits: model.forward(input, false).dataSync() as Float32Array,
    cam: classActivationMap(model, input).maps.dataSync() as Float32Array,
    stats: layerStatistics(model, input, gate.layers).dataSync() as Float32Array,
  }));
  input.dispose();
  const card = { name: 'm', source: 'm', sha256: '', arch: 'resnet-slim', preprocessing: P, threshold: 0.5, engine: 'TF.js', outputs: ['logits', 'probability', 'cam', 'ood_score'], metadata: {} };
  const m = new TfjsInferenceModel(model, card, { cam: true, gate, temperature: T });
  const baseline = tf.memory().numTensors;
  try {
    for (const [outputs, what] of [[['cam', 'ood_score'], 'cam + ood_score'], [['cam'], 'cam'], [['ood_score'], 'ood_score'], [[], 'no extras']] as const) {
      passes = 0;
      const r = await m.run(x, N, { outputs: [...outputs] });
      assert.equal(passes, 1, `${what}: ${passes} passes through the network`);
      assert.deepEqual(Array.from(r.logits), Array.from(alone.logits, (v) => Math.fround(v / T)), `${what}: logits`);
      if (outputs.includes('cam' as never)) assert.deepEqual(Array.from(r.extra.cam!.data), Array.from(alone.cam), `${what}: cam`);
      if (outputs.includes('ood_score' as never)) assert.deepEqual(Array.from(r.extra.ood_score!.data), Array.from(mahalanobisScores(alone.stats, N, gate), Math.fround), `${what}: ood_score`);
      assert.deepEqual(Object.keys(r.extra).sort(), [...outputs].sort());
      assert.equal(tf.memory().numTensors, baseline, `${what}: tensors left behind`);
    }
  } finally {
    await m.release();
  }
});

test('TF.js fallback: a gate whose size is not the network\'s is refused as a damaged gate (OodGateError naming the model), no tensor left behind', async () => {
  const { model } = loadTrainedModel(join(tmp.dir, 'ckpt'));
  const d = gate.mean.length - 1;
  const precision = new Float32Array(d * d);
  for (let i = 0; i < d; i++) precision.set(gate.precision.subarray(i * (d + 1), i * (d + 1) + d), i * d);
  const other: OodGate = { ...gate, mean: gate.mean.slice(0, d), precision };
  const card = { name: 'm', source: 'ckpt/model.json', sha256: '', arch: 'resnet-slim', preprocessing: P, threshold: 0.5, engine: 'TF.js', outputs: ['logits', 'probability', 'cam', 'ood_score'], metadata: {} };
  const m = new TfjsInferenceModel(model, card, { cam: true, gate: other });
  try {
    // A first run builds what the model keeps between runs; the count after it is the baseline.
    await m.run(x, N, { outputs: ['cam'] });
    const baseline = tf.memory().numTensors;
    await assert.rejects(m.run(x, N, { outputs: ['ood_score'] }), (e: unknown) => e instanceof OodGateError && e.message === `ckpt/model.json: its OOD gate holds ${d} features per image, the network's layers ${gate.layers.join(', ')} give ${d + 1}: the gate was fitted for another model`);
    assert.equal(tf.memory().numTensors, baseline, 'tensors left behind');
    assert.equal((await m.run(x, N, { outputs: ['cam'] })).extra.cam!.dims[0], N, 'the model still runs without the gate');
  } finally {
    await m.release();
  }
});
