#!/usr/bin/env node
// Head-fitting variants of `nextray adapt` compared on the site-adaptation bench's adaptation POOLS only (never its
// test part): 200-study draws of whole patients from the pool are adapted (the site filters as candidates, chosen by
// the lowest cross-fitted log loss as src/calibrate/adapt/site-prep.ts does; without the grey map, which would need a
// fit per draw), and the candidate head is judged on the REST of the pool (about 500 studies). docs/adaptation.md
// reports what this measured.
//
//   node bench/adapt-pool-draws.mjs --out OUT_DIR [--sites portable,cr-legacy] [--draws 6]
//        [--configs refit:1,bagged:1,bagged:3] [--oracle] [--cache DIR] [--threads 2]
//
// OUT_DIR: a folder `bench/site-adaptation.mjs --out` filled (its model.onnx, outputs-<site>.json and data/<site>).
// A config is head:repeats (head 'bagged' or 'refit'; repeats: fold splits of the cross-fitting). --oracle also prints,
// per draw, the study ECE after a temperature (and a temperature plus offset) fitted on the judged rest itself, and
// the ECE of perfectly calibrated probabilities on as many studies (labels drawn from the probabilities): the floor
// of the 15-bin ECE estimator. The model's outputs over the pool after each filter are cached in --cache (default
// OUT_DIR/pool-cache). Needs `npm run build`.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { siteTestPart } from './lib/site-split.mjs';
import { fromDist, option } from './lib/util.mjs';

const dist = fromDist;
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
const out = opt('out');
if (!out || !existsSync(join(out, 'model.onnx'))) {
  console.error('usage: node bench/adapt-pool-draws.mjs --out OUT_DIR (filled by bench/site-adaptation.mjs) [--sites ...] [--draws N] [--configs head:repeats,...] [--oracle]');
  process.exit(2);
}
const sites = opt('sites', 'portable,cr-legacy').split(',');
const draws = Number(opt('draws', '6'));
const configs = opt('configs', 'refit:1,bagged:1,bagged:3').split(',').map((c) => {
  const [head, r] = c.split(':');
  return { name: c, head, repeats: Number(r ?? 1) };
});
const oracle = argv.includes('--oracle');
const threads = Number(opt('threads', '2'));
const cacheDir = opt('cache', join(out, 'pool-cache'));
mkdirSync(cacheDir, { recursive: true });
const { readLocalStudies, computeModelOutputs } = await dist('calibrate/adapt-host.js');
const { SITE_FILTER_CANDIDATES } = await dist('calibrate/adapt/site-prep.js');
const { adaptHead } = await dist('calibrate/adapt/adapt.js');
const { fitStudyTemperature } = await dist('calibrate/temperature.js');
const { calibration } = await dist('evaluate/calibration.js');
const { computeMetrics, prepareScores } = await dist('evaluate/metrics.js');
const { Rng } = await dist('util/rng.js');
const sig = (z) => 1 / (1 + Math.exp(-z));
const load = () => loadavg().map((v) => v.toFixed(1)).join(' ');
const filterName = (f) => [f.overlay ? `ov${f.overlay.threshold}` : '', f.smooth ? `sm${f.smooth.sigma}` : '', f.sharpen ? `sh${f.sharpen.sigma}a${f.sharpen.amount}` : ''].filter(Boolean).join('-');
// Images are matched by their path below the data folder (the cached outputs may name another copy of it).
const key = (f) => f.slice(f.indexOf('/data/'));
const t0 = Date.now();
console.log(`load ${load()}`);

