/**
 * The facade of the browser-safe core, `load(spec)` -> `model.predict(views)`, over stand-in models whose
 * probabilities, OOD scores and maps are fixed by hand, so every expected number below is arithmetic on them:
 *   - views: calibrated probability as the model gives it, decision p > t, a view the gate rejects gets no decision;
 *   - studies: the mean of the views the gate accepted (rejected ones listed in `excluded`), no decision when all
 *     were rejected; DICOM views of one StudyInstanceUID but different PatientIDs are two studies, with the patient
 *     and study identifiers of their headers; PNG views make 'unidentified study';
 *   - view identity from the DICOM header (SOPInstanceUID, ViewPosition, Laterality, BodyPartExamined);
 *   - unreadable inputs are reported and skipped; inputs that are not views throw; heatmaps need a `cam` output.
 * Stub check: the pre-facade study rule (aggregateStudies: every view in the mean, one study per StudyInstanceUID)
 * gives 0.5333 for folder p1 and one DICOM study, and fails the study assertions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePreprocessing } from '../../../src/data/preprocess.js';
import { load, ViewInputError, type ViewInput } from '../../../src/inference/core/load.js';
import { aggregateStudies, studyKeyOf } from '../../../src/inference/core/study.js';
import { InferenceError, type InferenceModel, type LoadedCard } from '../../../src/inference/core/model.js';
import { writeDicom } from '../../helpers/dicom-writer.js';

const OOD_THRESHOLD = 10;

/** A model answering fixed probabilities and OOD scores per image name (and a fixed 2x2 map when it has `cam`). */
function standIn(
  table: Record<string, { p: number; score: number }>,
  byLevel: ReadonlyMap<number, string>,
  opts: { cam?: boolean; threshold?: number } = {},
): InferenceModel & { order: string[] } {
  const card: LoadedCard = {
    name: 'fake',
    source: 'fake.onnx',
    sha256: 'f'.repeat(64),
    arch: 'fake',
    preprocessing: makePreprocessing({ size: 32 }),
    threshold: opts.threshold ?? 0.5,
    engine: 'fake',
    outputs: ['logits', 'probability', 'ood_score', ...(opts.cam ? ['cam'] : [])],
    metadata: { ood: JSON.stringify({ method: 'mahalanobis', threshold: OOD_THRESHOLD }) },
  };
  const order: string[] = [];
  // The stand-in tells images apart by the input value at the grid's centre (each test view is a flat grey of its
  // own level; the letterbox bars are at the edges).
  return {
    card,
    order,
    async run(x, n, o = {}) {
      const per = 32 * 32 * 3;
      const centre = (16 * 32 + 16) * 3;
      const names = Array.from({ length: n }, (_, k) => byLevel.get(Math.round(x[k * per + centre]! * 1000)) ?? '?');
      order.push(...names);
      const p = Float32Array.from(names, (nm) => table[nm]!.p);
      const extra: Record<string, { dims: number[]; data: Float32Array }> = {};
      if (o.outputs?.includes('ood_score')) extra.ood_score = { dims: [n, 1], data: Float32Array.from(names, (nm) => table[nm]!.score) };
      if (o.outputs?.includes('cam')) extra.cam = { dims: [n, 2, 2], data: Float32Array.from({ length: n * 4 }, (_, i) => [0, 1, 2, 4][i % 4]!) };
      return { probabilities: p, logits: p.map((v) => Math.log(v / (1 - v))), extra, seconds: 0.001 };
    },
    async release() {},
  };
}

/** Flat grey views whose levels tell them apart (the stand-in reads the normalised input value at the centre). */
function flatViews(names: string[]): { views: ViewInput[]; levels: Map<number, string> } {
  const pre = makePreprocessing({ size: 32 });
  const levels = new Map<number, string>();
  const views = names.map((name, i) => {
    const g = 0.1 + 0.05 * i;
    levels.set(Math.round(((g - pre.mean[0]!) / pre.std[0]!) * 1000), name);
    return { name, grey: new Float32Array(20 * 10).fill(g), width: 20, height: 10, format: 'png', warnings: [] };
  });
  return { views, levels };
}

