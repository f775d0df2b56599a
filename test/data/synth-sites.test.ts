/**
 * Site profiles of the synthetic generator (src/data/synth/sites.ts): each profile's measurable signature against the
 * default site on the same plan, measured on the rendered pixels with independent estimators, never with the model:
 *   - same studies: the plan, the anatomy and the planted findings (sidecar boxes) do not depend on the site;
 *   - noise: Immerkaer's fast noise-variance estimator (1996) — portable has far more;
 *   - contrast: the 5-95% range of 8x8 block means (noise averages out) — portable's is the fog's 65%;
 *   - characteristic curve: cr-legacy's block means follow its S-curve (written out here from the profile's numbers),
 *     not the identity;
 *   - MTF: a slanted-edge phantom (ISO 12233's method: edge-spread function oversampled along the edge, its
 *     derivative's Fourier magnitude) through each profile's optics; portable's MTF50 matches the Gaussian
 *     sigma's closed form, cr-legacy's is far below the default's;
 *   - collimation border: the outermost row/column of every cr-legacy film is bright on all four sides;
 *   - burned-in text: saturated pixels where the default film of the same study has none.
 * A stub profile (identity, or a site that ignores its profile) fails each of these.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import {
  applySiteOptics,
  designStudy,
  planDataset,
  renderImage,
  siteProfile,
  SITE_NAMES,
  SITE_PROFILES,
  type RenderedImage,
  type SiteName,
} from '../../src/data/synth/index.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const SEED = 11;
const SIZE = 128;
const plan = planDataset({ studies: 24, seed: SEED, validFraction: 0.2 });

function renderAll(site: SiteName): RenderedImage[] {
  const out: RenderedImage[] = [];
  for (const s of plan) {
    const d = designStudy(SEED, s.key, s.region, s.label, s.images.length);
    s.images.forEach((p, v) => out.push(renderImage(SEED, d, v, p, SIZE, site)));
  }
  return out;
}

const rendered = Object.fromEntries(SITE_NAMES.map((s) => [s, renderAll(s)])) as Record<SiteName, RenderedImage[]>;
const N = rendered.default.length;

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * [[1,-2,1],[-2,4,-2],[1,-2,1]]|. */
function immerkaerSigma(px: Uint8Array, size: number): number {
  let s = 0;
  for (let y = 1; y < size - 1; y++) {
    for (let x = 1; x < size - 1; x++) {
      const at = (dx: number, dy: number): number => px[(y + dy) * size + x + dx]!;
      const c = at(-1, -1) - 2 * at(0, -1) + at(1, -1) - 2 * at(-1, 0) + 4 * at(0, 0) - 2 * at(1, 0) + at(-1, 1) - 2 * at(0, 1) + at(1, 1);
      s += Math.abs(c);
    }
  }
  return (Math.sqrt(Math.PI / 2) * s) / (6 * (size - 2) * (size - 2));
}

/** Means of b x b blocks inside [lo, hi) of both axes, in [0, 1]. */
function blockMeans(px: Uint8Array, size: number, b: number, lo = 0, hi = size): number[] {
  const out: number[] = [];
  for (let by = lo; by + b <= hi; by += b) {
    for (let bx = lo; bx + b <= hi; bx += b) {
      let s = 0;
      for (let y = by; y < by + b; y++) for (let x = bx; x < bx + b; x++) s += px[y * size + x]!;
      out.push(s / (b * b) / 255);
    }
  }
  return out;
}

function range595(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.round(p * (s.length - 1))]!;
  return q(0.95) - q(0.05);
}

