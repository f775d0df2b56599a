#!/usr/bin/env node
// How the OOD gate's features were chosen: Mahalanobis gates on different feature sets of a resnet-slim
// run (final pooled means, + stds, all stages, early stages), fitted on every third training image, measured on the
// held-out test radiographs and 40 generated images per non-radiograph set. resnet-slim only (channel counts below).
//   npm run build && node scripts/ood-layer-choice.mjs --model RUN --data DIR
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../dist/src/engine/index.js';
import { loadTrainedModel } from '../dist/src/inference/node/checkpoint.js';
import { layerStatistics } from '../dist/src/models/cam.js';
import { loadMuraDataset } from '../dist/src/data/mura.js';
import { loadSplit, selectSubset } from '../dist/src/data/splits.js';
import { BatchLoader } from '../dist/src/data/loader.js';
import { preprocessGrey } from '../dist/src/data/preprocess.js';
import { decodeGrey } from '../dist/src/data/images.js';
import { OOD_KINDS, makeOodSet, invert } from '../dist/src/calibrate/ood-sets.js';
import { fitOodGate } from '../dist/src/calibrate/ood.js';
import { mahalanobisScores } from '../dist/src/inference/core/ood.js';
import { prepareScores, rocAuc } from '../dist/src/evaluate/metrics.js';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
const { values: args } = parseArgs({ options: { model: { type: 'string' }, data: { type: 'string' } } });
if (!args.model || !args.data) { console.error('usage: node scripts/ood-layer-choice.mjs --model RUN --data DIR'); process.exit(2); }
await initEngine();
const L = loadTrainedModel(args.model);
const pre = L.preprocessing; const size = pre.size;
const layers = ['conv1','layer1.0','layer2.0','layer3.0','features'];
const ds = await loadMuraDataset(args.data);
const split = loadSplit(join(args.model, 'split.json'), ds);
const train = selectSubset(ds, split, 'train').images.filter((_, i) => i % 3 === 0);
const test = selectSubset(ds, split, 'test').images;
async function feats(records) {
  const loader = new BatchLoader(records, { batchSize: 32, shuffle: false, augment: false, preprocessing: pre, workers: 2 });
  const rows = [];
  for await (const b of loader.epoch(0)) { const t = tf.tidy(() => layerStatistics(L.model, tf.tensor4d(b.x, [b.n, size, size, 3]), layers)); rows.push(t.dataSync().slice()); t.dispose(); }
  await loader.close();
  const n = rows.reduce((s, r) => s + r.length, 0); const out = new Float32Array(n); let o = 0; for (const r of rows) { out.set(r, o); o += r.length; } return out;
}
function featsPics(pics) { const per = size*size*3; const rows=[]; for (let s=0;s<pics.length;s+=16){const b=pics.slice(s,s+16); const x=new Float32Array(b.length*per); b.forEach((p,i)=>x.set(preprocessGrey(p.data,p.width,p.height,pre),i*per)); const t=tf.tidy(()=>layerStatistics(L.model,tf.tensor4d(x,[b.length,size,size,3]),layers)); rows.push(t.dataSync().slice()); t.dispose();} const n=rows.reduce((s,r)=>s+r.length,0); const out=new Float32Array(n); let o=0; for(const r of rows){out.set(r,o);o+=r.length;} return out; }
const Ftr = await feats(train); const Fte = await feats(test);
const D = Ftr.length / train.length; console.log('dim', D, 'train', train.length);
const sets = {};
for (const k of OOD_KINDS) sets[k] = featsPics(makeOodSet(k, 40, 1));
const inv = []; for (const r of test.slice(0, 40)) { const g = await decodeGrey(r.absPath); inv.push(invert({ data: g.data, width: g.width, height: g.height })); }
sets.inverted = featsPics(inv);
// column groups: layer l has 2*C_l columns
const C = { 'conv1': 16, 'layer1.0': 16, 'layer2.0': 32, 'layer3.0': 64, 'features': 128 };
let off = 0; const cols = {}; for (const l of layers) { cols[l] = { mean: [...Array(C[l]).keys()].map(i => off + i), std: [...Array(C[l]).keys()].map(i => off + C[l] + i) }; off += 2 * C[l]; }
function pick(F, idx) { const n = F.length / D; const out = new Float32Array(n * idx.length); for (let r = 0; r < n; r++) for (let j = 0; j < idx.length; j++) out[r*idx.length+j] = F[r*D+idx[j]]; return out; }
function run(name, idx) {
  const g = fitOodGate(pick(Ftr, idx), train.length, idx.length, 0.99, ['custom']);
  const te = mahalanobisScores(pick(Fte, idx), test.length, g);
  const fr = (s) => s.reduce((c, v) => c + (v > g.threshold ? 1 : 0), 0) / s.length;
  let all = []; const line = [];
  for (const [k, F] of Object.entries(sets)) { const s = mahalanobisScores(pick(F, idx), F.length / D, g); all.push(...s); line.push(`${k} ${(100*fr(s)).toFixed(0)}`); }
  const auc = rocAuc(prepareScores([...Array(te.length).fill(0), ...Array(all.length).fill(1)], [...te, ...all]));
  console.log(`${name.padEnd(28)} heldout ${(100*fr(te)).toFixed(1)}% | OOD ${(100*fr(Float64Array.from(all))).toFixed(1)}% AUROC ${auc.toFixed(3)} | ${line.join(' ')}`);
}
run('final mean', cols.features.mean);
run('final mean+std', [...cols.features.mean, ...cols.features.std]);
run('all means', layers.flatMap(l => cols[l].mean));
run('all mean+std', layers.flatMap(l => [...cols[l].mean, ...cols[l].std]));
run('early mean+std (c1,l1,l2)', ['conv1','layer1.0','layer2.0'].flatMap(l => [...cols[l].mean, ...cols[l].std]));
run('l1,l2,l3 + final mean+std', ['layer1.0','layer2.0','layer3.0','features'].flatMap(l => [...cols[l].mean, ...cols[l].std]));
