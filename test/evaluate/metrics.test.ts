/**
 * Metrics against values worked out by hand (scikit-learn's definitions; sklearn itself is not installed here).
 * Each example writes out the confusion matrix and the arithmetic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cohenKappa, computeMetrics, prepareScores, rocAuc, rocCurve } from '../../src/evaluate/metrics.js';

const close = (a: number | null, b: number, tol = 1e-12): void => {
  assert.ok(a !== null, `expected ${b}, got null`);
  assert.ok(Math.abs(a - b) <= tol, `expected ${b}, got ${a}`);
};

test('ten cases at threshold 0.5: confusion matrix, rates, F1, kappa, AUC by hand', () => {
  const labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
  const scores = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.5, 0.05];
  // Abnormal: 0.9, 0.8, 0.6 > 0.5 -> TP = 3; 0.3 -> FN = 1.
  // Normal: 0.7 > 0.5 -> FP = 1; 0.4, 0.2, 0.1, 0.05 and 0.5 (not strictly greater) -> TN = 5.
  const m = computeMetrics(prepareScores(labels, scores), 0.5);
  assert.deepEqual(m.confusion, { tp: 3, fp: 1, tn: 5, fn: 1 });
  assert.equal(m.count, 10);
  assert.equal(m.positives, 4);
  assert.equal(m.negatives, 6);
  close(m.values.accuracy, 8 / 10); // (TP + TN) / n
  close(m.values.sensitivity, 3 / 4); // TP / (TP + FN)
  close(m.values.specificity, 5 / 6); // TN / (TN + FP)
  close(m.values.precision, 3 / 4); // TP / (TP + FP)
  close(m.values.f1, 6 / 8); // 2TP / (2TP + FP + FN) = 6 / 8
  // kappa: po = 0.8; called abnormal 4/10, truly abnormal 4/10 -> pe = 0.4*0.4 + 0.6*0.6 = 0.52;
  // (0.8 - 0.52) / (1 - 0.52) = 0.28 / 0.48 = 7/12.
  close(m.values.kappa, 7 / 12);
  // SE = sqrt(po (1 - po) / (n (1 - pe)^2)) = sqrt(0.16 / (10 * 0.2304)) = sqrt(0.0694444...) (with the root).
  close(m.kappaSE, Math.sqrt(0.16 / 2.304));
  // AUC = share of (abnormal, normal) pairs ranked right: 0.9 beats 6, 0.8 beats 6, 0.6 beats 5 (not 0.7),
  // 0.3 beats 3 (0.2, 0.1, 0.05) -> 20 / 24.
  close(m.values.auc, 20 / 24);
  assert.deepEqual(m.nullReasons, {});
});

test("AUC of sklearn's documented example: scores [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1] -> 0.75", () => {
  const p = prepareScores([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]);
  // Pairs: 0.35 > 0.1 yes, 0.35 > 0.4 no, 0.8 > both yes -> 3 / 4.
  close(rocAuc(p), 0.75);
  // Vertices, descending distinct scores: 0.8 (abnormal) -> (0, .5); 0.4 (normal) -> (.5, .5);
  // 0.35 (abnormal) -> (.5, 1); 0.1 (normal) -> (1, 1); plus the origin with threshold +inf.
  assert.deepEqual(rocCurve(p), {
    fpr: [0, 0, 0.5, 0.5, 1],
    tpr: [0, 0.5, 0.5, 1, 1],
    thresholds: [null, 0.8, 0.4, 0.35, 0.1],
  });
});

test('AUC with a tie between an abnormal and a normal case counts the pair as one half', () => {
  // scores [0.5, 0.5, 0.2, 0.8], labels [1, 0, 0, 1].
  // Pairs (abnormal, normal): (0.5, 0.5) tie = 1/2, (0.5, 0.2) = 1, (0.8, 0.5) = 1, (0.8, 0.2) = 1 -> 3.5 / 4.
  // Trapezoid: vertices (0,0) -> 0.8: (0, .5) -> 0.5 (one of each): (.5, 1) -> 0.2: (1, 1);
  // area = .5 * (.5 + 1) / 2 + .5 * (1 + 1) / 2 = .375 + .5 = .875.
  const p = prepareScores([1, 0, 0, 1], [0.5, 0.5, 0.2, 0.8]);
  close(rocAuc(p), 0.875);
  assert.deepEqual(rocCurve(p), { fpr: [0, 0, 0.5, 1], tpr: [0, 0.5, 1, 1], thresholds: [null, 0.8, 0.5, 0.2] });
  // All scores equal: one diagonal segment -> 0.5.
  close(rocAuc(prepareScores([1, 0, 1, 0, 0], [0.3, 0.3, 0.3, 0.3, 0.3])), 0.5);
});

test("Cohen's kappa from a confusion matrix by hand", () => {
  // TP 20, FN 5, FP 10, TN 15 (n 50): po = 35/50 = 0.7; called abnormal 30/50, truly abnormal 25/50 ->
  // pe = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4.
  const k = cohenKappa({ tp: 20, fn: 5, fp: 10, tn: 15 });
  close(k.kappa, 0.4);
  // SE = sqrt(0.7*0.3 / (50 * 0.25)) = sqrt(0.0168).
  close(k.se, Math.sqrt(0.0168));
  // Perfect disagreement: TP 0, FN 5, FP 5, TN 0: po = 0, pe = 0.5*0.5 + 0.5*0.5 = 0.5 -> -1.
  close(cohenKappa({ tp: 0, fn: 5, fp: 5, tn: 0 }).kappa, -1);
});

test('degenerate cases give null with a reason, never NaN', () => {
  // Only abnormal cases, all called abnormal: specificity, AUC undefined; kappa has pe = 1.
  const m = computeMetrics(prepareScores([1, 1, 1], [0.9, 0.8, 0.7]), 0.5);
  assert.deepEqual(m.confusion, { tp: 3, fp: 0, tn: 0, fn: 0 });
  assert.equal(m.values.sensitivity, 1);
  assert.equal(m.values.specificity, null);
  assert.equal(m.values.auc, null);
  assert.equal(m.values.kappa, null);
  assert.equal(m.kappaSE, null);
  assert.match(m.nullReasons.specificity!, /no normal/);
  assert.match(m.nullReasons.auc!, /no normal/);
  assert.match(m.nullReasons.kappa!, /chance agreement/);
  // Only normal cases, none called abnormal: sensitivity, precision, F1 (2TP+FP+FN = 0), AUC undefined.
  const n = computeMetrics(prepareScores([0, 0], [0.1, 0.2]), 0.5);
  assert.equal(n.values.sensitivity, null);
  assert.equal(n.values.precision, null);
  assert.equal(n.values.f1, null);
  assert.equal(n.values.auc, null);
  assert.equal(n.values.accuracy, 1);
  assert.match(n.nullReasons.sensitivity!, /no abnormal/);
  assert.match(n.nullReasons.precision!, /nothing called abnormal/);
  // Precision undefined but F1 defined (= 0, as sklearn): one abnormal case missed, nothing called.
  const f = computeMetrics(prepareScores([1, 0], [0.2, 0.1]), 0.5);
  assert.equal(f.values.precision, null);
  assert.equal(f.values.f1, 0);
  for (const v of [m, n, f].flatMap((x) => Object.values(x.values))) assert.ok(v === null || Number.isFinite(v));
  assert.ok(!JSON.stringify([m, n, f]).includes('NaN'));
});

test('integer weights give exactly the metrics of the duplicated sample', () => {
  const labels = [1, 0, 1, 0, 1, 0];
  const scores = [0.9, 0.6, 0.4, 0.4, 0.7, 0.1];
  const weights = [2, 0, 1, 3, 1, 2];
  const dupL: number[] = [];
  const dupS: number[] = [];
  weights.forEach((w, i) => {
    for (let k = 0; k < w; k++) {
      dupL.push(labels[i]!);
      dupS.push(scores[i]!);
    }
  });
  const weighted = computeMetrics(prepareScores(labels, scores), 0.5, weights);
  const duplicated = computeMetrics(prepareScores(dupL, dupS), 0.5);
  assert.deepEqual(weighted.confusion, duplicated.confusion);
  for (const [k, v] of Object.entries(duplicated.values)) close(weighted.values[k as keyof typeof weighted.values], v!);
});

test('bad inputs are rejected with the index', () => {
  assert.throws(() => prepareScores([1, 2], [0.1, 0.2]), /index 1.*0 or 1/);
  assert.throws(() => prepareScores([1, 0], [0.1, NaN]), /index 1/);
  assert.throws(() => prepareScores([1], [0.1, 0.2]), /differ in length/);
});
