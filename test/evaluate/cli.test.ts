/** End to end: the real `nextray evaluate` on generated predictions CSVs (run `npm run build` first). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REGIONS } from '../../src/data/types.js';
import { Rng } from '../../src/util/rng.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-evaluate-cli-');
after(() => tmp.cleanup());

const W = 'MURA-v1.1/valid/XR_WRIST';
const H = 'MURA-v1.1/valid/XR_HAND';

/** The hand-worked example of predictions.test.ts plus five bad rows (lines 4, 7, 9, 11, 13). */
const HAND_CSV = [
  'image,label,probability', // 1
  `${W}/patient1/study1_positive/image1.png,1,0.9`, // 2
  `${W}/patient1/study1_positive/image2.png,1,0.7`, // 3  study mean 0.8
  `${W}/patient1/study1_positive/image3.png,1,high`, // 4  bad: probability
  `${W}/patient2/study1_negative/image1.png,0,0.6`, // 5
  `${W}/patient2/study1_negative/image2.png,0,0.2`, // 6  study mean 0.4
  `${W}/patient2/study1_negative/image3.png,1,0.2`, // 7  bad: label vs folder
  `${W}/patient3/study1_positive/image1.png,1,0.3`, // 8
  `XR_WRIST/patient3/image9.png,1,0.3`, // 9  bad: not MURA layout
  `${W}/patient4/study1_negative/image1.png,0,0.55`, // 10
  `${W}/patient4/study1_negative/image1.png,0,0.55`, // 11 bad: duplicate
  `${H}/patient5/study1_positive/image1.png,1,0.65`, // 12
  `${H}/patient6/study1_negative/image1.png,0,-0.1`, // 13 bad: out of range
  `${H}/patient6/study1_negative/image1.png,0,0.1`, // 14
].join('\n');

