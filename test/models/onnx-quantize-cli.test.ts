/**
 * `nextray export --precision fp16|int8` end to end (the real CLI over dist/): a small checkpoint (ResNet-18, seeded
 * random weights, 64 px) and a tiny synthetic dataset in the MURA layout for calibration. The files load in
 * OnnxClassifier, their metadata records precision and calibration, --verify passes, and bad flag combinations are
 * usage errors (exit 2).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { saveCheckpoint } from '../../src/models/weights/checkpoint.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { generateSyntheticMura } from '../../src/data/synth/generate.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-quant-cli-');
const ckpt = join(tmp.dir, 'ckpt');
const data = join(tmp.dir, 'data');

before(async () => {
  await initEngine('cpu');
  await generateSyntheticMura({ outDir: data, studies: 12, seed: 3, size: 96, validFraction: 0.25, workers: 0 });
  const model = createModel('resnet18', { head: 'binary', seed: 1 });
  saveCheckpoint(ckpt, {
    tensors: model.exportStateDict('torch'),
    metadata: {
      arch: 'resnet18',
      inputShape: [64, 64, 3],
      preprocessing: makePreprocessing({ size: 64 }),
      head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 },
      decisionThreshold: 0.5,
    },
  });
  model.dispose();
});

after(() => tmp.cleanup());

test('export --precision fp16 and int8: smaller files, metadata, verified, loadable', async () => {
  const fp32 = join(tmp.dir, 'm32.onnx');
  assert.equal(runCli(['export', '--checkpoint', ckpt, '--out', fp32, '--json']).code, 0);
  const fp16 = join(tmp.dir, 'm16.onnx');
  const r16 = runCli(['export', '--checkpoint', ckpt, '--out', fp16, '--precision', 'fp16', '--verify', '--threads', '1', '--json']);
  assert.equal(r16.code, 0, r16.stderr);
  const s16 = JSON.parse(r16.stdout);
  assert.equal(s16.precision, 'fp16');
  assert.equal(s16.verify.ok, true);
  const int8 = join(tmp.dir, 'm8.onnx');
  const r8 = runCli([
    'export', '--checkpoint', ckpt, '--out', int8, '--precision', 'int8', '--calibration', data, '--calibration-images', '6',
    '--calibration-method', 'percentile-99.9', '--float-layers', 'conv1', '--verify', '--threads', '1', '--json', '--features',
  ]);
  assert.equal(r8.code, 0, r8.stderr);
  const s8 = JSON.parse(r8.stdout);
  assert.equal(s8.precision, 'int8');
  assert.deepEqual(s8.calibration, { data, images: 6, requested: 6, bad_images: 0, method: 'percentile-99.9', seed: 0 });
  assert.deepEqual(s8.float_layers, ['conv1']);
  assert.equal(s8.quantized_layers, 21, 'ResNet-18: 20 convolutions (3 downsample) + fc + the CAM output\'s 1x1 conv, minus conv1 kept in float');
  assert.equal(s8.verify.input, 'calibration images');
  assert.equal(s8.verify.ok, true);
  assert.ok(s8.outputs.includes('features'), `--features: outputs ${s8.outputs}`);

  const size32 = statSync(fp32).size;
  assert.ok(statSync(fp16).size < 0.52 * size32, `fp16 ${statSync(fp16).size} vs fp32 ${size32}`);
  assert.ok(statSync(int8).size < 0.27 * size32, `int8 ${statSync(int8).size} vs fp32 ${size32}`);
  for (const [file, precision] of [[fp16, 'fp16'], [int8, 'int8']] as const) {
    const clf = await OnnxClassifier.create(file, { threads: 1 });
    try {
      assert.equal(clf.info.metadata.precision, precision);
      assert.equal(clf.info.inputSize, 64);
      const p = await clf.predictProba(new Float32Array(2 * 64 * 64 * 3), 2);
      assert.equal(p.length, 2);
    } finally {
      await clf.release();
    }
  }
  const clf = await OnnxClassifier.create(int8, { threads: 1 });
  const q = JSON.parse(clf.info.metadata.quantization!);
  // ResNet-18's head reads 512 pooled features per image.
  assert.deepEqual((await clf.run(new Float32Array(2 * 64 * 64 * 3), 2, { outputs: ['features'] })).extra.features!.dims, [2, 512]);
  await clf.release();
  assert.equal(q.format, 'QDQ');
  assert.equal(q.calibration.method, 'percentile-99.9');
  assert.deepEqual(q.float_layers, ['conv1']);
});

test('export --precision: usage errors exit 2', () => {
  const out = join(tmp.dir, 'x.onnx');
  const cases: Array<[string[], RegExp]> = [
    [['--precision', 'int8'], /--precision int8 needs --calibration DATA_DIR/],
    [['--precision', 'fp16', '--calibration', data], /apply to --precision int8 only/],
    [['--precision', 'int4'], /Allowed choices are fp32, fp16, int8/],
    [['--precision', 'int8', '--calibration', join(tmp.dir, 'nope')], /--calibration .*nope: no such folder/],
    [['--precision', 'int8', '--calibration', data, '--calibration-method', 'kl'], /calibration method must be 'minmax' or 'percentile/],
  ];
  for (const [args, msg] of cases) {
    const r = runCli(['export', '--checkpoint', ckpt, '--out', out, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
  const r = runCli(['export', '--checkpoint', ckpt, '--out', out, '--precision', 'int8', '--calibration', data, '--float-layers', 'layer9.conv1', '--calibration-images', '2']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /float layer 'layer9\.conv1' is not a Conv\/Gemm layer/);
});
