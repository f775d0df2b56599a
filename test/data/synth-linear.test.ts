/**
 * The synthetic task must not be linearly trivial: a logistic regression on raw 32×32 pixels (the cheapest
 * model that could exploit global brightness, a fixed position or a constant marker) must stay far from the
 * AUC a small CNN reaches. A positive control — the same regression with a fixed bright patch planted in the
 * abnormal images — shows that the harness itself can learn when there is something linear to learn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planDataset, designStudy, renderImage } from '../../src/data/synth/index.js';

const SEED = 11;
const RENDER = 128;
const SIDE = 32;

interface Sample {
  x: Float64Array;
  y: number;
  split: 'train' | 'valid';
}

/** Mean of each 4×4 block: 128 -> 32, as a downsample anyone would write. */
function downsample(px: Uint8Array): Float64Array {
  const f = RENDER / SIDE;
  const out = new Float64Array(SIDE * SIDE);
  for (let y = 0; y < RENDER; y++) for (let x = 0; x < RENDER; x++) out[Math.floor(y / f) * SIDE + Math.floor(x / f)]! += px[y * RENDER + x]! / (255 * f * f);
  return out;
}

function dataset(): Sample[] {
  const plan = planDataset({ studies: 200, seed: SEED, validFraction: 0.35 });
  const out: Sample[] = [];
  for (const s of plan) {
    const design = designStudy(SEED, s.key, s.region, s.label, s.images.length);
    s.images.forEach((path, v) => {
      out.push({ x: downsample(renderImage(SEED, design, v, path, RENDER).pixels), y: s.label, split: s.split });
    });
  }
  return out;
}

/** AUC as the Mann–Whitney probability that a positive scores above a negative (ties count half). */
function auc(scores: number[], labels: number[]): number {
  let pos = 0;
  let wins = 0;
  const neg = labels.filter((l) => l === 0).length;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    pos++;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return wins / (pos * neg);
}

/** L2-regularised logistic regression by full-batch gradient descent on standardised pixels. */
function fitAndScore(train: Sample[], valid: Sample[], iters = 400, lr = 0.5, l2 = 1e-3): { trainAuc: number; validAuc: number } {
  const d = SIDE * SIDE;
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (const s of train) for (let k = 0; k < d; k++) mean[k]! += s.x[k]! / train.length;
  for (const s of train) for (let k = 0; k < d; k++) std[k]! += (s.x[k]! - mean[k]!) ** 2 / train.length;
  for (let k = 0; k < d; k++) std[k] = Math.sqrt(std[k]!) + 1e-6;
  const z = (s: Sample) => Float64Array.from(s.x, (v, k) => (v - mean[k]!) / std[k]!);
  const Xt = train.map(z);
  const Xv = valid.map(z);
  const w = new Float64Array(d);
  let b = 0;
  for (let it = 0; it < iters; it++) {
    const gw = new Float64Array(d);
    let gb = 0;
    Xt.forEach((x, i) => {
      let s = b;
      for (let k = 0; k < d; k++) s += w[k]! * x[k]!;
      const err = 1 / (1 + Math.exp(-s)) - train[i]!.y;
      for (let k = 0; k < d; k++) gw[k]! += err * x[k]!;
      gb += err;
    });
    for (let k = 0; k < d; k++) w[k]! -= lr * (gw[k]! / Xt.length + l2 * w[k]!);
    b -= (lr * gb) / Xt.length;
  }
  const score = (x: Float64Array) => {
    let s = b;
    for (let k = 0; k < d; k++) s += w[k]! * x[k]!;
    return s;
  };
  return {
    trainAuc: auc(Xt.map(score), train.map((s) => s.y)),
    validAuc: auc(Xv.map(score), valid.map((s) => s.y)),
  };
}

test('a logistic regression on raw 32x32 pixels does not solve the synthetic task', () => {
  const data = dataset();
  const train = data.filter((s) => s.split === 'train');
  const valid = data.filter((s) => s.split === 'valid');
  assert.ok(train.length > 250 && valid.length > 120, `enough images (${train.length} train, ${valid.length} valid)`);
  assert.ok(valid.some((s) => s.y === 1) && valid.some((s) => s.y === 0));

  // The best of three regularisation strengths, so the bound holds for a tuned linear model, not one setting.
  const fits = [1e-3, 0.1, 1].map((l2) => fitAndScore(train, valid, 300, 0.5, l2));
  const trainAuc = Math.max(...fits.map((f) => f.trainAuc));
  const validAuc = Math.max(...fits.map((f) => f.validAuc));
  // The regression has 1025 parameters for a few hundred images, so it fits the training set (measured train
  // AUC 0.90 at l2 = 1e-3); what it learns does not carry over: measured held-out AUC 0.54 / 0.59 / 0.41 for the
  // three strengths (generator 1.1.0, seed 11; 0.55 / 0.58 / 0.41 with seed 12, 0.44 / 0.41 / 0.40 with seed 13).
  // The larger findings of 1.1.0 raised it from 0.46, partly through the region prior a linear model can read off
  // the film layout (shoulders are abnormal twice as often as hands). The bound 0.7 leaves about two standard
  // errors of sampling noise (~0.05 with ~170 held-out images) above the worst of those and is far below the
  // >= 0.9 the demo's small CNN must reach: the findings are local, pose-varying structures, not a global pattern.
  assert.ok(trainAuc > 0.8, `the regression does fit its training set (train AUC ${trainAuc.toFixed(3)})`);
  assert.ok(validAuc < 0.7, `held-out AUC of a linear model on raw pixels is ${validAuc.toFixed(3)}, should stay < 0.7`);

  // Positive control: a fixed bright patch in every abnormal image is linearly learnable.
  const mark = (s: Sample): Sample => {
    if (s.y !== 1) return s;
    const x = Float64Array.from(s.x);
    for (let y = 4; y < 8; y++) for (let c = 20; c < 24; c++) x[y * SIDE + c] = Math.min(1, x[y * SIDE + c]! + 0.35);
    return { ...s, x };
  };
  const control = fitAndScore(train.map(mark), valid.map(mark));
  assert.ok(control.validAuc > 0.95, `positive control held-out AUC ${control.validAuc.toFixed(3)} should exceed 0.95`);
});
