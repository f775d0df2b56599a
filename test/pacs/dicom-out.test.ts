/**
 * `nextray predict --dicom-out DIR` end to end through the real CLI: one SR for the DICOM study (the CT instance
 * of the same study refused by the header gate and listed as left out; the PNG's folder study gets a note, no SR),
 * the CSV's DICOM columns, dciodvfy finds no error in the file, pydicom reads the same probabilities as the CSV, and
 * a second run replaces the file rather than adding one.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine } from '../../src/engine/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { createModel, type Model } from '../../src/models/index.js';
import { exportOnnx } from '../../src/models/onnx/export.js';
import { saveOnnx } from '../../src/models/onnx/files.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { writeDicom, type DicomElement } from '../helpers/dicom-writer.js';
import { pydicomPython, tool, toolsSkip } from '../helpers/dicom-tools.js';

const tmp = tempDir('nextray-dicom-out-');
const d = (...p: string[]) => join(tmp.dir, ...p);
const STUDY = '1.2.826.0.1.3680043.9.7.501';
let model: Model;

const ui = (element: number, value: string, group = 0x0008): DicomElement => ({ group, element, vr: 'UI', value });
const cs = (group: number, element: number, value: string): DicomElement => ({ group, element, vr: 'CS', value });

before(async () => {
  await initEngine('cpu');
  model = createModel('resnet-slim', { head: 'binary', seed: 3 });
  saveOnnx(d('m.onnx'), exportOnnx(model, { inputSize: 32, preprocessing: makePreprocessing({ size: 32 }), decisionThreshold: 0.5 }));
  const px = (k: number) => Array.from({ length: 40 * 30 }, (_, i) => (i * (7 + k) + k * 31) % 256);
  const view = (name: string, sop: string, modality: string, viewPos: string, lat: string, k: number) =>
    writeFileSync(
      d(name),
      writeDicom({
        rows: 30,
        columns: 40,
        bitsAllocated: 8,
        pixels: px(k),
        studyUid: STUDY,
        extra: [ui(0x0018, sop), ui(0x000e, `${STUDY}.${k}`, 0x0020), cs(0x0008, 0x0060, modality), cs(0x0018, 0x5101, viewPos), cs(0x0020, 0x0062, lat), cs(0x0018, 0x0015, 'WRIST'), { group: 0x0010, element: 0x0010, vr: 'PN', value: 'Roe^Rick' }],
      }),
    );
  view('pa.dcm', `${STUDY}.1.1`, 'DX', 'PA', 'L', 1);
  view('lat.dcm', `${STUDY}.1.2`, 'DX', 'LL', 'L', 2);
  view('ct.dcm', `${STUDY}.9.1`, 'CT', '', '', 3);
  await sharp(Buffer.from(px(4)), { raw: { width: 40, height: 30, channels: 1 } }).png().toFile(d('photo.png'));
});
after(() => {
  model?.dispose();
  tmp.cleanup();
});

test('predict --dicom-out writes one SR per DICOM study, valid for dciodvfy, read back by pydicom, replaced on a re-run', { skip: toolsSkip(['dciodvfy', 'pydicom']) }, () => {
  const args = ['predict', '--model', d('m.onnx'), d('pa.dcm'), d('lat.dcm'), d('ct.dcm'), d('photo.png'), '--dicom-out', d('sr'), '--out', d('p.csv'), '--workers', '0'];
  const r = runCli(args);
  assert.equal(r.code, 1, 'the CT file is refused, so exit 1: ' + r.stderr);
  assert.match(r.stderr, /ct\.dcm: Modality CT \(Computed Tomography\) is not a radiograph/);
  assert.match(r.stderr, /note: study .*: no DICOM input with a Study Instance UID, so no SR/);
  assert.match(r.stdout, /wrote 1 DICOM SR\(s\) to /);
  const csv = readFileSync(d('p.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
  const head = csv[0]!;
  const col = (row: string[], name: string) => row[head.indexOf(name)]!;
  assert.deepEqual(head.slice(-5), ['view_position', 'laterality', 'image_laterality', 'body_part', 'sop_instance_uid']);
  const pa = csv.find((row) => row[0] === d('pa.dcm'))!;
  assert.deepEqual([col(pa, 'view_position'), col(pa, 'image_laterality'), col(pa, 'body_part'), col(pa, 'sop_instance_uid')], ['PA', 'L', 'WRIST', `${STUDY}.1.1`]);
  assert.equal(col(csv.find((row) => row[0] === d('photo.png'))!, 'view_position'), '');
  const files = readdirSync(d('sr'));
  assert.equal(files.length, 1);
  const file = d('sr', files[0]!);
  let report = '';
  try {
    report = tool('dciodvfy', [file]);
  } catch (err) {
    report = (err as Error).message;
  }
  assert.deepEqual(report.split('\n').filter((l) => /^Error/.test(l)), []);
  const py = `import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
out = []
def walk(items):
    for it in items:
        if it.ValueType == 'NUM' and it.ConceptNameCodeSequence[0].CodeValue == 'PABN': out.append(float(it.MeasuredValueSequence[0].NumericValue))
        if it.ValueType == 'TEXT' and it.ConceptNameCodeSequence[0].CodeValue == 'LEFTOUT': out.append(str(it.TextValue))
        if 'ContentSequence' in it: walk(it.ContentSequence)
walk(ds.ContentSequence)
print(json.dumps(dict(study=str(ds.StudyInstanceUID), patient=str(ds.PatientName), values=out)))`;
  writeFileSync(d('read.py'), py);
  const got = JSON.parse(tool(pydicomPython()!, [d('read.py'), file])) as { study: string; patient: string; values: Array<number | string> };
  assert.equal(got.study, STUDY);
  assert.equal(got.patient, 'Roe^Rick');
  const p1 = Number(col(pa, 'probability'));
  const p2 = Number(col(csv.find((row) => row[0] === d('lat.dcm'))!, 'probability'));
  const nums = got.values.filter((v): v is number => typeof v === 'number');
  assert.ok(Math.abs(nums[0]! - p1) < 1e-6 && Math.abs(nums[1]! - p2) < 1e-6, `${nums} vs ${p1}, ${p2}`);
  assert.ok(Math.abs(nums[2]! - (p1 + p2) / 2) < 1e-6, 'the study probability is the mean of the views');
  assert.ok(got.values.some((v) => typeof v === 'string' && v.startsWith(`${d('ct.dcm')}: Modality CT`)), 'the refused CT instance is listed as left out');
  // Again: the same file name (the same SOP Instance UID), replaced, not a second report.
  const before = readFileSync(file);
  assert.equal(runCli(args).code, 1);
  assert.deepEqual(readdirSync(d('sr')), files);
  assert.equal(readFileSync(file).length, before.length);
});
