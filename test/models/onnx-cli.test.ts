/**
 * `nextray export` end to end (the real CLI over dist/): resnet18 weights -> .onnx whose ONNX Runtime logits match
 * the TF.js forward (and torchvision's own logits on the shared fixture, when ../shared is present); a project checkpoint with the binary head -> .onnx carrying the checkpoint's
 * threshold and preprocessing, verified by --verify and against the TF.js model; exit codes and messages for
 * bad arguments.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/index.js';
import { createModel, type NetworkModel } from '../../src/models/index.js';
import { readNpyFile, readStateDict } from '../../src/models/weights/files.js';
import { saveCheckpoint } from '../../src/models/weights/checkpoint.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { Rng } from '../../src/util/rng.js';
import { runCli } from '../helpers/cli.js';
import { writeSeededResnet18 } from '../helpers/torchvision.js';
import { SHARED_FIXTURES_SKIP, SMALL_FIXTURES, TORCHVISION_FIXTURES, tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-export-cli-');
/** A valid resnet18 state_dict (seeded random, ImageNet head), written in before(). */
const R18 = join(tmp.dir, 'resnet18.safetensors');
/** A torchvision-layout input batch [2, 3, 64, 64] (in-repo fixture) and R18's logits for it from the TF.js forward. */
const INPUT = join(SMALL_FIXTURES, 'basic_narrow.input.npy');
let r18Logits: Float32Array;

before(async () => {
  await initEngine();
  r18Logits = await writeSeededResnet18(R18, 6);
});
after(() => tmp.cleanup());

function relError(got: Float32Array, want: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return d / m;
}

test('export --help shows an example', () => {
  const r = runCli(['export', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:\n\s+\$ nextray export --checkpoint/);
  assert.match(r.stdout, /--layout <layout>/);
});

async function exportNchwAndRun(weights: string, input: string, want: Float32Array): Promise<void> {
  const out = join(tmp.dir, 'r18.onnx');
  const r = runCli(['export', '--arch', 'resnet18', '--weights', weights, '--out', out, '--input-size', '64', '--layout', 'nchw', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.arch, 'resnet18');
  assert.equal(s.head, 'imagenet');
  assert.equal(s.num_outputs, 1000);
  assert.deepEqual(s.input, { name: 'input', layout: 'NCHW', shape: ['batch', 3, 64, 64] });
  assert.deepEqual(s.outputs, ['logits']);
  assert.equal(s.decision_threshold, null);
  assert.equal(s.batchnorm, 'folded');
  assert.ok(existsSync(out));

  const x = (await readNpyFile(input)).data as Float32Array;
  const clf = await OnnxClassifier.create(out, { threads: 2 });
  try {
    assert.match(clf.info.nextrayVersion, /^\d+\.\d+\.\d+/);
    assert.equal(clf.info.metadata.weights_source, weights);
    const rel = relError((await clf.run(x, 2)).logits, want);
    assert.ok(rel < 1e-4, `relative error ${rel}`);
  } finally {
    await clf.release();
  }
}

test('resnet18 weights -> NCHW .onnx: JSON summary, and ONNX Runtime reproduces the TF.js logits', async () => {
  await exportNchwAndRun(R18, INPUT, r18Logits);
});

test('torchvision weights -> NCHW .onnx: ONNX Runtime reproduces torchvision logits', { skip: SHARED_FIXTURES_SKIP }, async () => {
  const want = (await readNpyFile(join(TORCHVISION_FIXTURES, 'resnet18.logits.npy'))).data as Float32Array;
  await exportNchwAndRun(join(TORCHVISION_FIXTURES, 'resnet18.safetensors'), join(TORCHVISION_FIXTURES, 'resnet18.input.npy'), want);
});

test('checkpoint with the binary head -> .onnx with its threshold and preprocessing; --verify passes; matches TF.js', async () => {
  const model = createModel('resnet18', { head: 'binary', seed: 3 }) as NetworkModel;
  model.loadStateDict(await readStateDict(R18), { ignoreClassifier: true });
  const ckpt = join(tmp.dir, 'ckpt');
  const preprocessing = makePreprocessing({ size: 64, resize: 'stretch' });
  saveCheckpoint(ckpt, {
    tensors: model.exportStateDict('torch'),
    metadata: {
      arch: 'resnet18',
      inputShape: [64, 64, 3],
      preprocessing,
      head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 },
      decisionThreshold: 0.42,
    },
  });
  const out = join(tmp.dir, 'mura.onnx');
  const r = runCli(['export', '--checkpoint', ckpt, '--out', out, '--verify', '--threads', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.head, 'binary');
  assert.equal(s.input_size, 64);
  assert.equal(s.decision_threshold, 0.42);
  assert.deepEqual(s.outputs, ['logits', 'probability', 'cam']);
  assert.equal(s.verify.ok, true);
  assert.ok(s.verify.relative_error < 1e-4);

  const clf = await OnnxClassifier.create(out, { threads: 2 });
  try {
    assert.equal(clf.info.decisionThreshold, 0.42);
    assert.deepEqual(clf.info.preprocessing, preprocessing);
    const rng = new Rng(5);
    const x = Float32Array.from({ length: 2 * 64 * 64 * 3 }, () => rng.normal(0, 1));
    const want = tf.tidy(() => model.predictProba(tf.tensor4d(x, [2, 64, 64, 3])).dataSync() as Float32Array);
    const got = await clf.predictProba(x, 2);
    assert.ok(relError(got, want) < 1e-4);
  } finally {
    await clf.release();
    model.dispose();
  }

  // --head imagenet cannot describe a one-output classifier.
  const bad = runCli(['export', '--checkpoint', ckpt, '--out', join(tmp.dir, 'x.onnx'), '--head', 'imagenet']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /holds a one-output \(binary\) classifier/);
});

test('ImageNet weights with --head binary export an untrained head, with a warning', () => {
  const out = join(tmp.dir, 'untrained.onnx');
  const r = runCli(['export', '--arch', 'resnet18', '--weights', R18, '--out', out, '--head', 'binary', '--input-size', '64', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /binary head is UNTRAINED/);
  const s = JSON.parse(r.stdout);
  assert.equal(s.untrained_head, true);
  assert.equal(s.decision_threshold, 0.5);
  assert.deepEqual(s.outputs, ['logits', 'probability', 'cam']);
});

test('bad arguments exit 2 with a message naming the problem', () => {
  // A few representative cases: each one is a CLI start (seconds on a loaded machine).
  const out = join(tmp.dir, 'never.onnx');
  const cases: Array<[string[], RegExp]> = [
    [['export', '--out', out], /exactly one of --weights FILE or --checkpoint DIR/],
    [['export', '--weights', R18, '--out', out], /--arch is required with --weights/],
    [['export', '--arch', 'vgg16', '--weights', R18, '--out', out], /architecture 'vgg16' cannot be exported; supported: resnet18/],
    [['export', '--arch', 'resnet18', '--weights', join(tmp.dir, 'nope.pth'), '--out', out], /nope\.pth: file not found/],
    [['export', '--arch', 'resnet18', '--weights', R18, '--out', out, '--input-size', '8'], /--input-size must be an integer in \[32, 4096\]/],
  ];
  for (const [args, msg] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
  }
  assert.ok(!existsSync(out), 'nothing was written');
});
