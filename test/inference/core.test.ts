/**
 * The browser-safe inference core: ensembles (mean of members, one input per distinct preprocessing, threshold
 * rules), decisions (abnormal when p > threshold, as src/evaluate), study keys and study means — with stand-in
 * models whose outputs are fixed numbers, so expectations are worked by hand — and the core's import graph, which
 * must reach no Node-only module (its only packages: dicom-parser, and fflate for deflated DICOM; both browser-safe).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePreprocessing, resizeToInput } from '../../src/data/preprocess.js';
import { applyTrust } from '../../src/inference/core/trust.js';
import { argmax2d, camAtInput, camOnImage, mapToGrid, normaliseMap, resizeMap } from '../../src/inference/core/cam.js';
import {
  aggregateStudies,
  Ensemble,
  InferenceError,
  predictBatch,
  preprocessAll,
  studyKeyOf,
  type InferenceModel,
  type LoadedCard,
  type PreparedImage,
} from '../../src/inference/core/index.js';

/** A model that answers fixed probabilities per image, and records the inputs it saw. */
function fakeModel(name: string, probs: number[], size = 32, threshold = 0.5): InferenceModel & { seen: Float32Array[] } {
  const card: LoadedCard = {
    name,
    source: `${name}.onnx`,
    sha256: name.repeat(8).slice(0, 8),
    arch: 'fake',
    preprocessing: makePreprocessing({ size }),
    threshold,
    engine: 'fake',
    outputs: ['logits', 'probability'],
    metadata: {},
  };
  const seen: Float32Array[] = [];
  let at = 0;
  return {
    card,
    seen,
    async run(x, n) {
      seen.push(x);
      const p = Float32Array.from(probs.slice(at, at + n));
      at += n;
      return { probabilities: p, logits: p.map((v) => Math.log(v / (1 - v))), extra: {}, seconds: 0 };
    },
    async release() {},
  };
}

function prepared(image: string, ens: Ensemble, studyUid?: string): PreparedImage {
  const grey = new Float32Array(20 * 10).fill(0.5);
  return { image, inputs: preprocessAll(grey, 20, 10, ens.preprocessings), study: studyKeyOf(image, studyUid), width: 20, height: 10, format: 'png', warnings: [] };
}

test('a member that gives no probability in [0, 1] (NaN, out of range) is refused, naming the member and the view, never read as a decision', async () => {
  for (const bad of [Number.NaN, 1.5, -0.5]) {
    const good = fakeModel('good', [0.2, 0.7], 32);
    const broken = fakeModel('broken', [0.3, bad], 32);
    const ens = new Ensemble([good, broken]);
    await assert.rejects(
      predictBatch(ens, [prepared('x/1.png', ens), prepared('x/2.png', ens)]),
      (e: unknown) => e instanceof InferenceError && e.exitStatus === 2 && e.message.startsWith('broken.onnx: ') && e.message.includes(`probability ${bad} for x/2.png`) && /nextray export/.test(e.hint ?? ''),
      `probability ${bad}`,
    );
  }
});

test('ensemble: the probability is the mean of the members, each member fed the input of its own preprocessing', async () => {
  const a = fakeModel('a', [0.2, 0.9], 32);
  const b = fakeModel('b', [0.4, 0.5], 48);
  const c = fakeModel('c', [0.6, 0.1], 32);
  const ens = new Ensemble([a, b, c]);
  assert.deepEqual(ens.preprocessings.map((p) => p.size), [32, 48], 'two distinct preprocessings');
  assert.deepEqual(ens.inputOf, [0, 1, 0]);
  const res = await predictBatch(ens, [prepared('x/1.png', ens), prepared('x/2.png', ens)]);
  // (0.2 + 0.4 + 0.6) / 3 = 0.4; (0.9 + 0.5 + 0.1) / 3 = 0.5 -> 0.5 is not > 0.5: normal.
  assert.ok(Math.abs(res[0]!.probability - 0.4) < 1e-7);
  assert.ok(Math.abs(res[1]!.probability - 0.5) < 1e-7);
  assert.deepEqual(res.map((r) => r.decision), ['normal', 'normal']);
  assert.equal(res[0]!.model, 'a+b+c');
  assert.equal(res[0]!.modelSha256, 'aaaaaaaa+bbbbbbbb+cccccccc');
  assert.deepEqual(res[1]!.perModel.map((p) => Number(p.toFixed(6))), [0.9, 0.5, 0.1]);
  assert.equal(a.seen[0]!.length, 2 * 32 * 32 * 3);
  assert.equal(b.seen[0]!.length, 2 * 48 * 48 * 3);
});

