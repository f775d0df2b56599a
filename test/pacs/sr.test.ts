/**
 * The study SR against independent checkers: dicom3tools' dciodvfy (IOD and module rules: no error; its only
 * warnings are the private coding scheme's, explained in docs/dicom.md), dcmtk's dsrdump (renders the content tree)
 * and pydicom (reads it back; the values walked out of the tree equal what was put in). A data set missing a
 * required attribute fails dciodvfy (the stub check). UIDs: derived, stable across runs, distinct per model.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDicomHeader } from '../../src/data/dicom/index.js';
import { buildStudySr, COMPREHENSIVE_SR, resultUids, studySrDataSet, tag, writeSrFile, type StudySrInput } from '../../src/pacs/index.js';
import { tempDir } from '../helpers/paths.js';
import { writeDicom } from '../helpers/dicom-writer.js';
import { pydicomPython, tool, toolsSkip } from '../helpers/dicom-tools.js';

const tmp = tempDir('nextray-sr-');
after(() => tmp.cleanup());

const STUDY = '1.2.826.0.1.3680043.9.7.77';
/** A source radiograph's header, read by our reader from a file written byte by byte. */
function sourceHeader() {
  const s = (group: number, element: number, vr: 'PN' | 'LO' | 'DA' | 'TM' | 'SH' | 'CS', value: string) => ({ group, element, vr, value });
  return readDicomHeader(
    writeDicom({
      rows: 2,
      columns: 2,
      bitsAllocated: 8,
      pixels: [0, 1, 2, 3],
      studyUid: STUDY,
      extra: [
        s(0x0010, 0x0010, 'PN', 'Doe^Jane'),
        s(0x0010, 0x0020, 'LO', 'PAT-7'),
        s(0x0010, 0x0030, 'DA', '19700102'),
        s(0x0010, 0x0040, 'CS', 'F'),
        s(0x0008, 0x0020, 'DA', '20250304'),
        s(0x0008, 0x0030, 'TM', '101112'),
        s(0x0008, 0x0050, 'SH', 'ACC42'),
        s(0x0008, 0x0060, 'CS', 'DX'),
      ],
    }),
  );
}

function input(overrides: Partial<StudySrInput> = {}): StudySrInput {
  return {
    source: sourceHeader(),
    views: [
      { sopClassUid: '1.2.840.10008.5.1.4.1.1.1.1', sopInstanceUid: `${STUDY}.1.1`, seriesInstanceUid: `${STUDY}.1`, name: 'wrist/pa.dcm', viewPosition: 'PA', laterality: 'R', probability: 0.875, decision: 'abnormal', threshold: 0.42, ood: false, oodScore: 3.25 },
      { sopClassUid: '1.2.840.10008.5.1.4.1.1.1', sopInstanceUid: `${STUDY}.2.1`, seriesInstanceUid: `${STUDY}.2`, name: 'wrist/lat.dcm', probability: 0.125, decision: 'normal', threshold: 0.42, ood: true, oodScore: 99.5 },
    ],
    leftOut: [{ name: 'wrist/ct.dcm', reason: 'Modality CT is not a radiograph' }],
    model: { name: 'demo', sha256: 'c0ffee'.padEnd(64, '1'), operatingPoint: 'threshold 0.42 (fitted operating point, stored with the model)' },
    softwareVersion: '0.1.0',
    now: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    ...overrides,
  };
}

/** dciodvfy's Error and Warning lines. */
function dciodvfy(file: string): { errors: string[]; warnings: string[] } {
  let out: string;
  try {
    out = tool('dciodvfy', [file]);
  } catch (err) {
    out = (err as Error).message; // dciodvfy exits non-zero on errors; its report is on stderr
  }
  const lines = out.split('\n');
  return { errors: lines.filter((l) => /^Error/.test(l)), warnings: lines.filter((l) => /^Warning/.test(l)) };
}

test('the study SR passes dciodvfy with no error; its only warnings are the private coding scheme', { skip: toolsSkip(['dciodvfy']) }, async () => {
  const sr = await buildStudySr(input());
  const file = join(tmp.dir, 'sr.dcm');
  writeFileSync(file, sr.bytes);
  const { errors, warnings } = dciodvfy(file);
  assert.deepEqual(errors, []);
  assert.ok(warnings.every((w) => /Unrecognized defined term <99NEXTRAY> for value 1 of attribute <Coding Scheme Designator>/.test(w)), warnings.join('\n'));
});

