/**
 * `nextray adapt` end to end through the real CLI (bin/nextray.js over dist/): a small synthetic dataset, a seeded
 * ResNet-slim exported with the `features` output; --json gives the adaptation record (base SHA-256 of the model
 * file, data counts, held-out before/after with intervals, the decision); --out writes the adapted (or the
 * deployed, tagged) model; --head-out the head file only when adopted; the "too small" rule at its default;
 * the CSV input; and the usage errors (exit 2).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { initEngine } from '../../src/engine/index.js';
import { buildModel } from '../../src/train/archs.js';
import { exportOnnxFile } from '../../src/models/onnx/files.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { generateSyntheticMura } from '../../src/data/synth/generate.js';
import { readModelInfo } from '../../src/models/onnx/graph.js';
import { cardFromOnnxMetadata } from '../../src/models/card.js';
import { parseHeadFile } from '../../src/calibrate/adapt/head-file.js';
import { SITE_FILTER_CANDIDATES } from '../../src/calibrate/adapt/site-prep.js';
import { preprocessGrey } from '../../src/data/preprocess.js';
import { load } from '../../src/inference/node/load.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-adapt-cli-');
const data = join(tmp.dir, 'site');
const model = join(tmp.dir, 'model.onnx');
const plain = join(tmp.dir, 'plain.onnx');
const reference = join(tmp.dir, 'reference');

before(async () => {
  await initEngine('cpu');
  await generateSyntheticMura({ outDir: data, studies: 60, seed: 12, size: 48, validFraction: 0.3, workers: 0, site: 'portable' });
  await generateSyntheticMura({ outDir: reference, studies: 20, seed: 13, size: 48, validFraction: 0.3, workers: 0, site: 'default' });
  const m = buildModel('resnet-slim', { dropout: 0, seed: 9, init: 'random' });
  const opts = { inputSize: 48, preprocessing: makePreprocessing({ size: 48 }), cam: true, temperature: 1.3, decisionThreshold: 0.45 };
  exportOnnxFile(m, model, { ...opts, features: true });
  exportOnnxFile(m, plain, opts);
  m.dispose();
});
after(() => tmp.cleanup());

test('adapt --json --out --head-out: the record, the written model, and the head only when adopted', async () => {
  const out = join(tmp.dir, 'adapted.onnx');
  const head = join(tmp.dir, 'head.json');
  const r = runCli(['adapt', '--model', model, '--data', data, '--out', out, '--head-out', head, '--min-studies', '3', '--bootstrap', '50', '--workers', '0', '--threads', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(r.stdout);
  const sha = createHash('sha256').update(readFileSync(model)).digest('hex');
  assert.equal(rec.base_sha256, sha);
  assert.equal(rec.data.studies, 60);
  assert.equal(rec.data.fit.studies + rec.data.held_out.studies, 60);
  assert.ok(rec.data.held_out.studies > 10 && rec.data.fit.studies > rec.data.held_out.studies);
  assert.equal(rec.images.used, rec.images.listed);
  assert.ok(!Number.isNaN(Date.parse(rec.date)));
  assert.equal(rec.method.threshold_rule, 'max-kappa');
  assert.equal(rec.too_small, false);
  for (const k of ['auc', 'sensitivity', 'specificity', 'kappa', 'ece', 'log_loss']) {
    assert.equal(typeof rec.held_out.before[k], 'number', k);
    assert.equal(typeof rec.held_out.after[k], 'number', k);
  }
  assert.equal(rec.held_out.before.threshold, 0.45, "'before' is the deployed model at its own threshold");
  assert.equal(rec.held_out.bootstrap_replicates, 50);
  assert.ok(['adapted', 'kept-base'].includes(rec.decision));
  assert.equal(rec.decision === 'adapted', rec.held_out.after.log_loss < rec.held_out.before.log_loss, 'adopted exactly when the held-out log loss is lower');

  const info = readModelInfo(new Uint8Array(readFileSync(out)));
  const stored = JSON.parse(info.metadata.adaptation!);
  assert.equal(stored.base_sha256, sha);
  assert.equal(stored.decision, rec.decision);
  if (rec.decision === 'adapted') {
    assert.equal(Number(info.metadata.decision_threshold), rec.method.threshold);
    assert.equal(Number(info.metadata.temperature), rec.method.temperature);
    // The card says the same: the facade, serve, the page and the SR read the operating point from it.
    const card = cardFromOnnxMetadata(info.metadata, 'adapted');
    assert.equal(card.decisionThreshold, rec.method.threshold);
    assert.equal(card.operatingPoint?.threshold, rec.method.threshold);
    assert.equal(card.operatingPoint?.rule, rec.method.threshold_rule);
    assert.equal(card.temperature?.value, rec.method.temperature);
    assert.equal(card.adaptation?.baseSha256, sha);
    assert.equal(card.adaptation?.studies, rec.data.studies);
    assert.equal(card.sha256, undefined, "the base model's sha256 is not the adapted file's");
    const h = parseHeadFile(readFileSync(head, 'utf8'), head);
    assert.equal(h.file.base_model.sha256, sha);
    assert.equal(h.file.head.threshold, rec.method.threshold);
  } else {
    assert.equal(info.metadata.decision_threshold, '0.45', 'the deployed model is kept as it was');
    assert.equal(cardFromOnnxMetadata(info.metadata, 'kept').decisionThreshold, 0.45);
    assert.equal(info.metadata.temperature, '1.3');
    assert.ok(!existsSync(head), 'no head file when the deployed model is kept');
    // The same outputs as the deployed model.
    const x = new Float32Array(2 * 48 * 48 * 3).fill(0.3);
    const a = await ort.InferenceSession.create(model);
    const b = await ort.InferenceSession.create(out);
    const ra = await a.run({ input: new ort.Tensor('float32', x, [2, 48, 48, 3]) });
    const rb = await b.run({ input: new ort.Tensor('float32', x, [2, 48, 48, 3]) });
    assert.deepEqual(Array.from(rb.logits!.data as Float32Array), Array.from(ra.logits!.data as Float32Array));
    await a.release();
    await b.release();
  }
});

test('adapt --reference-data: the grey map travels in the adapted .onnx (preprocessing, card, record) and the head file, and the facade applies it', async () => {
  const out = join(tmp.dir, 'adapted-grey.onnx');
  const head = join(tmp.dir, 'head-grey.json');
  const r = runCli(['adapt', '--model', model, '--data', data, '--reference-data', reference, '--out', out, '--head-out', head, '--min-studies', '3', '--bootstrap', '20', '--workers', '0', '--threads', '1', '--grey-map', 'on', '--site-filter', 'off', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(r.stdout);
  const g = rec.method.grey_normalisation;
  assert.ok(g, 'the record says what the grey normalisation did');
  assert.equal(g.reference_source, 'reference');
  assert.equal(g.fitted_images, rec.data.fit.images, 'the grey levels of the fitting part, and only of it');
  assert.equal(g.used, true, '--grey-map on');
  assert.ok(g.map.x.length > 2 && g.map.x[0] === 0 && g.map.x.at(-1) === 1);
  // On this set (deterministic) the head after the map is adopted, so the round trip below is exercised.
  assert.equal(rec.decision, 'adapted', rec.reason);
  const info = readModelInfo(new Uint8Array(readFileSync(out)));
  assert.deepEqual(JSON.parse(info.metadata.preprocessing!).greyMap, g.map);
  assert.deepEqual(cardFromOnnxMetadata(info.metadata, 'adapted').preprocessing.greyMap, g.map);
  assert.deepEqual(JSON.parse(info.metadata.adaptation!).method.grey_normalisation.map, g.map);
  assert.equal(JSON.parse(info.metadata.grey_reference!).source, 'reference', 'the reference travels on: adapting again needs no --reference-data');
  const h = parseHeadFile(readFileSync(head, 'utf8'), head);
  assert.equal(h.file.format_version, 2);
  assert.deepEqual(h.greyMap, g.map);

  // The facade (predict, serve, the page, the PACS worker) applies the map: its probability of a film equals the
  // adapted graph run by hand on the film preprocessed with the map, and differs from the film without it.
  const m = await load(out, { threads: 1 });
  try {
    assert.deepEqual(m.cards[0]!.preprocessing.greyMap, g.map);
    const w = 40;
    const grey = Float32Array.from({ length: w * 48 }, (_, i) => 0.15 + 0.7 * (((i * 37) % 97) / 97));
    const got = (await m.predict([{ name: 'film.png', grey, width: w, height: 48 }])).views[0]!.probability!;
    const sess = await ort.InferenceSession.create(out);
    const pre = cardFromOnnxMetadata(info.metadata, 'adapted').preprocessing;
    const run = async (p: typeof pre) => ((await sess.run({ input: new ort.Tensor('float32', preprocessGrey(grey, w, 48, p), [1, 48, 48, 3]) })).probability!.data as Float32Array)[0]!;
    const withMap = await run(pre);
    const { greyMap: _g, ...noMap } = pre;
    const without = await run(noMap);
    await sess.release();
    assert.ok(Math.abs(got - withMap) < 1e-6, `facade ${got} vs the graph on the mapped film ${withMap}`);
    assert.ok(Math.abs(withMap - without) > 1e-4, `the map changes the probability (${withMap} vs ${without})`);
  } finally {
    await m.release();
  }
});

test('adapt --site-filter auto: every candidate scored inside the fitting part, the lowest kept; an adopted filter travels in the .onnx and the head file, and the facade applies it', async () => {
  const out = join(tmp.dir, 'adapted-filter.onnx');
  const head = join(tmp.dir, 'head-filter.json');
  // One fold split (--cv-repeats 1): on this tiny set the choice then keeps a filter, which the round trip below needs.
  const r = runCli(['adapt', '--model', model, '--data', data, '--out', out, '--head-out', head, '--min-studies', '3', '--bootstrap', '20', '--cv-repeats', '1', '--workers', '0', '--threads', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(r.stdout);
  assert.deepEqual(rec.method.head_fit, { head: 'bagged', fold_heads: 5, fold_splits: 1 });
  const sp = rec.method.site_preprocessing;
  assert.ok(sp, 'the record says which site preprocessings were tried');
  // No reference grey levels: none and the nine filters (the unsharp masks among them), without the map.
  assert.equal(SITE_FILTER_CANDIDATES.length, 9);
  assert.equal(sp.trials.length, 1 + SITE_FILTER_CANDIDATES.length);
  assert.equal(sp.trials.filter((t: { site_filter: { sharpen?: unknown } | null }) => t.site_filter?.sharpen).length, 2, 'the unsharp-mask candidates are tried');
  assert.ok(sp.trials.every((t: { grey_map: boolean }) => t.grey_map === false));
  const best = sp.trials.reduce((a: { cv_log_loss: number }, t: { cv_log_loss: number }) => (t.cv_log_loss < a.cv_log_loss ? t : a));
  assert.deepEqual(sp.site_filter, best.site_filter, 'the lowest cross-fitted log loss is kept');
  // On this set (deterministic) a filter is kept and the head adopted, so the round trip below is exercised.
  assert.ok(sp.site_filter, `kept: ${JSON.stringify(sp)}`);
  assert.equal(rec.decision, 'adapted', rec.reason);
  const info = readModelInfo(new Uint8Array(readFileSync(out)));
  assert.deepEqual(JSON.parse(info.metadata.preprocessing!).siteFilter, sp.site_filter);
  assert.deepEqual(cardFromOnnxMetadata(info.metadata, 'adapted').preprocessing.siteFilter, sp.site_filter);
  const h = parseHeadFile(readFileSync(head, 'utf8'), head);
  assert.equal(h.file.format_version, 3);
  assert.deepEqual(h.siteFilter, sp.site_filter);
  // The facade applies the filter: its probability of a film (with a burned-in stroke and noise) equals the graph on
  // the film preprocessed with the filter, and differs from the graph on the film without it.
  const m = await load(out, { threads: 1 });
  try {
    const w = 40;
    const grey = Float32Array.from({ length: w * 48 }, (_, i) => 0.15 + 0.7 * (((i * 37) % 97) / 97));
    for (let x = 5; x < 30; x++) grey[10 * w + x] = 1;
    const got = (await m.predict([{ name: 'film.png', grey, width: w, height: 48 }])).views[0]!.probability!;
    const sess = await ort.InferenceSession.create(out);
    const pre = cardFromOnnxMetadata(info.metadata, 'adapted').preprocessing;
    const run = async (p: typeof pre) => ((await sess.run({ input: new ort.Tensor('float32', preprocessGrey(grey, w, 48, p), [1, 48, 48, 3]) })).probability!.data as Float32Array)[0]!;
    const withFilter = await run(pre);
    const { siteFilter: _f, ...noFilter } = pre;
    const without = await run(noFilter);
    await sess.release();
    assert.ok(Math.abs(got - withFilter) < 1e-6, `facade ${got} vs the graph on the filtered film ${withFilter}`);
    assert.ok(Math.abs(withFilter - without) > 1e-5, `the filter changes the probability (${withFilter} vs ${without})`);
  } finally {
    await m.release();
  }
});

test('adapt with the default "too small" rule on 60 studies, from a CSV: keeps the deployed model and says so', () => {
  // The CSV form: image,label,study with paths relative to the CSV (every MURA study folder names its patient).
  const csv = join(tmp.dir, 'labels.csv');
  const lines = ['image,label,study'];
  for (const split of ['train', 'valid']) {
    for (const p of readFileSync(join(data, 'MURA-v1.1', `${split}_image_paths.csv`), 'utf8').split('\n').filter(Boolean)) {
      const study = p.replace(/image\d+\.png$/, '');
      lines.push(`site/${p},${p.includes('_positive/') ? 1 : 0},${study}`);
    }
  }
  writeFileSync(csv, lines.join('\n') + '\n');
  const r = runCli(['adapt', '--model', model, '--data', csv, '--bootstrap', '20', '--workers', '0', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /KEPT THE DEPLOYED MODEL: too small to trust: the (fitting|held-out) part has \d+ abnormal and \d+ normal studies \(needs at least 20 of each\)/);
  assert.match(r.stdout, /60 studies/);
  assert.match(r.stdout, /AUC\s+\d\.\d{3} \(\d\.\d{3}–\d\.\d{3}\)/);
});

test('adapt usage errors exit 2 with what to do', () => {
  const noFeatures = runCli(['adapt', '--model', plain, '--data', data, '--workers', '0']);
  assert.equal(noFeatures.code, 2, noFeatures.stderr);
  assert.match(noFeatures.stderr, /no 'features' output; export it again with 'nextray export --features'/);
  const noData = runCli(['adapt', '--model', model]);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /--data/);
  const badCsv = join(tmp.dir, 'bad.csv');
  writeFileSync(badCsv, 'file,diagnosis\na.png,1\n');
  const r = runCli(['adapt', '--model', model, '--data', badCsv]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs a header with columns image,label/);
  const help = runCli(['adapt', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Examples:/);
  assert.match(help.stdout, /Exit codes:/);
});