test('threshold: explicit wins; members that store different thresholds need one; p > t is abnormal', async () => {
  assert.throws(() => new Ensemble([fakeModel('a', [], 32, 0.5), fakeModel('b', [], 32, 0.3)]), (e: unknown) => e instanceof InferenceError && /different decision thresholds \(a: 0.5, b: 0.3\)/.test(e.message));
  const ens = new Ensemble([fakeModel('a', [0.31, 0.25], 32, 0.5), fakeModel('b', [0.31, 0.25], 32, 0.3)], { threshold: 0.3 });
  const res = await predictBatch(ens, [prepared('1.png', ens), prepared('2.png', ens)]);
  assert.deepEqual(res.map((r) => r.decision), ['abnormal', 'normal']);
  assert.equal(new Ensemble([fakeModel('a', [], 32, 0.42)]).threshold, 0.42);
  assert.throws(() => new Ensemble([]), /at least one model/);
});

test('study keys: MURA study folder (label and region from it), else DICOM StudyInstanceUID, else the folder', () => {
  const mura = studyKeyOf('/data/MURA-v1.1/valid/XR_WRIST/patient11185/study2_positive/image3.png', '1.2.3');
  assert.deepEqual(mura, { key: '/data/MURA-v1.1/valid/XR_WRIST/patient11185/study2_positive/', source: 'mura', label: 1, region: 'XR_WRIST' });
  assert.deepEqual(studyKeyOf('scans/a/b.dcm', '1.2.840.99'), { key: '1.2.840.99', source: 'dicom' });
  assert.deepEqual(studyKeyOf('scans/a/b.png'), { key: 'scans/a', source: 'folder' });
  assert.deepEqual(studyKeyOf('b.png'), { key: '.', source: 'folder' });
  // A folder named like a study but not under patient/region is not a MURA study.
  assert.equal(studyKeyOf('x/study1_positive/i.png').source, 'folder');
});

test('study aggregation: mean of the views per study, decision at the threshold, first-seen order', () => {
  const k = (p: string, uid?: string) => studyKeyOf(p, uid);
  const studies = aggregateStudies(
    [
      { image: 's/1.png', probability: 0.2, study: k('s/1.png') },
      { image: 'd1.dcm', probability: 0.9, study: k('d1.dcm', '7.7') },
      { image: 's/2.png', probability: 0.5, study: k('s/2.png') },
      { image: 'd2.dcm', probability: 0.6, study: k('d2.dcm', '7.7') },
      { image: 's/3.png', probability: 0.5, study: k('s/3.png') },
    ],
    0.4,
  );
  assert.deepEqual(
    studies.map((s) => [s.study, s.source, Number(s.probability.toFixed(9)), s.decision, s.views]),
    [
      ['s', 'folder', 0.4, 'normal', 3], // (0.2 + 0.5 + 0.5) / 3 = 0.4, not > 0.4
      ['7.7', 'dicom', 0.75, 'abnormal', 2],
    ],
  );
});

test('the core reaches no Node-only module (what a browser bundle of it would import)', () => {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/test/inference
  const start = resolve(here, '../../src/inference/core/index.js');
  const seen = new Set<string>();
  const bare = new Set<string>();
  const stack = [start];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (spec.startsWith('.')) stack.push(join(dirname(file), spec));
      else bare.add(spec);
    }
  }
  assert.ok(seen.size >= 8, `walked ${seen.size} modules`);
  assert.ok([...seen].some((f) => f.endsWith('data/dicom/reader.js')), 'the DICOM reader is part of the core');
  assert.deepEqual([...bare].sort(), ['@cornerstonejs/jpeg-lossless-decoder-js', 'dicom-parser', 'fflate'], `bare imports of the core: ${[...bare].join(', ')}`);
});

/** A model with a fixed `cam` output (the same h x w map for every image) and probability 0.5. */
function camModel(name: string, map: number[], h: number, w: number, pre = makePreprocessing({ size: 32 })): InferenceModel {
  const card: LoadedCard = { name, source: `${name}.onnx`, sha256: name, arch: 'fake', preprocessing: pre, threshold: 0.5, engine: 'fake', outputs: ['logits', 'probability', 'cam'], metadata: {} };
  return {
    card,
    async run(_x, n) {
      const data = new Float32Array(n * h * w);
      for (let k = 0; k < n; k++) data.set(map, k * h * w);
      return { probabilities: new Float32Array(n).fill(0.5), logits: new Float32Array(n), extra: { cam: { dims: [n, h, w], data } }, seconds: 0 };
    },
    async release() {},
  };
}

