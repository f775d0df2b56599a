/**
 * openModel on a checkpoint folder: ONNX Runtime (in-memory export) and the TF.js fallback give the same
 * probabilities as the TF.js model run directly; 'auto' falls back with one line saying why when ONNX Runtime does
 * not load, 'onnx' refuses instead; the TF.js model frees its tensors on release.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { initEngine, tf } from '../../src/engine/index.js';
import { makePreprocessing, preprocessGrey } from '../../src/data/preprocess.js';
import { createModel, type Model } from '../../src/models/index.js';
import { saveCheckpoint } from '../../src/models/weights/index.js';
import { openModel } from '../../src/inference/node/models.js';
import { InferenceError } from '../../src/inference/core/model.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-inference-models-');
const SIZE = 32;
const P = makePreprocessing({ size: SIZE });
let model: Model;
let x: Float32Array;
let want: number[];

before(async () => {
  await initEngine('cpu');
  model = createModel('resnet-slim', { head: 'binary', seed: 5 });
  saveCheckpoint(join(tmp.dir, 'ckpt'), {
    tensors: model.exportStateDict('torch'),
    metadata: { arch: 'resnet-slim', inputShape: [SIZE, SIZE, 3], preprocessing: P, head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 }, decisionThreshold: 0.4 },
  });
  const a = Float32Array.from({ length: 40 * 24 }, (_, i) => ((i * 13) % 97) / 96);
  const b = Float32Array.from({ length: 40 * 24 }, (_, i) => ((i * 7 + 11) % 89) / 88);
  x = new Float32Array(2 * SIZE * SIZE * 3);
  x.set(preprocessGrey(a, 40, 24, P), 0);
  x.set(preprocessGrey(b, 40, 24, P), SIZE * SIZE * 3);
  const logits = tf.tidy(() => model.forward(tf.tensor4d(x, [2, SIZE, SIZE, 3]), false).dataSync() as Float32Array);
  want = [...logits].map((z) => 1 / (1 + Math.exp(-z)));
});
after(() => {
  model?.dispose();
  tmp.cleanup();
});

test('a checkpoint folder in ONNX Runtime and in TF.js: the TF.js model\'s probabilities, the stored threshold', async () => {
  const before = tf.memory().numTensors;
  for (const engine of ['onnx', 'tfjs'] as const) {
    const m = await openModel(join(tmp.dir, 'ckpt'), { engine, threads: 1 });
    try {
      assert.equal(m.card.arch, 'resnet-slim');
      assert.equal(m.card.threshold, 0.4);
      assert.match(m.card.engine, engine === 'onnx' ? /^onnxruntime-node/ : /^TF\.js/);
      assert.match(m.card.sha256, /^[0-9a-f]{64}$/);
      const r = await m.run(x, 2);
      for (let i = 0; i < 2; i++) assert.ok(Math.abs(r.probabilities[i]! - want[i]!) < 1e-5, `${engine}: ${r.probabilities[i]} vs ${want[i]}`);
    } finally {
      await m.release();
    }
  }
  assert.equal(tf.memory().numTensors, before, 'no TF.js tensors left behind');
});

test("'auto' falls back to TF.js with one line when ONNX Runtime does not load; 'onnx' refuses", async () => {
  const lines: string[] = [];
  const missing = async (): Promise<never> => {
    throw new Error('binding not found (test)');
  };
  const m = await openModel(join(tmp.dir, 'ckpt'), { engine: 'auto', loadRuntime: missing, onLog: (l) => lines.push(l) });
  try {
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /running in TF\.js instead of ONNX Runtime \(onnxruntime-node does not load: binding not found \(test\)\)/);
    const r = await m.run(x, 2);
    assert.ok(Math.abs(r.probabilities[1]! - want[1]!) < 1e-5);
  } finally {
    await m.release();
  }
  await assert.rejects(openModel(join(tmp.dir, 'ckpt'), { engine: 'onnx', loadRuntime: missing }), (e: unknown) => e instanceof InferenceError && /ONNX Runtime unavailable/.test(e.message) && e.exitStatus === 2);
  await assert.rejects(openModel(join(tmp.dir, 'nothing-here')), /nothing-here: no such file or folder/);
});

test("a failure after the ONNX session exists: 'auto' falls back to a working TF.js model, 'onnx' frees the model once", async () => {
  const before = tf.memory().numTensors;
  const failing = (): void => {
    throw new Error('export hook failed (test)');
  };
  const lines: string[] = [];
  const m = await openModel(join(tmp.dir, 'ckpt'), { engine: 'auto', threads: 1, onExport: failing, onLog: (l) => lines.push(l) });
  try {
    assert.match(m.card.engine, /^TF\.js/);
    assert.match(lines.join('\n'), /running in TF\.js instead of ONNX Runtime \(export hook failed \(test\)\)/);
    const r = await m.run(x, 2);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(r.probabilities[i]! - want[i]!) < 1e-5, `${r.probabilities[i]} vs ${want[i]}`);
  } finally {
    await m.release();
  }
  await assert.rejects(openModel(join(tmp.dir, 'ckpt'), { engine: 'onnx', threads: 1, onExport: failing }), /ONNX Runtime unavailable: export hook failed \(test\)/);
  assert.equal(tf.memory().numTensors, before, 'no TF.js tensors left behind');
});

test('model_sha256 of a checkpoint is the same in ONNX Runtime and in TF.js, for the folder and its run directory', async () => {
  const ckpt = join(tmp.dir, 'ckpt');
  // By hand: SHA-256 of the sha256sum manifest of model.json and model.safetensors (both hashed from their bytes here).
  const hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
  const manifest = `${hex(readFileSync(join(ckpt, 'model.json')))}  model.json\n${hex(readFileSync(join(ckpt, 'model.safetensors')))}  model.safetensors\n`;
  const want = hex(manifest);
  // The documented shell line gives the same (where coreutils' sha256sum exists).
  const sh = spawnSync('sh', ['-c', 'sha256sum model.json model.safetensors | sha256sum'], { cwd: ckpt, encoding: 'utf8' });
  if (sh.status === 0) assert.equal(sh.stdout.split(' ')[0], want);
  const run = join(tmp.dir, 'run');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  cpSync(ckpt, join(run, 'checkpoints', 'best'), { recursive: true });
  for (const spec of [ckpt, run]) {
    for (const engine of ['onnx', 'tfjs'] as const) {
      const m = await openModel(spec, { engine, threads: 1 });
      try {
        assert.equal(m.card.sha256, want, `${spec}, ${engine}`);
      } finally {
        await m.release();
      }
    }
  }
});
