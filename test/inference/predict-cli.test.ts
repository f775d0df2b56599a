/**
 * `nextray predict` end to end, through the real CLI, with tiny models made here (resnet-slim at 32 px, seeded
 * random weights, exported to ONNX): every input kind (PNG, JPEG, DICOM in three encodings of the PNG's picture,
 * a folder, a MURA-layout dataset, a checkpoint folder as the model), an ensemble, every kind of bad input and the
 * exit codes, and `nextray evaluate --predictions` reading predict's CSV as it is.
 *
 * Expected probabilities come from another engine: the TF.js model itself, run in this process on the known
 * pixels (preprocessGrey + forward + sigmoid), never from predict's own code path.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/engine/index.js';
import { makePreprocessing, preprocessGrey } from '../../src/data/preprocess.js';
import { createModel, type Model } from '../../src/models/index.js';
import { exportOnnx } from '../../src/models/onnx/export.js';
import { saveOnnx } from '../../src/models/onnx/files.js';
import { saveCheckpoint } from '../../src/models/weights/index.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { encapsulate, TS, writeDicom } from '../helpers/dicom-writer.js';

const tmp = tempDir('nextray-predict-cli-');
const d = (...p: string[]) => join(tmp.dir, ...p);
const SIZE = 32;
const P = makePreprocessing({ size: SIZE });
const W = 40;
const H = 30;
let modelA: Model;
let modelB: Model;
/** The test picture: 8-bit grey values. */
const picture = new Uint8Array(W * H);
let jpegGrey: Float32Array;

function probabilityTf(model: Model, grey: Float32Array, w: number, h: number): number {
  const logit = tf.tidy(() => model.forward(tf.tensor4d(preprocessGrey(grey, w, h, P), [1, SIZE, SIZE, 3]), false).dataSync()[0]!);
  return 1 / (1 + Math.exp(-logit));
}
const pngGrey = () => Float32Array.from(picture, (v) => v / 255);
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

function parseCsv(text: string): Record<string, string>[] {
  const [head, ...rows] = text.trim().split('\n');
  const cols = head!.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i]!, v])));
}

