/**
 * The identity a DICOM header gives a prediction (src/inference/core/identity.ts over the reader's header):
 * patient, study and view attributes written byte by byte by test/helpers/dicom-writer.ts (independent of the
 * reader) in every transfer syntax the writer has, read back exactly; the series' Laterality (0020,0060) and the
 * Image Laterality (0020,0062) kept apart; empty and absent attributes are left out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readDicomHeader } from '../../../src/data/dicom/index.js';
import { dicomIdentityOf } from '../../../src/inference/core/identity.js';
import { TS, writeDicom, type DicomElement } from '../../helpers/dicom-writer.js';

const readDicomIdentity = (bytes: Uint8Array) => dicomIdentityOf(readDicomHeader(bytes));

const IDENTITY: DicomElement[] = [
  { group: 0x0010, element: 0x0020, vr: 'LO', value: 'PAT-0042' },
  { group: 0x0010, element: 0x0010, vr: 'PN', value: 'Doe^Jane' },
  { group: 0x0008, element: 0x0020, vr: 'DA', value: '20240229' },
  { group: 0x0008, element: 0x0050, vr: 'SH', value: 'A1B2C3' },
  { group: 0x0018, element: 0x5101, vr: 'CS', value: 'PA' },
  { group: 0x0020, element: 0x0062, vr: 'CS', value: 'R' },
  { group: 0x0018, element: 0x0015, vr: 'CS', value: 'HAND' },
];

const EXPECTED = {
  // writeDicom's SOP Class (Digital X-Ray, for presentation).
  sopClassUid: '1.2.840.10008.5.1.4.1.1.1.1',
  patientId: 'PAT-0042',
  patientName: 'Doe^Jane',
  studyInstanceUid: '1.2.826.0.1.3680043.9.7.5',
  studyDate: '20240229',
  accessionNumber: 'A1B2C3',
  // writeDicom's fixed SOP Instance UID.
  sopInstanceUid: '1.2.826.0.1.3680043.9.7.1.1',
  viewPosition: 'PA',
  imageLaterality: 'R',
  bodyPartExamined: 'HAND',
};

test('every identity attribute reads back as written, in every transfer syntax', () => {
  for (const ts of [TS.explicitLE, TS.implicitLE, TS.explicitBE, TS.deflatedLE]) {
    const bytes = writeDicom({ rows: 2, columns: 2, bitsAllocated: 8, pixels: [0, 1, 2, 3], studyUid: EXPECTED.studyInstanceUid, transferSyntax: ts, extra: IDENTITY });
    assert.deepEqual(readDicomIdentity(bytes), EXPECTED, ts);
  }
});

test("the series' Laterality is kept apart from Image Laterality; empty and absent attributes are left out", () => {
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
  assert.deepEqual(readDicomIdentity(bytes), { sopClassUid: EXPECTED.sopClassUid, sopInstanceUid: EXPECTED.sopInstanceUid, laterality: 'L' });
});
