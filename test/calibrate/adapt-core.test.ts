/**
 * The browser-safe adaptation core (src/calibrate/adapt/) and the calibration / threshold pieces it stands on:
 *   - golden values from test/fixtures/trust/make.py (plain Python, scikit-learn's definitions by hand): the
 *     maximum-kappa threshold, ECE (weighted = duplicated), L2 logistic regression towards an offset, the
 *     study-level temperature;
 *   - a site shift on synthetic features (independent of any CNN): the adapted head must beat the deployed one on
 *     a fresh sample of the shifted site — an adapt that returns the deployed head unchanged fails;
 *   - disjointness: garbage in the held-out part (features, labels, logits) must not change what was fitted — an
 *     adapt that fits on any held-out image fails;
 *   - the "too small" rule keeps the deployed model and claims nothing;
 *   - the head file: round trip, refusal for another model's SHA-256, and applying it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { thresholdForMaxKappa } from '../../src/evaluate/threshold.js';
import { calibration, studyProbabilities } from '../../src/evaluate/calibration.js';
import { fitStudyTemperature } from '../../src/calibrate/temperature.js';
import { prepareScores, rocAuc } from '../../src/evaluate/metrics.js';
import { fitLogisticL2 } from '../../src/calibrate/adapt/logistic.js';
import { heldOutPatients, patientFolds } from '../../src/calibrate/adapt/split.js';
import { adaptHead, studyMetrics, type AdaptData, type AdaptImage } from '../../src/calibrate/adapt/adapt.js';
import { AdaptError, adaptationRecord, applyAdaptedHead, checkHeadBase, makeHeadFile, parseHeadFile, serializeHeadFile } from '../../src/calibrate/adapt/head-file.js';
import { Rng } from '../../src/util/rng.js';
import { REPO_ROOT } from '../helpers/paths.js';

const golden = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'trust', 'golden.json'), 'utf8'));

test('golden: the maximum-kappa threshold (brute force in Python), and ties go to the lowest threshold', () => {
  const g = golden.threshold_max_kappa;
  const cases = g.probabilities.map((probability: number, i: number) => ({ label: g.labels[i], probability }));
  const c = thresholdForMaxKappa(cases);
  assert.equal(c.threshold, g.threshold);
  assert.ok(Math.abs(c.validationKappa - g.kappa) < 1e-12, `${c.validationKappa} vs ${g.kappa}`);
  assert.ok(Math.abs(c.validationSensitivity - g.sensitivity) < 1e-12);
  assert.ok(Math.abs(c.validationSpecificity - g.specificity) < 1e-12);
  // By hand: abnormal 0.9, 0.6; normal 0.4, 0.1. t = 0.4 and t = 0.5 would both separate perfectly; only observed
  // values are candidates, so t = 0.4 (kappa 1); 0 and 0.1 call normals abnormal.
  const h = thresholdForMaxKappa([
    { label: 1, probability: 0.9 },
    { label: 1, probability: 0.6 },
    { label: 0, probability: 0.4 },
    { label: 0, probability: 0.1 },
  ]);
  assert.equal(h.threshold, 0.4);
  assert.equal(h.validationKappa, 1);
  // Ties: abnormal 0.8, normal 0.7 and 0.2, abnormal 0.3. t = 0.2 -> TP 2, FP 1, TN 1: kappa 0.5; t = 0.7 -> TP 1,
  // FN 1, TN 2: kappa 0.5 too. The lower threshold wins (more sensitive).
  const t = thresholdForMaxKappa([
    { label: 1, probability: 0.8 },
    { label: 0, probability: 0.7 },
    { label: 1, probability: 0.3 },
    { label: 0, probability: 0.2 },
  ]);
  assert.equal(t.threshold, 0.2);
  assert.ok(Math.abs(t.validationKappa - 0.5) < 1e-12);
  assert.throws(() => thresholdForMaxKappa([{ label: 1, probability: 0.4 }]), /no normal case/);
});

test('golden: ECE with 15 bins, and case weights equal duplicated cases', () => {
  const g = golden.ece;
  assert.ok(Math.abs(calibration(g.probabilities, g.labels).ece - g.ece) < 1e-12);
  assert.ok(Math.abs(calibration(g.probabilities, g.labels, 15, g.weights).ece - g.weighted_ece) < 1e-12);
  assert.notEqual(g.ece, g.weighted_ece);
});

test('golden: L2 logistic regression on standardised features, towards an offset (Newton in Python)', () => {
  const g = golden.logistic;
  for (const c of g.cases) {
    const lambda = c.lambda === 'inf' ? Infinity : c.lambda;
    const fit = fitLogisticL2(g.x, g.n, g.d, g.y, { lambda, ...(c.offsets ? { offsets: g.offsets } : {}), tolerance: 1e-11 });
    assert.ok(fit.converged, `lambda ${lambda}: converged in ${fit.iterations} iterations (gradient ${fit.gradient})`);
    for (let j = 0; j < g.d; j++) assert.ok(Math.abs(fit.weight[j]! - c.weight[j]) < 1e-6 * (1 + Math.abs(c.weight[j])), `lambda ${lambda} w[${j}] ${fit.weight[j]} vs ${c.weight[j]}`);
    assert.ok(Math.abs(fit.bias - c.bias) < 1e-6 * (1 + Math.abs(c.bias)), `lambda ${lambda} b ${fit.bias} vs ${c.bias}`);
    assert.ok(Math.abs(fit.objective - c.objective) < 1e-10, `lambda ${lambda} J ${fit.objective} vs ${c.objective}`);
  }
});

test('golden: study-level temperature (mean of the views, golden-section on T in Python)', () => {
  const g = golden.study_temperature;
  const f = fitStudyTemperature(g.logits, g.study, g.study_labels);
  assert.ok(Math.abs(f.temperature - g.temperature) < 1e-4, `${f.temperature} vs ${g.temperature}`);
  assert.ok(Math.abs(f.nllBefore - g.nll_before) < 1e-12);
  assert.ok(Math.abs(f.nllAfter - g.nll_after) < 1e-9);
  assert.ok(g.temperature > 1.2, 'the fixture needs a temperature far from 1');
});

/**
 * A clinic's studies as the deployed model sees them: features f = e * a + noise with e = +-1 by label (plus a
 * per-study effect), at the training site. The deployed head w0 . f + b0 is the Bayes rule there. `shift` scales
 * and offsets every feature (another machine), which costs the deployed head discrimination and calibration.
 */
