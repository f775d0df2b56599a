/**
 * `nextray demo` end to end at small scale (160 studies of 64 px, 3 epochs at 64 px): synthetic data,
 * patient-disjoint split, training, test-split evaluation and the report files; then a second call reuses the data
 * and the finished run. The model must have learned: the test study-level AUC must reach 0.75 (--min-auc 0.75 makes
 * the CLI itself exit 1 below it); this configuration reached 1.0 on the native engine and 1.0 on the pure-JS cpu
 * engine (15 test studies, seed 0; `nextray demo --studies 160 --image-size 64 --input-size 64 --epochs 3
 * --engine native|cpu`: 109 s at load 17.6 / 1368 s niced at load ~17 on 2 shared cores), and a constant or
 * label-blind predictor scores 0.5. The full demo's numbers (AUC, minutes) are measured by `npm run demo`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';

const tmp = tempDir('nextray-demo-');
after(() => tmp.cleanup());

const MIN_AUC = 0.75;
const args = ['demo', '--out', tmp.dir, '--studies', '160', '--image-size', '64', '--input-size', '64', '--epochs', '3', '--min-auc', String(MIN_AUC), '--bootstrap', '10', '--json'];

test('demo: data -> train -> held-out test evaluation -> report, and a rerun reuses both', () => {
  const r = runCli(args);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { report: string; test: { images: number; studies: number }; study: { auc: number | null }; bad_images: number };
  assert.equal(j.report, join(tmp.dir, 'report', 'report.html'));
  for (const f of ['report/report.html', 'report/report.md', 'report/metrics.json', 'report/predictions-study.csv', 'run/checkpoints/best/model.json', 'data/synth.json']) {
    assert.ok(existsSync(join(tmp.dir, f)), f);
  }
  assert.ok(j.test.studies > 0 && j.test.images >= j.test.studies);
  assert.ok(j.study.auc !== null && j.study.auc >= MIN_AUC && j.study.auc <= 1, `test study AUC ${j.study.auc} < ${MIN_AUC}`);
  assert.equal(j.bad_images, 0);
  // Only test-split studies were evaluated: each is in split.json's test subset.
  const split = JSON.parse(readFileSync(join(tmp.dir, 'run', 'split.json'), 'utf8')) as { subsets: { test: { studies: string[] } } };
  const testStudies = new Set(split.subsets.test.studies);
  const rows = readFileSync(join(tmp.dir, 'report', 'predictions-study.csv'), 'utf8').trim().split('\n').slice(1);
  assert.equal(rows.length, j.test.studies);
  for (const row of rows) assert.ok(testStudies.has(row.split(',')[0]!), row);

  const again = runCli(args.filter((a) => a !== '--json'));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /dataset: reusing/);
  assert.match(again.stderr, /run already finished/);
  assert.match(again.stdout, /Report: .*report\.html/);
});