test('stub check: the SR without Completion Flag or without the Study Instance UID fails dciodvfy', { skip: toolsSkip(['dciodvfy']) }, async () => {
  const { dataSet, sopInstanceUid } = await studySrDataSet(input());
  for (const drop of [tag(0x0040, 0xa491), tag(0x0020, 0x000d)]) {
    const file = join(tmp.dir, `stub-${drop.toString(16)}.dcm`);
    writeFileSync(file, writeSrFile(dataSet.filter((e) => e.tag !== drop), sopInstanceUid, '0.1.0'));
    assert.ok(dciodvfy(file).errors.length > 0, `dciodvfy finds an error without (${drop.toString(16)})`);
  }
});

test("dcmtk's dsrdump renders the content tree: probabilities, findings, OOD verdicts, the study result and the notice", { skip: toolsSkip(['dsrdump']) }, async () => {
  const file = join(tmp.dir, 'sr-dump.dcm');
  writeFileSync(file, (await buildStudySr(input())).bytes);
  const out = tool('dsrdump', ['+Pl', '+Pc', file]);
  assert.match(out, /Comprehensive SR Document/);
  assert.match(out, /Doe\^Jane/);
  assert.match(out, /<CONTAINER:\(126000,DCM,"Imaging Measurement Report"\)=SEPARATE>/);
  assert.match(out, /<contains NUM:\(PABN,99NEXTRAY,"Probability of abnormality"\)="0\.875" \(1,UCUM,"no units"\)>/);
  assert.match(out, /<contains CODE:\(121071,DCM,"Finding"\)=\(263654008,SCT,"Abnormal"\)>/);
  // The view the OOD gate rejected keeps its numbers but has no finding: the only "Normal" would be its own.
  assert.doesNotMatch(out, /<contains CODE:\(121071,DCM,"Finding"\)=\(17621005,SCT,"Normal"\)>/);
  assert.match(out, /<contains CODE:\(OOD,99NEXTRAY,"Out of distribution"\)=\(373066001,SCT,"Yes"\)>/);
  assert.match(out, /<contains NUM:\(PABN,99NEXTRAY,"Probability of abnormality"\)="0\.125" \(1,UCUM,"no units"\)>/);
  // The study's probability counts only the accepted view (0.875), not the mean with the rejected one (0.5).
  assert.doesNotMatch(out, /"Probability of abnormality"\)="0\.5"/);
  assert.match(out, /<contains NUM:\(VIEWS,99NEXTRAY,"Views counted"\)="1"/);
  assert.match(out, /View left out"\)="wrist\/lat\.dcm: rejected by the out-of-distribution gate/);
  assert.match(out, /View left out"\)="wrist\/ct\.dcm: Modality CT is not a radiograph"/);
  assert.match(out, /Research use only/);
  assert.match(out, /sha256:c0ffee1111/);
});

const READ_PY = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
def walk(items, out):
    for it in items:
        name = it.ConceptNameCodeSequence[0].CodeMeaning if 'ConceptNameCodeSequence' in it else ''
        vt = it.ValueType
        if vt == 'NUM': out.append([name, float(it.MeasuredValueSequence[0].NumericValue)])
        elif vt == 'CODE': out.append([name, it.ConceptCodeSequence[0].CodeMeaning])
        elif vt == 'TEXT': out.append([name, str(it.TextValue)])
        elif vt == 'UIDREF': out.append([name, str(it.UID)])
        elif vt == 'IMAGE': out.append(['IMAGE', str(it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)])
        if 'ContentSequence' in it: walk(it.ContentSequence, out)
items = []
walk(ds.ContentSequence, items)
ev = [str(s.ReferencedSOPInstanceUID) for e in ds.CurrentRequestedProcedureEvidenceSequence for r in e.ReferencedSeriesSequence for s in r.ReferencedSOPSequence]
print(json.dumps(dict(sop_class=str(ds.SOPClassUID), sop=str(ds.SOPInstanceUID), study=str(ds.StudyInstanceUID), series=str(ds.SeriesInstanceUID),
  modality=ds.Modality, patient=str(ds.PatientName), patient_id=ds.PatientID, accession=ds.AccessionNumber, study_date=ds.StudyDate,
  ts=str(ds.file_meta.TransferSyntaxUID), evidence=ev, items=items)))
