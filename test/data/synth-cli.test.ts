/** `nextray synth` end to end through the real CLI: help, a bad option, a small run with --json, no silent overwrite. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-synth-cli-');
after(() => tmp.cleanup());

test('synth --help explains the command and shows an example', () => {
  const r = runCli(['synth', '--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /MURA-v1\.1/);
  assert.match(r.stdout, /--valid-fraction/);
  assert.match(r.stdout, /Example:\s+nextray synth --out/);
});

test('synth rejects a bad option value with a message naming it, and a missing --out', () => {
  const bad = runCli(['synth', '--out', join(tmp.dir, 'bad'), '--size', '7']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--size must be an integer in \[32, 2048\], got "7"/);
  assert.ok(!existsSync(join(tmp.dir, 'bad')), 'nothing written on a usage error');
  const frac = runCli(['synth', '--out', join(tmp.dir, 'bad'), '--valid-fraction', 'half']);
  assert.notEqual(frac.code, 0);
  assert.match(frac.stderr, /--valid-fraction/);
  const noOut = runCli(['synth', '--studies', '3']);
  assert.notEqual(noOut.code, 0);
  assert.match(noOut.stderr, /--out/);
});

test('synth --json writes a small dataset and prints counts matching the CSVs; a second run needs --force', () => {
  const out = join(tmp.dir, 'ds');
  const r = runCli(['synth', '--out', out, '--studies', '12', '--size', '48', '--seed', '3', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  const csvImages = ['train', 'valid'].flatMap((s) => readFileSync(join(out, 'MURA-v1.1', `${s}_image_paths.csv`), 'utf8').split('\n').filter(Boolean));
  const csvStudies = ['train', 'valid'].flatMap((s) => readFileSync(join(out, 'MURA-v1.1', `${s}_labeled_studies.csv`), 'utf8').split('\n').filter(Boolean));
  assert.equal(summary.totals.images, csvImages.length);
  assert.equal(summary.totals.studies, 12);
  assert.equal(csvStudies.length, 12);
  assert.equal(summary.totals.abnormal_studies, csvStudies.filter((l) => l.endsWith(',1')).length);
  let sumImages = 0;
  for (const split of ['train', 'valid']) for (const c of Object.values(summary.splits[split]) as { images: number }[]) sumImages += c.images;
  assert.equal(sumImages, csvImages.length);
  assert.ok(summary.images_per_second > 0);
  assert.ok(existsSync(join(out, 'synth.json')));
  for (const p of csvImages) assert.ok(existsSync(join(out, p)) && existsSync(join(out, p.replace(/\.png$/, '.findings.json'))), p);

  const again = runCli(['synth', '--out', out, '--studies', '12', '--size', '48', '--seed', '3', '--quiet']);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists.*--force/);
  const forced = runCli(['synth', '--out', out, '--studies', '5', '--size', '48', '--seed', '3', '--force', '--quiet']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /wrote \d+ images of 5 studies/);
  assert.equal(forced.stderr, '', 'no progress bar when stderr is not a terminal');
});
