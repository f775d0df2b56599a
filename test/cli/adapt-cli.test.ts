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
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-adapt-cli-');
const data = join(tmp.dir, 'site');
const model = join(tmp.dir, 'model.onnx');
const plain = join(tmp.dir, 'plain.onnx');

before(async () => {
  await initEngine('cpu');
  await generateSyntheticMura({ outDir: data, studies: 60, seed: 12, size: 48, validFraction: 0.3, workers: 0, site: 'portable' });
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
