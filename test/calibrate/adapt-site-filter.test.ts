/**
 * Site filters of adaptation (src/data/site-filter.ts) and the choice of the site preprocessing
 * (src/calibrate/adapt/site-prep.ts):
 *   - golden values from test/fixtures/site-filter/make.py (scipy.ndimage: gaussian_filter, binary_dilation, and the
 *     onion-peel inpainting written there with numpy convolutions; the unsharp mask from gaussian_filter and np.clip);
 *   - on real synthetic films: cr-legacy's burned-in text (saturated strokes the default film of the same study does
 *     not have) is gone after the overlay suppression, and nothing far from it changed;
 *   - in the preprocessing: only the placement is filtered (bars keep `background`), before the grey map;
 *     validation keeps it and refuses broken filters;
 *   - site shift, through the choice: a trunk blinded by a site's burned-in text (features that carry the label only
 *     when the overlay is suppressed) — the choice must keep the overlay suppression and the adapted head must beat
 *     the deployed model on held-out studies; a stub that never applies the filter (the host ignores it) fails both;
 *   - disjointness: the choice and the grey map never read the held-out part (garbage there changes neither);
 *   - the head file carries the filter (format version 3); a version-2 file that claims one is refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applySiteFilter, gaussianSmooth, isEmptySiteFilter, suppressOverlay, unsharpMask, validateSiteFilter, type SiteFilter } from '../../src/data/site-filter.js';
import { GreyHistogram, GREY_LEVELS } from '../../src/data/grey-map.js';
import { makePreprocessing, placement, resizeToInput, validatePreprocessing } from '../../src/data/preprocess.js';
import { adaptWithSitePreprocessing, SITE_FILTER_CANDIDATES, type SitePrepHost } from '../../src/calibrate/adapt/site-prep.js';
import { splitImages, type AdaptImage } from '../../src/calibrate/adapt/adapt.js';
import { AdaptError, makeHeadFile, parseHeadFile, serializeHeadFile, type AdaptationRecord } from '../../src/calibrate/adapt/head-file.js';
import { generateSyntheticMura } from '../../src/data/synth/generate.js';
import { readLocalStudies } from '../../src/calibrate/adapt-host.js';
import { decodeGrey } from '../../src/data/images.js';
import { Rng } from '../../src/util/rng.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

const golden = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'site-filter', 'golden.json'), 'utf8'));
const tmp = tempDir('nextray-adapt-filter-');
after(() => tmp.cleanup());

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('golden (scipy): overlay suppression, Gaussian smoothing, and both in order', () => {
  const { width: w, height: h } = golden;
  const img = Float32Array.from(golden.image);
  const masked = suppressOverlay(img, w, h, golden.threshold);
  assert.equal(masked, golden.masked);
  close(img, golden.suppressed, 1e-5, 'suppressed');
  for (const [sigma, want] of Object.entries(golden.smoothed)) {
    const g = Float32Array.from(golden.smooth_input);
    gaussianSmooth(g, w, h, Number(sigma));
    close(g, want as number[], 1e-5, `smoothed sigma ${sigma}`);
  }
  const both = applySiteFilter(Float32Array.from(golden.image), w, h, { overlay: { threshold: golden.threshold }, smooth: { sigma: golden.both_sigma } });
  close(both, golden.both, 1e-5, 'overlay then smoothing');
  // Nothing at or above the threshold: unchanged.
  const quiet = Float32Array.from(golden.smooth_input as number[], (v) => v * 0.9);
  assert.equal(suppressOverlay(quiet, w, h, 0.95), 0);
  assert.deepEqual(quiet, Float32Array.from(golden.smooth_input as number[], (v) => v * 0.9));
});

test('golden (scipy): the unsharp mask, clipped to [0, 1], and suppression -> smoothing -> sharpening in order', () => {
  const { width: w, height: h } = golden;
  for (const [key, want] of Object.entries(golden.sharpened)) {
    const [sigma, amount] = key.split('/').map(Number) as [number, number];
    const g = Float32Array.from(golden.sharpen_input);
    unsharpMask(g, w, h, sigma, amount);
    close(g, want as number[], 1e-5, `unsharp sigma ${sigma} amount ${amount}`);
  }
  const c = golden.chain;
  const f: SiteFilter = { overlay: { threshold: golden.threshold }, smooth: { sigma: c.smooth }, sharpen: { sigma: c.sharpen_sigma, amount: c.amount } };
  close(applySiteFilter(Float32Array.from(golden.image), w, h, f), c.out, 1e-5, 'overlay, smoothing, sharpening');
  assert.equal(isEmptySiteFilter({ sharpen: { sigma: 3, amount: 0 } }), true);
  assert.equal(isEmptySiteFilter({ sharpen: { sigma: 3, amount: 1 } }), false);
  assert.deepEqual(validateSiteFilter(JSON.parse(JSON.stringify(f))), f);
  assert.throws(() => validateSiteFilter({ sharpen: { sigma: 3 } }), /sharpen.amount/);
  assert.throws(() => validateSiteFilter({ sharpen: { sigma: -1, amount: 1 } }), /sharpen.sigma/);
});

test("cr-legacy films: the burned-in text is gone after the overlay suppression, and pixels away from it are untouched", async () => {
  const dirs: Record<string, string> = {};
  for (const site of ['default', 'cr-legacy'] as const) {
    dirs[site] = join(tmp.dir, `films-${site}`);
    await generateSyntheticMura({ outDir: dirs[site]!, studies: 4, seed: 41, size: 64, validFraction: 0.5, workers: 0, site });
  }
  const cr = (await readLocalStudies(dirs['cr-legacy']!)).images.map((im) => im.file);
  const def = (await readLocalStudies(dirs.default!)).images.map((im) => im.file);
  let textFilms = 0;
  for (let k = 0; k < cr.length; k++) {
    const a = await decodeGrey(cr[k]!);
    const d = await decodeGrey(def[k]!);
    const saturated = (g: Float32Array) => g.reduce((n, v) => n + (v >= 0.98 ? 1 : 0), 0);
    if (saturated(a.data) > saturated(d.data) + 5) textFilms++;
    const g = a.data.slice();
    suppressOverlay(g, a.width, a.height, 0.98);
    assert.equal(saturated(g), 0, `${cr[k]}: no overlay left`);
    // Pixels more than 2 px (dilation + one round) from any masked one keep their value... or lie in a stroke's
    // shadow: check the far ones only.
    const near = new Uint8Array(g.length);
    for (let y = 0; y < a.height; y++)
      for (let x = 0; x < a.width; x++)
        if (a.data[y * a.width + x]! >= 0.98)
          for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) if (y + dy >= 0 && y + dy < a.height && x + dx >= 0 && x + dx < a.width) near[(y + dy) * a.width + x + dx] = 1;
    for (let i = 0; i < g.length; i++) if (!near[i]) assert.equal(g[i], a.data[i]);
  }
  assert.ok(textFilms >= cr.length / 2, `cr-legacy has burned-in text on its films (${textFilms} of ${cr.length})`);
});

test('the filter in the preprocessing: the placement is filtered before the grey map, the bars are not; validation', () => {
  const p = makePreprocessing({ size: 8, background: 0 });
  const grey = new Float32Array(8 * 4).fill(0.25);
  grey[8 + 3] = 1; // one saturated pixel: with its 3 x 3 neighbourhood filled from the 0.25 around it
  const plain = resizeToInput(grey, 8, 4, p);
  const filtered = resizeToInput(grey, 8, 4, { ...p, siteFilter: { overlay: { threshold: 0.98 } } });
  const mapped = resizeToInput(grey, 8, 4, { ...p, siteFilter: { overlay: { threshold: 0.98 } }, greyMap: { x: [0, 0.5, 1], y: [0, 0.9, 1] } });
  const pl = placement(8, 4, p);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const i = y * 8 + x;
      if (y >= pl.y && y < pl.y + pl.height) {
        assert.ok(Math.abs(filtered[i]! - 0.25) < 1e-6, `(${x},${y}) filtered ${filtered[i]}`);
        assert.ok(Math.abs(mapped[i]! - 0.45) < 1e-6, `(${x},${y}) filtered then mapped ${mapped[i]}`);
      } else assert.equal(filtered[i], plain[i], 'bars keep the background');
    }
  }
  assert.ok(plain.some((v) => v > 0.9), 'without the filter the stroke is there');
  const f: SiteFilter = { overlay: { threshold: 0.9 }, smooth: { sigma: 0.7 } };
  assert.deepEqual(validatePreprocessing(JSON.parse(JSON.stringify({ ...p, siteFilter: f }))).siteFilter, f);
  assert.throws(() => validatePreprocessing({ ...p, siteFilter: { overlay: { threshold: 2 } } }), /siteFilter/);
  assert.throws(() => validateSiteFilter({ crop: {} }), /unknown key 'crop'/);
  assert.throws(() => validateSiteFilter({ smooth: { sigma: -1 } }), /sigma/);
});

/**
 * A site whose burned-in text blinds the trunk: per image a hidden finding score (the label's signal) and a text
 * pattern. The host's "model" reads the image as its features: without overlay suppression the text swamps the
 * finding (each feature its own text pattern plus a trace of the finding), with it the finding is clean. Labels 40% abnormal, two views
 * per study, two studies per patient.
 */
