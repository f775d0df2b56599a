/**
 * Site profiles of the synthetic generator: how the same anatomy looks when another X-ray machine takes the film.
 * A model trained on one hospital's radiographs meets other detectors, exposure curves, noise levels, resolutions,
 * collimation habits and burned-in annotations elsewhere; these profiles make that shift measurable and repeatable
 * (`nextray synth --site NAME`), so adaptation to a site can be tested without another hospital's data.
 *
 * A profile only changes the acquisition, never the study: the plan, the anatomy, the pose and the planted findings
 * of an image are the same under every site (the site draws its own random numbers from a stream of its own,
 * `Rng(seed).fork('site').fork(name).fork(imagePath)`), and the default site leaves every byte as it was. So the
 * same `--seed` gives the same studies with the same labels on every site, and the difference between two sites'
 * images of one study is the site alone.
 *
 * Stages, in the order the renderer applies them (render.ts):
 *   tone        the detector's characteristic curve, applied to the display value v in [0, 1] (1 = unexposed/white)
 *               — scatter fog (portable: no anti-scatter grid) or another S-shaped curve (an older CR reader);
 *   optics      resolution loss (the plate is sampled at a fraction of the grid, then interpolated back) and a
 *               Gaussian blur (focal spot, patient motion, laser-spot spread), sigma as a fraction of the side;
 *   collimation bright unexposed borders outside the collimator shutters;
 *   noise       Poisson quantum noise: photon counts k ~ Poisson(N0 exp(-KAPPA v)) read back on the log scale,
 *               v' = -ln(k / N0) / KAPPA, so fewer photons (low dose, bone) mean more noise;
 *   text        burned-in annotation text (the reader's overlay: crisp, white, after all physics).
 *
 * Pure arithmetic on typed arrays (browser-safe).
 */
import { resizeGrey } from '../preprocess.js';
import type { Rng } from '../../util/rng.js';

export const SITE_NAMES = ['default', 'portable', 'cr-legacy'] as const;
export type SiteName = (typeof SITE_NAMES)[number];

export type SiteTone =
  | { kind: 'identity' }
  /** Scatter fog: v' = level + contrast * (v - level). */
  | { kind: 'fog'; contrast: number; level: number }
  /** S-shaped characteristic curve: a logistic of slope `slope` centred at `centre`, rescaled onto [lo, hi]. */
  | { kind: 'characteristic'; slope: number; centre: number; lo: number; hi: number };

export interface SiteProfile {
  name: SiteName;
  /** One line for `nextray synth --help`. */
  summary: string;
  tone: SiteTone;
  /** Effective sampling as a fraction of the image grid (1 = native; 0.5 = half the pixels across). */
  resolution: number;
  /** Gaussian blur sigma as a fraction of the image side (0 = none). */
  blurSigma: number;
  /** Photons per pixel at full exposure (v = 0) of the quantum noise; 0 = no noise beyond the default grain. */
  photons: number;
  /** Probability of collimator borders on a film, and the border width range as fractions of the side. */
  collimation: { probability: number; min: number; max: number; brightness: [number, number] } | null;
  /** Probability of a burned-in annotation text block on a film. */
  burnedInText: number;
}

/** Attenuation scale of the quantum-noise model: the display range spans KAPPA e-folds of exposure. */
export const NOISE_KAPPA = 3;

export const SITE_PROFILES: Readonly<Record<SiteName, SiteProfile>> = Object.freeze({
  default: {
    name: 'default',
    summary: 'the training site: a digital detector with a grid, varied exposure, light grain (the images of earlier versions, byte for byte)',
    tone: { kind: 'identity' },
    resolution: 1,
    blurSigma: 0,
    photons: 0,
    collimation: null,
    burnedInText: 0,
  },
  portable: {
    name: 'portable',
    summary: 'a low-dose portable unit: Poisson quantum noise (500 photons/pixel at full exposure), no grid (scatter fog: 65% contrast), focal-spot/motion blur (sigma 0.5% of the side)',
    tone: { kind: 'fog', contrast: 0.65, level: 0.1 },
    resolution: 1,
    blurSigma: 0.005,
    photons: 500,
    collimation: null,
    burnedInText: 0,
  },
  'cr-legacy': {
    name: 'cr-legacy',
    summary: 'an older CR plate reader: another (S-shaped, brighter) characteristic curve, half the resolution, collimator borders on every film, burned-in text',
    tone: { kind: 'characteristic', slope: 8, centre: 0.35, lo: 0.1, hi: 0.92 },
    resolution: 0.5,
    blurSigma: 0.002,
    photons: 0,
    collimation: { probability: 1, min: 0.03, max: 0.1, brightness: [0.82, 0.95] },
    burnedInText: 1,
  },
});

