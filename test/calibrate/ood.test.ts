/**
 * OOD gate fitting (src/calibrate/ood.ts) and scoring (src/inference/core/ood.ts). Golden values from NumPy, with
 * sklearn.covariance.ledoit_wolf_shrinkage's formula written out (sklearn is not installed here):
 *   X = [[1,2,.5],[.3,-1,2],[2.2,.1,-.4],[-1,.7,1.1],[0,0,.3],[1.5,-.5,.9],[.4,1.8,-1.2]]
 *   shrinkage = 0.9889176786909821, shrunk covariance below; np.quantile([3,1,4,1.5,9,2.6,5], .99) = 8.76, .5 -> 3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitOodGate, invertSpd, ledoitWolf, quantile } from '../../src/calibrate/ood.js';
import { base64ToFloats, floatsToBase64, isOutOfDistribution, loadGate, mahalanobisScores, storeGate } from '../../src/inference/core/ood.js';

const X = [
  [1.0, 2.0, 0.5],
  [0.3, -1.0, 2.0],
  [2.2, 0.1, -0.4],
  [-1.0, 0.7, 1.1],
  [0.0, 0.0, 0.3],
  [1.5, -0.5, 0.9],
  [0.4, 1.8, -1.2],
];

test('Ledoit-Wolf shrinkage and covariance equal the sklearn formula in NumPy', () => {
  const lw = ledoitWolf(Float64Array.from(X.flat()), 7, 3);
  assert.ok(Math.abs(lw.shrinkage - 0.9889176786909821) < 1e-12, `shrinkage ${lw.shrinkage}`);
  const want = [0.9846604320268779, -0.0012009617581813243, -0.003200302990257203, -0.0012009617581813243, 0.986311471732099, -0.006803188264801177, -0.003200302990257203, -0.006803188264801177, 0.9845383003226561];
  want.forEach((w, i) => assert.ok(Math.abs(lw.cov[i]! - w) < 1e-12, `cov[${i}] ${lw.cov[i]} vs ${w}`));
});

test('invertSpd: A * inv(A) = I; quantile = NumPy', () => {
  const a = Float64Array.of(4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2);
  const inv = invertSpd(a, 3);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    let s = 0;
    for (let k = 0; k < 3; k++) s += a[i * 3 + k]! * inv[k * 3 + j]!;
    assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-12);
  }
  assert.throws(() => invertSpd(Float64Array.of(1, 2, 2, 1), 2), /not positive definite/);
  assert.ok(Math.abs(quantile([3, 1, 4, 1.5, 9, 2.6, 5], 0.99) - 8.76) < 1e-12);
  assert.equal(quantile([3, 1, 4, 1.5, 9, 2.6, 5], 0.5), 3);
});

test('fitted gate: scores are Mahalanobis by hand, threshold at the quantile, storage round-trips', () => {
  const f = Float32Array.from(X.flat());
  const g = fitOodGate(f, 7, 3, 0.5, ['features']);
  // Score of the mean is 0; of a far point, large.
  const s = mahalanobisScores(Float32Array.from([...g.mean, 50, 50, 50]), 2, g);
  assert.ok(Math.abs(s[0]!) < 1e-9);
  // By hand for the far point with the float32 precision.
  let want = 0;
  const c = [50 - g.mean[0]!, 50 - g.mean[1]!, 50 - g.mean[2]!];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) want += c[i]! * g.precision[i * 3 + j]! * c[j]!;
  assert.ok(Math.abs(s[1]! - want) < 1e-6 * want);
  assert.equal(g.threshold, quantile(g.trainScores, 0.5));
  assert.equal(isOutOfDistribution(s[1]!, g.threshold), true);
  assert.equal(isOutOfDistribution(0, g.threshold), false);
  assert.equal(isOutOfDistribution(NaN, g.threshold), true);
  const back = loadGate(JSON.parse(JSON.stringify(storeGate(g))));
  assert.deepEqual([...back.precision], [...g.precision]);
  assert.deepEqual([...base64ToFloats(floatsToBase64(Float32Array.of(1.5, -2, 3e-8)))], [1.5, -2, Math.fround(3e-8)]);
  // Node's Buffer agrees on the encoding.
  assert.equal(floatsToBase64(Float32Array.of(1.5, -2)), Buffer.from(Float32Array.of(1.5, -2).buffer).toString('base64'));
});
