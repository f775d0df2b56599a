/**
 * `export --features` (src/models/onnx/export.ts): the ONNX output `features` [batch, C] is the head's input — the
 * last feature map averaged over space, per image. Checked against TF.js's final feature map averaged here by hand
 * (fp32: 1e-5 relative), against the head's own arithmetic (logit = features . w + b, in float64 from TF.js's head
 * weights), and for the fp16 and int8 post-passes through ONNX Runtime within the bounds stated below. A stub that
 * exported any other tensor (the un-pooled map, the logits, zeros) fails the first comparison.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { initEngine, tf } from '../../../src/engine/index.js';
import { buildModel } from '../../../src/train/archs.js';
import { finalFeatures } from '../../../src/models/cam.js';
import { exportOnnx } from '../../../src/models/onnx/export.js';
import { concatChunks, encodeModel, readModelInfo, type OnnxGraph, type OnnxModelMeta } from '../../../src/models/onnx/graph.js';
import { activationRanges, collectActivationStats, planInt8, quantizeGraphInt8, toFloat16Graph } from '../../../src/models/onnx/quantize.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { Rng } from '../../../src/util/rng.js';
import type { NetworkModel } from '../../../src/models/head.js';

before(async () => {
  await initEngine('cpu');
});

const S = 48;

function smoothImages(n: number, seed: string): Float32Array {
  const rng = new Rng(21).fork(seed);
  const x = new Float32Array(n * S * S * 3);
  for (let i = 0; i < n; i++) {
    const f = [rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3), rng.uniform(0, 6), rng.uniform(0.5, 1.5)];
    for (let y = 0; y < S; y++)
      for (let xx = 0; xx < S; xx++) {
        const v = f[3]! * Math.sin(f[0]! * xx + f[2]!) * Math.cos(f[1]! * y) + rng.normal(0, 0.1);
        for (let c = 0; c < 3; c++) x[((i * S + y) * S + xx) * 3 + c] = v;
      }
  }
  return x;
}

async function run(graph: OnnxGraph, meta: OnnxModelMeta, x: Float32Array, n: number): Promise<{ features: Float32Array; logits: Float32Array; dims: readonly number[] }> {
  const sess = await ort.InferenceSession.create(concatChunks(encodeModel(graph, meta)), { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  try {
    const r = await sess.run({ input: new ort.Tensor('float32', x, [n, S, S, 3]) });
    return { features: Float32Array.from(r.features!.data as Float32Array), logits: Float32Array.from(r.logits!.data as Float32Array), dims: r.features!.dims };
  } finally {
    await sess.release();
  }
}

/** TF.js's last feature map (NHWC) averaged over H and W by hand, in float64: [n, C]. */
function pooledByHand(model: NetworkModel, x: Float32Array, n: number): { f: Float64Array; c: number } {
  const xt = tf.tensor4d(x, [n, S, S, 3]);
  const map = finalFeatures(model, xt);
  const [, h, w, c] = map.shape;
  const v = map.dataSync();
  tf.dispose([xt, map]);
  const f = new Float64Array(n * c);
  for (let i = 0; i < n; i++) for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) f[i * c + k]! += v[(i * h * w + p) * c + k]! / (h * w);
  return { f, c };
}

