#!/usr/bin/env node
// Site filters explored on the site-adaptation bench's adaptation POOLS only (never its test part): the deployed
// model's study AUC, with no refit, after each candidate filter, and with the grey map fitted on the pool after it.
// This is how the candidates of src/calibrate/adapt/site-prep.ts were chosen (docs/adaptation.md).
//
//   node bench/site-filter-pool.mjs --out OUT_DIR --site cr-legacy --variants '{"name":{"siteFilter":{...},"map":true}}'
//        [--reference-data DIR] [--test-studies 700] [--threads 2]
//
// OUT_DIR: a folder `bench/site-adaptation.mjs --out` filled (its model.onnx and data/<site>); the test part is
// split off exactly as that bench does and left out. --reference-data: the training site's images (default
// /tmp/trust-demo/data, the demo run's data). Needs `npm run build`.
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { siteTestPart } from './lib/site-split.mjs';
import { fromDist, option } from './lib/util.mjs';

const dist = fromDist;
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
const out = opt('out');
const site = opt('site');
const variants = JSON.parse(opt('variants', '{}'));
if (!out || !site || !existsSync(join(out, 'model.onnx')) || !existsSync(join(out, 'data', site, 'synth.json'))) {
  console.error('usage: node bench/site-filter-pool.mjs --out OUT_DIR (filled by bench/site-adaptation.mjs) --site NAME --variants JSON');
  process.exit(2);
}
const testStudies = Number(opt('test-studies', '700'));
const threads = Number(opt('threads', '2'));
const { readLocalStudies, computeModelOutputs, greyHistogramOf, greyReferenceFrom } = await dist('calibrate/adapt-host.js');
const { fitGreyMap } = await dist('data/grey-map.js');
const { openModel } = await dist('inference/node/models.js');
const { computeMetrics, prepareScores } = await dist('evaluate/metrics.js');
const { Rng } = await dist('util/rng.js');

const model = join(out, 'model.onnx');
const m = await openModel(model, { engine: 'onnx' });
const pre = m.card.preprocessing;
await m.release();
const ref = await greyReferenceFrom(opt('reference-data', '/tmp/trust-demo/data'), pre);

function studyAuc(images, logits) {
  const keys = [...new Set(images.map((im) => im.study))];
  const idx = new Map(keys.map((k, i) => [k, i]));
  const s = new Float64Array(keys.length);
  const c = new Float64Array(keys.length);
  const y = new Array(keys.length);
  images.forEach((im, i) => {
    const k = idx.get(im.study);
    s[k] += 1 / (1 + Math.exp(-logits[i]));
    c[k]++;
    y[k] = im.label;
  });
  return computeMetrics(prepareScores(y, Array.from(s, (v, k) => v / c[k])), 0.5).values.auc;
}

// The test part: the same patients as bench/site-adaptation.mjs sets aside (same seeded order, same size).
const d = await readLocalStudies(join(out, 'data', site));
const { test } = siteTestPart(d.images, site, testStudies, Rng);
const pool = d.images.filter((im) => !test.has(im.patient));
console.log(`${site} pool: ${pool.length} images (test part left out); load ${loadavg().map((v) => v.toFixed(1)).join(' ')}`);
for (const [name, v] of Object.entries(variants)) {
  const sf = v.siteFilter;
  const o = await computeModelOutputs(model, pool, { threads, ...(sf ? { siteFilter: sf } : {}) });
  let line = `${site} ${name}: deployed study AUC ${studyAuc(o.kept, o.logits).toFixed(3)}`;
  if (v.map) {
    const q = (await greyHistogramOf(pool.map((im) => im.file), { ...pre, ...(sf ? { siteFilter: sf } : {}) })).histogram.quantiles(ref.levels);
    const o2 = await computeModelOutputs(model, pool, { threads, greyMap: fitGreyMap(q, ref.quantiles), ...(sf ? { siteFilter: sf } : {}) });
    line += `, with the grey map ${studyAuc(o2.kept, o2.logits).toFixed(3)}`;
  }
  console.log(line);
}
