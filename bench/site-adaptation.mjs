#!/usr/bin/env node
// Site adaptation, measured: a model trained on the default synthetic site, evaluated on other sites (`nextray synth
// --site portable|cr-legacy`) before and after `nextray adapt`'s fitting on 50, 100 and 200 local studies, for
// several seeds. The numbers of docs/adaptation.md come from this script.
//
//   node bench/site-adaptation.mjs --run RUN_DIR --out OUT_DIR [--sites portable,cr-legacy] [--sizes 50,100,200]
//        [--seeds 1,2] [--studies 1400] [--test-studies 700] [--image-size 128] [--threads 2] [--reference-data DIR]
//        [--site-filter auto|off]
//
// The adaptation is `nextray adapt`'s (src/calibrate/adapt/site-prep.ts): candidate site preprocessings in front of
// the deployed model (none, burned-in overlay suppression, smoothing; each without and with the site's grey map,
// fitted on the fitting part of the local studies: their grey-level quantiles onto the training site's, measured on
// --reference-data, default the run's training data), the head refitted after each, the one with the lowest
// cross-fitted log loss inside the fitting part kept, then the held-out decision. `--site-filter off` gives the
// grey map alone (the previous method). The test part is never read by any fitting.
//
// RUN_DIR: a training run on the default site (e.g. `nextray demo --out D` -> D/run; its images were 128 px).
// For each site, one dataset of --studies studies is generated (seed 1000 + site index, patients disjoint from the
// training data by construction: another seed), its patients split once into a TEST part (--test-studies studies,
// never used for fitting) and an adaptation POOL. For each seed, patients are drawn from the pool in a seeded order
// and the first 50 / 100 / 200 studies' worth are the "local studies" handed to the adaptation (nested sets). The
// adapted head (or the kept deployed model) is then judged on the TEST part: study AUC, study ECE, kappa,
// sensitivity and specificity at the chosen threshold, against the deployed model on the same studies and
// against the deployed model on the default site ("home": the AUC the shift took away).
// Features come from the exported model's `features` output through onnxruntime-node, as in `nextray adapt`.
// Needs `npm run build`. Writes OUT_DIR/site-adaptation.json and .md, prints the Markdown table.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { siteTestPart } from './lib/site-split.mjs';
import { fromDist, option, repoRoot } from './lib/util.mjs';

const dist = fromDist;
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
const run = opt('run');
const out = opt('out');
if (!run || !out) {
  console.error('usage: node bench/site-adaptation.mjs --run RUN_DIR --out OUT_DIR [--sites portable,cr-legacy] [--sizes 50,100,200] [--seeds 1,2]');
  process.exit(2);
}
const sites = opt('sites', 'portable,cr-legacy').split(',');
const sizes = opt('sizes', '50,100,200').split(',').map(Number);
const seeds = opt('seeds', '1,2').split(',').map(Number);
const studies = Number(opt('studies', '1400'));
const testStudies = Number(opt('test-studies', '700'));
const imageSize = Number(opt('image-size', '128'));
const threads = Number(opt('threads', '2'));
const referenceData = opt('reference-data', JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).data);
const filterMode = opt('site-filter', 'auto');

const { generateSyntheticMura } = await dist('data/synth/index.js');
const { readLocalStudies, computeModelOutputs, greyHistogramOf, greyReferenceFrom } = await dist('calibrate/adapt-host.js');
const { adaptWithSitePreprocessing, sitePrepLabel } = await dist('calibrate/adapt/site-prep.js');
const { openModel } = await dist('inference/node/models.js');
const { calibration, studyProbabilities } = await dist('evaluate/calibration.js');
const { computeMetrics, prepareScores } = await dist('evaluate/metrics.js');
const { Rng } = await dist('util/rng.js');

mkdirSync(out, { recursive: true });
const t0 = performance.now();
const model = join(out, 'model.onnx');
if (!existsSync(model)) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'nextray.js'), 'export', '--checkpoint', run, '--out', model, '--features'], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
}