test('views: calibrated probability, decision p > t, no decision for a view the OOD gate rejects', async () => {
  const table = { 'p1/a.png': { p: 0.8, score: 5 }, 'p1/b.png': { p: 0.2, score: 50 }, 'p1/c.png': { p: 0.6, score: 1 }, 'p2/d.png': { p: 0.9, score: 99 } };
  const { views, levels } = flatViews(Object.keys(table));
  const m = standIn(table, levels);
  const model = await load(m);
  assert.equal(model.hasOodGate, true);
  assert.equal(model.threshold, 0.5);
  assert.equal(model.thresholdSource, 'model');
  const r = await model.predict(views, { batchSize: 3 });
  assert.deepEqual(m.order, Object.keys(table), 'every view once, in order');
  assert.deepEqual(
    r.views.map((v) => [v.view.name, Number(v.probability.toFixed(6)), v.decision, v.ood]),
    [
      ['p1/a.png', 0.8, 'abnormal', { flagged: false, score: 5, threshold: 10 }],
      ['p1/b.png', 0.2, null, { flagged: true, score: 50, threshold: 10 }],
      ['p1/c.png', 0.6, 'abnormal', { flagged: false, score: 1, threshold: 10 }],
      ['p2/d.png', 0.9, null, { flagged: true, score: 99, threshold: 10 }],
    ],
  );
  // Studies: folder p1 = mean of a and c = (0.8 + 0.6) / 2 = 0.7 (b left out); p2 had only a rejected view.
  assert.equal(r.studies.length, 2);
  const [p1, p2] = r.studies;
  assert.equal(p1!.studyKey, 'p1');
  assert.ok(Math.abs(p1!.probability! - 0.7) < 1e-6, String(p1!.probability));
  assert.equal(p1!.decision, 'abnormal');
  assert.deepEqual(p1!.views, ['p1/a.png', 'p1/c.png']);
  assert.deepEqual(p1!.excluded, [{ view: 'p1/b.png', reason: 'out-of-distribution' }]);
  assert.equal(p1!.patient, 'unidentified study');
  assert.deepEqual([p2!.studyKey, p2!.probability, p2!.decision, p2!.views, p2!.excluded.length], ['p2', null, null, [], 1]);
  // The pre-facade rule keeps the rejected view in the mean: (0.8 + 0.2 + 0.6) / 3 = 0.5333, not 0.7.
  const old = aggregateStudies(r.views.map((v) => ({ image: v.view.name, probability: v.probability, study: studyKeyOf(v.view.name) })), 0.5);
  assert.ok(Math.abs(old[0]!.probability - 0.5333333) < 1e-6);
  // A threshold given at load wins over the stored one.
  const strict = await load(standIn(table, levels), { threshold: 0.75 });
  assert.equal(strict.thresholdSource, 'option');
  await strict.release();
  await model.release();
  await assert.rejects(model.predict(views), InferenceError, 'a released model refuses');
});