test('features output: the pooled head input in fp32, fp16 and int8, through ONNX Runtime', async () => {
  const model = buildModel('resnet-slim', { dropout: 0, seed: 7, init: 'random' }) as NetworkModel;
  const n = 6;
  const x = smoothImages(n, 'eval');
  const { f: want, c } = pooledByHand(model, x, n);
  const sd = model.stateDict();
  const w = Float64Array.from(sd.get('fc.weight')!.dataSync());
  const b = sd.get('fc.bias')!.dataSync()[0]!;
  const ex = exportOnnx(model, { inputSize: S, features: true, cam: true, temperature: 1.5 });
  const without = exportOnnx(model, { inputSize: S });
  model.dispose();

  assert.ok(ex.metadata.outputs.split(',').includes('features'));
  assert.ok(!without.metadata.outputs.split(',').includes('features'), 'only with the option');
  assert.deepEqual(JSON.parse(ex.metadata.features!), { output: 'features', dim: c, pooling: 'global-average', head: 'fc' });
  const info = readModelInfo(ex.toBytes());
  assert.deepEqual(info.outputs.find((o) => o.name === 'features')?.shape, ['batch', c]);

  let maxAbs = 0;
  for (const v of want) maxAbs = Math.max(maxAbs, Math.abs(v));
  assert.ok(maxAbs > 0.01, 'features are not all zero');
  const r32 = await run(ex.graph, ex.modelMeta, x, n);
  assert.deepEqual(r32.dims, [n, c]);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(r32.features[i]! - want[i]!) <= 1e-5 * maxAbs, `fp32 feature ${i}: ${r32.features[i]} vs ${want[i]}`);
  // The head reads exactly these: logit / T = (features . w + b) / T.
  for (let i = 0; i < n; i++) {
    let z = b;
    for (let k = 0; k < c; k++) z += r32.features[i * c + k]! * w[k]!;
    assert.ok(Math.abs(r32.logits[i]! - z / 1.5) < 1e-4, `logit ${i}: ${r32.logits[i]} vs ${z / 1.5}`);
  }

  // fp16 weights: features move by ~1e-3 of their scale (half precision's 2^-11 per weight, through 10 layers);
  // bound 1e-2 of the largest feature.
  const f16 = toFloat16Graph(ex.graph);
  const r16 = await run(f16.graph, ex.modelMeta, x, n);
  let d16 = 0;
  for (let i = 0; i < want.length; i++) d16 = Math.max(d16, Math.abs(r16.features[i]! - want[i]!));
  assert.ok(d16 <= 1e-2 * maxAbs, `fp16: max |diff| ${d16} vs scale ${maxAbs}`);

  // int8 (QDQ, min-max calibrated on 12 other images of the same kind): the output is the dequantized tensor the
  // integer head reads. Bound: 13 quantized layers each add at most half a step (1/510 of the tensor's range), which
  // compounds to a few percent of the feature scale (measured here: 1.9% of the largest feature); bound 5%.
  const plan = planInt8(ex.graph);
  const { stats } = await collectActivationStats(ort, ex.graph, ex.modelMeta, plan.calibrate, [{ x: smoothImages(12, 'calib'), n: 12 }], {
    inputDims: (k) => [k, S, S, 3],
    sessionOptions: { intraOpNumThreads: 1 },
  });
  const q = quantizeGraphInt8(ex.graph, activationRanges(stats, { kind: 'minmax' }));
  const r8 = await run(q.graph, ex.modelMeta, x, n);
  let d8 = 0;
  let same = 0;
  for (let i = 0; i < want.length; i++) {
    d8 = Math.max(d8, Math.abs(r8.features[i]! - want[i]!));
    if (r8.features[i] === r32.features[i]) same++;
  }
  assert.ok(d8 <= 0.05 * maxAbs, `int8: max |diff| ${d8.toFixed(5)} vs scale ${maxAbs.toFixed(5)} (${((100 * d8) / maxAbs).toFixed(2)}%)`);
  assert.ok(same < want.length, 'int8 features are quantized (not the float32 values)');
  // ...and they are what the int8 head multiplies: its logits follow from them and the float weights to within the
  // weights' own int8 rounding (per-channel, 1/254 of the largest |w|), far below the logits' spread.
  let spread = 0;
  let dz = 0;
  for (let i = 0; i < n; i++) {
    let z = b;
    for (let k = 0; k < c; k++) z += r8.features[i * c + k]! * w[k]!;
    dz = Math.max(dz, Math.abs(r8.logits[i]! - z / 1.5));
    for (let j = 0; j < n; j++) spread = Math.max(spread, Math.abs(r32.logits[i]! - r32.logits[j]!));
  }
  assert.ok(dz < 0.05 * spread, `int8 logits vs features . w + b: ${dz} (logit spread ${spread})`);

  // OnnxClassifier hands the output out like any other extra output.
  const clf = await OnnxClassifier.create(ex.toBytes(), { threads: 1 });
  try {
    const r = await clf.run(x, n, { outputs: ['features'] });
    assert.deepEqual(r.extra.features!.dims, [n, c]);
    assert.deepEqual(Array.from(r.extra.features!.data), Array.from(r32.features));
  } finally {
    await clf.release();
  }
});