`;

test('pydicom reads the SR back: patient and study copied, new series, evidence and content values as given', { skip: toolsSkip(['pydicom']) }, async () => {
  const inp = input();
  const sr = await buildStudySr(inp);
  const file = join(tmp.dir, 'sr-py.dcm');
  writeFileSync(file, sr.bytes);
  const script = join(tmp.dir, 'read.py');
  writeFileSync(script, READ_PY);
  const got = JSON.parse(tool(pydicomPython()!, [script, file])) as { sop_class: string; sop: string; study: string; series: string; modality: string; patient: string; patient_id: string; accession: string; study_date: string; ts: string; evidence: string[]; items: Array<[string, string | number]> };
  assert.equal(got.sop_class, COMPREHENSIVE_SR);
  assert.equal(got.study, STUDY);
  assert.equal(got.sop, sr.sopInstanceUid);
  assert.equal(got.series, sr.seriesInstanceUid);
  assert.notEqual(got.series, `${STUDY}.1`);
  assert.deepEqual([got.modality, got.patient, got.patient_id, got.accession, got.study_date, got.ts], ['SR', 'Doe^Jane', 'PAT-7', 'ACC42', '20250304', '1.2.840.10008.1.2.1']);
  assert.deepEqual(got.evidence, [`${STUDY}.1.1`, `${STUDY}.2.1`]);
  const values = (name: string) => got.items.filter(([n]) => n === name).map(([, v]) => v);
  assert.deepEqual(values('Probability of abnormality'), [0.875, 0.125, 0.875]);
  assert.deepEqual(values('Decision threshold'), [0.42, 0.42, 0.42]);
  assert.deepEqual(values('Finding'), ['Abnormal', 'Abnormal']);
  assert.deepEqual(values('Views counted'), [1]);
  assert.deepEqual(values('Out of distribution'), ['No', 'Yes']);
  assert.deepEqual(values('Out-of-distribution score'), [3.25, 99.5]);
  assert.deepEqual(values('Tracking Unique Identifier'), [`${STUDY}.1.1`, `${STUDY}.2.1`]);
  assert.deepEqual(values('View Position'), ['PA']);
  assert.deepEqual(values('Laterality'), ['Right']);
  assert.deepEqual(values('Algorithm Name'), ['demo']);
  assert.deepEqual(values('Algorithm Version'), [`sha256:${inp.model.sha256}`]);
  assert.deepEqual(values('Algorithm Parameters'), [inp.model.operatingPoint]);
  assert.match(String(values('Comment')[0]), /^Research use only\. Not a medical device/);
});

test('result UIDs: a function of (study, model SHA-256) only, under 2.25, valid UIDs', async () => {
  const a = await resultUids(STUDY, 'a'.repeat(64));
  assert.deepEqual(await resultUids(STUDY, 'a'.repeat(64)), a, 'the same study and model give the same UIDs (a re-run replaces)');
  const b = await resultUids(STUDY, 'b'.repeat(64));
  const c = await resultUids(`${STUDY}.9`, 'a'.repeat(64));
  const all = [a.sopInstanceUid, a.seriesInstanceUid, b.sopInstanceUid, b.seriesInstanceUid, c.sopInstanceUid, c.seriesInstanceUid];
  assert.equal(new Set(all).size, 6, 'another model or another study gives other UIDs');
  for (const u of all) {
    assert.match(u, /^2\.25\.[1-9]\d*$/);
    assert.ok(u.length <= 64, u);
    // The integer is a 128-bit UUID of version 8 and the RFC 9562 variant.
    const hex = BigInt(u.slice(5)).toString(16).padStart(32, '0');
    assert.equal(hex[12], '8');
    assert.ok(['8', '9', 'a', 'b'].includes(hex[16]!));
  }
  const first = await buildStudySr(input({ now: new Date(Date.UTC(2026, 0, 1)) }));
  const again = await buildStudySr(input({ now: new Date(Date.UTC(2026, 5, 1)) }));
  assert.equal(first.sopInstanceUid, again.sopInstanceUid);
});

test('a source without a Study Instance UID, or no views, is refused', async () => {
  const h = sourceHeader();
  delete h.studyInstanceUid;
  await assert.rejects(buildStudySr(input({ source: h })), /no Study Instance UID/);
  await assert.rejects(buildStudySr(input({ views: [] })), /no predicted view/);
});

test('every view rejected by the OOD gate: the study result has no probability and no finding, and says why', { skip: toolsSkip(['pydicom', 'dciodvfy']) }, async () => {
  const views = input().views.map((v) => ({ ...v, ood: true }));
  const sr = await buildStudySr(input({ views }));
  const file = join(tmp.dir, 'sr-all-ood.dcm');
  writeFileSync(file, sr.bytes);
  assert.deepEqual(dciodvfy(file).errors, []);
  const script = join(tmp.dir, 'read-all-ood.py');
  writeFileSync(script, READ_PY);
  const got = JSON.parse(tool(pydicomPython()!, [script, file])) as { items: Array<[string, string | number]> };
  const values = (name: string) => got.items.filter(([n]) => n === name).map(([, v]) => v);
  assert.deepEqual(values('Probability of abnormality'), [0.875, 0.125], 'the views keep their numbers; the study has none');
  assert.deepEqual(values('Finding'), []);
  assert.deepEqual(values('Views counted'), [0]);
  assert.match(String(values('No decision')[0]), /^no decision: every view was rejected by the out-of-distribution gate/);
  assert.equal(values('View left out').length, 3, 'both rejected views and the refused CT');
});
