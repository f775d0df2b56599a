/**
 * The facade in Node (src/inference/node/load.ts) on a real exported model (resnet-slim, 64 px, CAM output and a
 * fitted OOD gate): each view's probability equals onnxruntime-node's own output on the library's preprocessing of
 * the file (OnnxClassifier directly, no facade in between) — for a path, a folder, the file's bytes and a decoded
 * view alike; the gate's score equals the graph's `ood_score`; a colour photograph is rejected and left out of its
 * folder's study; missing paths are reported and the rest go on; an ensemble of paths averages its members.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { preprocessImage } from '../../../src/data/images.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { load } from '../../../src/inference/node/load.js';
import { tempDir } from '../../helpers/paths.js';
import { writeImages, writeTinyModel } from '../../serve/fixture.js';

const tmp = tempDir('nextray-node-load-');
after(() => tmp.cleanup());

/** onnxruntime-node's probability and OOD score for a file, through the library's preprocessing only. */
async function direct(modelPath: string, file: string): Promise<{ p: number; score: number }> {
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  try {
    const r = await clf.run(await preprocessImage(file, clf.info.preprocessing), 1);
    return { p: r.probabilities[0]!, score: r.oodScores?.[0] ?? NaN };
  } finally {
    await clf.release();
  }
}

test('paths, folders, bytes and decoded views all give onnxruntime-node probability; the gate rejects a photograph', async () => {
  const images = await writeImages(tmp.dir);
  const modelPath = await writeTinyModel(tmp.dir, { fitOod: true, name: 'gated.onnx' });
  const folder = join(tmp.dir, 'study');
  mkdirSync(folder);
  copyFileSync(images.png1, join(folder, 'a.png'));
  copyFileSync(images.png2, join(folder, 'b.png'));
  copyFileSync(images.photo, join(folder, 'c.jpg'));
  const want = {
    a: await direct(modelPath, images.png1),
    b: await direct(modelPath, images.png2),
    c: await direct(modelPath, images.photo),
  };
  const model = await load(modelPath, { threads: 1 });
  try {
    assert.equal(model.hasOodGate, true);
    const seen: string[] = [];
    const r = await model.predict([folder, join(tmp.dir, 'missing.png')], { workers: 0, onUnreadable: (u) => seen.push(u.input) });
    assert.deepEqual(seen, [join(tmp.dir, 'missing.png')]);
    assert.deepEqual(r.unreadable, [{ input: join(tmp.dir, 'missing.png'), problem: 'file not found' }]);
    assert.deepEqual(r.views.map((v) => v.view.name), ['a.png', 'b.png', 'c.jpg'].map((f) => `${folder}/${f}`));
    const [a, b, c] = r.views;
    for (const [v, w] of [[a, want.a], [b, want.b], [c, want.c]] as const) {
      assert.ok(Math.abs(v!.probability - w.p) <= 1e-6, `${v!.view.name}: ${v!.probability} vs ${w.p}`);
      assert.ok(Math.abs(v!.ood!.score - w.score) <= 1e-3 * Math.max(1, w.score), `${v!.view.name}: score ${v!.ood!.score} vs ${w.score}`);
    }
    assert.equal(c!.ood!.flagged, true, 'the colour photograph is out of distribution');
    assert.equal(c!.decision, null);
    assert.equal(a!.ood!.flagged, false);
    // One folder, one study: the mean of the two radiographs, the photograph left out.
    assert.equal(r.studies.length, 1);
    const s = r.studies[0]!;
    assert.deepEqual(s.views, [a!.view.name, b!.view.name]);
    assert.deepEqual(s.excluded, [{ view: c!.view.name, reason: 'out-of-distribution' }]);
    assert.ok(Math.abs(s.probability! - (want.a.p + want.b.p) / 2) <= 1e-6);
    assert.equal(s.patient, 'unidentified study');
    // The same file as bytes and as decoded pixels (model.decode): the same probability.
    const bytes = new Uint8Array(readFileSync(images.png1));
    const decoded = await model.decode({ name: 'x.png', bytes });
    const r2 = await model.predict([{ name: 'x.png', bytes }, { ...decoded, name: 'y.png' }], { heatmaps: true });
    for (const v of r2.views) {
      assert.ok(Math.abs(v.probability - want.a.p) <= 1e-6, `${v.view.name}: ${v.probability} vs ${want.a.p}`);
      assert.equal(v.heatmap?.width, 64);
    }
  } finally {
    await model.release();
  }
});

test('an ensemble of two paths averages its members', async () => {
  mkdirSync(join(tmp.dir, 'ens'));
  const images = await writeImages(join(tmp.dir, 'ens'));
  const one = await writeTinyModel(tmp.dir, { seed: 1, name: 'one.onnx' });
  const two = await writeTinyModel(tmp.dir, { seed: 2, name: 'two.onnx' });
  const p1 = (await direct(one, images.png1)).p;
  const p2 = (await direct(two, images.png1)).p;
  const model = await load([one, two], { threads: 1 });
  try {
    assert.equal(model.name, 'one+two');
    const r = await model.predict([images.png1], { workers: 0 });
    assert.ok(Math.abs(r.views[0]!.probability - (p1 + p2) / 2) <= 1e-6);
    assert.deepEqual(r.views[0]!.perModel.map((p) => Number(p.toFixed(6))), [Number(p1.toFixed(6)), Number(p2.toFixed(6))]);
  } finally {
    await model.release();
  }
});