test('every site renders the same studies: plan, labels, anatomy and findings boxes are those of the default site', () => {
  assert.ok(N >= 40, `${N} images`);
  for (const site of SITE_NAMES) {
    assert.equal(rendered[site].length, N);
    rendered[site].forEach((r, i) => {
      const d = rendered.default[i]!.sidecar;
      assert.equal(r.sidecar.image, d.image);
      assert.equal(r.sidecar.label, d.label);
      assert.deepEqual(r.sidecar.findings, d.findings, `${site}: ${d.image}`);
      assert.deepEqual(r.sidecar.pose, d.pose);
      assert.equal(r.sidecar.site, site === 'default' ? undefined : site);
    });
  }
  // ...while the pixels differ in every image, and each site is deterministic by seed.
  for (const site of ['portable', 'cr-legacy'] as const) {
    let differ = 0;
    rendered[site].forEach((r, i) => (differ += Buffer.compare(Buffer.from(r.pixels), Buffer.from(rendered.default[i]!.pixels)) !== 0 ? 1 : 0));
    assert.equal(differ, N, `${site} changes every film`);
    const again = renderAll(site);
    again.forEach((r, i) => assert.deepEqual(r.pixels, rendered[site][i]!.pixels, `${site} is deterministic`));
  }
});

test('portable: much more noise (Immerkaer), contrast reduced to the fog factor (block means)', () => {
  const noiseRatio: number[] = [];
  const contrastRatio: number[] = [];
  for (let i = 0; i < N; i++) {
    const d = rendered.default[i]!.pixels;
    const p = rendered.portable[i]!.pixels;
    noiseRatio.push(immerkaerSigma(p, SIZE) / immerkaerSigma(d, SIZE));
    contrastRatio.push(range595(blockMeans(p, SIZE, 8)) / range595(blockMeans(d, SIZE, 8)));
  }
  const portable = SITE_PROFILES.portable;
  assert.equal(portable.tone.kind, 'fog');
  const c = (portable.tone as { contrast: number }).contrast;
  assert.ok(median(noiseRatio) >= 1.5, `portable / default noise sigma: median ${median(noiseRatio).toFixed(2)}`);
  assert.ok(Math.min(...noiseRatio) >= 1.05, `every portable film is noisier (min ratio ${Math.min(...noiseRatio).toFixed(2)})`);
  assert.ok(Math.abs(median(contrastRatio) - c) < 0.08, `portable / default contrast: median ${median(contrastRatio).toFixed(3)}, profile ${c}`);
  // The default site against itself: ratio 1 (the measurement is not biased).
  const self = immerkaerSigma(rendered.default[0]!.pixels, SIZE) / immerkaerSigma(renderAll('default')[0]!.pixels, SIZE);
  assert.equal(self, 1);
});

test('cr-legacy: its block means follow its S-shaped characteristic curve, not the identity', () => {
  const tone = SITE_PROFILES['cr-legacy'].tone;
  assert.equal(tone.kind, 'characteristic');
  const { slope, centre, lo, hi } = tone as { slope: number; centre: number; lo: number; hi: number };
  // The curve written out from the profile's numbers: lo + (hi - lo) (s(k (v - c)) - s(-k c)) / (s(k (1 - c)) - s(-k c)).
  const s = (z: number): number => 1 / (1 + Math.exp(-z));
  const curve = (v: number): number => lo + ((hi - lo) * (s(slope * (v - centre)) - s(-slope * centre))) / (s(slope * (1 - centre)) - s(-slope * centre));
  let errCurve = 0;
  let errIdentity = 0;
  let n = 0;
  for (let i = 0; i < N; i++) {
    // The central 70% of the film (inside any collimator border) in 4 px blocks (small: the curve is not linear,
    // so it must see nearly uniform patches; large enough to average the grain out).
    const d = blockMeans(rendered.default[i]!.pixels, SIZE, 4, 20, 108);
    const c = blockMeans(rendered['cr-legacy'][i]!.pixels, SIZE, 4, 20, 108);
    d.forEach((v, k) => {
      errCurve += Math.abs(c[k]! - curve(v));
      errIdentity += Math.abs(c[k]! - v);
      n++;
    });
  }
  errCurve /= n;
  errIdentity /= n;
  assert.ok(errCurve < 0.03, `mean |cr - curve(default)| ${errCurve.toFixed(4)}`);
  assert.ok(errIdentity > 2.5 * errCurve && errIdentity > 0.04, `mean |cr - default| ${errIdentity.toFixed(4)} (curve ${errCurve.toFixed(4)})`);
});

