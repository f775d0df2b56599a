/**
 * Site filters (browser-safe): image operations fitted to a site's X-ray machines by `nextray adapt` and carried in
 * the adapted model's preprocessing (`Preprocessing.siteFilter`), so every host that predicts through the facade
 * applies them. They act where the grey map acts: on the image resized into its placement in the model grid (not on
 * the letterbox bars), before the grey map and the channel normalisation.
 *
 *   overlay  burned-in annotation suppression. A reader draws its text, markers and ruler after all physics, at (or
 *            near) full white; a network trained on films without them reads the white strokes as dense bone. Pixels
 *            at or above `threshold`, grown by one pixel (the antialiased rim of a stroke), are filled from the
 *            surrounding unmasked pixels by onion-peel inpainting: each round, every masked pixel with at least one
 *            unmasked 8-neighbour takes the mean of those neighbours (all from the previous round's values) and is
 *            unmasked, until none is left. A film whose pixels are all masked is left as it was. With a lower
 *            threshold (0.9) it also fills bright unexposed borders outside the collimator from the exposed field
 *            inwards (measured: better than cropping to the field, which changes the anatomy's scale).
 *   smooth   a Gaussian filter (sigma in model-grid pixels; separable, radius floor(3 sigma + 0.5), edges repeated:
 *            scipy.ndimage.gaussian_filter(mode='nearest', truncate=3)). A low-dose unit's quantum noise is finer than
 *            anatomy; the trunk, trained on quiet films, reads it as texture.
 *   sharpen  an unsharp mask: g + amount * (g - gaussian(g, sigma)), clipped to [0, 1] (the Gaussian as `smooth`'s).
 *            An older CR reader's plate resolves about half the detail of the training site's detector; boosting the
 *            band the blur damped brings edges back towards the contrast the trunk learnt on (it cannot restore
 *            detail the plate never recorded).
 *
 * Pure arithmetic on typed arrays.
 */
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/** A site filter (in a model's metadata or a head file) that is not valid; names where. */
export class SiteFilterError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_SITE_FILTER', exitStatus: EXIT_USAGE });
    this.name = 'SiteFilterError';
  }
}

export interface SiteFilter {
  overlay?: { threshold: number };
  smooth?: { sigma: number };
  sharpen?: { sigma: number; amount: number };
}

/**
 * Fills burned-in overlay in place (see the module comment); returns how many pixels were masked (0: nothing at or
 * above the threshold, the image is unchanged).
 */
export function suppressOverlay(grey: Float32Array, width: number, height: number, threshold: number): number {
  const n = width * height;
  if (grey.length !== n) throw new RangeError(`suppressOverlay: ${grey.length} values for ${width} x ${height}`);
  const seed = new Uint8Array(n);
  let any = false;
  for (let i = 0; i < n; i++) {
    if (grey[i]! >= threshold) {
      seed[i] = 1;
      any = true;
    }
  }
  if (!any) return 0;
  // Grow by one pixel (3 x 3 dilation).
  const mask = new Uint8Array(n);
  let masked = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let hit = 0;
      for (let dy = -1; dy <= 1 && !hit; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx >= 0 && xx < width && seed[yy * width + xx]) {
            hit = 1;
            break;
          }
        }
      }
      if (hit) {
        mask[y * width + x] = 1;
        masked++;
      }
    }
  }
  if (masked === n) return masked;
  let left = masked;
  const fill: number[] = [];
  const vals: number[] = [];
  while (left > 0) {
    fill.length = 0;
    vals.length = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (!mask[i]) continue;
        let s = 0;
        let c = 0;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= height) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            if ((dx === 0 && dy === 0) || xx < 0 || xx >= width) continue;
            const j = yy * width + xx;
            if (!mask[j]) {
              s += grey[j]!;
              c++;
            }
          }
        }
        if (c > 0) {
          fill.push(i);
          vals.push(s / c);
        }
      }
    }
    // Every masked pixel is connected to an unmasked one through masked ones (some pixel is unmasked), so each
    // round fills at least one.
    for (let k = 0; k < fill.length; k++) {
      grey[fill[k]!] = vals[k]!;
      mask[fill[k]!] = 0;
    }
    left -= fill.length;
  }
  return masked;
}