/** Study-level metrics of image probabilities at a threshold. */
function studyEval(images, probs, threshold) {
  const keys = [...new Set(images.map((im) => im.study))];
  const idx = new Map(keys.map((k, i) => [k, i]));
  const sum = new Float64Array(keys.length);
  const cnt = new Float64Array(keys.length);
  const y = new Array(keys.length);
  images.forEach((im, i) => {
    const s = idx.get(im.study);
    sum[s] += probs[i];
    cnt[s]++;
    y[s] = im.label;
  });
  const p = Array.from(sum, (v, s) => v / cnt[s]);
  const m = computeMetrics(prepareScores(y, p), threshold);
  return { studies: keys.length, auc: m.values.auc, kappa: m.values.kappa, sensitivity: m.values.sensitivity, specificity: m.values.specificity, ece: calibration(p, y).ece, threshold };
}

const sigmoid = (z) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/** Features and logits of a generated site dataset, split into test / pool by patient. */
async function siteData(site, index) {
  const dir = join(out, 'data', site);
  if (!existsSync(join(dir, 'synth.json'))) {
    await generateSyntheticMura({ outDir: dir, studies, seed: 1000 + index, size: imageSize, validFraction: 0.5, site, force: true });
  }
  // The model's outputs over the site's images are cached beside the data (a re-run only refits).
  const cache = join(out, `outputs-${site}.json`);
  let o;
  if (existsSync(cache)) {
    const c = JSON.parse(readFileSync(cache, 'utf8'));
    o = { ...c, features: Float32Array.from(c.features), logits: Float32Array.from(c.logits) };
  } else {
    const local = await readLocalStudies(dir);
    o = await computeModelOutputs(model, local.images, { threads });
    writeFileSync(cache, JSON.stringify({ ...o, features: Array.from(o.features), logits: Array.from(o.logits) }));
  }
  const { test, studiesOf, patients } = siteTestPart(o.kept, site, testStudies, Rng);
  const pick = (keep) => {
    const idx = o.kept.map((im, i) => (keep(im) ? i : -1)).filter((i) => i >= 0);
    return {
      images: idx.map((i) => o.kept[i]),
      features: Float32Array.from(idx.flatMap((i) => Array.from(o.features.subarray(i * o.dim, (i + 1) * o.dim)))),
      logits: Float64Array.from(idx, (i) => o.logits[i] * o.temperature),
    };
  };
  return { o, test: pick((im) => test.has(im.patient)), pool: pick((im) => !test.has(im.patient)), studiesOf, poolPatients: patients.filter((p) => !test.has(p)) };
}

/** The adapted head's image probabilities on a site's test part (`part`: its features and logits, mapped or not). */
function applyHead(h, d, part = d.test) {
  return d.test.images.map((_, i) => {
    let z = part.logits[i] + h.deltaBias;
    for (let j = 0; j < d.o.dim; j++) z += part.features[i * d.o.dim + j] * h.deltaWeight[j];
    return sigmoid(z / h.temperature);
  });
}

/** Rows of a part (images, features, logits times T) picked by index. */
function rowsOf(o, idx) {
  return {
    images: idx.map((i) => o.kept[i]),
    features: Float32Array.from(idx.flatMap((i) => Array.from(o.features.subarray(i * o.dim, (i + 1) * o.dim)))),
    logits: Float64Array.from(idx, (i) => o.logits[i] * o.temperature),
  };
}

const pre = await (async () => {
  const m = await openModel(model, { engine: 'onnx' });
  const p = m.card.preprocessing;
  await m.release();
  return p;
})();
const reference = await greyReferenceFrom(referenceData, pre);
console.error(`reference grey levels: ${reference.images} images of ${referenceData}`);

/**
 * `nextray adapt`'s fitting on `local` (pool rows): every candidate site preprocessing (src/calibrate/adapt/site-prep.ts:
 * the site filters, each with and without the grey map fitted on the fitting part), the model run again over the
 * local images after each, the head refitted on each, the lowest cross-fitted log loss inside the fitting part kept.
 * Returns the result and the test part's features/logits under the kept preprocessing (the test part is computed
 * only after the choice).
 */