/** MTF50 (cycles/pixel) of `apply` measured on a 5-degree slanted edge (ISO 12233-style, 4x oversampled ESF). */
function slantedEdgeMtf50(apply: (img: Float32Array, size: number) => void): number {
  const S = 256;
  const theta = (5 * Math.PI) / 180;
  const cx = S / 2;
  const cy = S / 2;
  const dist = (x: number, y: number): number => (x - cx) * Math.cos(theta) - (y - cy) * Math.sin(theta);
  const img = new Float32Array(S * S);
  const SS = 8;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let inside = 0;
      for (let j = 0; j < SS; j++) for (let i = 0; i < SS; i++) if (dist(x + (i + 0.5) / SS, y + (j + 0.5) / SS) > 0) inside++;
      img[y * S + x] = 0.2 + 0.6 * (inside / (SS * SS));
    }
  }
  apply(img, S);
  const BIN = 0.25;
  const HALF = 24;
  const nb = Math.round((2 * HALF) / BIN);
  const sum = new Float64Array(nb);
  const cnt = new Float64Array(nb);
  for (let y = 64; y < S - 64; y++) {
    for (let x = 0; x < S; x++) {
      const d = dist(x + 0.5, y + 0.5);
      if (d <= -HALF || d >= HALF) continue;
      const b = Math.floor((d + HALF) / BIN);
      sum[b]! += img[y * S + x]!;
      cnt[b]!++;
    }
  }
  const esf = Array.from(sum, (s, b) => s / cnt[b]!);
  // Line-spread function: the ESF's derivative, Hann-windowed.
  const lsf: number[] = [];
  for (let b = 0; b + 1 < nb; b++) lsf.push((esf[b + 1]! - esf[b]!) * (0.5 - 0.5 * Math.cos((2 * Math.PI * (b + 0.5)) / (nb - 1))));
  const mtf = (f: number): number => {
    let re = 0;
    let im = 0;
    let dc = 0;
    lsf.forEach((v, b) => {
      const pos = (b + 1) * BIN - HALF;
      re += v * Math.cos(2 * Math.PI * f * pos);
      im += v * Math.sin(2 * Math.PI * f * pos);
      dc += v;
    });
    return Math.hypot(re, im) / dc;
  };
  let prev = 1;
  for (let f = 0.0025; f <= 1.2; f += 0.0025) {
    const m = mtf(f);
    if (m < 0.5) return f - 0.0025 + (0.0025 * (prev - 0.5)) / (prev - m);
    prev = m;
  }
  return Infinity;
}

test('MTF from a slanted edge: the measurement matches the pixel aperture; portable matches its Gaussian, cr-legacy is far blurrier', () => {
  const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
  const solve = (mtf: (f: number) => number): number => {
    let a = 0;
    let b = 1.5;
    for (let it = 0; it < 60; it++) {
      const m = (a + b) / 2;
      if (mtf(m) > 0.5) a = m;
      else b = m;
    }
    return (a + b) / 2;
  };
  // The phantom's pixels are box integrals (aperture sinc(f)); the 0.25 px ESF bins add sinc(f / 4).
  const aperture = (f: number): number => sinc(f) * sinc(f / 4);
  const base = slantedEdgeMtf50((img, size) => applySiteOptics(img, size, SITE_PROFILES.default));
  const baseExpected = solve(aperture);
  assert.ok(Math.abs(base / baseExpected - 1) < 0.1, `default optics: MTF50 ${base.toFixed(3)} vs aperture ${baseExpected.toFixed(3)}`);

  const portable = SITE_PROFILES.portable;
  const sigma = portable.blurSigma * 256;
  const port = slantedEdgeMtf50((img, size) => applySiteOptics(img, size, portable));
  const portExpected = solve((f) => aperture(f) * Math.exp(-2 * Math.PI * Math.PI * sigma * sigma * f * f));
  assert.ok(Math.abs(port / portExpected - 1) < 0.1, `portable: MTF50 ${port.toFixed(3)} vs Gaussian sigma ${sigma} px: ${portExpected.toFixed(3)}`);
  assert.ok(port < 0.5 * base, `portable MTF50 ${port.toFixed(3)} vs default ${base.toFixed(3)}`);

  const cr = slantedEdgeMtf50((img, size) => applySiteOptics(img, size, siteProfile('cr-legacy')));
  // Half the sampling: nothing above 0.25 cycles/pixel survives; its MTF50 sits well below that.
  assert.ok(cr < 0.25, `cr-legacy MTF50 ${cr.toFixed(3)} cycles/px`);
});

