/**
 * The site grey-level normalisation of adaptation (src/data/grey-map.ts, src/calibrate/adapt/site-grey.ts):
 *   - golden values from test/fixtures/grey/make.py (numpy): histogram quantiles (np.interp over the cdf) and the
 *     quantile map (np.interp over the knots);
 *   - a site shift on real synthetic films: cr-legacy's films (another characteristic curve) mapped onto the default
 *     site's grey levels must match them, and the map must undo the site's curve as written out in its profile — an
 *     identity map fails both;
 *   - disjointness: the map is fitted on the fitting part only (the held-out images are never measured; garbage
 *     there changes nothing);
 *   - the map in the preprocessing: only the placement is mapped (the bars keep `background`), and a preprocessing
 *     with a map survives validation; the head file carries it (format version 2) and refuses a version-1 file
 *     that claims one.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyGreyMap, fitGreyMap, GreyHistogram, GREY_LEVELS, histogramQuantiles, validateGreyMap } from '../../src/data/grey-map.js';
import { makePreprocessing, resizeToInput, validatePreprocessing, placement } from '../../src/data/preprocess.js';
import { fitSiteGreyMap, greyReferenceOf } from '../../src/calibrate/adapt/site-grey.js';
import { splitImages, type AdaptImage } from '../../src/calibrate/adapt/adapt.js';
import { heldOutPatients } from '../../src/calibrate/adapt/split.js';
import { AdaptError, makeHeadFile, parseHeadFile, serializeHeadFile, type AdaptationRecord } from '../../src/calibrate/adapt/head-file.js';
import { generateSyntheticMura } from '../../src/data/synth/generate.js';
import { siteProfile, siteToneValue } from '../../src/data/synth/sites.js';
import { readLocalStudies, greyHistogramOf } from '../../src/calibrate/adapt-host.js';
import { Rng } from '../../src/util/rng.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

const golden = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'grey', 'golden.json'), 'utf8'));
const tmp = tempDir('nextray-adapt-grey-');
after(() => tmp.cleanup());

test('golden (numpy): histogram quantiles and the quantile map', () => {
  const ql = histogramQuantiles(golden.local_counts, golden.levels);
  const qr = histogramQuantiles(golden.reference_counts, golden.levels);
  ql.forEach((v, i) => assert.ok(Math.abs(v - golden.local_quantiles[i]) < 1e-12, `local q${i}: ${v} vs ${golden.local_quantiles[i]}`));
  qr.forEach((v, i) => assert.ok(Math.abs(v - golden.reference_quantiles[i]) < 1e-12, `reference q${i}: ${v} vs ${golden.reference_quantiles[i]}`));
  // GreyHistogram reads the same quantiles from the counts it accumulates.
  const h = new GreyHistogram();
  h.counts.set(golden.local_counts);
  assert.deepEqual(h.quantiles(golden.levels), ql);
  const map = fitGreyMap(golden.local_quantiles, golden.reference_quantiles);
  const mapped = applyGreyMap(Float32Array.from(golden.values), map);
  mapped.forEach((v, i) => assert.ok(Math.abs(v - golden.mapped[i]) < 1e-6, `value ${golden.values[i]}: ${v} vs ${golden.mapped[i]}`));
});

test('fitGreyMap: monotone whatever the quantiles (ties merged), and validateGreyMap refuses broken maps', () => {
  const m = fitGreyMap([0.1, 0.1, 0.2, 0.5], [0.2, 0.4, 0.3, 0.9]);
  assert.deepEqual(m.x, [0, 0.1, 0.2, 0.5, 1]);
  for (let i = 1; i < m.y.length; i++) assert.ok(m.y[i]! >= m.y[i - 1]!);
  assert.ok(Math.abs(m.y[1]! - 0.3) < 1e-12, 'a tie is one knot at the mean of its reference values');
  assert.deepEqual(validateGreyMap(m), m);
  assert.throws(() => validateGreyMap({ x: [0, 0.5, 0.4, 1], y: [0, 0.1, 0.2, 1] }), /strictly increasing/);
  assert.throws(() => validateGreyMap({ x: [0, 0.5, 1], y: [0, 0.6, 0.5] }), /non-decreasing/);
  assert.throws(() => validateGreyMap({ x: [0.1, 1], y: [0, 1] }), /from 0 to 1/);
});

test('the map in the preprocessing: the placement is mapped, the letterbox bars are not; validation keeps it', () => {
  const p = makePreprocessing({ size: 8, background: 0 });
  const map = { x: [0, 0.5, 1], y: [0, 0.9, 1] };
  const grey = new Float32Array(4 * 8).fill(0.25); // 8 wide, 4 high: bars above and below
  const plain = resizeToInput(grey, 8, 4, p);
  const withMap = resizeToInput(grey, 8, 4, { ...p, greyMap: map });
  const pl = placement(8, 4, p);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const inside = y >= pl.y && y < pl.y + pl.height;
      const i = y * 8 + x;
      if (inside) assert.ok(Math.abs(withMap[i]! - 0.45) < 1e-6, `(${x},${y}) ${withMap[i]}`);
      else assert.equal(withMap[i], plain[i], 'bars keep the background');
    }
  }
  const back = validatePreprocessing(JSON.parse(JSON.stringify({ ...p, greyMap: map })));
  assert.deepEqual(back.greyMap, map);
  assert.throws(() => validatePreprocessing({ ...p, greyMap: { x: [0, 1], y: [1, 0] } }), /greyMap/);
});

test("site shift (cr-legacy's characteristic curve): the fitted map brings its grey levels onto the default site's and undoes the curve; the identity does not", async () => {
  const studies = 40;
  const size = 64;
  const pre = makePreprocessing({ size });
  const dirs: Record<string, string> = {};
  for (const site of ['default', 'cr-legacy'] as const) {
    dirs[site] = join(tmp.dir, site);
    await generateSyntheticMura({ outDir: dirs[site]!, studies, seed: 31, size, validFraction: 0.5, workers: 0, site });
  }
  const files = async (site: string) => (await readLocalStudies(dirs[site]!)).images.map((im) => im.file);
  const ref = greyReferenceOf((await greyHistogramOf(await files('default'), pre)).histogram, 'default');
  const crFiles = await files('cr-legacy');
  const local = (await greyHistogramOf(crFiles, pre)).histogram.quantiles(ref.levels);
  const fitted = fitGreyMap(local, ref.quantiles);
  const identity = { x: [0, 1], y: [0, 1] };
  // The cr-legacy films measured after each map (greyHistogramOf measures raw films: apply the map to their quantiles,
  // which a monotone map carries over exactly).
  const gap = (map: typeof fitted) => {
    const after = applyGreyMap(Float32Array.from(local), map);
    let worst = 0;
    after.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref.quantiles[i]!))));
    return worst;
  };
  const gFitted = gap(fitted);
  const gIdentity = gap(identity);
  assert.ok(gIdentity > 0.1, `the shift is real: cr-legacy's quantiles are ${gIdentity.toFixed(3)} away from the default site's`);
  assert.ok(gFitted < 0.01, `after the fitted map: ${gFitted.toFixed(4)} (identity ${gIdentity.toFixed(3)})`);
  // The same plan and anatomy at both sites: the map must be about the inverse of cr-legacy's characteristic curve,
  // written out from its profile (src/data/synth/sites.ts), over the anatomy's grey levels.
  const tone = siteProfile('cr-legacy').tone;
  const inverseError = (map: typeof fitted) => {
    let worst = 0;
    for (let v = 0.25; v <= 0.75 + 1e-9; v += 0.05) worst = Math.max(worst, Math.abs(applyGreyMap(Float32Array.of(siteToneValue(tone, v)), map)[0]! - v));
    return worst;
  };
  const eFitted = inverseError(fitted);
  const eIdentity = inverseError(identity);

  assert.ok(eIdentity > 0.1, `identity vs the curve's inverse: ${eIdentity.toFixed(3)}`);
  assert.ok(eFitted < 0.08, `the fitted map vs the inverse of the site's curve on [0.25, 0.75]: ${eFitted.toFixed(3)}`);
});

function syntheticImages(n: number, seed: string): { images: AdaptImage[]; grey: Float32Array[] } {
  const rng = new Rng(seed);
  const images: AdaptImage[] = [];
  const grey: Float32Array[] = [];
  for (let s = 0; s < n; s++) {
    const label = (rng.next() < 0.4 ? 1 : 0) as 0 | 1;
    const patient = `p${Math.floor(s / 2)}`;
    for (let v = 0; v < 2; v++) {
      images.push({ study: `s${s}`, patient, label });
      grey.push(Float32Array.from({ length: 256 }, () => Math.min(0.99, Math.max(0, rng.normal(0.5, 0.15)))));
    }
  }
  return { images, grey };
}

test('disjointness: the grey map is fitted on the fitting part only; garbage in the held-out part changes nothing', async () => {
  const { images, grey } = syntheticImages(120, 'grey-disjoint');
  const reference = { levels: [...GREY_LEVELS], quantiles: GREY_LEVELS.map((q) => q), images: 1, source: 'uniform' };
  const seen: number[][] = [];
  const histogramOf = (g: Float32Array[]) => async (idx: readonly number[]) => {
    seen.push([...idx]);
    const h = new GreyHistogram();
    for (const i of idx) h.add(g[i]!);
    return h;
  };
  const a = await fitSiteGreyMap(images, reference, histogramOf(grey));
  const held = heldOutPatients(
    [...new Map(images.map((im) => [im.study, { key: im.study, patient: im.patient, label: im.label }])).values()],
    0.4,
    20240611,
  );
  assert.ok(held.size > 0);
  for (const i of seen[0]!) assert.ok(!held.has(images[i]!.patient), `image ${i} of held-out patient ${images[i]!.patient} was measured`);
  assert.deepEqual(seen[0], splitImages(images).fit, 'exactly the fitting part adaptHead fits on');
  assert.equal(a.images, splitImages(images).fit.length);
  const garbage = grey.map((g, i) => (held.has(images[i]!.patient) ? g.map(() => 0.97) : g));
  const b = await fitSiteGreyMap(images, reference, histogramOf(garbage));
  assert.deepEqual(b.map, a.map);
  // And the map does read the fitting part: garbage there moves it.
  const moved = grey.map((g, i) => (held.has(images[i]!.patient) ? g : g.map((v) => v * v)));
  const c = await fitSiteGreyMap(images, reference, histogramOf(moved));
  assert.notDeepEqual(c.map, a.map);
});

test('head file: the grey map round trip (format version 2), and a version-1 file that claims a map is refused', () => {
  const map = fitGreyMap([0.2, 0.5, 0.8], [0.1, 0.4, 0.9]);
  const record = { base_sha256: 'a'.repeat(64) } as unknown as AdaptationRecord;
  const head = { deltaWeight: Float32Array.of(0.5, -0.25), deltaBias: 0.1, temperature: 1.2, threshold: 0.4, lambda: 1, rule: { kind: 'max-kappa' as const }, greyMap: map, outOfFold: { studies: 1, kappa: null, sensitivity: null, specificity: null, temperatureNllBefore: 0, temperatureNllAfter: 0 } };
  const base = { sha256: 'a'.repeat(64), arch: 'resnet-slim', featuresDim: 2, temperature: 1, threshold: 0.5 };
  const text = serializeHeadFile(makeHeadFile(head, base, record));
  const loaded = parseHeadFile(text);
  assert.equal(loaded.file.format_version, 2);
  assert.deepEqual(loaded.greyMap, map);
  const { greyMap: _m, ...noMap } = head;
  const plain = parseHeadFile(serializeHeadFile(makeHeadFile(noMap, base, record)));
  assert.equal(plain.file.format_version, 1, 'a head without a map stays readable by version-1 readers');
  assert.equal(plain.greyMap, null);
  const forged = JSON.parse(text);
  forged.format_version = 1;
  assert.throws(() => parseHeadFile(JSON.stringify(forged), 'forged.json'), (e: unknown) => e instanceof AdaptError && /version 2/.test((e as Error).message));
  forged.format_version = 2;
  forged.head.grey_map = { x: [0, 1], y: [1, 0] };
  assert.throws(() => parseHeadFile(JSON.stringify(forged), 'forged.json'), AdaptError);
});
