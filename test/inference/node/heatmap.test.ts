/**
 * Heatmap files (src/inference/node/heatmap.ts): the PNG has the original image's size and, away from the legend,
 * exactly the core's overlay pixels; the .npy is float32 at the input resolution, max 1, its peak where the map's is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { writeHeatmap } from '../../../src/inference/node/heatmap.js';
import { camOnImage } from '../../../src/inference/core/cam.js';
import { overlayHeatmap } from '../../../src/inference/core/colormap.js';
import { parseNpy } from '../../../src/models/weights/npy.js';
import { makePreprocessing } from '../../../src/data/preprocess.js';
import { tempDir } from '../../helpers/paths.js';

test('writeHeatmap: PNG at original size, npy at input size', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const W = 90;
    const H = 60;
    const grey = Float32Array.from({ length: W * H }, (_, i) => (i % W) / W);
    const cam = new Float32Array(16);
    cam[5] = 2; // row 1, col 1 of a 4x4 map
    cam[6] = 1;
    const pre = makePreprocessing({ size: 32 });
    const out = await writeHeatmap(dir, 'img', { grey, width: W, height: H, cam, camH: 4, camW: 4, preprocessing: pre, caption: 'P 0.9' });
    const { data, info } = await sharp(readFileSync(out.png)).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, W);
    assert.equal(info.height, H);
    const want = overlayHeatmap(grey, camOnImage(cam, 4, 4, W, H, pre), W, H);
    // Bottom-left pixel: far from the legend (top right).
    const i = (H - 1) * W;
    const ch = info.channels;
    assert.deepEqual([data[i * ch], data[i * ch + 1], data[i * ch + 2]], [want[4 * i], want[4 * i + 1], want[4 * i + 2]]);
    const npy = parseNpy(new Uint8Array(readFileSync(out.npy)));
    assert.deepEqual(npy.shape, [32, 32]);
    assert.equal(npy.dtype, 'F32');
    const v = npy.data as Float32Array;
    let best = 0;
    for (let k = 1; k < v.length; k++) if (v[k]! > v[best]!) best = k;
    assert.equal(v[best], 1);
    // The map's peak (cell 1,1 of 4x4 = input pixels 8..15) holds the npy's maximum.
    const bx = best % 32;
    const by = Math.floor(best / 32);
    assert.ok(bx >= 8 && bx < 16 && by >= 8 && by < 16, `peak at ${bx},${by}`);
  } finally {
    cleanup();
  }
});