function blindedSite(n: number, seed: string) {
  const rng = new Rng(seed);
  const images: AdaptImage[] = [];
  const finding: number[] = [];
  const text: number[][] = [];
  for (let s = 0; s < n; s++) {
    const label = (rng.next() < 0.4 ? 1 : 0) as 0 | 1;
    for (let v = 0; v < 2; v++) {
      images.push({ study: `s${s}`, patient: `p${Math.floor(s / 2)}`, label });
      finding.push((label ? 1.2 : -1.2) + rng.normal());
      text.push([4 * rng.normal(), 4 * rng.normal(), 4 * rng.normal()]);
    }
  }
  const dim = 3;
  const outputs = (clean: boolean) => {
    const features = new Float32Array(images.length * dim);
    const baseLogits = new Float64Array(images.length);
    images.forEach((_, i) => {
      // Blinded: each feature is its own text pattern plus a trace of the finding (no linear combination cancels
      // the text); clean: the finding itself.
      const t = text[i]!;
      const f = finding[i]!;
      const row = clean ? [f, 0.5 * f + 0.1 * t[1]!, 0.1 * t[2]!] : [t[0]! + 0.15 * f, t[1]! + 0.1 * f, t[2]!];
      features.set(row, i * dim);
      // The deployed head reads the first feature.
      baseLogits[i] = 0.8 * row[0]!;
    });
    return { features, baseLogits };
  };
  return { images, dim, finding, text, outputs };
}

