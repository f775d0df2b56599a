#!/usr/bin/env node
// Pointing game for class activation maps on synthetic data: over the abnormal images of a split, the
// share whose CAM maximum (on the original image, letterbox undone) falls inside one of the image's finding boxes
// (imageM.findings.json, written by `nextray synth`), beside the share a uniformly random point gets (the boxes'
// area fraction, exact per image, averaged). Run after `npm run build`:
//   node scripts/pointing-game.mjs --model RUN --data DIR [--split test] [--json out.json]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../dist/src/engine/index.js';
import { loadTrainedModel } from '../dist/src/inference/node/checkpoint.js';
import { classActivationMap, gradCam } from '../dist/src/models/cam.js';
import { loadMuraDataset } from '../dist/src/data/mura.js';
import { loadSplit, selectSubset } from '../dist/src/data/splits.js';
import { decodeGrey } from '../dist/src/data/images.js';
import { preprocessGrey } from '../dist/src/data/preprocess.js';
import { argmax2d, camOnImage } from '../dist/src/inference/core/cam.js';

const { values: a } = parseArgs({ options: { model: { type: 'string' }, data: { type: 'string' }, split: { type: 'string', default: 'test' }, json: { type: 'string' }, layer: { type: 'string' } } });
if (!a.model || !a.data) {
  console.error('usage: node scripts/pointing-game.mjs --model RUN --data DIR [--split test] [--layer layer3.0] [--json out.json]');
  process.exit(2);
}
await initEngine();
const L = loadTrainedModel(a.model);
const pre = L.preprocessing;
const ds = await loadMuraDataset(a.data);
const split = loadSplit(join(a.model, 'split.json'), ds);
const images = selectSubset(ds, split, a.split).images.filter((r) => r.label === 1);
let n = 0, hits = 0, randomRate = 0, noBox = 0;
const byKind = {};
for (const r of images) {
  const side = r.absPath.replace(/\.png$/, '.findings.json');
  if (!existsSync(side)) { noBox++; continue; }
  const f = JSON.parse(readFileSync(side, 'utf8'));
  const boxes = f.findings.map((x) => x.box).filter(Boolean);
  if (!boxes.length) { noBox++; continue; }
  const g = await decodeGrey(r.absPath);
  const x = preprocessGrey(g.data, g.width, g.height, pre);
  const { map, h, w } = tf.tidy(() => {
    const xt = tf.tensor4d(x, [1, pre.size, pre.size, 3]);
    const res = a.layer ? gradCam(L.model, xt, { layer: a.layer }) : classActivationMap(L.model, xt);
    return { map: res.maps.dataSync(), h: res.maps.shape[1], w: res.maps.shape[2] };
  });
  const onImg = camOnImage(map, h, w, g.width, g.height, pre);
  const [mx, my] = argmax2d(onImg, g.width);
  const inside = (b, px, py) => px >= b[0] && px <= b[2] && py >= b[1] && py <= b[3];
  const hit = boxes.some((b) => inside(b, mx + 0.5, my + 0.5));
  // Random point: exact share of pixels inside the union of boxes.
  let covered = 0;
  for (let yy = 0; yy < g.height; yy++) for (let xx = 0; xx < g.width; xx++) if (boxes.some((b) => inside(b, xx + 0.5, yy + 0.5))) covered++;
  n++;
  if (hit) hits++;
  randomRate += covered / (g.width * g.height);
  for (const k of new Set(f.findings.map((x) => x.kind))) {
    byKind[k] ??= { n: 0, hits: 0 };
    byKind[k].n++;
    if (hit) byKind[k].hits++;
  }
}
L.model.dispose();
const out = { split: a.split, method: a.layer ? `gradcam@${a.layer}` : 'cam', abnormal_images_with_boxes: n, skipped_without_boxes: noBox, pointing_game: hits / n, random_point: randomRate / n, by_finding_kind: byKind };
console.log(JSON.stringify(out, null, 1));
if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 1) + '\n');