export function isSiteName(s: string): s is SiteName {
  return (SITE_NAMES as readonly string[]).includes(s);
}

/** The profile named `name`; a RangeError listing the sites otherwise. */
export function siteProfile(name: string): SiteProfile {
  if (!isSiteName(name)) throw new RangeError(`unknown site '${name}'; sites: ${SITE_NAMES.join(', ')}`);
  return SITE_PROFILES[name];
}

/** True when the profile changes nothing (the default site): the renderer then skips every site stage. */
export function isIdentitySite(p: SiteProfile): boolean {
  return p.tone.kind === 'identity' && p.resolution === 1 && p.blurSigma === 0 && p.photons === 0 && p.collimation === null && p.burnedInText === 0;
}

function logistic(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/** The site's characteristic curve applied to one display value. */
export function siteToneValue(tone: SiteTone, v: number): number {
  switch (tone.kind) {
    case 'identity':
      return v;
    case 'fog':
      return tone.level + tone.contrast * (v - tone.level);
    case 'characteristic': {
      const a = logistic(-tone.slope * tone.centre);
      const b = logistic(tone.slope * (1 - tone.centre));
      return tone.lo + ((tone.hi - tone.lo) * (logistic(tone.slope * (v - tone.centre)) - a)) / (b - a);
    }
  }
}

/** Tone stage, in place. */
export function applySiteTone(img: Float32Array, p: SiteProfile): void {
  if (p.tone.kind === 'identity') return;
  for (let i = 0; i < img.length; i++) img[i] = siteToneValue(p.tone, img[i]!);
}

/** Separable Gaussian blur of a size x size image, in place, edges clamped; kernel radius ceil(3 sigma). */
export function gaussianBlur(img: Float32Array, size: number, sigma: number): void {
  if (!(sigma > 0)) return;
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= s;
  const line = new Float64Array(size);
  for (let pass = 0; pass < 2; pass++) {
    const stride = pass === 0 ? 1 : size;
    const step = pass === 0 ? size : 1;
    for (let l = 0; l < size; l++) {
      const base = l * step;
      for (let i = 0; i < size; i++) {
        let acc = 0;
        for (let j = -r; j <= r; j++) {
          const q = i + j < 0 ? 0 : i + j >= size ? size - 1 : i + j;
          acc += k[j + r]! * img[base + q * stride]!;
        }
        line[i] = acc;
      }
      for (let i = 0; i < size; i++) img[base + i * stride] = line[i]!;
    }
  }
}

/** Optics stage, in place: resolution loss (antialiased down to resolution x side and back), then the blur. */
export function applySiteOptics(img: Float32Array, size: number, p: SiteProfile): void {
  if (p.resolution < 1) {
    const m = Math.max(2, Math.round(size * p.resolution));
    const low = resizeGrey(img, size, size, m, m);
    img.set(resizeGrey(low, m, m, size, size));
  }
  gaussianBlur(img, size, p.blurSigma * size);
}

/** Collimation stage, in place: a slightly rotated rectangle; outside it the film is unexposed (bright). */
export function applySiteCollimation(img: Float32Array, size: number, p: SiteProfile, rng: Rng): void {
  const c = p.collimation;
  if (!c || !rng.chance(c.probability)) return;
  const theta = rng.uniform(-0.05, 0.05);
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const l = rng.uniform(c.min, c.max) * size;
  const r = size - rng.uniform(c.min, c.max) * size;
  const t = rng.uniform(c.min, c.max) * size;
  const b = size - rng.uniform(c.min, c.max) * size;
  const val = rng.uniform(c.brightness[0], c.brightness[1]);
  const h = size / 2;
  for (let y = 0; y < size; y++) {
    const dy = y + 0.5 - h;
    for (let x = 0; x < size; x++) {
      const dx = x + 0.5 - h;
      const ux = cos * dx - sin * dy + h;
      const uy = sin * dx + cos * dy + h;
      if (ux < l || ux > r || uy < t || uy > b) img[y * size + x] = val;
    }
  }
}

/** A Poisson draw: Knuth's product method below 30, the rounded normal approximation above. */
function poisson(rng: Rng, lambda: number): number {
  if (lambda < 30) {
    const L = Math.exp(-lambda);
    let k = 0;
    let prod = rng.next();
    while (prod > L) {
      k++;
      prod *= rng.next();
    }
    return k;
  }
  return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * rng.normal()));
}