test('ensemble heatmap: the mean of the members\' maps, each upsampled and divided by its maximum', async () => {
  // Member a lights the left column, b the bottom-right cell (in other units: max 3). On a 4 x 4 grid, bilinear with
  // half-pixel centres puts weights [0, 0.25, 0.75, 1] on the second cell along each axis (by hand), so
  // a/max = 1 - wx and b/max = wy * wx; their mean has maximum 0.5, hence heatmap = (1 - wx) + wy * wx.
  const a = camModel('a', [1, 0, 1, 0], 2, 2, makePreprocessing({ size: 4 }));
  const b = camModel('b', [0, 0, 0, 3], 2, 2, makePreprocessing({ size: 4 }));
  const wgt = [0, 0.25, 0.75, 1];
  const want = Array.from({ length: 16 }, (_, i) => 1 - wgt[i % 4]! + wgt[Math.floor(i / 4)]! * wgt[i % 4]!);
  for (const members of [[a, b], [b, a]]) {
    const e = new Ensemble(members);
    const res = await predictBatch(e, [prepared('x/1.png', e), prepared('x/2.png', e)], { outputs: ['cam'], onBatch: (r, raw) => applyTrust(r, raw, e) });
    for (const r of res) {
      assert.equal(r.heatmap!.method, 'cam-mean');
      assert.deepEqual([r.heatmap!.width, r.heatmap!.height], [4, 4]);
      assert.deepEqual(Array.from(r.heatmap!.data), want);
    }
  }
  // One model: its own map (camAtInput).
  const one = new Ensemble([b]);
  const [r1] = await predictBatch(one, [prepared('x/1.png', one)], { outputs: ['cam'], onBatch: (r, raw) => applyTrust(r, raw, one) });
  assert.deepEqual(Array.from(r1!.heatmap!.data), Array.from(camAtInput(Float32Array.of(0, 0, 0, 3), 2, 2, 4)));
  assert.equal(r1!.heatmap!.method, 'cam');
});

test('ensemble heatmap: members with other input sizes and resize modes are brought onto the first member\'s grid', async () => {
  // A 20 x 10 image with a bright block at its right end; each member's "map" is that image as its own input grid
  // shows it (letterboxed 32 px, stretched 48 px). Averaged on the first member's grid, the block stays where it was.
  const W = 20;
  const H = 10;
  const img = new Float32Array(W * H);
  for (let y = 2; y < 6; y++) for (let x = 15; x < 19; x++) img[y * W + x] = 1;
  const pa = makePreprocessing({ size: 32 });
  const pb = makePreprocessing({ size: 48, resize: 'stretch' });
  const a = camModel('a', Array.from(resizeToInput(img, W, H, pa)), 32, 32, pa);
  const b = camModel('b', Array.from(resizeToInput(img, W, H, pb)), 48, 48, pb);
  const e = new Ensemble([a, b]);
  const [r] = await predictBatch(e, [prepared('x/1.png', e)], { outputs: ['cam'], onBatch: (rs, raw) => applyTrust(rs, raw, e) });
  const back = camOnImage(r!.heatmap!.data, 32, 32, W, H, pa);
  const [ax, ay] = argmax2d(back, W);
  assert.ok(ax >= 15 && ax < 19 && ay >= 2 && ay < 6, `max at ${ax},${ay}`);
  // The stretched member's map alone, brought onto the letterboxed grid, matches the letterboxed member's map
  // (both show the same image): within the resampling error.
  const mb = normaliseMap(mapToGrid(Float32Array.from(resizeToInput(img, W, H, pb)), 48, 48, W, H, pb, pa));
  const ma = normaliseMap(resizeToInput(img, W, H, pa));
  let worst = 0;
  for (let i = 0; i < ma.length; i++) worst = Math.max(worst, Math.abs(ma[i]! - mb[i]!));
  assert.ok(worst < 0.1, `worst difference ${worst}`);
  // Without the geometry (treating b's map as if letterboxed like a's), the block would land elsewhere.
  const naive = normaliseMap(resizeMap(Float32Array.from(resizeToInput(img, W, H, pb)), 48, 48, 32, 32));
  let worstNaive = 0;
  for (let i = 0; i < ma.length; i++) worstNaive = Math.max(worstNaive, Math.abs(ma[i]! - naive[i]!));
  assert.ok(worstNaive > 0.9, `naive worst difference ${worstNaive}`);
});
