/**
 * `nextray synth` end to end through the real CLI: help, a bad option, a small run with --json, no silent overwrite.
 * The files are checked against the library's own plan and renderer (planDataset, designStudy, renderImage): the
 * studies, labels and splits of the CSVs, and the exact pixels and findings of the written images, so a generator
 * that writes placeholder images or labels fails.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { designStudy, planDataset, renderImage } from '../../src/data/synth/index.js';

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

test('synth --json writes a small dataset and prints counts matching the CSVs; a second run needs --force', async () => {
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
  assert.ok(existsSync(join(out, 'synth.json')));
  for (const p of csvImages) assert.ok(existsSync(join(out, p)) && existsSync(join(out, p.replace(/\.png$/, '.findings.json'))), p);

  // The same studies, labels and splits as the library's plan for these options (seed 3, 12 studies, valid 0.2).
  const plan = planDataset({ studies: 12, seed: 3, validFraction: 0.2 });
  assert.deepEqual(csvStudies.slice().sort(), plan.map((st) => `${st.key},${st.label}`).sort());
  assert.deepEqual(csvImages.slice().sort(), plan.flatMap((st) => st.images).sort());
  // Every 3rd image: its pixels and findings are exactly what the renderer draws for it at 48 px.
  const views = plan.flatMap((st) => st.images.map((path, v) => ({ st, path, v })));
  for (const { st, path, v } of views.filter((_, i) => i % 3 === 0)) {
    const want = renderImage(3, designStudy(3, st.key, st.region, st.label, st.images.length), v, path, 48);
    const { data, info } = await sharp(join(out, path)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [48, 48, 1], path);
    assert.ok(Buffer.from(want.pixels).equals(data), `${path}: pixels differ from renderImage`);
    assert.deepEqual(JSON.parse(readFileSync(join(out, path.replace(/\.png$/, '.findings.json')), 'utf8')), JSON.parse(JSON.stringify(want.sidecar)), path);
  }

  const again = runCli(['synth', '--out', out, '--studies', '12', '--size', '48', '--seed', '3', '--quiet']);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists.*--force/);
  const forced = runCli(['synth', '--out', out, '--studies', '5', '--size', '48', '--seed', '3', '--force', '--quiet']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /wrote \d+ images of 5 studies/);
  assert.equal(forced.stderr, '', 'no progress bar when stderr is not a terminal');
});