/** Noise stage, in place on display values in [0, 1]: Poisson quantum noise (see the module comment). */
export function applySiteNoise(v: Float64Array, p: SiteProfile, rng: Rng): void {
  if (!(p.photons > 0)) return;
  const n0 = p.photons;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]! <= 0 ? 0 : v[i]! >= 1 ? 1 : v[i]!;
    const k = poisson(rng, n0 * Math.exp(-NOISE_KAPPA * x));
    // k = 0 (no photon at all) reads as the brightest value the detector can report.
    v[i] = -Math.log(Math.max(k, 0.5) / n0) / NOISE_KAPPA;
  }
}

/** Strokes of burned-in text: rows of glyphs (one to three strokes in a cell) in a corner. */
function textStrokes(rng: Rng, size: number): { x0: number; y0: number; x1: number; y1: number; r: number }[] {
  const out: { x0: number; y0: number; x1: number; y1: number; r: number }[] = [];
  const ch = rng.uniform(0.02, 0.03) * size;
  const rows = 2 + rng.int(3);
  const corner = rng.int(4);
  const width = ch * 0.75 * 16;
  const x0 = corner % 2 === 0 ? 0.015 * size : size - 0.015 * size - width;
  const y0 = corner < 2 ? 0.015 * size : size - 0.015 * size - rows * ch * 1.5;
  const r = Math.max(0.5, ch * 0.08);
  for (let row = 0; row < rows; row++) {
    const n = 8 + rng.int(9);
    for (let k = 0; k < n; k++) {
      if (rng.chance(0.12)) continue;
      const x = x0 + k * ch * 0.75;
      const y = y0 + row * ch * 1.5;
      const strokes = 1 + rng.int(3);
      for (let s = 0; s < strokes; s++) {
        out.push({ x0: x + rng.uniform(0, 0.55) * ch, y0: y + rng.uniform(0, 1) * ch, x1: x + rng.uniform(0, 0.55) * ch, y1: y + rng.uniform(0, 1) * ch, r });
      }
    }
  }
  return out;
}

/** Text stage, in place: white (v = 1) glyph strokes over the finished film. */
export function applySiteText(v: Float64Array, size: number, p: SiteProfile, rng: Rng): void {
  if (!rng.chance(p.burnedInText)) return;
  for (const s of textStrokes(rng, size)) {
    const xmin = Math.max(0, Math.floor(Math.min(s.x0, s.x1) - s.r));
    const xmax = Math.min(size - 1, Math.ceil(Math.max(s.x0, s.x1) + s.r));
    const ymin = Math.max(0, Math.floor(Math.min(s.y0, s.y1) - s.r));
    const ymax = Math.min(size - 1, Math.ceil(Math.max(s.y0, s.y1) + s.r));
    const dx = s.x1 - s.x0;
    const dy = s.y1 - s.y0;
    const len2 = dx * dx + dy * dy;
    for (let y = ymin; y <= ymax; y++) {
      for (let x = xmin; x <= xmax; x++) {
        const px = x + 0.5 - s.x0;
        const py = y + 0.5 - s.y0;
        const t = len2 > 0 ? Math.min(1, Math.max(0, (px * dx + py * dy) / len2)) : 0;
        const ex = px - t * dx;
        const ey = py - t * dy;
        if (ex * ex + ey * ey <= s.r * s.r) v[y * size + x] = 1;
      }
    }
  }
}
