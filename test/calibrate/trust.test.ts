/**
 * Fitting trust information on a run (src/calibrate/trust.ts): the checkpoint gets extra.trust (temperature = the NLL
 * minimiser over the validation logits, OOD gate, operating point) and its decisionThreshold; the stored threshold
 * reaches the target study sensitivity on validation (recounted here from TF.js predictions); predictSplit applies
 * the temperature on both engines; the export carries temperature, gate and CAM, and ONNX's ood_score equals the
 * gate's TF.js score.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/index.js';
import { buildModel } from '../../src/train/archs.js';
import { saveCheckpoint, loadCheckpoint } from '../../src/models/weights/index.js';
import { makePreprocessing, preprocessGrey } from '../../src/data/preprocess.js';
import { loadMuraDataset } from '../../src/data/mura.js';
import { createSplit, writeSplit } from '../../src/data/splits.js';
import { fitTrust, pooledFeaturesAndLogits } from '../../src/calibrate/trust.js';
import { trustExportOptions, trustOf } from '../../src/inference/core/trust.js';
import { predictSplit } from '../../src/inference/node/records.js';
import { loadTrainedModel } from '../../src/inference/node/checkpoint.js';
import { temperatureNll } from '../../src/calibrate/temperature.js';
import { calibration } from '../../src/evaluate/calibration.js';
import { loadGate, mahalanobisScores } from '../../src/inference/core/ood.js';
import { exportOnnx } from '../../src/models/onnx/export.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { makeOodSet } from '../../src/calibrate/ood-sets.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../helpers/paths.js';
import { writeTinyDataset } from '../train/fixture.js';
import { runCli } from '../helpers/cli.js';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { parseNpy } from '../../src/models/weights/npy.js';

const tmp = tempDir('nextray-trust-');
const data = join(tmp.dir, 'data');
const SIZE = 64;

before(async () => {
  await initEngine();
  await writeTinyDataset(data, { trainPatients: 24, validPatients: 12, size: 72 });
});
after(() => tmp.cleanup());

test('fitTrust stores temperature, OOD gate and operating point; predict and export use them', async () => {
  const model = buildModel('resnet-slim', { dropout: 0.5, seed: 5 });
  // A larger head weight spreads the logits so temperature and thresholds are not degenerate.
  const rng = new Rng(3);
  for (const [name, v] of model.stateDict()) if (name === 'fc.weight') v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal(0, 3)), v.shape));
  const run = join(tmp.dir, 'run');
  const ckpt = join(run, 'checkpoints', 'best');
  saveCheckpoint(ckpt, {
    tensors: model.exportStateDict('torch'),
    metadata: { arch: 'resnet-slim', inputShape: [SIZE, SIZE, 3], preprocessing: makePreprocessing({ size: SIZE }), head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 }, decisionThreshold: 0.5 },
  });
  model.dispose();
  const ds = await loadMuraDataset(data);
  const splitFile = join(tmp.dir, 'split.json');
  writeSplit(splitFile, createSplit(ds, { valFraction: 0.6, seed: 1 }), ds);

  const res = await fitTrust(ckpt, { data, splitFile, targetSensitivity: 0.75, workers: 0, batchSize: 8 });
  const meta = loadCheckpoint(ckpt, { skipOptimizer: true }).metadata;
  const t = trustOf(meta);
  assert.ok(t.temperature && t.ood && t.operatingPoint);
  assert.equal(meta.decisionThreshold, t.operatingPoint.threshold);

  // Temperature: the NLL at T is no larger than at nearby values (a minimum), recomputed from raw TF.js logits.
  const raw = await predictSplit(ckpt, { data, splitFile, subset: 'validation', engine: 'tfjs', workers: 0 });
  const T = t.temperature.value;
  assert.equal(raw.temperature, T);
  const rawLogits = Array.from(raw.logits, (z) => z * T);
  const labels = raw.predictions.map((p) => p.label);
  // The stored T is one of the two fits, each the minimiser of its own NLL: image level (temperatureNll over the
  // images) or study level (log loss of the mean of the views' probabilities); the one kept has the lower
  // validation study ECE (recomputed here).
  const studyOf = raw.predictions.map((p) => p.image.replace(/image\d+\.png$/, ''));
  const keys = [...new Set(studyOf)];
  const sIdx = studyOf.map((k) => keys.indexOf(k));
  const sLabels = keys.map((k) => raw.predictions[studyOf.indexOf(k)]!.label);
  const studyP = (tt: number): number[] => keys.map((_, s) => {
    const zs = rawLogits.filter((_, i) => sIdx[i] === s);
    return zs.reduce((a, z) => a + 1 / (1 + Math.exp(-z / tt)), 0) / zs.length;
  });
  const studyNll = (tt: number): number => -studyP(tt).reduce((a, p, s) => a + (sLabels[s] === 1 ? Math.log(p) : Math.log(1 - p)), 0) / keys.length;
  const studyEce = (tt: number): number => calibration(studyP(tt), sLabels).ece;
  const cand = t.temperature.candidates!;
  assert.ok(T === cand.image || T === cand.study);
  assert.equal(t.temperature.level, T === cand.study && studyEce(cand.study) < studyEce(cand.image) ? 'study' : 'image');
  const objective = (tt: number, level: 'image' | 'study'): number => (level === 'image' ? temperatureNll(rawLogits, labels, tt) : studyNll(tt));
  for (const level of ['image', 'study'] as const) {
    const tl = cand[level];
    // No temperature on a fine grid over the search range [0.05, 20] does better.
    for (let k = 0; k <= 400; k++) {
      const tt = Math.exp(Math.log(0.05) + (k / 400) * Math.log(400));
      assert.ok(objective(tl, level) <= objective(tt, level) + 1e-8, `${level} T ${tl} is beaten by ${tt}`);
    }
  }
  assert.ok(Math.abs(t.temperature.studyEceAfter! - studyEce(T)) < 1e-9);

  // Operating point: study sensitivity on validation (prob > threshold) reaches the target.
  const studies = new Map<string, { y: number; s: number; n: number }>();
  raw.predictions.forEach((p) => {
    const k = p.image.replace(/image\d+\.png$/, '');
    const e = studies.get(k) ?? { y: p.label, s: 0, n: 0 };
    e.s += p.probability;
    e.n++;
    studies.set(k, e);
  });
  const pos = [...studies.values()].filter((s) => s.y === 1);
  const tp = pos.filter((s) => s.s / s.n > meta.decisionThreshold).length;
  assert.ok(tp / pos.length >= 0.75, `sensitivity ${tp}/${pos.length}`);
  assert.equal(t.operatingPoint.rule, 'sensitivity-target');

  // ONNX (temperature in the graph) equals TF.js / T.
  const viaOnnx = await predictSplit(ckpt, { data, splitFile, subset: 'validation', engine: 'onnx', workers: 0, threads: 1 });
  for (let i = 0; i < raw.logits.length; i++) assert.ok(Math.abs(viaOnnx.logits[i]! - raw.logits[i]!) < 1e-4 * Math.max(1, Math.abs(raw.logits[i]!)));

  // Export: gate in the graph gives the TF.js score; a flat field scores above a radiograph.
  const loaded = loadTrainedModel(ckpt);
  const gate = loadGate(t.ood!);
  const exported = exportOnnx(loaded.model, { inputSize: SIZE, preprocessing: loaded.preprocessing, ...trustExportOptions(meta, join(ckpt, 'model.json')) });
  assert.equal(Number(exported.metadata.temperature), T);
  const clf = await OnnxClassifier.create(exported.toBytes(), { threads: 1 });
  const flat = makeOodSet('flat', 2, 4);
  const x = new Float32Array(2 * SIZE * SIZE * 3);
  flat.forEach((p, i) => x.set(preprocessGrey(p.data, p.width, p.height, loaded.preprocessing), i * SIZE * SIZE * 3));
  const r = await clf.run(x, 2, { outputs: ['cam', 'ood_score'] });
  const f = pooledFeaturesAndLogits(loaded.model, x, 2, SIZE, gate.layers);
  const want = mahalanobisScores(f.features, 2, gate);
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(r.extra.ood_score!.data[i]! - want[i]!) < 1e-3 * Math.max(1, want[i]!), `ood ${r.extra.ood_score!.data[i]} vs ${want[i]}`);
  assert.deepEqual(r.extra.cam!.dims, [2, SIZE / 32, SIZE / 32]);
  assert.equal(clf.info.ood?.threshold, gate.threshold);
  assert.ok(res.oodFlagRate.train <= 0.1);
  await clf.release();
  loaded.model.dispose();

  // predict: ood / ood_score columns, the stored threshold, heatmap files for every image.
  const valImage = raw.predictions[0]!.image;
  const flatPng = join(tmp.dir, 'flat.png');
  writeFileSync(flatPng, await sharp(Buffer.alloc(90 * 60, 128), { raw: { width: 90, height: 60, channels: 1 } }).png().toBuffer());
  const hm = join(tmp.dir, 'hm');
  const out = runCli(['predict', '--model', ckpt, join(data, valImage), flatPng, '--heatmaps', hm, '--workers', '0', '--threads', '1']);
  assert.equal(out.code, 0, out.stderr);
  const rows = out.stdout.trim().split('\n').map((l) => l.split(','));
  assert.deepEqual(rows[0]!.slice(-2), ['ood', 'ood_score']);
  const flatRow = rows.find((r) => r[0] === flatPng)!;
  assert.equal(flatRow[3], 'out-of-distribution');
  assert.equal(flatRow[rows[0]!.length - 2], 'true');
  assert.equal(Number(flatRow[4]), meta.decisionThreshold);
  assert.ok(Number(flatRow[rows[0]!.length - 1]) > gate.threshold);
  const files = readdirSync(hm).sort();
  assert.deepEqual(files, ['flat.cam.npy', 'flat.png', 'image1.cam.npy', 'image1.png']);
  const meta2 = await sharp(join(hm, 'flat.png')).metadata();
  assert.deepEqual([meta2.width, meta2.height], [90, 60]);
  const npy = parseNpy(new Uint8Array(readFileSync(join(hm, 'flat.cam.npy'))));
  assert.deepEqual(npy.shape, [SIZE, SIZE]);
  assert.equal(Math.max(...(npy.data as Float32Array)), 1);
});

test('by default: the study threshold of maximum validation kappa, the OOD threshold at the validation images\' 0.99 quantile', async () => {
  const model = buildModel('resnet-slim', { dropout: 0.5, seed: 8 });
  const rng = new Rng(4);
  for (const [name, v] of model.stateDict()) if (name === 'fc.weight') v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal(0, 3)), v.shape));
  const ckpt = join(tmp.dir, 'run2', 'checkpoints', 'best');
  saveCheckpoint(ckpt, {
    tensors: model.exportStateDict('torch'),
    metadata: { arch: 'resnet-slim', inputShape: [SIZE, SIZE, 3], preprocessing: makePreprocessing({ size: SIZE }), head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 }, decisionThreshold: 0.5 },
  });
  model.dispose();
  const ds = await loadMuraDataset(data);
  const splitFile = join(tmp.dir, 'split2.json');
  writeSplit(splitFile, createSplit(ds, { valFraction: 0.5, seed: 2 }), ds);
  const res = await fitTrust(ckpt, { data, splitFile, workers: 0, batchSize: 8 });
  const meta = loadCheckpoint(ckpt, { skipOptimizer: true }).metadata;
  const t = trustOf(meta);
  assert.equal(t.operatingPoint?.rule, 'max-kappa');
  assert.equal(meta.decisionThreshold, t.operatingPoint!.threshold);

  // Kappa of every candidate threshold, by hand from TF.js's calibrated validation predictions (study = mean of views).
  const val = await predictSplit(ckpt, { data, splitFile, subset: 'validation', engine: 'tfjs', workers: 0 });
  const studies = new Map<string, { y: number; s: number; n: number }>();
  for (const p of val.predictions) {
    const k = p.image.replace(/image\d+\.png$/, '');
    const e = studies.get(k) ?? { y: p.label, s: 0, n: 0 };
    e.s += p.probability;
    e.n++;
    studies.set(k, e);
  }
  const cases = [...studies.values()].map((s) => ({ y: s.y, p: s.s / s.n }));
  const kappaAt = (thr: number): number => {
    let tp = 0, fp = 0, tn = 0, fn = 0;
    for (const c of cases) {
      const called = c.p > thr;
      if (c.y === 1) called ? tp++ : fn++;
      else called ? fp++ : tn++;
    }
    const n = cases.length;
    const po = (tp + tn) / n;
    const pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n);
    return (po - pe) / (1 - pe);
  };
  const stored = kappaAt(meta.decisionThreshold);
  assert.ok(Math.abs(stored - t.operatingPoint!.validationKappa!) < 1e-9);
  for (const c of [0, ...cases.map((x) => x.p)]) assert.ok(kappaAt(c) <= stored + 1e-12, `threshold ${c} has kappa ${kappaAt(c)} > stored ${stored}`);

  // OOD: NumPy's linear quantile of the validation images' scores (TF.js features, the stored gate).
  const loaded = loadTrainedModel(ckpt);
  const gate = loadGate(t.ood!);
  const valRecords = val.predictions.map((p) => p.image);
  const x = new Float32Array(valRecords.length * SIZE * SIZE * 3);
  for (const [i, img] of valRecords.entries()) {
    const { data: px, info } = await sharp(join(data, img)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    x.set(preprocessGrey(Float32Array.from(px, (v) => v / 255), info.width, info.height, loaded.preprocessing), i * SIZE * SIZE * 3);
  }
  const f = pooledFeaturesAndLogits(loaded.model, x, valRecords.length, SIZE, gate.layers);
  loaded.model.dispose();
  const scores = Array.from(mahalanobisScores(f.features, valRecords.length, gate)).sort((a, b) => a - b);
  const h = (scores.length - 1) * 0.99;
  const q = scores[Math.floor(h)]! + (h - Math.floor(h)) * (scores[Math.min(Math.floor(h) + 1, scores.length - 1)]! - scores[Math.floor(h)]!);
  assert.ok(Math.abs(gate.threshold - q) < 1e-3 * Math.max(1, q), `threshold ${gate.threshold} vs validation q0.99 ${q}`);
  assert.equal(t.ood!.thresholdFrom, 'validation');
  const flagged = scores.filter((v) => v > gate.threshold).length / scores.length;
  assert.ok(Math.abs(res.oodFlagRate.validation - flagged) < 1e-12);
  assert.ok(flagged <= 0.01 + 1 / scores.length);
  assert.equal(typeof res.oodFlagRate.test, 'number', 'the split has a test part: its flag rate is reported');
  assert.deepEqual(t.ood!.flagRates, res.oodFlagRate);
  // The export says where the threshold came from.
  const ex = trustExportOptions(meta, join(ckpt, 'model.json'));
  assert.equal(ex.ood?.thresholdFrom, 'validation');
});
