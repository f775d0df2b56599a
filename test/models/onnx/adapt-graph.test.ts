/**
 * The adapted model file (src/models/onnx/adapt-graph.ts) in ONNX Runtime, for fp32, fp16 and int8 exports: its
 * `logits` equal (z_base * T + features . dw + db) / T' computed here from the deployed file's own outputs, its
 * `probability` their sigmoid, its `cam` TF.js's class activation map with the head weights w + dw (fp32), the old
 * head's nodes are gone, and the metadata carries the new threshold, temperature and the adaptation record.
 * A surgery that left the deployed head in place fails the first comparison.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { initEngine, tf } from '../../../src/engine/index.js';
import { buildModel } from '../../../src/train/archs.js';
import { classActivationMap } from '../../../src/models/cam.js';
import { exportOnnx } from '../../../src/models/onnx/export.js';
import { concatChunks, encodeModel, readModelInfo } from '../../../src/models/onnx/graph.js';
import { readFields, decodeString } from '../../../src/models/onnx/proto.js';
import { activationRanges, collectActivationStats, planInt8, quantizeGraphInt8, toFloat16Graph } from '../../../src/models/onnx/quantize.js';
import { replaceHead, setMetadata } from '../../../src/models/onnx/adapt-graph.js';
import { Rng } from '../../../src/util/rng.js';
import type { NetworkModel } from '../../../src/models/head.js';

before(async () => {
  await initEngine('cpu');
});

const S = 48;

function images(n: number, seed: string): Float32Array {
  const rng = new Rng(5).fork(seed);
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

async function run(bytes: Uint8Array, x: Float32Array, n: number): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
  const sess = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  try {
    const r = await sess.run({ input: new ort.Tensor('float32', x, [n, S, S, 3]) });
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { data: Float32Array.from(v.data as Float32Array), dims: v.dims }]));
  } finally {
    await sess.release();
  }
}

function nodeOutputs(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (const f of readFields(bytes)) {
    if (f.field !== 7 || f.wire !== 2) continue;
    for (const g of readFields(f.value)) {
      if (g.field !== 1 || g.wire !== 2) continue;
      for (const nf of readFields(g.value)) if (nf.field === 2 && nf.wire === 2) out.push(decodeString(nf.value));
    }
  }
  return out;
}

test('replaceHead: the adapted logits, probability and CAM in fp32, fp16 and int8; the old head removed', async () => {
  const model = buildModel('resnet-slim', { dropout: 0, seed: 3, init: 'random' }) as NetworkModel;
  const T = 1.7;
  const ex = exportOnnx(model, { inputSize: S, features: true, cam: true, temperature: T, decisionThreshold: 0.5 });
  const n = 5;
  const x = images(n, 'eval');
  const plan = planInt8(ex.graph);
  const { stats } = await collectActivationStats(ort, ex.graph, ex.modelMeta, plan.calibrate, [{ x: images(10, 'calib'), n: 10 }], { inputDims: (k) => [k, S, S, 3], sessionOptions: { intraOpNumThreads: 1 } });
  const files: Record<string, Uint8Array> = {
    fp32: ex.toBytes(),
    fp16: concatChunks(encodeModel(toFloat16Graph(ex.graph).graph, ex.modelMeta)),
    int8: concatChunks(encodeModel(quantizeGraphInt8(ex.graph, activationRanges(stats, { kind: 'minmax' })).graph, ex.modelMeta)),
  };
  const base32 = await run(files.fp32!, x, n);
  const d = base32.features!.dims[1]!;
  const rng = new Rng('delta');
  const dw = Float32Array.from({ length: d }, () => rng.normal(0, 0.5));
  const db = 0.37;
  const T2 = 0.8;
  const record = JSON.stringify({ decision: 'adapted', base_sha256: 'x' });

  for (const [precision, bytes] of Object.entries(files)) {
    const base = precision === 'fp32' ? base32 : await run(bytes, x, n);
    const adapted = concatChunks(replaceHead(bytes, { deltaWeight: dw, deltaBias: db, temperature: T2, threshold: 0.31, metadata: { adaptation: record } }));
    const r = await run(adapted, x, n);
    let spread = 0;
    for (let i = 0; i < n; i++) {
      let z = base.logits!.data[i]! * T + db;
      for (let j = 0; j < d; j++) z += base.features!.data[i * d + j]! * dw[j]!;
      z /= T2;
      assert.ok(Math.abs(r.logits!.data[i]! - z) < 1e-4 * (1 + Math.abs(z)), `${precision} logit ${i}: ${r.logits!.data[i]} vs ${z}`);
      assert.ok(Math.abs(r.probability!.data[i]! - 1 / (1 + Math.exp(-z))) < 1e-5);
      spread = Math.max(spread, Math.abs(z - base.logits!.data[i]!));
    }
    assert.ok(spread > 0.1, `${precision}: the head changed the logits`);
    // Features and the OOD-free trunk are the deployed ones.
    assert.deepEqual(Array.from(r.features!.data), Array.from(base.features!.data));
    assert.deepEqual(r.cam!.dims, base.cam!.dims);
    const outs = nodeOutputs(adapted);
    assert.ok(!outs.some((o) => o.startsWith('base1.')), `${precision}: the old head's nodes are removed (${outs.filter((o) => o.startsWith('base1.')).join(', ')})`);
    const info = readModelInfo(adapted);
    assert.equal(info.metadata.decision_threshold, '0.31');
    assert.equal(info.metadata.temperature, '0.8');
    assert.equal(info.metadata.adaptation, record);
    assert.equal(info.metadata.precision ?? precision, info.metadata.precision ?? precision);
    assert.deepEqual(info.outputs.map((o) => o.name), readModelInfo(bytes).outputs.map((o) => o.name));
    if (precision === 'fp32') {
      // CAM with the adapted weights, by TF.js: set the head's kernel to w + dw.
      const w = model.stateDict().get('fc.weight')!;
      const old = w.dataSync().slice();
      tf.tidy(() => w.assign(tf.tensor(Float32Array.from(old, (v, j) => v + dw[j]!), w.shape)));
      const cam = tf.tidy(() => classActivationMap(model, tf.tensor4d(x, [n, S, S, 3])).maps.dataSync());
      tf.tidy(() => w.assign(tf.tensor(old, w.shape)));
      let maxCam = 0;
      for (const v of cam) maxCam = Math.max(maxCam, v);
      assert.ok(maxCam > 0);
      for (let i = 0; i < cam.length; i++) assert.ok(Math.abs(r.cam!.data[i]! - cam[i]!) < 1e-4 * (1 + maxCam), `cam[${i}] ${r.cam!.data[i]} vs ${cam[i]}`);
      // Adapting an adapted model again stacks a second head (fresh names).
      const twice = concatChunks(replaceHead(adapted, { deltaWeight: dw, deltaBias: 0, temperature: 1, threshold: 0.5 }));
      const r2 = await run(twice, x, n);
      for (let i = 0; i < n; i++) {
        let z = r.logits!.data[i]! * T2;
        for (let j = 0; j < d; j++) z += r.features!.data[i * d + j]! * dw[j]!;
        assert.ok(Math.abs(r2.logits!.data[i]! - z) < 1e-4 * (1 + Math.abs(z)));
      }
    }
  }
  model.dispose();

  // A model without the features output is refused with what to do.
  const plain = exportOnnx(buildModel('resnet-slim', { dropout: 0, seed: 3, init: 'random' }), { inputSize: S });
  assert.throws(() => replaceHead(plain.toBytes(), { deltaWeight: dw, deltaBias: 0, temperature: 1, threshold: 0.5 }), /nextray export --features/);
  // setMetadata adds a key and keeps everything else.
  const tagged = concatChunks(setMetadata(files.fp32!, { adaptation: '{"decision":"kept-base"}' }));
  const ti = readModelInfo(tagged);
  assert.equal(ti.metadata.adaptation, '{"decision":"kept-base"}');
  assert.equal(ti.metadata.decision_threshold, '0.5');
  const rt = await run(tagged, x, n);
  assert.deepEqual(Array.from(rt.logits!.data), Array.from(base32.logits!.data));
});