for (const site of sites) {
  const plain = JSON.parse(readFileSync(join(out, `outputs-${site}.json`), 'utf8'));
  const T = plain.temperature;
  const thr = plain.threshold;
  const dim = plain.dim;
  const { test, studiesOf, patients } = siteTestPart(plain.kept, site, 700, Rng);
  const pool = plain.kept.map((im, i) => ({ im, i })).filter(({ im }) => !test.has(im.patient));
  const images = pool.map(({ im }) => im);
  const pos = new Map(images.map((im, j) => [key(im.file), j]));
  const cands = [{ name: 'none', features: Float32Array.from(pool.flatMap(({ i }) => plain.features.slice(i * dim, (i + 1) * dim))), logits: Float64Array.from(pool, ({ i }) => plain.logits[i] * T) }];
  const local = await readLocalStudies(join(out, 'data', site));
  const poolFiles = local.images.filter((im) => !test.has(im.patient));
  for (const f of SITE_FILTER_CANDIDATES) {
    const file = join(cacheDir, `pool-${site}-${filterName(f)}.json`);
    if (!existsSync(file)) {
      const o = await computeModelOutputs(join(out, 'model.onnx'), poolFiles, { threads, siteFilter: f });
      writeFileSync(file, JSON.stringify({ ...o, features: Array.from(o.features), logits: Array.from(o.logits) }));
    }
    const c = JSON.parse(readFileSync(file, 'utf8'));
    const features = new Float32Array(images.length * dim);
    const logits = new Float64Array(images.length);
    c.kept.forEach((im, k) => {
      const j = pos.get(key(im.file));
      if (j === undefined) throw new Error(`${im.file} is not in the pool`);
      features.set(c.features.slice(k * dim, (k + 1) * dim), j * dim);
      logits[j] = c.logits[k] * T;
    });
    cands.push({ name: filterName(f), features, logits });
  }
  const deployed = cands[0].logits;
  const poolPatients = patients.filter((p) => !test.has(p));
  const sub = (rows, c) => ({ features: Float32Array.from(rows.flatMap((j) => Array.from(c.features.subarray(j * dim, (j + 1) * dim)))), logits: Float64Array.from(rows, (j) => c.logits[j]) });
  const headLogits = (rows, c, h) => rows.map((j) => {
    let z = c.logits[j];
    if (h) {
      z += h.deltaBias;
      for (let q = 0; q < dim; q++) z += c.features[j * dim + q] * h.deltaWeight[q];
    }
    return z;
  });
  const studyProbs = (rows, zs, temperature, offset = 0) => {
    const keys = [...new Set(rows.map((j) => images[j].study))];
    const ix = new Map(keys.map((k, q) => [k, q]));
    const s = new Float64Array(keys.length);
    const n = new Float64Array(keys.length);
    const y = new Array(keys.length);
    rows.forEach((j, q) => {
      const k = ix.get(images[j].study);
      s[k] += sig((zs[q] + offset) / temperature);
      n[k]++;
      y[k] = images[j].label;
    });
    return { p: Array.from(s, (v, k) => v / n[k]), y, studyOf: rows.map((j) => ix.get(images[j].study)) };
  };
  const judge = (rows, c, h) => {
    const { p, y } = studyProbs(rows, headLogits(rows, c, h), h ? h.temperature : T);
    const m = computeMetrics(prepareScores(y, p), h ? h.threshold : thr).values;
    return { auc: m.auc, ece: calibration(p, y).ece, kappa: m.kappa };
  };
  const acc = {};
  for (let r = 0; r < draws; r++) {
    const order = [...poolPatients];
    // The draws of docs/adaptation.md (the stream is named after the round that measured them).
    new Rng(`adapt-r5x/${site}/${r}`).shuffle(order);
    const chosen = new Set();
    let m = 0;
    for (const p of order) {
      if (m >= 200) break;
      chosen.add(p);
      m += studiesOf.get(p).size;
    }
    const drawn = images.map((im, j) => (chosen.has(im.patient) ? j : -1)).filter((j) => j >= 0);
    const rest = images.map((im, j) => (chosen.has(im.patient) ? -1 : j)).filter((j) => j >= 0);
    const drawnImages = drawn.map((j) => images[j]);
    const before = judge(rest, cands[0], null);
    for (const cfg of configs) {
      let best = null;
      for (const c of cands) {
        const s = sub(drawn, c);
        const res = adaptHead({ images: drawnImages, features: s.features, dim, baseLogits: s.logits, deployedLogits: Float64Array.from(drawn, (j) => deployed[j]) }, { temperature: T, threshold: thr }, { seed: r + 1, bootstrap: 0, head: cfg.head, repeats: cfg.repeats });
        const loss = Math.min(...res.cv.map((v) => v.logLoss));
        if (!best || loss < best.loss) best = { c, res, loss };
      }
      const h = best.res.candidate;
      const cand = judge(rest, best.c, h);
      const row = { draw: r, config: cfg.name, kept: best.c.name, lambda: String(h.lambda), temperature: h.temperature, decision: best.res.decision, auc: cand.auc, ece: cand.ece, beforeAuc: before.auc };
      (acc[cfg.name] ??= []).push(row);
      console.log(site, JSON.stringify(row, (k, v) => (typeof v === 'number' ? Number(v.toFixed(4)) : v)));
      if (oracle) {
        const zs = headLogits(rest, best.c, h);
        const { y, studyOf } = studyProbs(rest, zs, 1);
        const tf = fitStudyTemperature(zs, studyOf, y);
        const eceT = calibration(studyProbs(rest, zs, tf.temperature).p, y).ece;
        let bp = { ll: Infinity };
        for (let t = 0.3; t <= 2; t += 0.025) {
          for (let off = -2; off <= 2; off += 0.025) {
            const p = studyProbs(rest, zs, t, off).p;
            let ll = 0;
            p.forEach((v, k) => {
              const c = Math.min(1 - 1e-12, Math.max(1e-12, v));
              ll -= y[k] ? Math.log(c) : Math.log(1 - c);
            });
            if (ll < bp.ll) bp = { ll, t, off };
          }
        }
        const pp = studyProbs(rest, zs, bp.t, bp.off).p;
        const rr = new Rng(`floor/${site}/${r}`);
        let floor = 0;
        for (let k = 0; k < 20; k++) floor += calibration(pp, pp.map((v) => (rr.uniform(0, 1) < v ? 1 : 0))).ece / 20;
        console.log(site, cfg.name, r, `ECE ${cand.ece.toFixed(4)} (T ${h.temperature.toFixed(3)} from the fitting part); T fitted on the rest itself ${tf.temperature.toFixed(3)}: ${eceT.toFixed(4)}; T ${bp.t.toFixed(2)} and offset ${bp.off.toFixed(2)} fitted on the rest: ${calibration(pp, y).ece.toFixed(4)}; floor (calibrated, ${y.length} studies) ${floor.toFixed(4)}`);
      }
    }
  }
  for (const [k, rows] of Object.entries(acc)) {
    const mean = (f) => rows.reduce((a, x) => a + f(x), 0) / rows.length;
    console.log(`${site} ${k}: mean AUC on the rest ${mean((x) => x.auc).toFixed(4)}, study ECE ${mean((x) => x.ece).toFixed(4)} (<= 0.05 in ${rows.filter((x) => x.ece <= 0.05).length}/${rows.length}); deployed AUC ${mean((x) => x.beforeAuc).toFixed(4)}`);
  }
}
console.log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s, load ${load()}`);