before(async () => {
  await initEngine('cpu');
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) picture[y * W + x] = (x * 6 + y * 3 + ((x * y) % 17) * 5) % 256;
  modelA = createModel('resnet-slim', { head: 'binary', seed: 1 });
  modelB = createModel('resnet-slim', { head: 'binary', seed: 2 });
  saveOnnx(d('a.onnx'), exportOnnx(modelA, { inputSize: SIZE, preprocessing: P, decisionThreshold: 0.5 }));
  saveOnnx(d('b.onnx'), exportOnnx(modelB, { inputSize: SIZE, preprocessing: P, decisionThreshold: 0.5 }));
  saveCheckpoint(d('ckpt'), {
    tensors: modelA.exportStateDict('torch'),
    metadata: { arch: 'resnet-slim', inputShape: [SIZE, SIZE, 3], preprocessing: P, head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 }, decisionThreshold: 0.5 },
  });
  const raw = { raw: { width: W, height: H, channels: 1 as const } };
  await sharp(Buffer.from(picture), raw).png().toFile(d('x.png'));
  await sharp(Buffer.from(picture), raw).jpeg({ quality: 90 }).toFile(d('x.jpg'));
  jpegGrey = Float32Array.from(await sharp(d('x.jpg')).toColourspace('b-w').raw().toBuffer(), (v) => v / 255);
  // Three DICOM encodings of the same picture (display value = v / 255 in each, worked out in the comments):
  // MONOCHROME1 8-bit, no window: stored 255 - v, range [0, 255], inverted -> 1 - (255 - v)/255 = v/255.
  writeFileSync(d('m1.dcm'), writeDicom({ rows: H, columns: W, bitsAllocated: 8, photometric: 'MONOCHROME1', pixels: Array.from(picture, (v) => 255 - v), studyUid: '1.2.826.0.1.99' }));
  // 12-bit, stored 16 v, window c = 2040.5, w = 4081: (16v - 2040) / 4080 + 0.5 = 16v / 4080 = v / 255.
  writeFileSync(d('w12.dcm'), writeDicom({ rows: H, columns: W, bitsAllocated: 16, bitsStored: 12, pixels: Array.from(picture, (v) => 16 * v), window: { center: 2040.5, width: 4081 }, studyUid: '1.2.826.0.1.99' }));
  // Signed 12-bit, stored 4v - 512, rescale 0.5 / +100 -> m = 2v - 156; window c = 99.5, w = 511:
  // (m - 99) / 510 + 0.5 = (2v - 255 + 255) / 510 = v / 255. Big endian, for good measure.
  writeFileSync(d('rw.dcm'), writeDicom({ rows: H, columns: W, bitsAllocated: 16, bitsStored: 12, signed: true, pixels: Array.from(picture, (v) => 4 * v - 512), rescale: { slope: 0.5, intercept: 100 }, window: { center: 99.5, width: 511 }, transferSyntax: TS.explicitBE, studyUid: '1.2.826.0.1.99' }));
  // A MURA-layout dataset: two studies.
  for (const [study, imgs] of [['XR_WRIST/patient00001/study1_positive', 2], ['XR_HAND/patient00002/study1_negative', 1]] as const) {
    mkdirSync(d('MURA-v1.1', 'valid', study), { recursive: true });
    for (let i = 1; i <= imgs; i++) {
      const shifted = Buffer.from(picture.map((v) => (v + 40 * i + (study.includes('HAND') ? 90 : 0)) % 256));
      await sharp(shifted, raw).png().toFile(d('MURA-v1.1', 'valid', study, `image${i}.png`));
    }
  }
  // Bad inputs.
  mkdirSync(d('empty'));
  writeFileSync(d('notimage.png'), 'this is a text file, not a PNG\n');
  const png = readFileSync(d('x.png'));
  writeFileSync(d('truncated.png'), png.subarray(0, Math.floor(png.length * 0.6)));
  writeFileSync(d('lossless.dcm'), writeDicom({ rows: 8, columns: 8, bitsAllocated: 16, transferSyntax: TS.jpegLossless, pixelBytes: encapsulate([new Uint8Array(40)]) }));
  writeFileSync(d('badj2k.dcm'), writeDicom({ rows: 8, columns: 8, bitsAllocated: 16, transferSyntax: TS.jpeg2000, pixelBytes: encapsulate([new Uint8Array(40)]) }));
});
after(() => {
  modelA?.dispose();
  modelB?.dispose();
  tmp.cleanup();
});

