/**
 * Browser-safe CAM post-processing (src/inference/core/cam.ts) and the colour map (colormap.ts): resizing equals
 * PyTorch's F.interpolate(bilinear, align_corners=False) (values printed by PyTorch 1.13, in the comments); a map
 * made by letterboxing an image with the project's own preprocessing comes back onto the original pixels; viridis
 * anchors are matplotlib's published values; the overlay blend is the stated formula.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax2d, camAtInput, camOnImage, normaliseMap, resizeMap } from '../../../src/inference/core/cam.js';
import { VIRIDIS, colourAt, overlayHeatmap } from '../../../src/inference/core/colormap.js';
import { makePreprocessing, resizeToInput } from '../../../src/data/preprocess.js';

const close = (a: ArrayLike<number>, b: number[], tol = 1e-6): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('resizeMap equals PyTorch bilinear (align_corners=False)', () => {
  const m = Float32Array.of(0, 1, 2, 3);
  // F.interpolate(tensor([[0,1],[2,3]]), size=(4,4), mode='bilinear', align_corners=False)
  close(resizeMap(m, 2, 2, 4, 4), [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  // size=(3,5)
  close(resizeMap(m, 2, 2, 3, 5), [0, 0.1, 0.5, 0.9, 1, 1, 1.1, 1.5, 1.9, 2, 2, 2.1, 2.5, 2.9, 3]);
  close(camAtInput(m, 2, 2, 4), [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3].map((v) => v / 3));
});

test('normaliseMap: ReLU then / max; zero map stays zero', () => {
  close(normaliseMap(Float32Array.of(-1, 2, 4, 0)), [0, 0.5, 1, 0]);
  close(normaliseMap(Float32Array.of(-1, -2)), [0, 0]);
});

test('camOnImage undoes the letterbox: a letterboxed image maps back onto itself', () => {
  for (const [W, H] of [
    [60, 30],
    [24, 72],
    [40, 40],
  ] as const) {
    const img = new Float32Array(W * H);
    // A bright block at a known place, off-centre.
    const bx = Math.floor(W * 0.7);
    const by = Math.floor(H * 0.2);
    for (let y = by; y < by + Math.ceil(H / 6); y++) for (let x = bx; x < bx + Math.ceil(W / 6); x++) img[y * W + x] = 1;
    const pre = makePreprocessing({ size: 48 });
    const grid = resizeToInput(img, W, H, pre); // what the model sees (48 x 48, letterboxed)
    const back = camOnImage(grid, 48, 48, W, H, pre);
    const [ax, ay] = argmax2d(back, W);
    assert.ok(ax >= bx && ax < bx + Math.ceil(W / 6) && ay >= by && ay < by + Math.ceil(H / 6), `${W}x${H}: max at ${ax},${ay}, block at ${bx},${by}`);
    // Far from the block the map is ~0 (the letterbox bars, which are 0 in the grid, were not stretched in).
    assert.ok(back[(H - 1) * W]! < 0.05);
    // Stretch mode covers the whole grid.
    const st = makePreprocessing({ size: 48, resize: 'stretch' });
    const back2 = camOnImage(resizeToInput(img, W, H, st), 48, 48, W, H, st);
    const [sx, sy] = argmax2d(back2, W);
    assert.ok(sx >= bx - 1 && sx <= bx + Math.ceil(W / 6) && sy >= by - 1 && sy <= by + Math.ceil(H / 6), `stretch ${W}x${H}: ${sx},${sy}`);
  }
});

test('viridis: 256 entries with matplotlib anchors; overlay blend formula', () => {
  assert.equal(VIRIDIS.length, 768);
  assert.deepEqual(colourAt(0), [0x44, 0x01, 0x54]); // #440154
  assert.deepEqual(colourAt(0.5), [0x21, 0x91, 0x8c]); // #21918c
  assert.deepEqual(colourAt(1), [0xfd, 0xe7, 0x25]); // #fde725
  assert.deepEqual(colourAt(2), colourAt(1));
  const rgba = overlayHeatmap(Float32Array.of(0.2, 1), Float32Array.of(1, 0), 2, 1, { alpha: 0.4 });
  // pixel 0: 0.6 * 51 + 0.4 * (253, 231, 37); pixel 1: 0.6 * 255 + 0.4 * (68, 1, 84)
  assert.deepEqual([...rgba], [Math.round(0.6 * 51 + 0.4 * 253), Math.round(0.6 * 51 + 0.4 * 231), Math.round(0.6 * 51 + 0.4 * 37), 255, Math.round(153 + 27.2), Math.round(153 + 0.4), Math.round(153 + 33.6), 255]);
  const floored = overlayHeatmap(Float32Array.of(0.2), Float32Array.of(0.1), 1, 1, { floor: 0.5 });
  assert.deepEqual([...floored], [51, 51, 51, 255]);
});
