/** Predictions CSV parsing (row problems with line numbers), MURA study aggregation, evaluatePredictions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  aggregateStudies,
  parsePredictionsCsv,
  PredictionsError,
  resolvePredictions,
  studyPredictionsCsv,
} from '../../src/evaluate/predictions.js';
import { evaluatePredictions, evaluationJson } from '../../src/evaluate/evaluate.js';

const W = 'MURA-v1.1/valid/XR_WRIST';
const H = 'MURA-v1.1/valid/XR_HAND';

test('parses a CSV with BOM, CRLF, quoted fields, other column order and extra columns', () => {
  const csv =
    '\uFEFFprobability,image,label,model\r\n' +
    `0.25,"${W}/patient1/study1_negative/image1.png",0,a\r\n` +
    `0.75,${W}/patient2/study1_positive/image1.png,1,"b, c"\r\n\r\n`;
  const r = parsePredictionsCsv(csv, 'p.csv');
  assert.deepEqual(r.problems, []);
  assert.equal(r.rows, 2);
  assert.equal(r.predictions.length, 2);
  assert.deepEqual(
    { ...r.predictions[1]! },
    {
      image: `${W}/patient2/study1_positive/image1.png`,
      label: 1,
      probability: 0.75,
      region: 'XR_WRIST',
      patient: 'patient2',
      study: `${W}/patient2/study1_positive/`,
      root: 'MURA-v1.1',
      split: 'valid',
    },
  );
});

test('bad rows are skipped and listed with their line number and problem', () => {
  const csv = [
    'image,label,probability', // line 1
    `${W}/patient1/study1_positive/image1.png,1,0.9`, // 2 ok
    `${W}/patient1/study1_positive/image2.png,2,0.9`, // 3 label 2
    `${W}/patient1/study1_positive/image3.png,1,abc`, // 4 not a number
    `${W}/patient1/study1_positive/image4.png,1,1.5`, // 5 out of range
    'xrays/wrist/img.png,1,0.4', // 6 not MURA layout
    `${W}/patient2/study1_negative/image1.png,1,0.4`, // 7 label contradicts folder
    `${W}/patient1/study1_positive/image1.png,1,0.8`, // 8 duplicate of line 2
    `${W}/patient3/study1_negative/image1.png,0`, // 9 missing field
    `"${W}/patient3/study1_negative/image2.png,0,0.1`, // 10 unterminated quote
    `${W}/patient3/study1_negative/image3.png,0,0.1`, // 11 ok
  ].join('\n');
  const r = parsePredictionsCsv(csv, 'preds.csv');
  assert.equal(r.rows, 10);
  assert.equal(r.predictions.length, 2);
  assert.deepEqual(
    r.problems.map((p) => p.line),
    [3, 4, 5, 6, 7, 8, 9, 10],
  );
  const msg = (line: number): string => r.problems.find((p) => p.line === line)!.message;
  assert.match(msg(3), /label "2" is not 0 or 1/);
  assert.match(msg(4), /probability "abc" is not a number/);
  assert.match(msg(5), /\[0, 1\]/);
  assert.match(msg(6), /not a MURA-layout image path/);
  assert.match(msg(7), /contradicts the study folder "study1_negative"/);
  assert.match(msg(8), /already appeared on line 2/);
  assert.match(msg(9), /2 field\(s\), the header has 3/);
  assert.match(msg(10), /quoting/);
});

test('a wrong or missing header throws, naming the file', () => {
  assert.throws(() => parsePredictionsCsv('path,prob\nx,1\n', 'a.csv'), (e: unknown) => e instanceof PredictionsError && /a\.csv.*lacks column\(s\) image, label, probability/.test(e.message));
  assert.throws(() => parsePredictionsCsv('', 'b.csv'), /b\.csv: empty file/);
});

test('study probability is the mean of its views; strict > threshold at study level', () => {
  const input = resolvePredictions([
    { image: `${W}/patient1/study1_positive/image1.png`, label: 1, probability: 0.2 },
    { image: `${H}/patient9/study2_negative/image1.png`, label: 0, probability: 0.7 },
    { image: `${W}/patient1/study1_positive/image2.png`, label: 1, probability: 0.4 },
    { image: `${W}/patient1/study1_positive/image3.png`, label: 1, probability: 0.9 },
  ]);
  const studies = aggregateStudies(input.predictions);
  assert.equal(studies.length, 2);
  // Sorted by key: XR_HAND before XR_WRIST.
  assert.equal(studies[0]!.study, `${H}/patient9/study2_negative/`);
  assert.equal(studies[1]!.images.length, 3);
  // (0.2 + 0.4 + 0.9) / 3 = 0.5 exactly -> not abnormal at 0.5 (strictly greater needed).
  assert.ok(Math.abs(studies[1]!.probability - 0.5) < 1e-12);
  const csv = studyPredictionsCsv(studies, 0.5).trim().split('\n');
  assert.equal(csv[0], 'study,label,probability,predicted,region,views');
  assert.match(csv[2]!, /^MURA-v1.1\/valid\/XR_WRIST\/patient1\/study1_positive\/,1,0\.5\d*,0,XR_WRIST,3$/);
});

test('views of one study that disagree on the label are an error naming the study', () => {
  // resolvePredictions catches this per row (label vs folder); aggregateStudies guards callers that skip it.
  const study = `${W}/patient1/study1_positive/`;
  const preds = [
    { image: `${study}image1.png`, label: 1 as const, probability: 0.5, region: 'XR_WRIST' as const, patient: 'patient1', study, root: 'MURA-v1.1', split: 'valid' },
    { image: `${study}image2.png`, label: 0 as const, probability: 0.5, region: 'XR_WRIST' as const, patient: 'patient1', study, root: 'MURA-v1.1', split: 'valid' },
  ];
  assert.throws(() => aggregateStudies(preds), /study MURA-v1.1\/valid\/XR_WRIST\/patient1\/study1_positive\/: its views disagree/);
});

test('evaluatePredictions: image and study level, per region, by hand', () => {
  const input = resolvePredictions([
    { image: `${W}/patient1/study1_positive/image1.png`, label: 1, probability: 0.9 },
    { image: `${W}/patient1/study1_positive/image2.png`, label: 1, probability: 0.7 }, // study mean 0.8
    { image: `${W}/patient2/study1_negative/image1.png`, label: 0, probability: 0.6 },
    { image: `${W}/patient2/study1_negative/image2.png`, label: 0, probability: 0.2 }, // study mean 0.4
    { image: `${W}/patient3/study1_positive/image1.png`, label: 1, probability: 0.3 },
    { image: `${W}/patient4/study1_negative/image1.png`, label: 0, probability: 0.55 },
    { image: `${H}/patient5/study1_positive/image1.png`, label: 1, probability: 0.65 },
    { image: `${H}/patient6/study1_negative/image1.png`, label: 0, probability: 0.1 },
  ]);
  const r = evaluatePredictions(input.predictions, { replicates: 50, seed: 1 });
  // Studies at 0.5: (1, .8) TP, (0, .4) TN, (1, .3) FN, (0, .55) FP, (1, .65) TP, (0, .1) TN.
  assert.deepEqual(r.study.overall.confusion, { tp: 2, fp: 1, tn: 2, fn: 1 });
  // kappa: po = 4/6, pe = .5*.5 + .5*.5 = .5 -> (2/3 - 1/2) / (1/2) = 1/3.
  assert.ok(Math.abs(r.study.overall.values.kappa! - 1 / 3) < 1e-12);
  // AUC: abnormal {.8, .3, .65} vs normal {.4, .55, .1}: .8 beats 3, .3 beats 1, .65 beats 3 -> 7/9.
  assert.ok(Math.abs(r.study.overall.values.auc! - 7 / 9) < 1e-12);
  // Images: abnormal .9 .7 .3 .65 (TP 3, FN 1); normal .6 .2 .55 .1 (FP 2, TN 2).
  assert.deepEqual(r.image.overall.confusion, { tp: 3, fp: 2, tn: 2, fn: 1 });
  // Image AUC: .9 beats 4, .7 beats 4, .3 beats 2, .65 beats 4 -> 14/16.
  assert.equal(r.image.overall.values.auc, 14 / 16);
  // Wrist studies: (1,.8) TP, (0,.4) TN, (1,.3) FN, (0,.55) FP; AUC: .8 beats both, .3 none -> 2/4.
  assert.deepEqual(r.study.regions.XR_WRIST!.confusion, { tp: 1, fp: 1, tn: 1, fn: 1 });
  assert.equal(r.study.regions.XR_WRIST!.values.auc, 0.5);
  assert.deepEqual(Object.keys(r.study.regions), ['XR_HAND', 'XR_WRIST']);
  // Hand has one study of each kind: every bootstrap replicate of 2 studies misses a class half the time.
  assert.equal(r.summary.studies, 6);
  assert.equal(r.summary.images, 8);
  assert.equal(r.summary.regions.XR_WRIST!.abnormalStudies, 2);
  const json = evaluationJson(r);
  const text = JSON.stringify(json);
  assert.ok(!text.includes('NaN') && !text.includes('Infinity'));
  const wrist = (json.study as { regions: Record<string, Record<string, unknown>> }).regions.XR_WRIST!;
  for (const k of ['count', 'accuracy', 'accuracy_ci', 'sensitivity', 'specificity', 'precision', 'f1', 'kappa', 'kappa_ci', 'auc', 'auc_ci', 'roc']) {
    assert.ok(k in wrist, k);
  }
});
