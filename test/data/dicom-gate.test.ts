/**
 * The header gate (PS3.3 C.7.3.1.1.1 Modality defined terms; the Image Pixel module; Body Part Examined), on files
 * written byte by byte and on pydicom's own CT, MR and SR test files: refusals come before any pixel is decoded,
 * with the reason and the file named; warnings for a body part outside the upper extremity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DicomRefusedError, gateHeader, readDicom, readDicomHeader } from '../../src/data/dicom/index.js';
import { writeDicom, type DicomElement } from '../helpers/dicom-writer.js';
import { pydicomPython, tool, toolsSkip } from '../helpers/dicom-tools.js';

const cs = (group: number, element: number, value: string): DicomElement => ({ group, element, vr: 'CS', value });
const file = (extra: DicomElement[], sopClass?: string) => {
  const bytes = writeDicom({ rows: 2, columns: 2, bitsAllocated: 8, pixels: [0, 50, 100, 150], extra });
  if (!sopClass) return bytes;
  // Replace the writer's DX SOP Class UID (same length) in both the meta group and the data set.
  const from = new TextEncoder().encode('1.2.840.10008.5.1.4.1.1.1.1');
  const to = new TextEncoder().encode(sopClass.padEnd(from.length, '\0'));
  for (let i = 0; i + from.length <= bytes.length; i++) if (from.every((b, k) => bytes[i + k] === b)) bytes.set(to, i);
  return bytes;
};

test('CR, DX and RG are accepted without warnings; OT and an unknown SOP class without Modality with a warning', () => {
  for (const m of ['CR', 'DX', 'RG']) assert.deepEqual(gateHeader(readDicomHeader(file([cs(0x0008, 0x0060, m)]))), { accepted: true, warnings: [] }, m);
  const ot = gateHeader(readDicomHeader(file([cs(0x0008, 0x0060, 'OT')])));
  assert.ok(ot.accepted && /Modality OT \(Other\): not known to be a radiograph/.test(ot.warnings.join()));
  // The writer's SOP Class is DX for presentation: no Modality is fine there ...
  assert.deepEqual(gateHeader(readDicomHeader(file([]))), { accepted: true, warnings: [] });
  // ... but not for Secondary Capture (1.2.840.10008.5.1.4.1.1.7).
  const sc = gateHeader(readDicomHeader(file([], '1.2.840.10008.5.1.4.1.1.7')));
  assert.ok(sc.accepted && /no Modality \(0008,0060\) and SOP Class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.7/.test(sc.warnings.join()), JSON.stringify(sc));
});

test('CT, MR, US, NM, PT, MG, SR, PR are refused before decoding, with the modality named', async () => {
  for (const m of ['CT', 'MR', 'US', 'NM', 'PT', 'MG', 'SR', 'PR', 'XA']) {
    await assert.rejects(readDicom(file([cs(0x0008, 0x0060, m)]), { source: `${m}.dcm` }), (e: unknown) => {
      assert.ok(e instanceof DicomRefusedError);
      assert.match(e.message, new RegExp(`^${m}\\.dcm: Modality ${m} \\(.+\\) is not a radiograph: neXt-Ray reads CR, DX and RG images of the upper extremity; refused before inference$`));
      return true;
    });
  }
});

test('Body Part Examined outside the upper extremity warns; the upper-extremity terms do not', async () => {
  for (const part of ['HAND', 'WRIST', 'ELBOW', 'FOREARM', 'HUMERUS', 'SHOULDER', 'FINGER', 'hand']) {
    const img = await readDicom(file([cs(0x0008, 0x0060, 'DX'), cs(0x0018, 0x0015, part)]));
    assert.deepEqual(img.warnings, [], part);
  }
  const chest = await readDicom(file([cs(0x0008, 0x0060, 'CR'), cs(0x0018, 0x0015, 'CHEST')]));
  assert.deepEqual(chest.warnings, ["Body Part Examined 'CHEST' is not part of the upper extremity; the model was trained on shoulder-to-finger radiographs (MURA)"]);
  assert.equal(chest.grey.length, 4, 'a warning, not a refusal');
});

test('ViewPosition, Laterality and Image Laterality are read from the header', () => {
  const h = readDicomHeader(file([cs(0x0008, 0x0060, 'DX'), cs(0x0018, 0x5101, 'PA'), cs(0x0020, 0x0060, 'R'), cs(0x0020, 0x0062, 'L')]));
  assert.deepEqual([h.modality, h.viewPosition, h.laterality, h.imageLaterality], ['DX', 'PA', 'R', 'L']);
});

test('a missing Image Pixel module is refused with what is missing', async () => {
  const bytes = file([cs(0x0008, 0x0060, 'DX')]);
  // Cut just before the Pixel Data element (8-byte header with a 4-byte length for OB, 4 bytes of pixels).
  await assert.rejects(readDicom(bytes.subarray(0, bytes.length - 16), { source: 'n.dcm' }), /^DicomRefusedError: n\.dcm: no Pixel Data \(7FE0,0010\): this DICOM object holds no image|n\.dcm: no Pixel Data \(7FE0,0010\)/);
  const h = readDicomHeader(bytes);
  delete h.pixel.photometric;
  const v = gateHeader(h);
  assert.ok(!v.accepted && /incomplete Image Pixel module: Photometric Interpretation \(0028,0004\) missing/.test(v.reason));
});

test("pydicom's CT, MR and SR test files are refused with their modality", { skip: toolsSkip(['pydicom']) }, async () => {
  const dir = join(tool(pydicomPython()!, ['-c', 'import pydicom, os; print(os.path.dirname(pydicom.__file__))']).trim(), 'data', 'test_files');
  for (const [name, why] of [
    ['CT_small.dcm', /Modality CT \(Computed Tomography\) is not a radiograph/],
    ['MR_small.dcm', /Modality MR \(Magnetic Resonance\) is not a radiograph/],
    ['test-SR.dcm', /Modality SR \(SR Document\) is not a radiograph/],
  ] as const) {
    await assert.rejects(readDicom(new Uint8Array(readFileSync(join(dir, name))), { source: name }), (e: unknown) => e instanceof DicomRefusedError && why.test(e.message) && e.message.startsWith(name));
  }
});