test('cr-legacy: a bright collimator border on all four sides of every film, and burned-in text', () => {
  const edgeMedians = (px: Uint8Array): number[] => {
    const top: number[] = [];
    const bottom: number[] = [];
    const left: number[] = [];
    const right: number[] = [];
    for (let k = 0; k < SIZE; k++) {
      top.push(px[k]!);
      bottom.push(px[(SIZE - 1) * SIZE + k]!);
      left.push(px[k * SIZE]!);
      right.push(px[k * SIZE + SIZE - 1]!);
    }
    return [top, bottom, left, right].map(median);
  };
  const collimated = (site: SiteName): number => rendered[site].filter((r) => edgeMedians(r.pixels).every((m) => m >= 0.75 * 255)).length / N;
  assert.equal(collimated('cr-legacy'), 1, 'every cr-legacy film');
  assert.ok(collimated('default') <= 0.35, `default: ${collimated('default')}`);
  assert.ok(collimated('portable') <= 0.35, `portable: ${collimated('portable')}`);

  // Burned-in text: pixels at 255 where the default film of the same study is below 250.
  const newWhite = (site: SiteName, i: number): number => {
    const d = rendered.default[i]!.pixels;
    const p = rendered[site][i]!.pixels;
    let c = 0;
    for (let k = 0; k < d.length; k++) if (p[k] === 255 && d[k]! < 250) c++;
    return c;
  };
  for (let i = 0; i < N; i++) assert.ok(newWhite('cr-legacy', i) >= 15, `cr-legacy film ${i}: ${newWhite('cr-legacy', i)} new white pixels`);
  const portableWhite = Array.from({ length: N }, (_, i) => newWhite('portable', i));
  assert.ok(median(portableWhite) < 5, `portable: median ${median(portableWhite)}`);
});

test('nextray synth --site: --help lists every site with one line; the manifest and sidecars name it; unknown sites are refused', () => {
  const help = runCli(['synth', '--help']);
  assert.equal(help.code, 0, help.stderr);
  for (const s of SITE_NAMES) assert.match(help.stdout, new RegExp(`^  ${s.replace('-', '\\-')}\\s+\\S`, 'm'), `help lists ${s}`);
  const tmp = tempDir('nextray-synth-site-');
  try {
    const out = join(tmp.dir, 'p');
    const r = runCli(['synth', '--out', out, '--studies', '3', '--size', '48', '--seed', '4', '--site', 'portable', '--workers', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const manifest = JSON.parse(readFileSync(join(out, 'synth.json'), 'utf8'));
    assert.equal(manifest.options.site, 'portable');
    const first = planDataset({ studies: 3, seed: 4, validFraction: 0.2 })[0]!;
    const side = JSON.parse(readFileSync(join(out, first.images[0]!.replace(/\.png$/, '.findings.json')), 'utf8'));
    assert.equal(side.site, 'portable');
    const bad = runCli(['synth', '--out', join(tmp.dir, 'x'), '--studies', '3', '--site', 'mobile']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--site/);
    assert.match(bad.stderr, /portable/);
    assert.ok(!existsSync(join(tmp.dir, 'x')));
  } finally {
    tmp.cleanup();
  }
});