function makeSite(opts: { studies: number; seed: string; shift: boolean; d?: number }): AdaptData & { w0: Float64Array; b0: number } {
  const d = opts.d ?? 16;
  const dirRng = new Rng('adapt-test-direction');
  const a = Float64Array.from({ length: d }, () => dirRng.normal(0, 0.35));
  const scale = Float64Array.from({ length: d }, () => dirRng.uniform(0.25, 1.6));
  const offset = Float64Array.from({ length: d }, () => dirRng.normal(0, 0.8));
  const signFlip = Float64Array.from({ length: d }, (_, j) => (j % 5 === 0 ? -1 : 1));
  // Noise sd 1 per feature and +-a means: the Bayes logit at the training site is 2 a . f (prior 0.4: bias log(0.4/0.6)).
  const w0 = Float64Array.from(a, (v) => 2 * v);
  const b0 = Math.log(0.4 / 0.6);
  const rng = new Rng(opts.seed);
  const images: AdaptImage[] = [];
  const rows: number[] = [];
  let s = 0;
  for (let p = 0; s < opts.studies; p++) {
    const nStudies = rng.chance(0.2) ? 2 : 1;
    for (let k = 0; k < nStudies && s < opts.studies; k++, s++) {
      const label = rng.chance(0.4) ? 1 : 0;
      const e = label ? 1 : -1;
      const studyEffect = Float64Array.from({ length: d }, () => rng.normal(0, 0.3));
      const views = 1 + rng.int(3);
      for (let v = 0; v < views; v++) {
        images.push({ study: `p${p}/s${k}`, patient: `p${p}`, label: label as 0 | 1 });
        for (let j = 0; j < d; j++) {
          let f = e * a[j]! + studyEffect[j]! + rng.normal(0, 1);
          if (opts.shift) f = signFlip[j]! * f * scale[j]! + offset[j]!;
          rows.push(f);
        }
      }
    }
  }
  const features = Float32Array.from(rows);
  const baseLogits = new Float64Array(images.length);
  for (let i = 0; i < images.length; i++) {
    let z = b0;
    for (let j = 0; j < d; j++) z += features[i * d + j]! * w0[j]!;
    baseLogits[i] = z;
  }
  return { images, features, dim: d, baseLogits, w0, b0 };
}