test('PNG, JPEG and three DICOM encodings of the PNG: probabilities equal TF.js on the known pixels; DICOMs equal the PNG to 1e-3', () => {
  const r = runCli(['predict', '--model', d('a.onnx'), d('x.png'), d('x.jpg'), d('m1.dcm'), d('w12.dcm'), d('rw.dcm'), '--out', d('p.csv'), '--studies-out', d('s.csv'), '--json', '--workers', '1']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { model: string; model_sha256: string; images: number; predictions: { image: string; probability: number; decision: string; study: string; study_source: string }[] };
  assert.equal(j.model, 'a');
  assert.equal(j.model_sha256, sha256(d('a.onnx')));
  assert.equal(j.images, 5);
  const byName = new Map(j.predictions.map((p) => [p.image, p]));
  const wantPng = probabilityTf(modelA, pngGrey(), W, H);
  const wantJpg = probabilityTf(modelA, jpegGrey, W, H);
  assert.ok(Math.abs(byName.get(d('x.png'))!.probability - wantPng) < 1e-4, `png ${byName.get(d('x.png'))!.probability} vs ${wantPng}`);
  assert.ok(Math.abs(byName.get(d('x.jpg'))!.probability - wantJpg) < 1e-4);
  for (const f of ['m1.dcm', 'w12.dcm', 'rw.dcm']) {
    const p = byName.get(d(f))!;
    assert.ok(Math.abs(p.probability - byName.get(d('x.png'))!.probability) < 1e-3, `${f}: ${p.probability} vs the PNG's ${byName.get(d('x.png'))!.probability}`);
    assert.equal(p.study, '1.2.826.0.1.99');
    assert.equal(p.study_source, 'dicom');
  }
  assert.equal(byName.get(d('x.png'))!.decision, wantPng > 0.5 ? 'abnormal' : 'normal');
  // The CSVs: header, the path as given, model name and hash on every row; the three DICOMs form one study.
  const rows = parseCsv(readFileSync(d('p.csv'), 'utf8'));
  assert.deepEqual(Object.keys(rows[0]!).slice(0, 4), ['image', 'label', 'probability', 'decision']);
  assert.deepEqual(rows.map((x) => x.image), ['x.png', 'x.jpg', 'm1.dcm', 'w12.dcm', 'rw.dcm'].map((f) => d(f)));
  assert.ok(rows.every((x) => x.model === 'a' && x.model_sha256 === sha256(d('a.onnx'))));
  const studies = parseCsv(readFileSync(d('s.csv'), 'utf8'));
  const dicomStudy = studies.find((s) => s.study === '1.2.826.0.1.99')!;
  assert.equal(dicomStudy.views, '3');
  const mean = (byName.get(d('m1.dcm'))!.probability + byName.get(d('w12.dcm'))!.probability + byName.get(d('rw.dcm'))!.probability) / 3;
  assert.ok(Math.abs(Number(dicomStudy.probability) - mean) < 1e-6);
  assert.equal(studies.find((s) => s.study === tmp.dir)!.views, '2', 'the PNG and JPEG: grouped by folder');
});

test('a MURA-layout dataset with a two-model ensemble: mean of the members, MURA studies, and evaluate --predictions reads the CSV', () => {
  const root = d('MURA-v1.1');
  const r = runCli(['predict', '--model', d('a.onnx'), '--model', d('b.onnx'), root, '--out', d('mura.csv'), '--studies-out', d('mura-studies.csv'), '--batch-size', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 image\(s\), 2 studies/);
  const rows = parseCsv(readFileSync(d('mura.csv'), 'utf8'));
  assert.equal(rows.length, 3);
  assert.deepEqual(rows.map((x) => x.image), [
    `${root}/valid/XR_HAND/patient00002/study1_negative/image1.png`,
    `${root}/valid/XR_WRIST/patient00001/study1_positive/image1.png`,
    `${root}/valid/XR_WRIST/patient00001/study1_positive/image2.png`,
  ]);
  assert.deepEqual(rows.map((x) => x.label), ['0', '1', '1']);
  assert.ok(rows.every((x) => x.model === 'a+b' && x.model_sha256 === `${sha256(d('a.onnx'))}+${sha256(d('b.onnx'))}`));
  const studies = parseCsv(readFileSync(d('mura-studies.csv'), 'utf8'));
  assert.deepEqual(studies.map((s) => [s.study_source, s.label, s.views, s.region]), [['mura', '0', '1', 'XR_HAND'], ['mura', '1', '2', 'XR_WRIST']]);
  // evaluate consumes it as it is.
  const ev = runCli(['evaluate', '--predictions', d('mura.csv'), '--bootstrap', '20', '--json', '-']);
  assert.equal(ev.code, 0, ev.stderr);
  const e = JSON.parse(ev.stdout) as { dataset: { images: number; studies: number; regions: Record<string, { images: number }> }; input: { rows: number; bad_rows: number } };
  assert.deepEqual([e.input.rows, e.input.bad_rows, e.dataset.images, e.dataset.studies], [3, 0, 3, 2]);
  assert.deepEqual(Object.keys(e.dataset.regions).sort(), ['XR_HAND', 'XR_WRIST']);
});

test('ensemble probabilities are the mean of the two models run alone (TF.js on the known pixels)', async () => {
  const rows = parseCsv(readFileSync(d('mura.csv'), 'utf8'));
  for (const row of rows) {
    const { data, info } = await sharp(row.image!).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    const grey = Float32Array.from(data, (v) => v / 255);
    const pa = probabilityTf(modelA, grey, info.width, info.height);
    const pb = probabilityTf(modelB, grey, info.width, info.height);
    assert.ok(Math.abs(Number(row.probability) - (pa + pb) / 2) < 1e-4, `${row.image}: ${row.probability} vs ${(pa + pb) / 2}`);
    assert.ok(Math.abs(Number(row.probability_a) - pa) < 1e-4);
    assert.ok(Math.abs(Number(row.probability_b) - pb) < 1e-4);
  }
});

test('two ensemble members of the same name get distinct columns (probability_run, probability_run_2)', async () => {
  for (const sub of ['one', 'two']) {
    mkdirSync(d(sub), { recursive: true });
    cpSync(d(sub === 'one' ? 'a.onnx' : 'b.onnx'), d(`${sub}/run.onnx`));
  }
  const r = runCli(['predict', '--model', d('one/run.onnx'), '--model', d('two/run.onnx'), d('x.png'), '--out', d('dup.csv'), '--workers', '0']);
  assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(d('dup.csv'), 'utf8');
  const header = text.split('\n')[0]!.split(',');
  assert.deepEqual(header.filter((h) => h.startsWith('probability_')), ['probability_run', 'probability_run_2']);
  const [row] = parseCsv(text);
  // Each column holds its own member's probability, in ensemble order: model a's, then model b's.
  const { data, info } = await sharp(d('x.png')).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  const grey = Float32Array.from(data, (v) => v / 255);
  const pa = probabilityTf(modelA, grey, info.width, info.height);
  const pb = probabilityTf(modelB, grey, info.width, info.height);
  assert.ok(Math.abs(Number(row!.probability_run) - pa) < 1e-4, `${row!.probability_run} vs ${pa}`);
  assert.ok(Math.abs(Number(row!.probability_run_2) - pb) < 1e-4, `${row!.probability_run_2} vs ${pb}`);
});

test('bad inputs are named on stderr with the reason, the rest are predicted, exit 1', () => {
  const r = runCli(['predict', '--model', d('a.onnx'), d('x.png'), d('missing.png'), d('notimage.png'), d('truncated.png'), d('lossless.dcm'), d('badj2k.dcm'), d('empty'), '--workers', '0']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /missing\.png: file not found/);
  assert.match(r.stderr, /notimage\.png: not an image/);
  assert.match(r.stderr, /truncated\.png: truncated or corrupt image/);
  assert.match(r.stderr, /lossless\.dcm: the 1\.2\.840\.10008\.1\.2\.4\.70 \(JPEG Lossless.*\) frame cannot be decoded: the frame is not a JPEG codestream/);
  assert.match(r.stderr, /badj2k\.dcm: the 1\.2\.840\.10008\.1\.2\.4\.90 \(JPEG 2000 .*\) frame cannot be decoded/);
  assert.match(r.stderr, /empty: folder holds no PNG, JPEG or DICOM files/);
  const rows = parseCsv(r.stdout);
  assert.deepEqual(rows.map((x) => x.image), [d('x.png')]);
  assert.match(r.stderr, /6 input\(s\) unreadable/);
});

test('usage errors and unusable models exit 2', () => {
  const none = runCli(['predict', '--model', d('a.onnx'), d('empty')]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no image files to predict/);
  const missing = runCli(['predict', '--model', d('nope.onnx'), d('x.png')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.onnx: no such file or folder/);
  const notModel = runCli(['predict', '--model', d('x.png'), d('x.png')]);
  assert.equal(notModel.code, 2);
  assert.match(notModel.stderr, /x\.png: not a readable ONNX model/);
  const bad = runCli(['predict', '--model', d('a.onnx'), '--batch-size', '0', d('x.png')]);
  assert.equal(bad.code, 2);
  const noModel = runCli(['predict', d('x.png')]);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr, /give a model/);
});

test('a checkpoint folder as the model (exported in memory) and --threshold', () => {
  const wantPng = probabilityTf(modelA, pngGrey(), W, H);
  const t = Math.max(0, wantPng - 0.01);
  const r = runCli(['predict', '--model', d('ckpt'), d('x.png'), '--threshold', String(t), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { model: string; threshold: number; threshold_source: string; models: { arch: string; engine: string }[]; predictions: { probability: number; decision: string }[] };
  assert.equal(j.model, 'ckpt');
  assert.equal(j.models[0]!.arch, 'resnet-slim');
  assert.match(j.models[0]!.engine, /onnxruntime-node .*exported in memory/);
  assert.deepEqual([j.threshold, j.threshold_source], [t, 'option']);
  assert.ok(Math.abs(j.predictions[0]!.probability - wantPng) < 1e-4);
  assert.equal(j.predictions[0]!.decision, 'abnormal');
});

test('export --checkpoint takes a run directory of resnet-slim (the demo\'s architecture), and its .onnx predicts like the checkpoint', () => {
  // A run directory: config.json + checkpoints/best (the same weights as a.onnx).
  mkdirSync(d('run', 'checkpoints'), { recursive: true });
  writeFileSync(d('run', 'config.json'), '{}');
  cpSync(d('ckpt'), d('run', 'checkpoints', 'best'), { recursive: true });
  const ex = runCli(['export', '--checkpoint', d('run'), '--out', d('run.onnx'), '--verify', '--json']);
  assert.equal(ex.code, 0, ex.stderr);
  const e = JSON.parse(ex.stdout) as { arch: string; verify: { ok: boolean } };
  assert.deepEqual([e.arch, e.verify.ok], ['resnet-slim', true]);
  const r = runCli(['predict', '--model', d('run.onnx'), '--model', d('run'), d('x.png'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { models: { name: string }[]; predictions: { probability: number; per_model: number[] }[] };
  assert.deepEqual(j.models.map((m) => m.name), ['run', 'run']);
  const [fromFile, fromRun] = j.predictions[0]!.per_model;
  assert.ok(Math.abs(fromFile! - fromRun!) < 1e-6);
  assert.ok(Math.abs(fromFile! - probabilityTf(modelA, pngGrey(), W, H)) < 1e-4);
});

test("an .onnx model's optimised graph is kept beside it and used next time; --no-onnx-cache keeps none", () => {
  // A copy of a.onnx in its own folder (the earlier tests' runs of a.onnx already wrote a.onnx.ort-cache/).
  mkdirSync(d('cached'), { recursive: true });
  cpSync(d('a.onnx'), d('cached', 'c.onnx'));
  const want = probabilityTf(modelA, pngGrey(), W, H);
  const off = runCli(['predict', '--model', d('cached', 'c.onnx'), d('x.png'), '--json', '--no-onnx-cache']);
  assert.equal(off.code, 0, off.stderr);
  assert.equal(existsSync(d('cached', 'c.onnx.ort-cache')), false);
  const probs: number[] = [JSON.parse(off.stdout).predictions[0].probability];
  for (let i = 0; i < 2; i++) {
    const r = runCli(['predict', '--model', d('cached', 'c.onnx'), d('x.png'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /onnx cache/);
    probs.push(JSON.parse(r.stdout).predictions[0].probability);
    const files = readdirSync(d('cached', 'c.onnx.ort-cache')).sort();
    assert.equal(files.length, 2, files.join(', '));
    const manifest = JSON.parse(readFileSync(d('cached', 'c.onnx.ort-cache', files[0]!), 'utf8')) as { source_sha256: string; cache_sha256: string };
    assert.equal(manifest.source_sha256, sha256(d('cached', 'c.onnx')));
    assert.equal(manifest.cache_sha256, sha256(d('cached', 'c.onnx.ort-cache', files[1]!)));
  }
  for (const p of probs) assert.ok(Math.abs(p - want) < 1e-4, `${p} vs ${want}`);
  // A corrupt cache: one line on stderr, the prediction unchanged, the cache rewritten.
  const cacheFile = d('cached', 'c.onnx.ort-cache', readdirSync(d('cached', 'c.onnx.ort-cache')).find((f) => f.endsWith('.ort'))!);
  writeFileSync(cacheFile, 'not a model');
  const r = runCli(['predict', '--model', d('cached', 'c.onnx'), d('x.png'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.split('\n').filter((l) => /onnx cache/.test(l)).length, 1, r.stderr);
  assert.match(r.stderr, /c\.onnx\.ort-cache\/[0-9a-f]{16}\.ort: size 11 bytes, its manifest says \d+ \(corrupt\); rebuilding it/);
  assert.ok(Math.abs(JSON.parse(r.stdout).predictions[0].probability - want) < 1e-4);
  assert.notEqual(readFileSync(cacheFile, 'utf8').slice(0, 11), 'not a model');
  // --quiet: the same repair, without the note.
  writeFileSync(cacheFile, 'not a model');
  const q = runCli(['predict', '--model', d('cached', 'c.onnx'), d('x.png'), '--json', '--quiet']);
  assert.equal(q.code, 0, q.stderr);
  assert.doesNotMatch(q.stderr, /onnx cache/);
  assert.notEqual(readFileSync(cacheFile, 'utf8').slice(0, 11), 'not a model');
});