test('DICOM views: identity from the header; one StudyInstanceUID but two PatientIDs are two studies', async () => {
  const dicom = (patient: string, extra: { name?: string; view?: string; side?: string; part?: string; date?: string; acc?: string }, level: number): Uint8Array =>
    writeDicom({
      rows: 10,
      columns: 20,
      bitsAllocated: 8,
      pixels: new Array(200).fill(level),
      studyUid: '1.2.826.0.1.3680043.9.7.99',
      extra: [
        { group: 0x0010, element: 0x0020, vr: 'LO', value: patient },
        ...(extra.name ? [{ group: 0x0010, element: 0x0010, vr: 'PN' as const, value: extra.name }] : []),
        ...(extra.date ? [{ group: 0x0008, element: 0x0020, vr: 'DA' as const, value: extra.date }] : []),
        ...(extra.acc ? [{ group: 0x0008, element: 0x0050, vr: 'SH' as const, value: extra.acc }] : []),
        ...(extra.view ? [{ group: 0x0018, element: 0x5101, vr: 'CS' as const, value: extra.view }] : []),
        ...(extra.side ? [{ group: 0x0020, element: 0x0062, vr: 'CS' as const, value: extra.side }] : []),
        ...(extra.part ? [{ group: 0x0018, element: 0x0015, vr: 'CS' as const, value: extra.part }] : []),
      ],
    });
  const pre = makePreprocessing({ size: 32 });
  // 8-bit MONOCHROME2 without a window: grey = value / 255 (PS3.3 C.11 identity for the full range).
  const levelOf = (v: number): number => Math.round(((v / 255 - pre.mean[0]!) / pre.std[0]!) * 1000);
  const inputs: ViewInput[] = [
    { name: 'in/1.dcm', bytes: dicom('A', { name: 'Doe^Jane', view: 'PA', side: 'L', part: 'WRIST', date: '20240102', acc: 'ACC1' }, 40) },
    { name: 'in/2.dcm', bytes: dicom('B', { name: 'Roe^John' }, 80) },
    { name: 'in/3.dcm', bytes: dicom('A', { view: 'LL' }, 120) },
  ];
  const m = standIn(
    { 'in/1.dcm': { p: 0.3, score: 0 }, 'in/2.dcm': { p: 0.7, score: 0 }, 'in/3.dcm': { p: 0.5, score: 0 } },
    new Map([
      [levelOf(40), 'in/1.dcm'],
      [levelOf(80), 'in/2.dcm'],
      [levelOf(120), 'in/3.dcm'],
    ]),
  );
  const model = await load(m);
  const r = await model.predict(inputs);
  assert.deepEqual(r.unreadable, []);
  assert.deepEqual(r.views[0]!.view, { name: 'in/1.dcm', sopInstanceUid: '1.2.826.0.1.3680043.9.7.1.1', viewPosition: 'PA', laterality: 'L', bodyPartExamined: 'WRIST' });
  assert.equal(r.views[0]!.format, 'dicom');
  assert.equal(r.studies.length, 2, 'patients A and B are not merged');
  const [a, b] = r.studies;
  assert.equal(a!.studyKey, '1.2.826.0.1.3680043.9.7.99');
  assert.equal(a!.source, 'dicom');
  assert.deepEqual(a!.views, ['in/1.dcm', 'in/3.dcm']);
  assert.ok(Math.abs(a!.probability! - 0.4) < 1e-6, '(0.3 + 0.5) / 2');
  assert.equal(a!.decision, 'normal');
  assert.deepEqual(a!.patient, { patientId: 'A', patientName: 'Doe^Jane', studyInstanceUid: '1.2.826.0.1.3680043.9.7.99', studyDate: '20240102', accessionNumber: 'ACC1' });
  assert.deepEqual(b!.views, ['in/2.dcm']);
  assert.deepEqual(b!.patient, { patientId: 'B', patientName: 'Roe^John', studyInstanceUid: '1.2.826.0.1.3680043.9.7.99' });
  assert.equal(b!.decision, 'abnormal');
  await model.release();
});

test('unreadable inputs are reported and skipped; non-views throw; heatmaps need a cam output', async () => {
  const table = { 'ok.png': { p: 0.4, score: 0 } };
  const { views, levels } = flatViews(['ok.png']);
  const m = standIn(table, levels, { cam: true });
  const problem = Object.assign(new Error('x.png: not an image'), { problem: 'not an image (unknown format)' });
  const model = await load(m, { decodeImage: async () => Promise.reject(problem) });
  const r = await model.predict([{ name: 'x.png', bytes: new Uint8Array([1, 2, 3]) }, ...views], { heatmaps: true });
  assert.deepEqual(r.unreadable, [{ input: 'x.png', problem: 'not an image (unknown format)' }]);
  assert.equal(r.views.length, 1);
  // The map [[0, 1], [2, 4]] over the input grid, divided by its maximum 4; the raw map comes along as given.
  const h = r.views[0]!.heatmap!;
  assert.deepEqual([h.width, h.height, h.method], [32, 32, 'cam']);
  assert.deepEqual([...h.coarse!.data], [0, 1, 2, 4]);
  assert.equal(Math.max(...h.data), 1);
  await assert.rejects(model.predict([{ name: 'y', bytes: 'no' as unknown as Uint8Array }]), ViewInputError);
  await assert.rejects(model.predict('x' as unknown as ViewInput[]), ViewInputError);
  await model.release();
  const noCam = await load(standIn(table, levels));
  await assert.rejects(noCam.predict(views, { heatmaps: true }), (e: unknown) => e instanceof InferenceError && /no 'cam' output/.test((e as Error).message));
  await noCam.release();
});
