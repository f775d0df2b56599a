/**
 * A DICOM file read into a Node Buffer (readFileSync, as the CLI's decode workers do) decodes like the same bytes in a
 * plain Uint8Array (as the page has them). A JPEG Lossless frame from a Buffer once reached the decoder as a view
 * into Node's shared buffer pool ("Not a JPEG file"), while the page decoded the same file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFrameDecoders, readDicom } from '../../src/data/dicom/index.js';
import { writeDicom } from '../helpers/dicom-writer.js';
import { tempDir } from '../helpers/paths.js';
import { tool, toolsSkip } from '../helpers/dicom-tools.js';

test('a dcmtk JPEG Lossless file decodes the same from a Node Buffer as from a Uint8Array, to the pixels it was made from', { skip: toolsSkip(['dcmcjpeg']) }, async () => {
  const tmp = tempDir('nextray-dicom-buffer-');
  try {
    const [w, h] = [90, 120];
    const px = Uint8Array.from({ length: w * h }, (_, i) => (i * 7 + (i % w) * 3) & 255);
    const plain = join(tmp.dir, 'plain.dcm');
    writeFileSync(plain, writeDicom({ rows: h, columns: w, bitsAllocated: 8, photometric: 'MONOCHROME2', pixels: px }));
    const lossless = join(tmp.dir, 'lossless.dcm');
    tool('dcmcjpeg', ['+e1', plain, lossless]);
    const decoders = createFrameDecoders();
    const fromBuffer = await readDicom(readFileSync(lossless), { source: lossless, decoders });
    const fromArray = await readDicom(new Uint8Array(readFileSync(lossless)), { source: lossless, decoders });
    assert.equal(fromBuffer.transferSyntax, '1.2.840.10008.1.2.4.70');
    assert.deepEqual(fromBuffer.grey, fromArray.grey);
    assert.deepEqual([...fromBuffer.grey].map((g) => Math.round(g * 255)), [...px], 'lossless: the pixels written');
  } finally {
    tmp.cleanup();
  }
});