async function adaptSite(d, local, seed, bootstrap) {
  const outcome = await adaptWithSitePreprocessing(
    local.images,
    d.o.dim,
    { features: local.features, baseLogits: local.logits },
    base,
    {
      async outputs(prep) {
        const m = await computeModelOutputs(model, local.images, { threads, ...prep });
        if (m.kept.length !== local.images.length) throw new Error('an image failed to decode the second time');
        return { features: m.features, baseLogits: Float64Array.from(m.logits, (z) => z * m.temperature) };
      },
      async histogramOf(idx, siteFilter) {
        return (await greyHistogramOf(idx.map((i) => local.images[i].file), siteFilter ? { ...pre, siteFilter } : pre)).histogram;
      },
    },
    { seed, bootstrap, reference, siteFilter: filterMode },
  );
  let test = d.test;
  if (outcome.siteFilter || outcome.greyMap) {
    const m = await computeModelOutputs(model, d.test.images, { threads, ...(outcome.siteFilter ? { siteFilter: outcome.siteFilter } : {}), ...(outcome.greyMap ? { greyMap: outcome.greyMap } : {}) });
    if (m.kept.length !== d.test.images.length) throw new Error('a test image failed to decode the second time');
    test = rowsOf(m, [...Array(m.kept.length).keys()]);
  }
  return { r: outcome.result, test, greyUsed: outcome.greyMap !== null, siteFilter: outcome.siteFilter, trials: outcome.trials };
}

const rows = [];
const ceilings = {};
const home = await siteData('default', 0);
const base = { temperature: home.o.temperature, threshold: home.o.threshold };
const baseProbs = (part) => Array.from(part.logits, (z) => sigmoid(z / base.temperature));
const homeEval = studyEval(home.test.images, baseProbs(home.test), base.threshold);
console.error(`home (default site) test: ${homeEval.studies} studies, AUC ${homeEval.auc.toFixed(3)}, ECE ${homeEval.ece.toFixed(3)}`);

for (const [si, site] of sites.entries()) {
  const d = await siteData(site, si + 1);
  const before = studyEval(d.test.images, baseProbs(d.test), base.threshold);
  console.error(`${site} test: ${before.studies} studies, deployed AUC ${before.auc.toFixed(3)}, ECE ${before.ece.toFixed(3)}`);
  // What a linear head on these features can reach at all: the candidate fitted on the whole pool (every pool study,
  // cross-fitted penalty), judged on the test part whatever the held-out decision.
  const allFit = await adaptSite(d, d.pool, 1, 0);
  const all = allFit.r;
  const ceiling = studyEval(d.test.images, applyHead(all.candidate, d, allFit.test), all.candidate.threshold);
  ceilings[site] = { pool_studies: all.split.fit.studies + all.split.heldOut.studies, fitted_on: all.split.fit.studies, preprocessing: sitePrepLabel(allFit.siteFilter, allFit.greyUsed), trials: allFit.trials, ...ceiling };
  console.error(`${site} ceiling (fitted on ${all.split.fit.studies} pool studies, ${sitePrepLabel(allFit.siteFilter, allFit.greyUsed)}): test AUC ${ceiling.auc.toFixed(3)}, ECE ${ceiling.ece.toFixed(3)}`);
  for (const seed of seeds) {
    const order = [...d.poolPatients];
    new Rng(`site-adaptation/${site}/pool/${seed}`).shuffle(order);
    for (const size of sizes) {
      const chosen = new Set();
      let n = 0;
      for (const p of order) {
        if (n >= size) break;
        chosen.add(p);
        n += d.studiesOf.get(p).size;
      }
      const idx = d.pool.images.map((im, i) => (chosen.has(im.patient) ? i : -1)).filter((i) => i >= 0);
      const local = {
        images: idx.map((i) => d.pool.images[i]),
        features: Float32Array.from(idx.flatMap((i) => Array.from(d.pool.features.subarray(i * d.o.dim, (i + 1) * d.o.dim)))),
        logits: Float64Array.from(idx, (i) => d.pool.logits[i]),
      };
      let r;
      let fit;
      try {
        fit = await adaptSite(d, local, seed, 500);
        r = fit.r;
      } catch (err) {
        rows.push({ site, seed, size: n, error: err.message });
        console.error(`${site} seed ${seed} n ${n}: ${err.message}`);
        continue;
      }
      let after = before;
      if (r.adopted) after = studyEval(d.test.images, applyHead(r.adopted, d, fit.test), r.adopted.threshold);
      const lost = homeEval.auc - before.auc;
      const row = {
        site,
        seed,
        local_studies: n,
        decision: r.decision,
        too_small: r.tooSmall,
        improvement_claimed: r.improvementClaimed,
        grey_map_used: fit.greyUsed,
        site_filter: fit.siteFilter,
        preprocessing: sitePrepLabel(fit.siteFilter, fit.greyUsed),
        trials: fit.trials,
        lambda: r.candidate.lambda === Infinity ? 'infinity' : r.candidate.lambda,
        held_out: { studies: r.heldOut.studies, auc_before: r.heldOut.before.auc, auc_after: r.heldOut.after.auc },
        test_before: before,
        test_after: after,
        auc_recovered: lost > 0 ? (after.auc - before.auc) / lost : null,
      };
      rows.push(row);
      console.error(`${site} seed ${seed} n ${n}: ${r.decision} (${sitePrepLabel(fit.siteFilter, fit.greyUsed)}); test AUC ${before.auc.toFixed(3)} -> ${after.auc.toFixed(3)} (recovered ${row.auc_recovered?.toFixed(2)}), ECE ${before.ece.toFixed(3)} -> ${after.ece.toFixed(3)}`);
    }
  }
}

