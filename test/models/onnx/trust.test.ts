/**
 * The export's trust outputs (src/models/onnx/extras.ts) in onnxruntime-node: `cam` equals PyTorch's CAM of the
 * tiny fixture network (test/fixtures/cam/make.py) and TF.js's; the temperature divides the logit; `ood_score`
 * equals the Mahalanobis distance written out by hand in float64 over TF.js's pooled features.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine, tf } from '../../../src/engine/index.js';
import { createCustomModel } from '../../../src/models/index.js';
import { classActivationMap, finalFeatures, layerStatistics } from '../../../src/models/cam.js';
import { exportOnnx } from '../../../src/models/onnx/export.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { parseNpz } from '../../../src/models/weights/npy.js';
import { readStateDict } from '../../../src/models/weights/files.js';
import { SlimResNet } from '../../../src/models/slim.js';
import { REPO_ROOT } from '../../helpers/paths.js';

const FIX = join(REPO_ROOT, 'test', 'fixtures', 'cam');

before(async () => {
  await initEngine();
});

test('ONNX cam / temperature / ood_score outputs equal PyTorch, TF.js and the formula', async () => {
  const npz = parseNpz(new Uint8Array(readFileSync(join(FIX, 'cam.npz'))));
  const m = createCustomModel('tiny', (h) => new SlimResNet([4, 8, 8, 8], [1, 1, 1, 1], h, false), { head: 'binary', dropout: 0 });
  m.loadStateDict(await readStateDict(join(FIX, 'tiny.pth')), { strict: true, layout: 'torch' });
  const input = npz.get('input_nhwc')!;
  const x = input.data as Float32Array;
  const wantCam = npz.get('cam')!.data as Float32Array;
  const wantLogits = npz.get('logits')!.data as Float32Array;

  // A symmetric positive-definite precision and a mean for the 16 statistics (8 channel means, 8 stds) of the final map.
  const dim = 16;
  const mean = Float32Array.from({ length: dim }, (_, i) => 0.05 * i - 0.3);
  const prec = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) prec[i * dim + j] = i === j ? 2 + i : 0.1 / (1 + Math.abs(i - j));
  const ood = { method: 'mahalanobis' as const, layers: ['features'], mean, precision: prec, threshold: 3.5, quantile: 0.99, shrinkage: 0.1, images: 10 };
  const exported = exportOnnx(m, { inputSize: 64, cam: true, temperature: 2, ood });
  assert.equal(exported.metadata.temperature, '2');
  assert.equal(JSON.parse(exported.metadata.ood!).threshold, 3.5);

  const clf = await OnnxClassifier.create(exported.toBytes(), { threads: 1 });
  try {
    assert.equal(clf.info.temperature, 2);
    assert.equal(clf.info.ood?.threshold, 3.5);
    const r = await clf.run(x, 2, { outputs: ['cam', 'ood_score'] });
    const cam = r.extra.cam!.data;
    const oodScores = r.extra.ood_score!.data;
    assert.deepEqual(r.extra.cam!.dims, [2, 4, 4]);
    for (let i = 0; i < wantCam.length; i++) assert.ok(Math.abs(cam[i]! - wantCam[i]!) < 1e-4, `cam[${i}] ${cam[i]} vs PyTorch ${wantCam[i]}`);
    for (let i = 0; i < 2; i++) {
      assert.ok(Math.abs(r.logits[i]! - wantLogits[i]! / 2) < 1e-5, `logit ${r.logits[i]} vs ${wantLogits[i]! / 2}`);
      assert.ok(Math.abs(r.probabilities[i]! - 1 / (1 + Math.exp(-wantLogits[i]! / 2))) < 1e-6);
    }
    // TF.js CAM equals ONNX CAM.
    const xt = tf.tensor4d(x, input.shape as [number, number, number, number]);
    const tcam = classActivationMap(m, xt);
    const tv = tcam.maps.dataSync();
    for (let i = 0; i < tv.length; i++) assert.ok(Math.abs(tv[i]! - cam[i]!) < 1e-4);
    // Mahalanobis by hand over the final map's channel means and (population) standard deviations.
    const f = finalFeatures(m, xt);
    const fv = f.dataSync();
    const [, fh, fw, fc] = f.shape;
    tf.dispose([xt, tcam.maps, tcam.logits, f]);
    for (let img = 0; img < 2; img++) {
      const st: number[] = [];
      const sds: number[] = [];
      for (let c = 0; c < fc; c++) {
        let s1 = 0;
        let s2 = 0;
        for (let p = 0; p < fh * fw; p++) {
          const v = fv[(img * fh * fw + p) * fc + c]!;
          s1 += v;
          s2 += v * v;
        }
        const mu = s1 / (fh * fw);
        st.push(mu);
        sds.push(Math.sqrt(Math.max(0, s2 / (fh * fw) - mu * mu)));
      }
      const feat = [...st, ...sds];
      let s = 0;
      for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) s += (feat[i]! - mean[i]!) * prec[i * dim + j]! * (feat[j]! - mean[j]!);
      assert.ok(Math.abs(oodScores[img]! - s) < 1e-4 * Math.max(1, s), `ood ${oodScores[img]} vs ${s}`);
    }
    // An early-layer gate: ONNX's in-graph statistics equal TF.js's layerStatistics.
    const layers = ['conv1', 'layer2.0'];
    const xt2 = tf.tensor4d(x, input.shape as [number, number, number, number]);
    const st = layerStatistics(m, xt2, layers);
    const d2 = st.shape[1];
    const fvals = st.dataSync();
    tf.dispose([xt2, st]);
    const eye = new Float32Array(d2 * d2);
    for (let i = 0; i < d2; i++) eye[i * d2 + i] = 1;
    const clf2 = await OnnxClassifier.create(exportOnnx(m, { inputSize: 64, ood: { ...ood, layers, mean: new Float32Array(d2), precision: eye } }).toBytes(), { threads: 1 });
    const r2 = await clf2.run(x, 2, { outputs: ['ood_score'] });
    await clf2.release();
    for (let img = 0; img < 2; img++) {
      let s = 0;
      for (let i = 0; i < d2; i++) s += fvals[img * d2 + i]! ** 2;
      assert.ok(Math.abs(r2.extra.ood_score!.data[img]! - s) < 1e-4 * Math.max(1, s), `early-layer ood ${r2.extra.ood_score!.data[img]} vs TF.js ${s}`);
    }
  } finally {
    await clf.release();
    m.dispose();
  }
  // A plain export has none of them.
  const m2 = createCustomModel('tiny', (h) => new SlimResNet([4, 8, 8, 8], [1, 1, 1, 1], h, false), { head: 'binary', dropout: 0 });
  const plain = await OnnxClassifier.create(exportOnnx(m2, { inputSize: 64 }).toBytes(), { threads: 1 });
  const r2 = await plain.run(x, 2);
  assert.deepEqual(Object.keys(r2.extra), []);
  await assert.rejects(plain.run(x, 2, { outputs: ['cam'] }));
  assert.equal(plain.info.temperature, 1);
  await plain.release();
  m2.dispose();
});
