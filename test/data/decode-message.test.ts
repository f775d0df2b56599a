/**
 * A bad file gets the same words whichever thread decodes it and whatever else fails at the same time. libvips keeps
 * one error buffer per process: with several decodes failing at once (decode workers, libuv's pool) sharp reported
 * "vipspng: libpng read error", the same twice, or "Unknown error" for the same file. The message now comes from the
 * file's bytes (where its chunks end, their checksums, the JPEG end marker): positions checked against indexOf.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeGrey, ImageError, whereDamaged } from '../../src/data/images.js';
import { predictFiles } from '../../src/inference/node/predict.js';
import { Ensemble } from '../../src/inference/core/ensemble.js';
import { openModel } from '../../src/inference/node/models.js';
import { tempDir } from '../helpers/paths.js';
import { writeTinyModel } from '../serve/fixture.js';

const tmp = tempDir('nextray-decode-msg-');
let png: Buffer;
let jpeg: Buffer;

before(async () => {
  const px = Buffer.alloc(160 * 120);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7 + (i >> 5)) % 251;
  png = await sharp(px, { raw: { width: 160, height: 120, channels: 1 } }).png({ compressionLevel: 1 }).toBuffer();
  jpeg = await sharp(px, { raw: { width: 160, height: 120, channels: 1 } }).jpeg({ quality: 90 }).toBuffer();
});
after(() => tmp.cleanup());

async function problemOf(bytes: Uint8Array): Promise<string> {
  try {
    await decodeGrey(bytes);
  } catch (err) {
    assert.ok(err instanceof ImageError, String(err));
    return err.problem;
  }
  return 'decoded';
}

test('whereDamaged: a cut PNG ends inside its IDAT chunk; a flipped byte is a checksum mismatch at the chunk; a cut JPEG has no end marker', () => {
  const idat = png.indexOf('IDAT') - 4; // the chunk starts with its 4-byte length
  const idatLen = png.readUInt32BE(idat);
  const cut = png.subarray(0, idat + 20);
  assert.equal(whereDamaged(cut), `cut short: the file ends inside its IDAT chunk (${cut.length} bytes, the chunk needs ${idat + 12 + idatLen})`);
  const flipped = Buffer.from(png);
  flipped[idat + 8 + 5]! ^= 0xff;
  assert.equal(whereDamaged(flipped), `the IDAT chunk at byte ${idat} is damaged (checksum mismatch)`);
  const noEnd = png.subarray(0, png.indexOf('IEND') - 4);
  assert.equal(whereDamaged(noEnd), `cut short: no IEND chunk after ${noEnd.length} bytes`);
  const jcut = jpeg.subarray(0, Math.floor(jpeg.length * 0.6));
  assert.equal(whereDamaged(jcut), `cut short: no end-of-image marker after ${jcut.length} bytes`);
});

test('the same bad file gives the same message in 32 concurrent decodes', async () => {
  for (const bad of [png.subarray(0, Math.floor(png.length / 2)), jpeg.subarray(0, Math.floor(jpeg.length / 2))]) {
    const problems = await Promise.all(Array.from({ length: 32 }, () => problemOf(bad)));
    assert.deepEqual([...new Set(problems)], [problems[0]], `messages differ:\n${[...new Set(problems)].join('\n')}`);
    assert.match(problems[0]!, /^truncated or corrupt image: the header is readable but the pixel data is not \(cut short: /);
  }
});

test('and the same message from two decode worker threads and from this thread', async () => {
  const model = await writeTinyModel(tmp.dir);
  const files: string[] = [];
  for (let i = 0; i < 12; i++) {
    const f = join(tmp.dir, `cut${i}.png`);
    writeFileSync(f, png.subarray(0, Math.floor(png.length / 2)));
    files.push(f);
  }
  const m = await openModel(model, { engine: 'onnx', threads: 1 });
  const ensemble = new Ensemble([m]);
  try {
    const problems = new Set<string>();
    for (const workers of [2, 0]) {
      const r = await predictFiles(ensemble, files, { workers });
      assert.equal(r.bad.length, files.length);
      for (const b of r.bad) problems.add(b.problem);
    }
    assert.equal(problems.size, 1, [...problems].join('\n'));
  } finally {
    await ensemble.release();
  }
});
