/**
 * predictSplit through ONNX Runtime vs TF.js on the same checkpoints: the trainer's `resnet-slim` and the zoo's
 * ResNet-18, 64 px, with non-trivial BatchNorm statistics (so folding is exercised) — logits equal to 1e-4
 * (relative to max(1, |logit|)); the 'auto' fallback to TF.js when ONNX Runtime does not load (one log line, the
 * reason recorded); 'onnx' refusing instead; no TF.js tensor leak across calls.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initEngine, tf } from '../../../src/engine/index.js';
import { makePreprocessing } from '../../../src/data/preprocess.js';
import { saveCheckpoint } from '../../../src/models/weights/index.js';
import { buildModel } from '../../../src/train/archs.js';
import { predictSplit } from '../../../src/inference/node/records.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../helpers/paths.js';
import { writeTinyDataset } from '../../train/fixture.js';

const tmp = tempDir('nextray-predict-onnx-');
const data = join(tmp.dir, 'data');
const SIZE = 64;

/** A checkpoint of a randomly initialised `arch` whose BatchNorms carry random statistics and affine terms. */
function writeCheckpoint(arch: string, seed: number): string {
  const model = buildModel(arch, { dropout: 0.5, seed });
  const rng = new Rng(seed);
  for (const [name, v] of model.stateDict()) {
    const n = v.size;
    if (name.endsWith('running_var')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.uniform(0.5, 2)), v.shape));
    else if (name.endsWith('running_mean')) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.normal(0, 0.2)), v.shape));
    else if (/bn\d\.weight$|downsample\.1\.weight$/.test(name)) v.assign(tf.tensor(Float32Array.from({ length: n }, () => rng.uniform(0.5, 1.5)), v.shape));
  }
  const dir = join(tmp.dir, `ckpt-${arch}`);
  saveCheckpoint(dir, {
    tensors: model.exportStateDict('torch'),
    metadata: {
      arch,
      inputShape: [SIZE, SIZE, 3],
      preprocessing: makePreprocessing({ size: SIZE }),
      head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 },
      decisionThreshold: 0.5,
    },
  });
  model.dispose();
  return dir;
}

before(async () => {
  await initEngine();
  await writeTinyDataset(data, { trainPatients: 7, validPatients: 2, size: 72 });
});
after(() => tmp.cleanup());

for (const [arch, seed] of [['resnet-slim', 11], ['resnet18', 12]] as const) {
  test(`${arch}: predictSplit with ONNX Runtime equals TF.js to 1e-4`, async () => {
    const ckpt = writeCheckpoint(arch, seed);
    const before = tf.memory().numTensors;
    const common = { data, subset: 'train' as const, workers: 0, batchSize: 4 };
    const viaTf = await predictSplit(ckpt, { ...common, engine: 'tfjs' });
    const viaOnnx = await predictSplit(ckpt, { ...common, engine: 'onnx', threads: 1 });
    const viaAuto = await predictSplit(ckpt, { ...common });
    assert.equal(tf.memory().numTensors, before, 'no TF.js tensor leak');
    assert.equal(viaTf.engine.name, 'tfjs');
    assert.equal(viaOnnx.engine.name, 'onnx');
    assert.match(viaOnnx.engine.description, /^onnxruntime-node \d+\.\d+\.\d+ \(CPU, 1 thread\)$/);
    assert.equal(viaAuto.engine.name, 'onnx', 'auto picks ONNX Runtime when it loads');
    assert.equal(viaOnnx.engine.fallbackReason, undefined);
    assert.equal(viaOnnx.images, 10); // 7 patients, one or two views each: 4 x 1 + 3 x 2
    assert.deepEqual(viaOnnx.predictions.map((p) => [p.image, p.label]), viaTf.predictions.map((p) => [p.image, p.label]));
    let spread = 0;
    for (let i = 0; i < viaTf.logits.length; i++) {
      const want = viaTf.logits[i]!;
      assert.ok(Math.abs(viaOnnx.logits[i]! - want) <= 1e-4 * Math.max(1, Math.abs(want)), `${arch} image ${i}: onnx ${viaOnnx.logits[i]} vs tfjs ${want}`);
      assert.ok(Math.abs(viaOnnx.predictions[i]!.probability - viaTf.predictions[i]!.probability) <= 1e-4);
      spread = Math.max(spread, Math.abs(want - viaTf.logits[0]!));
    }
    assert.ok(spread > 1e-3, 'the images give different logits (the comparison is not between constants)');
    assert.deepEqual([...viaAuto.logits], [...viaOnnx.logits]);
  });
}

test("'auto' falls back to TF.js with one notice when ONNX Runtime does not load; 'onnx' refuses", async () => {
  const ckpt = join(tmp.dir, 'ckpt-resnet-slim');
  const missing = async (): Promise<never> => {
    throw new Error("Cannot find module 'onnxruntime-node' (simulated)");
  };
  const lines: string[] = [];
  const common = { data, subset: 'train' as const, workers: 0, loadOnnxRuntime: missing };
  const p = await predictSplit(ckpt, { ...common, engine: 'auto', onLog: (l) => lines.push(l) });
  assert.equal(p.engine.name, 'tfjs');
  assert.match(p.engine.fallbackReason ?? '', /onnxruntime-node does not load: Cannot find module/);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /predicting with TF\.js instead of ONNX Runtime .*resnet-slim/);
  const tfOnly = await predictSplit(ckpt, { data, subset: 'train', workers: 0, engine: 'tfjs' });
  assert.deepEqual([...p.logits], [...tfOnly.logits]);
  await assert.rejects(predictSplit(ckpt, { ...common, engine: 'onnx' }), /ONNX Runtime unavailable: onnxruntime-node does not load.*use --runtime tfjs or --runtime auto/);
  await assert.rejects(predictSplit(ckpt, { ...common, engine: 'gpu' as never }), /engine must be one of auto, onnx, tfjs/);
});