function studyAucAndEce(p: Float64Array | number[], data: AdaptData): { auc: number; ece: number } {
  const keys = [...new Set(data.images.map((im) => im.study))];
  const idx = new Map(keys.map((k, i) => [k, i]));
  const sp = studyProbabilities(
    Array.from(p, (q) => Math.log(q / (1 - q))),
    data.images.map((im) => idx.get(im.study)!),
    keys.length,
  );
  const y = keys.map((k) => data.images.find((im) => im.study === k)!.label);
  return { auc: rocAuc(prepareScores(y, sp))!, ece: calibration(sp, y).ece };
}

test('site shift: the adapted head beats the deployed one on a fresh sample of the shifted site (a no-op adapt fails)', () => {
  const local = makeSite({ studies: 400, seed: 'local', shift: true });
  const r = adaptHead(local, { temperature: 1, threshold: 0.5 }, { bootstrap: 200 });
  assert.equal(r.tooSmall, false, r.tooSmallReason);
  assert.equal(r.decision, 'adapted', r.decisionReason);
  assert.ok(r.adopted);
  assert.ok(r.candidate.lambda !== Infinity, 'a shift of this kind needs the weights refitted, not only the logit shifted');
  assert.ok(r.heldOut.after.auc! > r.heldOut.before.auc! + 0.03, `held-out AUC ${r.heldOut.before.auc} -> ${r.heldOut.after.auc}`);
  assert.ok(r.heldOut.after.logLoss < r.heldOut.before.logLoss);
  assert.equal(r.improvementClaimed, true);

  // Judged on studies adaptHead never saw: 1,000 fresh studies of the same shifted site.
  const fresh = makeSite({ studies: 1000, seed: 'fresh', shift: true });
  const file = makeHeadFile(r.adopted, { sha256: 'a'.repeat(64), arch: 'test', featuresDim: fresh.dim, temperature: 1, threshold: 0.5 }, {} as never);
  const head = parseHeadFile(serializeHeadFile(file));
  const after = applyAdaptedHead(head, fresh.features, fresh.images.length, fresh.baseLogits, 1).probabilities;
  const before = Float64Array.from(fresh.baseLogits, (z) => 1 / (1 + Math.exp(-z)));
  const mb = studyAucAndEce(before, fresh);
  const ma = studyAucAndEce(after, fresh);
  // The training site's own AUC is the ceiling the shift took away.
  const home = makeSite({ studies: 1000, seed: 'fresh', shift: false });
  const mh = studyAucAndEce(Float64Array.from(home.baseLogits, (z) => 1 / (1 + Math.exp(-z))), home);
  assert.ok(mh.auc - mb.auc > 0.05, `the shift costs AUC: home ${mh.auc.toFixed(3)}, shifted ${mb.auc.toFixed(3)}`);
  assert.ok(ma.auc - mb.auc >= 0.5 * (mh.auc - mb.auc), `recovers at least half the AUC lost: ${mb.auc.toFixed(3)} -> ${ma.auc.toFixed(3)} (home ${mh.auc.toFixed(3)})`);
  assert.ok(ma.ece < mb.ece && ma.ece < 0.08, `study ECE ${mb.ece.toFixed(3)} -> ${ma.ece.toFixed(3)}`);
});

