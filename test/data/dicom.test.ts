/**
 * The DICOM reader against DICOM PS3.3 C.11 formulas worked by hand: files are written byte by byte by
 * test/helpers/dicom-writer.ts (explicit/implicit VR little endian, explicit big endian, encapsulated), and the
 * display values compared with the standard's functions computed here, value by value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import sharp from 'sharp';
import { applyWindow, DicomError, isDicom, readDicom } from '../../src/data/dicom/index.js';
import { nodeFrameDecoders } from '../../src/data/dicom/node-codecs.js';
import { encapsulate, TS, writeDicom, type DicomElement } from '../helpers/dicom-writer.js';

function close(got: ArrayLike<number>, want: readonly number[], tol = 1e-6, what = ''): void {
  assert.equal(got.length, want.length, `${what} length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
}

test('12-bit MONOCHROME2 with Window Center 2048 / Width 1000: the LINEAR function of C.11.2.1.2.1', async () => {
  // lower edge c - 0.5 - (w-1)/2 = 1548 (and below -> 0); upper edge c - 0.5 + (w-1)/2 = 2547 (above -> 1);
  // between: (x - 2047.5) / 999 + 0.5.
  const pixels = [0, 1548, 1549, 2047, 2048, 2547, 2548, 4095];
  const want = [0, 0, 1 / 999, 0.5 - 0.5 / 999, 0.5 + 0.5 / 999, 1, 1, 1];
  const bytes = writeDicom({ rows: 2, columns: 4, bitsAllocated: 16, bitsStored: 12, pixels, window: { center: 2048, width: 1000 }, studyUid: '1.2.3.4.5' });
  assert.ok(isDicom(bytes));
  const img = await readDicom(bytes, { source: 'w.dcm' });
  assert.deepEqual([img.width, img.height, img.bitsStored, img.photometric], [4, 2, 12, 'MONOCHROME2']);
  assert.deepEqual(img.voi, { kind: 'window', center: 2048, width: 1000, function: 'LINEAR' });
  assert.equal(img.studyInstanceUid, '1.2.3.4.5');
  close(img.grey, want, 1e-6, 'grey');
});

test('signed 12-bit in 16 bits with Rescale Slope 2 / Intercept -1024 and a window: modality LUT, then VOI', async () => {
  // Stored values are 12-bit two's complement (bits above High Bit 11 set to junk, which the reader must mask).
  // m = 2 * sv - 1024; window c = 0, w = 2001: edges -1000.5 - ... : lo = -0.5 - 1000 = -1000.5, hi = 999.5,
  // y = (m + 0.5) / 2000 + 0.5.
  const sv = [-2048, -1, 0, 1, 100, 2047];
  const junk = sv.map((v) => 0xf000 | (v & 0x0fff));
  const m = sv.map((v) => 2 * v - 1024);
  const want = m.map((x) => (x <= -1000.5 ? 0 : x > 999.5 ? 1 : (x + 0.5) / 2000 + 0.5));
  assert.deepEqual(m, [-5120, -1026, -1024, -1022, -824, 3070]);
  const bytes = writeDicom({ rows: 1, columns: 6, bitsAllocated: 16, bitsStored: 12, highBit: 11, signed: true, pixels: junk, rescale: { slope: 2, intercept: -1024 }, window: { center: 0, width: 2001 } });
  const img = await readDicom(bytes);
  assert.deepEqual(img.rescale, { slope: 2, intercept: -1024 });
  close(img.grey, want, 1e-6, 'grey');
  // Spot values by hand: m = -1024 is below -1000.5 -> 0; m = -824: (-823.5) / 2000 + 0.5 = 0.08825.
  assert.equal(img.grey[2], 0);
  assert.ok(Math.abs(img.grey[4]! - 0.08825) < 1e-6);
});

test('MONOCHROME1 8-bit without a window: the stored range maps to [0, 1], then inverted', async () => {
  const pixels = [0, 51, 255, 128];
  const img = await readDicom(writeDicom({ rows: 2, columns: 2, bitsAllocated: 8, photometric: 'MONOCHROME1', pixels }));
  assert.equal(img.inverted, true);
  assert.deepEqual(img.voi, { kind: 'range', min: 0, max: 255 });
  close(img.grey, [1, 1 - 51 / 255, 0, 1 - 128 / 255], 1e-6);
});

test('VOI LUT Sequence: entries below/above the mapped range clamp to the first/last entry', async () => {
  // LUT Descriptor [4 entries, first mapped 100, 16 bits]; data 0, 1000, 30000, 65535 -> divided by 2^16 - 1.
  const lutItem: DicomElement[] = [
    { group: 0x0028, element: 0x3002, vr: 'US', value: [4, 100, 16] },
    { group: 0x0028, element: 0x3006, vr: 'US', value: [0, 1000, 30000, 65535] },
  ];
  const pixels = [50, 100, 101, 102, 103, 500];
  const bytes = writeDicom({ rows: 1, columns: 6, bitsAllocated: 16, pixels, window: { center: 9999, width: 2 }, extra: [{ group: 0x0028, element: 0x3010, vr: 'SQ', value: [lutItem] }] });
  const img = await readDicom(bytes);
  assert.equal(img.voi?.kind, 'lut', 'the VOI LUT Sequence is preferred over the window');
  close(img.grey, [0, 0, 1000 / 65535, 30000 / 65535, 1, 1], 1e-6);
});

test('implicit VR little endian, explicit big endian and deflated explicit little endian read the same 16-bit pixels', async () => {
  const pixels = [0, 1, 256, 4095, 40000, 65535];
  const want = pixels.map((v) => v / 65535);
  for (const ts of [TS.implicitLE, TS.explicitBE, TS.explicitLE, TS.deflatedLE]) {
    const img = await readDicom(writeDicom({ rows: 2, columns: 3, bitsAllocated: 16, pixels, transferSyntax: ts }));
    assert.equal(img.transferSyntax, ts);
    close(img.grey, want, 1e-6, ts);
  }
});

test('LINEAR_EXACT and SIGMOID VOI functions (C.11.2.1.3)', () => {
  // LINEAR_EXACT c = 100, w = 40: (x - 100) / 40 + 0.5, clamped at x <= 80 and x > 120.
  close(applyWindow([70, 80, 90, 100, 110, 120, 121], 100, 40, 'LINEAR_EXACT'), [0, 0, 0.25, 0.5, 0.75, 1, 1]);
  // SIGMOID: 1 / (1 + exp(-4 (x - c) / w)); at x = c + w/4: 1 / (1 + e^-1) = 0.7310585786.
  close(applyWindow([100, 110], 100, 40, 'SIGMOID'), [0.5, 0.7310585786]);
});

test('JPEG baseline (encapsulated) decodes through the host decoder; the pixels equal the JPEG stream decoded alone', async () => {
  const w = 16;
  const h = 8;
  const grey = Buffer.from(Array.from({ length: w * h }, (_, i) => (i * 7) % 256));
  const jpeg = await sharp(grey, { raw: { width: w, height: h, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
  const direct = await sharp(jpeg).toColourspace('b-w').raw().toBuffer();
  const bytes = writeDicom({ rows: h, columns: w, bitsAllocated: 8, transferSyntax: TS.jpegBaseline, pixelBytes: encapsulate([new Uint8Array(jpeg)]) });
  const img = await readDicom(bytes, { decoders: nodeFrameDecoders });
  close(img.grey, [...direct].map((v) => v / 255), 1e-6);
  // Without a decoder for it, the file is refused with its transfer syntax named.
  await assert.rejects(readDicom(bytes, { source: 'scan.dcm', decoders: [] }), /scan\.dcm: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline/);
});

test('JPEG 2000 lossless (encapsulated) through OpenJPEG: a codestream written by Pillow decodes to its exact 12-bit values', async () => {
  // test/fixtures/dicom/x12.j2k: Pillow 9.4 (OpenJPEG) wrote a 16 x 8 'I;16' image of these values, reversible
  // (lossless) wavelet, raw codestream: Image.new('I;16', (16, 8)).putdata(v).save('x12.j2k', irreversible=False, no_jp2=True).
  const values: number[] = [];
  for (let y = 0; y < 8; y++) for (let x = 0; x < 16; x++) values.push((x * 37 + y * 301 + ((x * y * 13) % 97)) % 4096);
  const j2k = new Uint8Array(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'dicom', 'x12.j2k')));
  const bytes = writeDicom({ rows: 8, columns: 16, bitsAllocated: 16, bitsStored: 12, transferSyntax: TS.jpeg2000, pixelBytes: encapsulate([j2k]) });
  const img = await readDicom(bytes, { source: 'j2k.dcm', decoders: nodeFrameDecoders });
  assert.deepEqual(img.voi, { kind: 'range', min: 0, max: 4095 });
  close(img.grey, values.map((v) => v / 4095), 1e-6);
  // The same picture uncompressed reads identically.
  const plain = await readDicom(writeDicom({ rows: 8, columns: 16, bitsAllocated: 16, bitsStored: 12, pixels: values }));
  assert.deepEqual([...img.grey], [...plain.grey]);
});

test('bad files: not DICOM, truncated, unsupported transfer syntax, no pixel data — each named with the reason', async () => {
  await assert.rejects(readDicom(new TextEncoder().encode('hello, this is not a DICOM file at all'.repeat(5)), { source: 'a.dcm' }), (e: unknown) => {
    assert.ok(e instanceof DicomError);
    assert.equal(e.file, 'a.dcm');
    assert.match(e.problem, /not a DICOM file/);
    return true;
  });
  const full = writeDicom({ rows: 8, columns: 8, bitsAllocated: 16, pixels: new Array(64).fill(7) });
  await assert.rejects(readDicom(full.subarray(0, full.length - 40), { source: 't.dcm' }), /t\.dcm: .*truncated/);
  const j2k = writeDicom({ rows: 8, columns: 8, bitsAllocated: 16, transferSyntax: TS.jpeg2000, pixelBytes: encapsulate([new Uint8Array(20)]) });
  await assert.rejects(readDicom(j2k, { source: 'j.dcm' }), /j\.dcm: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.90 \(JPEG 2000 Image Compression \(Lossless Only\)\) is not supported/);
  const noPixels = writeDicom({ rows: 2, columns: 2, bitsAllocated: 8, pixels: [1, 2, 3, 4] });
  // Cut just before the Pixel Data element: a valid data set without an image.
  const cut = noPixels.length - 4 - 12;
  await assert.rejects(readDicom(noPixels.subarray(0, cut), { source: 'n.dcm' }), /n\.dcm: no Pixel Data/);
});