function hostOf(site: ReturnType<typeof blindedSite>, opts: { ignoreFilter?: boolean; seen?: Set<number> } = {}): SitePrepHost {
  return {
    async outputs(prep) {
      return site.outputs(!opts.ignoreFilter && !!prep.siteFilter?.overlay);
    },
    async histogramOf(idx) {
      const h = new GreyHistogram();
      for (const i of idx) {
        opts.seen?.add(i);
        h.add(Float32Array.of(Math.min(0.99, Math.max(0, 0.5 + 0.1 * site.finding[i]!))));
      }
      return h;
    },
  };
}

test('site shift through the choice: overlay suppression is kept and beats the deployed model on held-out studies; a host that ignores the filter fails', async () => {
  const site = blindedSite(260, 'blinded-site');
  const plain = site.outputs(false);
  const base = { temperature: 1, threshold: 0.5 };
  const reference = { levels: [...GREY_LEVELS], quantiles: GREY_LEVELS.map((q) => q), images: 1, source: 'uniform' };
  const run = (host: SitePrepHost) => adaptWithSitePreprocessing(site.images, site.dim, plain, base, host, { reference, bootstrap: 50, siteFilter: 'auto' });
  const good = await run(hostOf(site));
  assert.ok(good.siteFilter?.overlay, `kept: ${JSON.stringify(good.siteFilter)}`);
  assert.equal(good.trials.length, (1 + SITE_FILTER_CANDIDATES.length) * 2, 'every filter, without and with the map');
  const kept = good.trials.find((t) => JSON.stringify(t.site_filter) === JSON.stringify(good.siteFilter) && t.grey_map === (good.greyMap !== null))!;
  assert.equal(kept.cv_log_loss, Math.min(...good.trials.map((t) => t.cv_log_loss)), 'the lowest cross-fitted log loss is kept');
  assert.equal(good.result.decision, 'adapted', good.result.decisionReason);
  assert.deepEqual(good.result.adopted!.siteFilter, good.siteFilter, 'the adopted head names the filter its features came after');
  const h = good.result.heldOut;
  assert.ok(h.after.auc! > h.before.auc! + 0.15, `held-out study AUC ${h.before.auc} -> ${h.after.auc}`);

  // The stub: a host that never applies the filter. The head alone cannot see through the text.
  const stub = await run(hostOf(site, { ignoreFilter: true }));
  assert.ok(stub.result.heldOut.after.auc! < h.after.auc! - 0.1, `without the filter: held-out AUC ${stub.result.heldOut.after.auc} (with it ${h.after.auc})`);
});