test('disjointness: nothing of the held-out part enters the fit (garbage there changes only the held-out numbers)', () => {
  const local = makeSite({ studies: 240, seed: 'disjoint', shift: true });
  const base = { temperature: 1, threshold: 0.5 };
  const a = adaptHead(local, base, { bootstrap: 50 });
  const held = new Set(a.split.heldOutPatients);
  assert.ok(held.size > 0 && a.split.fitPatients.length > 0);
  for (const p of a.split.fitPatients) assert.ok(!held.has(p), `patient ${p} is in both parts`);
  assert.equal(held.size + a.split.fitPatients.length, new Set(local.images.map((im) => im.patient)).size);
  assert.equal(a.split.fit.studies + a.split.heldOut.studies, new Set(local.images.map((im) => im.study)).size);
  // Same split whatever the order of the images.
  const rev = [...local.images].reverse().map((im) => ({ key: im.study, patient: im.patient, label: im.label }));
  assert.deepEqual([...heldOutPatients(rev, 0.4, 20240611)].sort(), a.split.heldOutPatients);

  // Garbage in the held-out part: random features and wild base logits. (Labels stay: the split is stratified by
  // them, so they choose which patients are held out; a leak through them would still need the features.)
  const rng = new Rng('garbage');
  const features = local.features.slice();
  const baseLogits = Float64Array.from(local.baseLogits);
  const images = local.images.map((im, i) => {
    if (!held.has(im.patient)) return im;
    for (let j = 0; j < local.dim; j++) features[i * local.dim + j] = rng.normal(0, 50);
    baseLogits[i] = rng.normal(0, 30);
    return im;
  });
  const b = adaptHead({ images, features, dim: local.dim, baseLogits }, base, { bootstrap: 50 });
  assert.deepEqual(b.split.heldOutPatients, a.split.heldOutPatients);
  assert.deepEqual(Array.from(b.candidate.deltaWeight), Array.from(a.candidate.deltaWeight));
  assert.equal(b.candidate.deltaBias, a.candidate.deltaBias);
  assert.equal(b.candidate.temperature, a.candidate.temperature);
  assert.equal(b.candidate.threshold, a.candidate.threshold);
  assert.equal(b.candidate.lambda, a.candidate.lambda);
  assert.deepEqual(b.cv, a.cv);
  assert.notEqual(b.heldOut.after.auc, a.heldOut.after.auc, 'the held-out numbers do read the held-out part');

  // Folds: every fitting patient in exactly one fold, abnormal patients spread over the folds.
  const units = local.images.filter((im) => !held.has(im.patient)).map((im) => ({ key: im.study, patient: im.patient, label: im.label }));
  const folds = patientFolds(units, 5, 1);
  const perFold = [0, 0, 0, 0, 0];
  const abnormalPatients = new Set(units.filter((u) => u.label === 1).map((u) => u.patient));
  for (const p of abnormalPatients) perFold[folds.get(p)!]!++;
  assert.ok(Math.max(...perFold) - Math.min(...perFold) <= 1, `abnormal patients per fold ${perFold}`);
});

test('too small: fewer than 20 abnormal or normal studies in a part keeps the deployed model and claims nothing', () => {
  const local = makeSite({ studies: 60, seed: 'small', shift: true });
  const r = adaptHead(local, { temperature: 1, threshold: 0.5 }, { bootstrap: 100 });
  assert.equal(r.tooSmall, true);
  assert.match(r.tooSmallReason, /held-out part has \d+ abnormal and \d+ normal studies \(needs at least 20 of each\)/);
  assert.equal(r.decision, 'kept-base');
  assert.equal(r.adopted, null);
  assert.equal(r.improvementClaimed, false);
  assert.match(r.decisionReason, /too small to trust/);
  // A smaller minimum lets the same data through the rule.
  const r2 = adaptHead(local, { temperature: 1, threshold: 0.5 }, { bootstrap: 100, minStudiesPerClass: 3 });
  assert.equal(r2.tooSmall, false);
});

test('studyMetrics: bootstrap weights equal duplicated studies', () => {
  const p = [0.9, 0.2, 0.7, 0.4, 0.55, 0.1];
  const y = [1, 0, 1, 0, 0, 1];
  const w = [2, 1, 0, 3, 1, 1];
  const dp = p.flatMap((v, i) => Array(w[i]).fill(v) as number[]);
  const dy = y.flatMap((v, i) => Array(w[i]).fill(v) as number[]);
  const a = studyMetrics(p, y, 0.5, w);
  const b = studyMetrics(dp, dy, 0.5);
  for (const k of ['auc', 'sensitivity', 'specificity', 'kappa', 'ece', 'logLoss'] as const) assert.ok(Math.abs((a[k] as number) - (b[k] as number)) < 1e-12, k);
});