/** Gaussian smoothing in place (see the module comment). */
export function gaussianSmooth(grey: Float32Array, width: number, height: number, sigma: number): void {
  if (grey.length !== width * height) throw new RangeError(`gaussianSmooth: ${grey.length} values for ${width} x ${height}`);
  if (!(sigma > 0)) return;
  const r = Math.floor(3 * sigma + 0.5);
  if (r < 1) return;
  const k = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= s;
  const tmp = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let j = -r; j <= r; j++) {
        const q = x + j < 0 ? 0 : x + j >= width ? width - 1 : x + j;
        acc += k[j + r]! * grey[row + q]!;
      }
      tmp[row + x] = acc;
    }
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let j = -r; j <= r; j++) {
        const q = y + j < 0 ? 0 : y + j >= height ? height - 1 : y + j;
        acc += k[j + r]! * tmp[q * width + x]!;
      }
      grey[y * width + x] = acc;
    }
  }
}

/** Unsharp masking in place (see the module comment). */
export function unsharpMask(grey: Float32Array, width: number, height: number, sigma: number, amount: number): void {
  if (grey.length !== width * height) throw new RangeError(`unsharpMask: ${grey.length} values for ${width} x ${height}`);
  if (!(sigma > 0) || amount === 0) return;
  const blurred = Float32Array.from(grey);
  gaussianSmooth(blurred, width, height, sigma);
  for (let i = 0; i < grey.length; i++) {
    const v = grey[i]! + amount * (grey[i]! - blurred[i]!);
    grey[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

/**
 * Applies a site filter in place: overlay suppression first (so its strokes do not smear or ring), then smoothing,
 * then sharpening.
 */
export function applySiteFilter(grey: Float32Array, width: number, height: number, f: SiteFilter): Float32Array {
  if (f.overlay) suppressOverlay(grey, width, height, f.overlay.threshold);
  if (f.smooth) gaussianSmooth(grey, width, height, f.smooth.sigma);
  if (f.sharpen) unsharpMask(grey, width, height, f.sharpen.sigma, f.sharpen.amount);
  return grey;
}

/** True when the filter does nothing. */
export function isEmptySiteFilter(f: SiteFilter | undefined | null): boolean {
  return !f || (!f.overlay && !(f.smooth && f.smooth.sigma > 0) && !(f.sharpen && f.sharpen.sigma > 0 && f.sharpen.amount !== 0));
}

/** Checks a SiteFilter read from a file (metadata, head file) and returns it typed. */
export function validateSiteFilter(value: unknown, where = 'site filter'): SiteFilter {
  const fail = (msg: string): never => {
    throw new SiteFilterError(`${where}: ${msg}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('expected an object { overlay?, smooth?, sharpen? }');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) if (key !== 'overlay' && key !== 'smooth' && key !== 'sharpen') fail(`unknown key '${key}' (known: overlay, smooth, sharpen)`);
  const out: SiteFilter = {};
  if (v.overlay !== undefined) {
    const t = (v.overlay as { threshold?: unknown } | null)?.threshold;
    if (typeof t !== 'number' || !(t > 0 && t <= 1)) fail(`overlay.threshold must be a number in (0, 1], got ${JSON.stringify(t)}`);
    out.overlay = { threshold: t as number };
  }
  if (v.smooth !== undefined) {
    const s = (v.smooth as { sigma?: unknown } | null)?.sigma;
    if (typeof s !== 'number' || !(s >= 0 && s <= 16)) fail(`smooth.sigma must be a number in [0, 16] (model-grid pixels), got ${JSON.stringify(s)}`);
    out.smooth = { sigma: s as number };
  }
  if (v.sharpen !== undefined) {
    const sh = (v.sharpen as { sigma?: unknown; amount?: unknown } | null) ?? {};
    if (typeof sh.sigma !== 'number' || !(sh.sigma >= 0 && sh.sigma <= 16)) fail(`sharpen.sigma must be a number in [0, 16] (model-grid pixels), got ${JSON.stringify(sh.sigma)}`);
    if (typeof sh.amount !== 'number' || !(sh.amount >= 0 && sh.amount <= 8)) fail(`sharpen.amount must be a number in [0, 8], got ${JSON.stringify(sh.amount)}`);
    out.sharpen = { sigma: sh.sigma as number, amount: sh.amount as number };
  }
  return out;
}