function generatedCsv(seed: number, studiesPerRegion: number): string {
  const rng = new Rng(seed);
  const lines = ['image,label,probability'];
  let patient = 1000;
  for (const region of REGIONS) {
    for (let s = 0; s < studiesPerRegion; s++) {
      const label = rng.chance(0.45) ? 1 : 0;
      patient++;
      for (let v = 1; v <= rng.intBetween(1, 3); v++) {
        const p = Math.min(1, Math.max(0, rng.normal(label ? 0.65 : 0.35, 0.2)));
        lines.push(`MURA-v1.1/valid/${region}/patient${patient}/study1_${label ? 'positive' : 'negative'}/image${v}.png,${label},${p.toFixed(5)}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

type Metric = Record<string, unknown> & { count: number; kappa: number | null; kappa_ci: [number, number] | null };
interface Out {
  threshold: number;
  threshold_selection: null | { threshold: number; target_sensitivity: number; validation_sensitivity: number };
  bootstrap: { replicates: number; seed: number; method: string; unit: string };
  input: { rows: number; bad_rows: number };
  image: { overall: Metric; regions: Record<string, Metric> };
  study: { overall: Metric; regions: Record<string, Metric> };
}

test('bad rows: listed with line numbers, skipped, counted, exit 1; JSON and files from the valid rows', () => {
  const csv = join(tmp.dir, 'hand.csv');
  writeFileSync(csv, HAND_CSV);
  const out = join(tmp.dir, 'out');
  const jsonFile = join(tmp.dir, 'hand.json');
  const r = runCli(['evaluate', '--predictions', csv, '--bootstrap', '200', '--seed', '9', '--out', out, '--json', jsonFile]);
  assert.equal(r.code, 1, r.stderr);
  for (const line of [4, 7, 9, 11, 13]) assert.ok(r.stderr.includes(`${csv}:${line}: `), `line ${line} in:\n${r.stderr}`);
  assert.match(r.stderr, /5 bad row\(s\) skipped; results use the 8 valid rows/);
  assert.match(r.stdout, /Study level\nRegion\s+Studies/);
  assert.match(r.stdout, /Overall\s+6 \(3\/3\)/);
  const j = JSON.parse(readFileSync(jsonFile, 'utf8')) as Out;
  assert.equal(j.input.rows, 13);
  assert.equal(j.input.bad_rows, 5);
  assert.equal(j.threshold, 0.5);
  assert.equal(j.threshold_selection, null);
  assert.deepEqual(j.bootstrap, { replicates: 200, seed: 9, alpha: 0.05, method: 'percentile', unit: 'study', confidence: 0.95 });
  // Values worked by hand in predictions.test.ts: study kappa 1/3, study AUC 7/9, image AUC 14/16.
  const so = j.study.overall;
  assert.equal(so.count, 6);
  assert.deepEqual(so.confusion, { tp: 2, fp: 1, tn: 2, fn: 1 });
  assert.ok(Math.abs(so.kappa! - 1 / 3) < 1e-12);
  assert.ok(Math.abs((so.auc as number) - 7 / 9) < 1e-12);
  assert.equal(j.image.overall.auc, 14 / 16);
  assert.deepEqual(Object.keys(j.study.regions), ['XR_HAND', 'XR_WRIST']);
  for (const m of [so, j.image.overall, j.study.regions.XR_WRIST!]) {
    for (const k of ['count', 'positives', 'negatives', 'confusion', 'accuracy', 'sensitivity', 'specificity', 'precision', 'f1', 'kappa', 'auc', 'kappa_se', 'roc', 'null_reasons']) {
      assert.ok(k in m, k);
    }
    for (const k of ['accuracy', 'sensitivity', 'specificity', 'precision', 'f1', 'kappa', 'auc']) {
      const ci = m[`${k}_ci`];
      assert.ok(ci === null || (Array.isArray(ci) && ci.length === 2), `${k}_ci`);
    }
  }
  for (const f of ['report.html', 'report.md', 'metrics.json', 'predictions-image.csv', 'predictions-study.csv', 'plots/study-roc-overall.svg', 'plots/study-roc-overall.png', 'plots/study-confusion-XR_WRIST.png', 'plots/image-roc-regions.png']) {
    assert.ok(existsSync(join(out, f)), f);
  }
  const studyCsv = readFileSync(join(out, 'predictions-study.csv'), 'utf8').trim().split('\n');
  assert.equal(studyCsv.length, 7);
  // (0.9 + 0.7) / 2 is 0.7999999999999999 in binary floating point; it is written at full precision.
  const line = studyCsv.find((l) => l.startsWith(`${W}/patient1/study1_positive/,`))!;
  assert.match(line, /^MURA-v1\.1\/valid\/XR_WRIST\/patient1\/study1_positive\/,1,0\.(8|7999+\d*),1,XR_WRIST,2$/);
  assert.ok(readFileSync(join(out, 'report.html'), 'utf8').includes('Research use only'));
});

test('clean file: exit 0, --json - prints JSON only; same seed, same intervals', () => {
  const csv = join(tmp.dir, 'gen.csv');
  writeFileSync(csv, generatedCsv(5, 25));
  const run = (): Out => {
    const r = runCli(['evaluate', '--predictions', csv, '--bootstrap', '300', '--seed', '4', '--json', '-']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    return JSON.parse(r.stdout) as Out;
  };
  const a = run();
  assert.equal(a.study.overall.count, 175);
  assert.deepEqual(Object.keys(a.study.regions), [...REGIONS]);
  const k = a.study.overall.kappa!;
  const ci = a.study.overall.kappa_ci!;
  assert.ok(ci[0] <= k && k <= ci[1]);
  assert.deepEqual(run().study.overall.kappa_ci, ci);
});

test('--target-sensitivity picks the threshold on validation predictions and applies it to the test file', () => {
  const val = join(tmp.dir, 'val.csv');
  // Validation studies: abnormal .9 .7 .6 .3, normal .8 .5 .4 .2 (one view each). Target .75 -> 3 of 4 needed ->
  // 3rd abnormal is .6 -> highest probability below .6 is .5 -> threshold .5 (threshold.test.ts works this out).
  const rows = [
    ['positive', 0.9], ['positive', 0.7], ['positive', 0.6], ['positive', 0.3],
    ['negative', 0.8], ['negative', 0.5], ['negative', 0.4], ['negative', 0.2],
  ].map(([pol, p], i) => `${W}/patient${50 + i}/study1_${pol}/image1.png,${pol === 'positive' ? 1 : 0},${p}`);
  writeFileSync(val, ['image,label,probability', ...rows].join('\n'));
  const test = join(tmp.dir, 'test.csv');
  writeFileSync(test, generatedCsv(8, 6));
  const r = runCli(['evaluate', '--predictions', test, '--target-sensitivity', '0.75', '--val-predictions', val, '--bootstrap', '50', '--json', '-']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Out;
  assert.equal(j.threshold, 0.5);
  assert.equal(j.threshold_selection!.threshold, 0.5);
  assert.equal(j.threshold_selection!.target_sensitivity, 0.75);
  assert.equal(j.threshold_selection!.validation_sensitivity, 0.75);
});

test('usage and file errors: exit 2 with a message that says what to fix', () => {
  const csv = join(tmp.dir, 'hand.csv');
  writeFileSync(csv, HAND_CSV);
  const a = runCli(['evaluate', '--predictions', csv, '--target-sensitivity', '0.9']);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--target-sensitivity needs --val-predictions/);
  const b = runCli(['evaluate', '--predictions', join(tmp.dir, 'missing.csv')]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /missing\.csv: cannot read predictions file \(ENOENT\)/);
  const bad = join(tmp.dir, 'header.csv');
  writeFileSync(bad, 'path,y,p\nx,1,0.5\n');
  const c = runCli(['evaluate', '--predictions', bad]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /header\.csv: header "path,y,p" lacks column\(s\) image, label, probability/);
  const d = runCli(['evaluate', '--predictions', csv, '--threshold', '1.5']);
  assert.notEqual(d.code, 0);
  assert.match(d.stderr, /--threshold must be a number in \[0, 1\]/);
  const allBad = join(tmp.dir, 'allbad.csv');
  writeFileSync(allBad, 'image,label,probability\nfoo.png,1,0.5\n');
  const e = runCli(['evaluate', '--predictions', allBad]);
  assert.equal(e.code, 1);
  assert.match(e.stderr, /allbad\.csv:2: .*not a MURA-layout/);
  assert.match(e.stderr, /no valid prediction rows/);
  const h = runCli(['evaluate', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Examples:\n\s+nextray evaluate --predictions/);
});

test('a threshold other than 0.5: the headline is named, and Table 2\'s threshold columns are shown at 0.5 beside it (values by hand)', () => {
  // Studies (label, mean probability): (1, 0.8) (0, 0.4) (1, 0.3) (0, 0.55) (1, 0.65) (0, 0.1).
  // At 0.25: TP 3, FP 2, TN 1, FN 0 -> sensitivity 1, specificity 1/3, po 4/6, pe (5*3 + 1*3)/36 = 1/2, kappa 1/3.
  // At 0.5:  TP 2, FP 1, TN 2, FN 1 -> sensitivity 2/3, specificity 2/3, po 4/6, pe (3*3 + 3*3)/36 = 1/2, kappa 1/3.
  const csv = join(tmp.dir, 'two-thresholds.csv');
  writeFileSync(
    csv,
    [
      'image,label,probability',
      `${W}/patient1/study1_positive/image1.png,1,0.9`,
      `${W}/patient1/study1_positive/image2.png,1,0.7`,
      `${W}/patient2/study1_negative/image1.png,0,0.6`,
      `${W}/patient2/study1_negative/image2.png,0,0.2`,
      `${W}/patient3/study1_positive/image1.png,1,0.3`,
      `${W}/patient4/study1_negative/image1.png,0,0.55`,
      `${H}/patient5/study1_positive/image1.png,1,0.65`,
      `${H}/patient6/study1_negative/image1.png,0,0.1`,
    ].join('\n') + '\n',
  );
  const r = runCli(['evaluate', '--predictions', csv, '--threshold', '0.25', '--bootstrap', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Headline: study-level Cohen's kappa at threshold 0\.25 \(given with --threshold\)/);
  assert.match(r.stdout, /Study level at the headline threshold 0\.25 and at 0\.5/);
  const overall = r.stdout.split('\n').filter((l) => /^Overall\s/.test(l)).pop()!;
  // kappa @0.25, @0.5, sensitivity @0.25, @0.5, specificity @0.25, @0.5, accuracy @0.25, @0.5
  assert.deepEqual(overall.trim().split(/\s+/).slice(2), ['0.333', '0.333', '1.000', '0.667', '0.333', '0.667', '0.667', '0.667']);
  const j = JSON.parse(runCli(['evaluate', '--predictions', csv, '--threshold', '0.25', '--bootstrap', '0', '--json', '-']).stdout);
  assert.equal(j.headline.threshold, 0.25);
  assert.ok(Math.abs(j.at_threshold_0_5.study.overall.sensitivity - 2 / 3) < 1e-12);
  assert.ok(Math.abs(j.at_threshold_0_5.study.overall.kappa - 1 / 3) < 1e-12);
  assert.ok(Math.abs(j.study.overall.sensitivity - 1) < 1e-12);
  // At 0.5 itself there is nothing to put beside it.
  const same = runCli(['evaluate', '--predictions', csv, '--bootstrap', '0']);
  assert.doesNotMatch(same.stdout, /and at 0\.5/);
  assert.match(same.stdout, /Headline: study-level Cohen's kappa at threshold 0\.5 \(the default\)/);
});
