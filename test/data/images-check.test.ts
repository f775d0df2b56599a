/** checkImage: good images pass with their header facts; every kind of bad file fails with a plain-words problem. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { checkImage, decodeGrey, ImageError, MAX_IMAGE_PIXELS } from '../../src/data/images.js';
import { tempDir } from '../helpers/paths.js';
import { encodePng, hugeHeaderPng, truncatedPng, writePng } from './images-fixtures.js';

const tmp = tempDir('nextray-images-check-');
after(() => tmp.cleanup());
const f = (name: string) => join(tmp.dir, name);

function gradient(w: number, h: number, max: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.push(Math.round(((x + y) / (w + h - 2)) * max));
  return out;
}

test('good PNGs report their size, channels and bit depth', async () => {
  const cases = [
    { name: 'g8.png', w: 7, h: 5, bitDepth: 8 as const, colourType: 0 as const, ch: 1 },
    { name: 'g16.png', w: 9, h: 4, bitDepth: 16 as const, colourType: 0 as const, ch: 1 },
    { name: 'ga8.png', w: 3, h: 6, bitDepth: 8 as const, colourType: 4 as const, ch: 2 },
    { name: 'rgb8.png', w: 5, h: 5, bitDepth: 8 as const, colourType: 2 as const, ch: 3 },
    { name: 'rgba16.png', w: 4, h: 2, bitDepth: 16 as const, colourType: 6 as const, ch: 4 },
  ];
  for (const c of cases) {
    const max = c.bitDepth === 16 ? 65535 : 255;
    const grey = gradient(c.w, c.h, max);
    const samples = grey.flatMap((v) => Array.from({ length: c.ch }, (_, k) => (c.ch % 2 === 0 && k === c.ch - 1 ? max : v)));
    writePng(f(c.name), samples, c.w, c.h, { bitDepth: c.bitDepth, colourType: c.colourType });
    const r = await checkImage(f(c.name));
    assert.deepEqual(r, { ok: true, width: c.w, height: c.h, channels: c.ch, bitDepth: c.bitDepth }, c.name);
  }
});

test('a JPEG passes', async () => {
  await sharp(Buffer.from(gradient(16, 12, 255)), { raw: { width: 16, height: 12, channels: 1 } })
    .jpeg()
    .toFile(f('g.jpg'));
  const r = await checkImage(f('g.jpg'));
  assert.equal(r.ok, true);
  if (r.ok) assert.deepEqual([r.width, r.height, r.bitDepth], [16, 12, 8]);
});

test('zero-byte file', async () => {
  writeFileSync(f('zero.png'), '');
  const r = await checkImage(f('zero.png'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.problem, /empty file \(0 bytes\)/);
});

test('text file named .png', async () => {
  writeFileSync(f('text.png'), 'patient,label\n1,0\n');
  const r = await checkImage(f('text.png'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.problem, /not an image/);
});

test('random bytes named .png', async () => {
  writeFileSync(f('bytes.png'), Buffer.from([0, 1, 2, 3, 200, 201, 202, 7, 8, 9, 10, 11, 12, 255, 254]));
  const r = await checkImage(f('bytes.png'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.problem, /not an image/);
});

test('truncated PNG fails (the header alone is fine, the pixels are not)', async () => {
  writeFileSync(f('trunc.png'), truncatedPng());
  const r = await checkImage(f('trunc.png'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.problem, /truncated or corrupt/);
});

test('truncated JPEG fails', async () => {
  const px = Buffer.alloc(64 * 64);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7919) % 251;
  const jpg = await sharp(px, { raw: { width: 64, height: 64, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
  writeFileSync(f('trunc.jpg'), jpg.subarray(0, Math.floor(jpg.length * 0.6)));
  const r = await checkImage(f('trunc.jpg'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.problem, /truncated or corrupt/);
});

test('a header claiming 30000 x 30000 is refused without decoding', async () => {
  writeFileSync(f('huge.png'), hugeHeaderPng(30000, 30000));
  const r = await checkImage(f('huge.png'));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.problem, /too large/);
    assert.match(r.problem, /30000 x 30000/);
  }
  // The file is a bare header (no pixel data): 'too large' with the header's size can only come from the header
  // check, before any decoding (a decode would report truncated data). Memory figures belong to the bench.
  await assert.rejects(decodeGrey(f('huge.png')), (err: unknown) => {
    assert.ok(err instanceof ImageError);
    assert.equal(err.file, f('huge.png'));
    assert.match(err.message, /huge\.png: image too large/);
    return true;
  });
  assert.ok(30000 * 30000 > MAX_IMAGE_PIXELS);
});

test('the pixel limit is configurable', async () => {
  writePng(f('small.png'), gradient(20, 10, 255), 20, 10);
  assert.equal((await checkImage(f('small.png'), { maxPixels: 200 })).ok, true);
  const r = await checkImage(f('small.png'), { maxPixels: 199 });
  assert.equal(r.ok, false);
});

test('missing file and folder', async () => {
  const r = await checkImage(f('missing.png'));
  assert.deepEqual(r, { ok: false, problem: 'file not found' });
  mkdirSync(f('dir.png'));
  const d = await checkImage(f('dir.png'));
  assert.equal(d.ok, false);
  if (!d.ok) assert.match(d.problem, /folder/);
});

test('unsupported but real image formats name their format', async () => {
  await sharp(Buffer.from(gradient(8, 8, 255)), { raw: { width: 8, height: 8, channels: 1 } }).webp().toFile(f('x.webp'));
  const r = await checkImage(f('x.webp'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.problem, /WEBP.*only PNG and JPEG/);
});

test('an image that is all one value decodes but is flagged', async () => {
  writeFileSync(f('flat.png'), encodePng(new Array(30).fill(77), 6, 5));
  const r = await checkImage(f('flat.png'));
  assert.equal(r.ok, true);
  if (r.ok) {
    assert.equal(r.warnings?.length, 1);
    assert.match(r.warnings![0]!, /same value/);
  }
});
