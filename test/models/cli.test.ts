/**
 * End-to-end tests of `nextray models` and `nextray forward` through the real CLI (needs `npm run build`):
 * the listed parameter counts are torchvision's, forward on the resnet18 fixture reproduces torchvision's logits
 * from the .npy it writes (only beside the large ../shared fixtures), a binary-head checkpoint folder gives the
 * [N, 1] logits of the same model's in-process forward, and bad inputs fail with exit code 2 and a message naming
 * the file and the problem.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { SHARED_FIXTURES_SKIP, SMALL_FIXTURES, TORCHVISION_FIXTURES, tempDir } from '../helpers/paths.js';
import { readNpyFile, writeNpyFile, writeSafetensorsFile } from '../../src/models/weights/files.js';
import { initEngine, tf } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';

const tmp = tempDir('nextray-models-cli-');
const fx = (f: string) => join(TORCHVISION_FIXTURES, f);
/** A torchvision-layout input batch [2, 3, 64, 64] from the in-repo fixtures. */
const INPUT = join(SMALL_FIXTURES, 'basic_narrow.input.npy');
/** A valid resnet18 state_dict (seeded random, ImageNet head) written in before(): stands in for torchvision's file. */
const R18 = join(tmp.dir, 'resnet18.safetensors');

before(async () => {
  await initEngine('cpu');
  const m = createModel('resnet18', { seed: 1 });
  writeSafetensorsFile(R18, m.exportStateDict());
  m.dispose();
});
after(() => tmp.cleanup());

test('models --json lists the eight torchvision architectures with their parameter counts, and resnet-slim', () => {
  const r = runCli(['models', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<{ arch: string; params: number; params_binary_head: number; layers: number; torchvision_weights: string[] }>;
  assert.deepEqual(rows.map((x) => x.arch), ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'densenet121', 'densenet169', 'densenet201', 'resnet-slim']);
  const r152 = rows.find((x) => x.arch === 'resnet152')!;
  assert.equal(r152.params, 60_192_808);
  assert.equal(r152.params_binary_head, 60_192_808 - 2048 * 1000 - 1000 + 2048 + 1);
  assert.equal(r152.layers, 152);
  assert.ok(r152.torchvision_weights.includes('resnet152-394f9c45.pth'));
  assert.equal(rows.find((x) => x.arch === 'densenet121')!.params, 7_978_856);

  const table = runCli(['models']);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /resnet152\s+60,192,808\s+58,145,857\s+152/);
});

test('forward on the resnet18 .pth fixture writes torchvision logits', { skip: SHARED_FIXTURES_SKIP }, async () => {
  const out = join(tmp.dir, 'y.npy');
  const r = runCli(['forward', '--arch', 'resnet18', '--weights', fx('resnet18.pth'), '--input', fx('resnet18.input.npy'),
    '--output', out, '--batch', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { head: string; num_classes: number; output_shape: number[] };
  assert.deepEqual([summary.head, summary.num_classes, summary.output_shape], ['imagenet', 1000, [2, 1000]]);
  const got = await readNpyFile(out);
  const want = await readNpyFile(fx('resnet18.logits.npy'));
  assert.equal(got.dtype, 'F32');
  assert.deepEqual(got.shape, [2, 1000]);
  let diff = 0;
  let ref = 0;
  const g = got.data as Float32Array;
  const w = want.data as Float32Array;
  for (let i = 0; i < w.length; i++) {
    diff = Math.max(diff, Math.abs(g[i]! - w[i]!));
    ref = Math.max(ref, Math.abs(w[i]!));
  }
  assert.ok(diff / ref < 1e-4, `relative error ${diff / ref}`);
});

test('forward on a project checkpoint folder with the binary head gives [N, 1] logits', async () => {
  const model = createModel('resnet18', { head: 'binary', seed: 2 });
  const dir = join(tmp.dir, 'ckpt');
  mkdirSync(dir);
  writeSafetensorsFile(join(dir, 'model.safetensors'), model.exportStateDict());
  const x = await readNpyFile(INPUT);
  const want = tf.tidy(() => {
    const nchw = tf.tensor4d(x.data as Float32Array, x.shape as [number, number, number, number]);
    return model.forward(tf.transpose(nchw, [0, 2, 3, 1]), false).dataSync() as Float32Array;
  });
  model.dispose();
  const out = join(tmp.dir, 'p.npy');
  const r = runCli(['forward', '--arch', 'resnet18', '--weights', dir, '--input', INPUT, '--output', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /binary head, 1 output/);
  const got = await readNpyFile(out);
  assert.deepEqual(got.shape, [2, 1]);
  const g = got.data as Float32Array;
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(g[i]! - want[i]!) <= 1e-4 * Math.max(1, Math.abs(want[i]!)), `logit ${i}: ${g[i]} vs ${want[i]}`);
});

test('forward rejects bad input clearly (exit 2, naming the file)', () => {
  const base = ['--arch', 'resnet18', '--weights', R18, '--output', join(tmp.dir, 'z.npy')];
  const missing = join(tmp.dir, 'nope.npy');
  let r = runCli(['forward', ...base, '--input', missing]);
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(missing) && /not found/.test(r.stderr), r.stderr);

  const nhwc = join(tmp.dir, 'nhwc.npy');
  writeNpyFile(nhwc, [1, 64, 64, 3], new Float32Array(64 * 64 * 3));
  r = runCli(['forward', ...base, '--input', nhwc]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /shape \[1, 64, 64, 3\], expected NCHW \[N, 3, H, W\]/);

  const junk = join(tmp.dir, 'junk.npy');
  writeFileSync(junk, 'definitely not numpy');
  r = runCli(['forward', ...base, '--input', junk]);
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(junk), r.stderr);

  r = runCli(['forward', '--arch', 'resnet34', '--weights', R18, '--input', INPUT,
    '--output', join(tmp.dir, 'w.npy')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /resnet18\.safetensors: state_dict does not match the model.*missing key/);

  r = runCli(['forward', '--arch', 'vgg16', '--weights', R18, '--input', INPUT,
    '--output', join(tmp.dir, 'w.npy')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown --arch "vgg16"/);

  r = runCli(['forward', '--arch', 'resnet18']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /required option '--weights/);
});