test('head file: round trip, the adaptation record, refusal for another model, and the adapted probabilities', () => {
  const local = makeSite({ studies: 200, seed: 'file', shift: true });
  const r = adaptHead(local, { temperature: 1.5, threshold: 0.4 }, { bootstrap: 20, minStudiesPerClass: 5 });
  const rec = adaptationRecord(r, { baseSha256: 'b'.repeat(64), date: '2025-01-02T03:04:05.000Z', source: 'clinic', folds: 5, heldOutFraction: 0.4, minStudiesPerClass: 5, seed: '1' });
  assert.equal(rec.data.studies, 200);
  assert.equal(rec.data.held_out.studies + rec.data.fit.studies, 200);
  assert.equal(rec.base_sha256, 'b'.repeat(64));
  assert.equal(typeof rec.held_out.before.auc, 'number');
  assert.ok(Array.isArray(rec.held_out.intervals_95.difference.log_loss) || rec.held_out.intervals_95.difference.log_loss === null);
  const file = makeHeadFile(r.candidate, { sha256: 'b'.repeat(64), arch: 'test', featuresDim: local.dim, temperature: 1.5, threshold: 0.4 }, rec);
  const text = serializeHeadFile(file);
  assert.ok(text.length < 4000, `small: ${text.length} bytes`);
  const head = parseHeadFile(text, 'head.json');
  assert.deepEqual(Array.from(head.deltaWeight), Array.from(r.candidate.deltaWeight));
  checkHeadBase(head, 'B'.repeat(64));
  assert.throws(() => checkHeadBase(head, 'c'.repeat(64), 'head.json'), (e: unknown) => e instanceof AdaptError && /head\.json was fitted for the model with SHA-256 bbbbbbbbbbbb/.test((e as Error).message));
  assert.throws(() => parseHeadFile('{"format":"other"}', 'x.json'), /x\.json: not an adapted-head file/);
  assert.throws(() => parseHeadFile('not json', 'x.json'), /x\.json: not JSON/);
  assert.throws(() => parseHeadFile(text.replace('"features_dim": 16', '"features_dim": 17'), 'x.json'), /16 weights for 17 features/);
  // Applying: z' = (z_base * T_base + x . dw + db) / T', by hand for the first image (the model outputs z_base / T_base).
  const n = 3;
  const z = Float64Array.from({ length: n }, (_, i) => local.baseLogits[i]! / 1.5);
  const out = applyAdaptedHead(head, local.features.subarray(0, n * local.dim), n, z, 1.5);
  let want = local.baseLogits[0]! + r.candidate.deltaBias;
  for (let j = 0; j < local.dim; j++) want += local.features[j]! * r.candidate.deltaWeight[j]!;
  want /= r.candidate.temperature;
  assert.ok(Math.abs(out.logits[0]! - want) < 1e-9);
  assert.ok(Math.abs(out.probabilities[0]! - 1 / (1 + Math.exp(-want))) < 1e-12);
});