test('disjointness: the choice and its grey map never read the held-out part (garbage there changes neither)', async () => {
  const site = blindedSite(200, 'blinded-disjoint');
  const plain = site.outputs(false);
  const base = { temperature: 1, threshold: 0.5 };
  const reference = { levels: [...GREY_LEVELS], quantiles: GREY_LEVELS.map((q) => q), images: 1, source: 'uniform' };
  const { fit, heldOut } = splitImages(site.images);
  const seen = new Set<number>();
  const a = await adaptWithSitePreprocessing(site.images, site.dim, plain, base, hostOf(site, { seen }), { reference, bootstrap: 0 });
  for (const i of seen) assert.ok(fit.includes(i), `image ${i} (held out) was measured for the grey map`);
  assert.equal(seen.size, fit.length);
  // Garbage features and logits of the held-out images, under every candidate: the choice and the head stay.
  const garbled: SitePrepHost = {
    ...hostOf(site),
    async outputs(prep) {
      const o = site.outputs(!!prep.siteFilter?.overlay);
      for (const i of heldOut) {
        o.features.fill(7, i * site.dim, (i + 1) * site.dim);
        o.baseLogits[i] = -5;
      }
      return o;
    },
  };
  const plainG = site.outputs(false);
  for (const i of heldOut) {
    plainG.features.fill(7, i * site.dim, (i + 1) * site.dim);
    plainG.baseLogits[i] = -5;
  }
  const b = await adaptWithSitePreprocessing(site.images, site.dim, plainG, base, garbled, { reference, bootstrap: 0 });
  assert.deepEqual(b.trials, a.trials);
  assert.deepEqual(b.siteFilter, a.siteFilter);
  assert.deepEqual(b.result.candidate.deltaWeight, a.result.candidate.deltaWeight);
  assert.equal(b.result.candidate.threshold, a.result.candidate.threshold);
});

test('head file: the site filter round trip (format version 3), and a version-2 file that claims one is refused', () => {
  const record = { base_sha256: 'a'.repeat(64) } as unknown as AdaptationRecord;
  const siteFilter: SiteFilter = { overlay: { threshold: 0.9 } };
  const head = { deltaWeight: Float32Array.of(0.5, -0.25), deltaBias: 0.1, temperature: 1.2, threshold: 0.4, lambda: 1, rule: { kind: 'max-kappa' as const }, siteFilter, outOfFold: { studies: 1, kappa: null, sensitivity: null, specificity: null, temperatureNllBefore: 0, temperatureNllAfter: 0 } };
  const base = { sha256: 'a'.repeat(64), arch: 'resnet-slim', featuresDim: 2, temperature: 1, threshold: 0.5 };
  const text = serializeHeadFile(makeHeadFile(head, base, record));
  const loaded = parseHeadFile(text);
  assert.equal(loaded.file.format_version, 3);
  assert.deepEqual(loaded.siteFilter, siteFilter);
  assert.equal(loaded.greyMap, null);
  const forged = JSON.parse(text);
  forged.format_version = 2;
  assert.throws(() => parseHeadFile(JSON.stringify(forged), 'forged.json'), (e: unknown) => e instanceof AdaptError && /version 3/.test((e as Error).message));
  forged.format_version = 3;
  forged.head.site_filter = { overlay: { threshold: 7 } };
  assert.throws(() => parseHeadFile(JSON.stringify(forged), 'forged.json'), AdaptError);
});
