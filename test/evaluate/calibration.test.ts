/**
 * Calibration metrics against NumPy written independently (sklearn's calibration_curve bin convention,
 * np.searchsorted(bins[1:-1], p)):
 *   p = [0, .05, .1, .2, 1/3, .34, .5, .51, .66, 2/3, .9, .95, 1, .4, .8, .72], y = [0,0,1,0,0,1,1,0,1,1,1,1,1,0,0,1]
 *   ECE(15 bins) = 0.2285416666666667, Brier = 0.1891826388888889
 * (Temperature scaling, fitted in src/calibrate: test/calibrate/temperature.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibration } from '../../src/evaluate/calibration.js';

test('ECE (15 bins) and Brier equal NumPy', () => {
  const p = [0, 0.05, 0.1, 0.2, 1 / 3, 0.34, 0.5, 0.51, 0.66, 2 / 3, 0.9, 0.95, 1, 0.4, 0.8, 0.72];
  const y = [0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1];
  const c = calibration(p, y);
  assert.ok(Math.abs(c.ece - 0.2285416666666667) < 1e-12, `ece ${c.ece}`);
  assert.ok(Math.abs(c.brier - 0.1891826388888889) < 1e-12, `brier ${c.brier}`);
  assert.equal(c.bins.length, 15);
  assert.equal(c.bins.reduce((s, b) => s + b.count, 0), 16);
  // 1/3 sits on the edge 5/15: it belongs to the bin (4/15, 5/15].
  assert.equal(c.bins[4]!.count, 1);
  assert.equal(c.bins[4]!.confidence, 1 / 3);
  // Perfectly calibrated in every bin -> 0.
  assert.equal(calibration([0.5, 0.5, 1, 0], [1, 0, 1, 0]).ece, 0);
  assert.throws(() => calibration([1.2], [1]), /not in \[0, 1\]/);
});

test('evaluate JSON carries image/study ECE and Brier; the report has the reliability diagrams', async () => {
  const { evaluatePredictions, evaluationJson } = await import('../../src/evaluate/evaluate.js');
  const { resolvePredictions } = await import('../../src/evaluate/predictions.js');
  const { buildFigures, renderMarkdownReport } = await import('../../src/evaluate/report.js');
  const p = [0, 0.05, 0.1, 0.2, 1 / 3, 0.34, 0.5, 0.51, 0.66, 2 / 3, 0.9, 0.95, 1, 0.4, 0.8, 0.72];
  const y = [0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1] as const;
  // One image per study: study level = image level, so both equal the NumPy values above.
  const preds = p.map((prob, i) => ({
    image: `MURA-v1.1/valid/XR_WRIST/patient${String(i + 1).padStart(5, '0')}/study1_${y[i] ? 'positive' : 'negative'}/image1.png`,
    label: y[i]!,
    probability: prob,
  }));
  const input = resolvePredictions(preds);
  const res = evaluatePredictions(input.predictions, { replicates: 0 });
  const json = evaluationJson(res) as { image: { overall: { ece: number; brier: number }; regions: Record<string, { ece: number }> }; study: { overall: { ece: number; brier: number } } };
  assert.ok(Math.abs(json.image.overall.ece - 0.2285416666666667) < 1e-12);
  assert.ok(Math.abs(json.study.overall.ece - 0.2285416666666667) < 1e-12);
  assert.ok(Math.abs(json.image.overall.brier - 0.1891826388888889) < 1e-12);
  assert.ok(Math.abs(json.study.overall.brier - 0.1891826388888889) < 1e-12);
  assert.ok(Math.abs(json.image.regions.XR_WRIST!.ece - 0.2285416666666667) < 1e-12);
  const figs = buildFigures(res);
  assert.ok(figs.some((f) => f.name === 'study-reliability-overall'));
  const md = renderMarkdownReport(res, figs, { calibration: { temperature: 1.5, rows: [{ level: 'image', eceBefore: 0.2, eceAfter: 0.1, brierBefore: 0.3, brierAfter: 0.25 }] } });
  assert.match(md, /\| Wrist \| 0\.229 \| 0\.189 \| 0\.229 \| 0\.189 \|/);
  assert.match(md, /T = 1\.500/);
  assert.match(md, /\| Image level \| 0\.200 \| 0\.100 \| 0\.300 \| 0\.250 \|/);
});