test('bagged head: the mean of the fold heads, recomputed here from the split, the folds and the solver alone', () => {
  const local = makeSite({ studies: 240, seed: 'bagged', shift: true });
  const seed = 20240611;
  const r = adaptHead(local, { temperature: 1, threshold: 0.5 }, { bootstrap: 0, head: 'bagged', repeats: 2 });
  assert.equal(r.candidate.fit?.head, 'bagged');
  assert.ok(r.candidate.lambda !== Infinity && r.candidate.lambda > 0, `a penalty with weights to average, got ${r.candidate.lambda}`);
  // The split and the folds as documented: the held-out patients of heldOutPatients(seed); two fold splits, the
  // first with the seed itself, the second with `${seed}/folds-1`.
  const held = heldOutPatients(local.images.map((im) => ({ key: im.study, patient: im.patient, label: im.label })), 0.4, seed);
  const fitRows = local.images.map((im, i) => (held.has(im.patient) ? -1 : i)).filter((i) => i >= 0);
  const units = fitRows.map((i) => ({ key: local.images[i]!.study, patient: local.images[i]!.patient, label: local.images[i]!.label }));
  const y = local.images.map((im) => im.label);
  const d = local.dim;
  const wSum = new Float64Array(d);
  let bSum = 0;
  let heads = 0;
  const oof = new Float64Array(local.images.length);
  for (const foldSeed of [seed, `${seed}/folds-1`]) {
    const folds = patientFolds(units, 5, foldSeed);
    for (let j = 0; j < 5; j++) {
      const train = fitRows.filter((i) => folds.get(local.images[i]!.patient) !== j);
      // A cold start: the penalised problem is strictly convex, so the path's warm starts must reach the same head.
      const f = fitLogisticL2(local.features, local.images.length, d, y, { lambda: r.candidate.lambda, rows: train, offsets: local.baseLogits, tolerance: 1e-10 });
      for (let q = 0; q < d; q++) wSum[q]! += f.weight[q]!;
      bSum += f.bias;
      heads++;
      for (const i of fitRows) {
        if (folds.get(local.images[i]!.patient) !== j) continue;
        let z = local.baseLogits[i]! + f.bias;
        for (let q = 0; q < d; q++) z += local.features[i * d + q]! * f.weight[q]!;
        oof[i]! += z / 2;
      }
    }
  }
  assert.equal(heads, 10);
  assert.equal(r.candidate.fit?.folds, 10);
  for (let q = 0; q < d; q++) {
    assert.ok(Math.abs(r.candidate.deltaWeight[q]! - wSum[q]! / heads) < 1e-5 * (1 + Math.abs(wSum[q]! / heads)), `weight ${q}: ${r.candidate.deltaWeight[q]} vs ${wSum[q]! / heads}`);
  }
  assert.ok(Math.abs(r.candidate.deltaBias - bSum / heads) < 1e-5, `bias ${r.candidate.deltaBias} vs ${bSum / heads}`);
  // The temperature is fitted on the out-of-fold logits averaged over the two splits (heads that never saw the image).
  const studyKeys = [...new Set(fitRows.map((i) => local.images[i]!.study))];
  const sIdx = new Map(studyKeys.map((k, s) => [k, s]));
  const t = fitStudyTemperature(fitRows.map((i) => oof[i]!), fitRows.map((i) => sIdx.get(local.images[i]!.study)!), studyKeys.map((k) => local.images.find((im) => im.study === k)!.label));
  assert.ok(Math.abs(r.candidate.temperature - t.temperature) < 1e-4 * t.temperature, `temperature ${r.candidate.temperature} vs ${t.temperature}`);

  // 'refit' is one fit on the whole fitting part at the same penalty: another head (so the comparison above has teeth).
  const refit = adaptHead(local, { temperature: 1, threshold: 0.5 }, { bootstrap: 0, head: 'refit', repeats: 2 });
  assert.equal(refit.candidate.lambda, r.candidate.lambda);
  const whole = fitLogisticL2(local.features, local.images.length, d, y, { lambda: r.candidate.lambda, rows: fitRows, offsets: local.baseLogits, tolerance: 1e-10 });
  let gap = 0;
  for (let q = 0; q < d; q++) {
    assert.ok(Math.abs(refit.candidate.deltaWeight[q]! - whole.weight[q]!) < 1e-5 * (1 + Math.abs(whole.weight[q]!)));
    gap = Math.max(gap, Math.abs(whole.weight[q]! - wSum[q]! / heads));
  }
  assert.ok(gap > 1e-3, `the refit and the bagged heads differ (max weight gap ${gap})`);
});

test('disjointness with bagging over repeated fold splits: held-out garbage changes nothing fitted', () => {
  const local = makeSite({ studies: 240, seed: 'disjoint-bagged', shift: true });
  const base = { temperature: 1, threshold: 0.5 };
  const opts = { bootstrap: 0, head: 'bagged' as const, repeats: 3 };
  const a = adaptHead(local, base, opts);
  const held = new Set(a.split.heldOutPatients);
  const rng = new Rng('garbage-bagged');
  const features = local.features.slice();
  const baseLogits = Float64Array.from(local.baseLogits);
  local.images.forEach((im, i) => {
    if (!held.has(im.patient)) return;
    for (let j = 0; j < local.dim; j++) features[i * local.dim + j] = rng.normal(0, 50);
    baseLogits[i] = rng.normal(0, 30);
  });
  const b = adaptHead({ images: local.images, features, dim: local.dim, baseLogits }, base, opts);
  assert.deepEqual(Array.from(b.candidate.deltaWeight), Array.from(a.candidate.deltaWeight));
  assert.equal(b.candidate.deltaBias, a.candidate.deltaBias);
  assert.equal(b.candidate.temperature, a.candidate.temperature);
  assert.equal(b.candidate.threshold, a.candidate.threshold);
  assert.deepEqual(b.cv, a.cv);
  assert.notEqual(b.heldOut.after.logLoss, a.heldOut.after.logLoss, 'the held-out numbers do read the held-out part');
});