const f3 = (v) => (v === null || v === undefined ? '—' : v.toFixed(3));
const table = [
  `Model: ${resolve(run)}; home (default site) test: ${homeEval.studies} studies, study AUC ${f3(homeEval.auc)}, study ECE ${f3(homeEval.ece)}, kappa ${f3(homeEval.kappa)} at ${f3(homeEval.threshold)}.`,
  ...Object.entries(ceilings).map(
    ([site, c]) => `Ceiling on ${site}: the head fitted on ${c.fitted_on} of the ${c.pool_studies} pool studies (preprocessing kept inside the fitting part: ${c.preprocessing}) reaches test AUC ${f3(c.auc)} (ECE ${f3(c.ece)}): ${Math.round((100 * (c.auc - rows.find((r) => r.site === site && !r.error)?.test_before.auc)) / (homeEval.auc - rows.find((r) => r.site === site && !r.error)?.test_before.auc))}% of the AUC lost.`,
  ),
  '',
  '| site | seed | local studies | decision | test AUC before → after | AUC lost recovered | test ECE before → after | kappa before → after | sens / spec after |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.filter((r) => !r.error).map(
    (r) =>
      `| ${r.site} | ${r.seed} | ${r.local_studies} | ${r.decision}${r.too_small ? ' (too small)' : ''}${r.improvement_claimed ? ', claimed' : ''}${r.decision === 'adapted' ? `, ${r.preprocessing}` : ''} | ${f3(r.test_before.auc)} → ${f3(r.test_after.auc)} | ${r.auc_recovered === null ? '—' : `${Math.round(100 * r.auc_recovered)}%`} | ${f3(r.test_before.ece)} → ${f3(r.test_after.ece)} | ${f3(r.test_before.kappa)} → ${f3(r.test_after.kappa)} | ${f3(r.test_after.sensitivity)} / ${f3(r.test_after.specificity)} |`,
  ),
].join('\n');
const result = {
  run: resolve(run),
  model,
  options: { sites, sizes, seeds, studies, testStudies, imageSize, siteFilter: filterMode },
  home: homeEval,
  ceilings,
  rows,
  seconds: (performance.now() - t0) / 1000,
  loadavg: loadavg(),
};
writeFileSync(join(out, 'site-adaptation.json'), JSON.stringify(result, null, 1) + '\n');
writeFileSync(join(out, 'site-adaptation.md'), table + '\n');
console.log(table);
