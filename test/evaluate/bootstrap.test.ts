/** Study-clustered bootstrap: determinism by seed, intervals around the estimate, clustering, percentile rule. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapIntervals, percentileSorted, type ClusteredScores } from '../../src/evaluate/bootstrap.js';
import { computeMetrics, METRIC_NAMES, prepareScores } from '../../src/evaluate/metrics.js';
import { Rng } from '../../src/util/rng.js';

/** n studies of a moderately good classifier: abnormal scores ~ N(0.65, 0.2), normal ~ N(0.35, 0.2), clipped. */
function studies(n: number, seed: number): ClusteredScores {
  const rng = new Rng(seed);
  const labels: number[] = [];
  const scores: number[] = [];
  for (let i = 0; i < n; i++) {
    const y = rng.chance(0.45) ? 1 : 0;
    labels.push(y);
    scores.push(Math.min(1, Math.max(0, rng.normal(y ? 0.65 : 0.35, 0.2))));
  }
  return { prepared: prepareScores(labels, scores), cluster: Uint32Array.from(labels, (_, i) => i), nClusters: n };
}

test('percentile rule is numpy.percentile linear interpolation', () => {
  // [1..5]: q = 0.025 -> position 0.1 -> 1 + 0.1 = 1.1; q = 0.975 -> position 3.9 -> 4 + 0.9 = 4.9; median 3.
  const v = Float64Array.from([1, 2, 3, 4, 5]);
  assert.ok(Math.abs(percentileSorted(v, 0.025) - 1.1) < 1e-12);
  assert.ok(Math.abs(percentileSorted(v, 0.975) - 4.9) < 1e-12);
  assert.equal(percentileSorted(v, 0.5), 3);
  assert.equal(percentileSorted(Float64Array.from([7]), 0.975), 7);
});

test('same seed gives identical intervals; another seed gives different ones', () => {
  const s = studies(200, 1);
  const a = bootstrapIntervals([s], 0.5, 'overall', { replicates: 300, seed: 42 });
  const b = bootstrapIntervals([s], 0.5, 'overall', { replicates: 300, seed: 42 });
  const c = bootstrapIntervals([s], 0.5, 'overall', { replicates: 300, seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a[0]!.ci, c[0]!.ci);
  // The group name forks the stream: another group with the same data draws differently.
  const d = bootstrapIntervals([s], 0.5, 'XR_WRIST', { replicates: 300, seed: 42 });
  assert.notDeepEqual(a[0]!.ci, d[0]!.ci);
});

test('95% intervals contain the point estimate and have a plausible width on 400 studies', () => {
  const s = studies(400, 7);
  const point = computeMetrics(s.prepared, 0.5);
  const [iv] = bootstrapIntervals([s], 0.5, 'overall', { replicates: 1000, seed: 3 });
  for (const name of METRIC_NAMES) {
    const ci = iv!.ci[name];
    const v = point.values[name]!;
    assert.ok(ci, `${name} has an interval`);
    assert.ok(ci[0] <= v && v <= ci[1], `${name}: ${v} in [${ci[0]}, ${ci[1]}]`);
    assert.ok(ci[1] - ci[0] > 0.01 && ci[1] - ci[0] < 0.3, `${name} width ${ci[1] - ci[0]}`);
    assert.equal(iv!.usable[name], 1000);
  }
  // Accuracy's binomial SE on 400 cases is about sqrt(.25/400) = 0.025 at most -> 95% width about 0.1 or less.
  const acc = iv!.ci.accuracy!;
  assert.ok(acc[1] - acc[0] < 0.11, `accuracy width ${acc[1] - acc[0]}`);
});

test('image level resamples whole studies: k identical views per study give the study-level intervals', () => {
  // Each study has 3 images with the study's label and score. Under a study (cluster) bootstrap every replicate is
  // the study replicate with each weight tripled, and all metrics are invariant to that; resampling images
  // independently would not reproduce them.
  const s = studies(120, 11);
  const labels: number[] = [];
  const scores: number[] = [];
  const cluster: number[] = [];
  for (let j = 0; j < 120; j++) {
    for (let v = 0; v < 3; v++) {
      labels.push(s.prepared.labels[j]!);
      scores.push(s.prepared.scores[j]!);
      cluster.push(j);
    }
  }
  const images: ClusteredScores = { prepared: prepareScores(labels, scores), cluster: Uint32Array.from(cluster), nClusters: 120 };
  const [img, stu] = bootstrapIntervals([images, s], 0.5, 'overall', { replicates: 200, seed: 5 });
  for (const name of METRIC_NAMES) {
    const a = img!.ci[name]!;
    const b = stu!.ci[name]!;
    assert.ok(Math.abs(a[0] - b[0]) < 1e-12 && Math.abs(a[1] - b[1]) < 1e-12, `${name}: ${a} vs ${b}`);
  }
});

test('rarely defined metrics get a null interval with a reason; B = 0 turns intervals off', () => {
  // 1 abnormal study among 40: a replicate misses it with probability (39/40)^40 ~ 0.36, so sensitivity is
  // defined in ~64% of replicates (kept); with minUsableFraction 0.9 it is dropped.
  const labels = Array.from({ length: 40 }, (_, i) => (i === 0 ? 1 : 0));
  const scores = labels.map((y, i) => (y ? 0.9 : (i % 10) / 20));
  const s: ClusteredScores = { prepared: prepareScores(labels, scores), cluster: Uint32Array.from(labels, (_, i) => i), nClusters: 40 };
  const [kept] = bootstrapIntervals([s], 0.5, 'g', { replicates: 500, seed: 1 });
  assert.ok(kept!.ci.sensitivity);
  assert.ok(kept!.usable.sensitivity > 250 && kept!.usable.sensitivity < 400, String(kept!.usable.sensitivity));
  const [strict] = bootstrapIntervals([s], 0.5, 'g', { replicates: 500, seed: 1, minUsableFraction: 0.9 });
  assert.equal(strict!.ci.sensitivity, null);
  assert.match(strict!.reasons.sensitivity!, /defined in only \d+ of 500/);
  const [off] = bootstrapIntervals([s], 0.5, 'g', { replicates: 0 });
  assert.equal(off!.ci.auc, null);
  assert.match(off!.reasons.auc!, /B = 0/);
});
