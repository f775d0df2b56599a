/**
 * The identity a DICOM header gives a prediction (src/data/dicom-identity.ts): patient, study and view attributes
 * written byte by byte by test/helpers/dicom-writer.ts (independent of the reader) in every transfer syntax the
 * writer has, read back exactly; the series' Laterality (0020,0060) stands in for a missing Image Laterality;
 * empty and absent attributes are left out; bytes that are not DICOM give no identity instead of an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readDicomIdentity } from '../../src/data/dicom-identity.js';
import { TS, writeDicom, type DicomElement } from '../helpers/dicom-writer.js';

const IDENTITY: DicomElement[] = [
  { group: 0x0010, element: 0x0020, vr: 'LO', value: 'PAT-0042' },
  { group: 0x0010, element: 0x0010, vr: 'PN', value: 'Doe^Jane' },
  // Study Date is a DA; the writer's text VRs encode it the same way, and the reader keys on the tag.
  { group: 0x0008, element: 0x0020, vr: 'CS', value: '20240229' },
  { group: 0x0008, element: 0x0050, vr: 'SH', value: 'A1B2C3' },
  { group: 0x0018, element: 0x5101, vr: 'CS', value: 'PA' },
  { group: 0x0020, element: 0x0062, vr: 'CS', value: 'R' },
  { group: 0x0018, element: 0x0015, vr: 'CS', value: 'HAND' },
];

const EXPECTED = {
  patientId: 'PAT-0042',
  patientName: 'Doe^Jane',
  studyInstanceUid: '1.2.826.0.1.3680043.9.7.5',
  studyDate: '20240229',
  accessionNumber: 'A1B2C3',
  // writeDicom's fixed SOP Instance UID.
  sopInstanceUid: '1.2.826.0.1.3680043.9.7.1.1',
  viewPosition: 'PA',
  laterality: 'R',
  bodyPartExamined: 'HAND',
};

test('every identity attribute reads back as written, in every transfer syntax', () => {
  for (const ts of [TS.explicitLE, TS.implicitLE, TS.explicitBE, TS.deflatedLE]) {
    const bytes = writeDicom({ rows: 2, columns: 2, bitsAllocated: 8, pixels: [0, 1, 2, 3], studyUid: EXPECTED.studyInstanceUid, transferSyntax: ts, extra: IDENTITY });
    assert.deepEqual(readDicomIdentity(bytes), EXPECTED, ts);
  }
});

test("the series' Laterality stands in for Image Laterality; empty and absent attributes are left out", () => {
  const bytes = writeDicom({
    rows: 1,
    columns: 2,
    bitsAllocated: 8,
    pixels: [0, 1],
    extra: [
      { group: 0x0020, element: 0x0060, vr: 'CS', value: 'L' },
      { group: 0x0010, element: 0x0020, vr: 'LO', value: '' },
      { group: 0x0010, element: 0x0010, vr: 'PN', value: '  ' },
    ],
  });
  assert.deepEqual(readDicomIdentity(bytes), { sopInstanceUid: EXPECTED.sopInstanceUid, laterality: 'L' });
});

test('bytes that are not DICOM have no identity (no exception)', () => {
  assert.deepEqual(readDicomIdentity(new Uint8Array(0)), {});
  assert.deepEqual(readDicomIdentity(new TextEncoder().encode('\x89PNG\r\n\x1a\n not a dicom file at all')), {});
  const truncated = writeDicom({ rows: 2, columns: 2, bitsAllocated: 8, pixels: [0, 1, 2, 3], extra: IDENTITY }).subarray(0, 150);
  assert.deepEqual(readDicomIdentity(truncated), {});
});
