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
import { makePreprocessing } from '../../src/data/preprocess.js';
import {
  aggregateStudies,
  Ensemble,
  InferenceError,
  predictBatch,
  preprocessAll,
  studyKeyOf,
  type InferenceModel,
  type ModelCard,
  type PreparedImage,
} from '../../src/inference/core/index.js';

/** A model that answers fixed probabilities per image, and records the inputs it saw. */
function fakeModel(name: string, probs: number[], size = 32, threshold = 0.5): InferenceModel & { seen: Float32Array[] } {
  const card: ModelCard = {
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
  assert.ok([...seen].some((f) => f.endsWith('data/dicom.js')), 'the DICOM reader is part of the core');
  assert.deepEqual([...bare].sort(), ['dicom-parser', 'fflate'], `bare imports of the core: ${[...bare].join(', ')}`);
});
