/**
 * Decoding and preprocessing golden values. PNGs are built here from pixel arrays (independent encoder in
 * images-fixtures.ts); expected values are worked out by hand in the comments or come from PIL + numpy
 * (test/data/golden/make-images-golden.py -> images-golden.json).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  decodeGrey,
  DEFAULT_PREPROCESSING,
  greyWarnings,
  makePreprocessing,
  placement,
  preprocessGrey,
  preprocessImage,
  resizeGrey,
  validatePreprocessing,
} from '../../src/data/images.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { encodePng, writePng } from './images-fixtures.js';

const tmp = tempDir('nextray-images-pre-');
after(() => tmp.cleanup());
const f = (name: string) => join(tmp.dir, name);

interface Golden {
  resize: { src: [number, number]; dst: [number, number]; values: number[] }[];
  pipeline: { src: [number, number]; size: number; hwc: number[]; mean_per_channel: number[]; std_per_channel: number[] };
  pipeline_stretch: { hwc: number[] };
}
const golden = JSON.parse(readFileSync(join(REPO_ROOT, 'test/data/golden/images-golden.json'), 'utf8')) as Golden;

/** Same pixel definition as make-images-golden.py. */
function goldenSource(w: number, h: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.push((x * 37 + y * 91) % 256);
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs((actual[i] as number) - (expected[i] as number));
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: max |diff| ${worst} at ${at} (got ${actual[at]}, want ${expected[at]})`);
}

// (v - mean) / std for the ImageNet constants, worked out by hand:
//   v = 0:   -0.485/0.229 = -2.117904, -0.456/0.224 = -2.035714, -0.406/0.225 = -1.804444
//   v = 1:    0.515/0.229 =  2.248908,  0.544/0.224 =  2.428571,  0.594/0.225 =  2.640000
//   v = 200/255 = 0.784314: 0.299314/0.229 = 1.307048, 0.328314/0.224 = 1.465686, 0.378314/0.225 = 1.681394
const BLACK = [-2.117904, -2.035714, -1.804444];
const WHITE = [2.248908, 2.428571, 2.64];
const V200 = [1.307048, 1.465686, 1.681394];

test('default preprocessing is 320 px, letterbox, ImageNet mean/std, 3 channels', () => {
  assert.equal(DEFAULT_PREPROCESSING.size, 320);
  assert.equal(DEFAULT_PREPROCESSING.resize, 'pad');
  assert.deepEqual(DEFAULT_PREPROCESSING.mean, [0.485, 0.456, 0.406]);
  assert.deepEqual(DEFAULT_PREPROCESSING.std, [0.229, 0.224, 0.225]);
  assert.equal(DEFAULT_PREPROCESSING.channels, 3);
  // It survives a JSON round trip (it is stored with checkpoints).
  assert.deepEqual(validatePreprocessing(JSON.parse(JSON.stringify(DEFAULT_PREPROCESSING))), { ...DEFAULT_PREPROCESSING });
  assert.throws(() => validatePreprocessing({ ...DEFAULT_PREPROCESSING, resize: 'crop' }), /resize must be 'pad' or 'stretch'/);
  assert.throws(() => makePreprocessing({ std: [0.2, 0, 0.2] }), /std must be positive/);
});

test('a constant 8-bit image maps to (v/255 - mean)/std in every pixel and channel', async () => {
  writePng(f('c200.png'), new Array(37 * 23).fill(200), 37, 23);
  const p = makePreprocessing({ size: 24, resize: 'stretch' });
  const x = await preprocessImage(f('c200.png'), p);
  assert.equal(x.length, 24 * 24 * 3);
  for (let i = 0; i < x.length; i += 3) assertClose(x.subarray(i, i + 3), V200, 2e-6, `pixel ${i / 3}`);
});

test('black and white 16-bit pixels map to the ImageNet extremes', async () => {
  writePng(f('w16.png'), new Array(16).fill(65535), 4, 4, { bitDepth: 16 });
  writePng(f('b16.png'), new Array(16).fill(0), 4, 4, { bitDepth: 16 });
  const p = makePreprocessing({ size: 4 });
  const w = await preprocessImage(f('w16.png'), p);
  const b = await preprocessImage(f('b16.png'), p);
  for (let i = 0; i < 16 * 3; i += 3) {
    assertClose(w.subarray(i, i + 3), WHITE, 2e-6, 'white');
    assertClose(b.subarray(i, i + 3), BLACK, 2e-6, 'black');
  }
});

test('16-bit samples keep 16-bit precision (/65535)', async () => {
  const values = [0, 1, 2, 257, 4095, 32768, 65534, 65535];
  writePng(f('p16.png'), values, 4, 2, { bitDepth: 16 });
  const img = await decodeGrey(f('p16.png'));
  assert.equal(img.bitDepth, 16);
  // 1/65535 = 1.5259e-5 (an 8-bit path would give 0); 257/65535 = 1/255 exactly.
  assertClose(img.data, [0, 1.5259022e-5, 3.0518044e-5, 0.003921569, 0.06248569, 0.50000763, 0.99998474, 1], 5e-8, '16-bit');
  assert.notEqual(img.data[1], img.data[0]);
  assert.notEqual(img.data[2], img.data[1]);
});

test('8/16-bit grey, grey+alpha, RGB(A) with grey content decode to the same grey', async () => {
  const grey = [0, 17, 100, 200, 255, 64];
  writePng(f('g.png'), grey, 3, 2);
  writePng(f('ga.png'), grey.flatMap((v) => [v, 255]), 3, 2, { colourType: 4 });
  writePng(f('rgb.png'), grey.flatMap((v) => [v, v, v]), 3, 2, { colourType: 2 });
  writePng(f('rgba.png'), grey.flatMap((v) => [v, v, v, 255]), 3, 2, { colourType: 6 });
  writePng(f('rgb16.png'), grey.flatMap((v) => [v * 257, v * 257, v * 257]), 3, 2, { colourType: 2, bitDepth: 16 });
  writePng(f('ga16.png'), grey.flatMap((v) => [v * 257, 65535]), 3, 2, { colourType: 4, bitDepth: 16 });
  const expected = grey.map((v) => v / 255);
  for (const name of ['g.png', 'ga.png', 'rgb.png', 'rgba.png', 'rgb16.png', 'ga16.png']) {
    const img = await decodeGrey(f(name));
    assert.deepEqual([img.width, img.height], [3, 2], name);
    assertClose(img.data, expected, 1e-7, name);
  }
});

test('colour becomes grey by BT.601 luma; alpha composites over black', async () => {
  writePng(f('colour.png'), [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30], 4, 1, { colourType: 2 });
  const c = await decodeGrey(f('colour.png'));
  // 0.299, 0.587, 0.114, (0.299*10 + 0.587*20 + 0.114*30)/255 = 18.15/255
  assertClose(c.data, [0.299, 0.587, 0.114, 18.15 / 255], 1e-6, 'luma');
  writePng(f('alpha.png'), [200, 255, 200, 0, 200, 51], 3, 1, { colourType: 4 });
  const a = await decodeGrey(f('alpha.png'));
  // 200/255 * 1, * 0, * 51/255 = 0.2
  assertClose(a.data, [200 / 255, 0, (200 / 255) * 0.2], 1e-6, 'alpha');
});

test('a JPEG decodes (constant grey survives JPEG exactly) and from a buffer', async () => {
  const jpg = await sharp(Buffer.alloc(16 * 16, 128), { raw: { width: 16, height: 16, channels: 1 } }).jpeg({ quality: 100 }).toBuffer();
  writeFileSync(f('c.jpg'), jpg);
  const img = await decodeGrey(f('c.jpg'));
  assert.equal(img.data.length, 256);
  for (const v of img.data) assert.ok(Math.abs(v - 128 / 255) <= 1 / 255);
  const fromBuffer = await decodeGrey(jpg);
  assert.deepEqual(fromBuffer.data, img.data);
});

test('resizeGrey matches PIL Image.resize(BILINEAR) on float images', () => {
  for (const g of golden.resize) {
    const [sw, sh] = g.src;
    const [dw, dh] = g.dst;
    const src = Float32Array.from(goldenSource(sw, sh), (v) => Math.fround(v / 255));
    const got = resizeGrey(src, sw, sh, dw, dh);
    assertClose(got, g.values, 2e-6, `${sw}x${sh} -> ${dw}x${dh}`);
  }
});

test('pad mode: letterbox where expected and values match PIL + numpy', async () => {
  const { src, size, hwc, mean_per_channel, std_per_channel } = golden.pipeline;
  const [sw, sh] = src;
  writePng(f('grad.png'), goldenSource(sw, sh), sw, sh);
  const p = makePreprocessing({ size, resize: 'pad' });
  // 24 x 15 into 16: scale 2/3 -> 16 x 10, centred: rows 3..12.
  assert.deepEqual(placement(sw, sh, p), { x: 0, y: 3, width: 16, height: 10 });
  const x = await preprocessImage(f('grad.png'), p);
  assertClose(x, hwc, 3e-6, 'pad pipeline');
  for (const row of [0, 1, 2, 13, 14, 15])
    for (let col = 0; col < size; col++) {
      const o = (row * size + col) * 3;
      assertClose(x.subarray(o, o + 3), BLACK, 2e-6, `letterbox row ${row}`);
    }
  for (let c = 0; c < 3; c++) {
    let sum = 0;
    let sq = 0;
    for (let i = c; i < x.length; i += 3) sum += x[i]!;
    const mean = sum / (size * size);
    for (let i = c; i < x.length; i += 3) sq += (x[i]! - mean) ** 2;
    assert.ok(Math.abs(mean - mean_per_channel[c]!) < 1e-5, `mean channel ${c}`);
    assert.ok(Math.abs(Math.sqrt(sq / (size * size)) - std_per_channel[c]!) < 1e-5, `std channel ${c}`);
  }
  // Portrait images get bars left and right: 10 x 20 into 16 -> 8 x 16 at x = 4.
  assert.deepEqual(placement(10, 20, p), { x: 4, y: 0, width: 8, height: 16 });
});

test('stretch mode fills the whole input and matches PIL', async () => {
  const [sw, sh] = golden.pipeline.src;
  const grey = Float32Array.from(goldenSource(sw, sh), (v) => v / 255);
  const x = preprocessGrey(grey, sw, sh, makePreprocessing({ size: 16, resize: 'stretch' }));
  assertClose(x, golden.pipeline_stretch.hwc, 3e-6, 'stretch pipeline');
});

test('preprocessGrey refuses values outside [0, 1] with a hint', () => {
  const bytes = Float32Array.from([0, 128, 255, 10]);
  assert.throws(() => preprocessGrey(bytes, 2, 2), /must be in \[0, 1\].*divide 8-bit values by 255/);
  assert.throws(() => preprocessGrey(Float32Array.from([-2, 0, 1, 2]), 2, 2), /must be in \[0, 1\]/);
  assert.throws(() => preprocessGrey(new Float32Array(3), 2, 2), /3 values for 2 x 2/);
});

test('warn-worthy inputs are detectable', async () => {
  assert.match(greyWarnings(new Float32Array(100).fill(0.3))[0]!, /same value/);
  writePng(f('twelve.png'), [0, 100, 4095, 2048], 2, 2, { bitDepth: 16 });
  const img = await decodeGrey(f('twelve.png'));
  assert.match(greyWarnings(img.data, img.bitDepth)[0]!, /12 bits/);
  assert.deepEqual(greyWarnings(Float32Array.from([0, 0.5, 1, 0.25])), []);
  const seen: string[] = [];
  writeFileSync(f('flat.png'), encodePng(new Array(9).fill(5), 3, 3));
  await preprocessImage(f('flat.png'), makePreprocessing({ size: 4 }), { onWarning: (m) => seen.push(m) });
  assert.equal(seen.length, 1);
  assert.match(seen[0]!, /flat\.png: every pixel has the same value/);
});

test('a large image (2000 x 1500) downsizes to 320 x 320 input', async () => {
  const w = 2000;
  const h = 1500;
  const px = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) px.fill(y % 256, y * w, (y + 1) * w);
  writeFileSync(f('big.png'), encodePng(px, w, h));
  const x = await preprocessImage(f('big.png'));
  assert.equal(x.length, 320 * 320 * 3);
  // 2000 x 1500 -> 320 x 240 at y = 40: the first 40 rows are letterbox.
  assertClose(x.subarray(0, 3), BLACK, 2e-6, 'top bar');
  assertClose(x.subarray((39 * 320 + 319) * 3, (39 * 320 + 319) * 3 + 3), BLACK, 2e-6, 'last bar pixel');
});
