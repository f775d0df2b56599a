/**
 * Site grey-level normalisation (browser-safe): a monotone piecewise-linear lookup that maps a site's grey levels
 * onto the training site's, by matching quantiles. Another X-ray machine often differs first in its characteristic
 * curve (how dose becomes grey: an older CR reader brightens the whole film) and its contrast (no grid, scatter fog);
 * a network trained on one site's curve sees every film of the other site as unusual. Matching the grey-level
 * distribution before the model undoes the global part of that shift, which a refit of the head cannot (the head only
 * sees the features the trunk computed from the shifted grey levels).
 *
 * Where it acts: on the image resized into the model grid (src/data/preprocess.ts `resizeToInput`), inside the
 * image's placement only (letterbox bars keep `background`), before the channel normalisation. The quantiles are
 * measured at the same place, so fitting and prediction see the same pixels.
 *
 * Quantiles come from a fixed-bin histogram (GREY_BINS bins over [0, 1]) accumulated over many images, read by
 * linear interpolation of the cumulative distribution inside a bin (numpy: np.interp(levels, cdf, edges)). Pixels
 * at or above SATURATED (burned-in annotations, which readers draw white after all physics) are not counted: they
 * are overlay, not anatomy.
 */
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/** A grey map (in a model's preprocessing, a site profile or an adapted-head file) that is not valid. */
export class GreyMapError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_GREY_MAP', exitStatus: EXIT_USAGE });
    this.name = 'GreyMapError';
  }
}

/** A monotone map of grey levels: knots x (strictly increasing, from 0 to 1) onto y (non-decreasing, in [0, 1]). */
export interface GreyMap {
  x: number[];
  y: number[];
}

/** Histogram bins over [0, 1]. */
export const GREY_BINS = 1024;
/** Grey levels at or above this are taken for burned-in overlay and not counted. */
export const SATURATED = 0.995;
/** The quantile levels matched: 1%, 3%, ..., 99% (50 levels). */
export const GREY_LEVELS: readonly number[] = Array.from({ length: 50 }, (_, k) => (2 * k + 1) / 100);

/** Grey-level histogram accumulated over images (counts per bin; saturated pixels left out). */
export class GreyHistogram {
  readonly counts = new Float64Array(GREY_BINS);
  images = 0;

  /** Adds the pixels of `grey` (values in [0, 1]); `region` limits it to a rectangle of a `stride`-wide image. */
  add(grey: ArrayLike<number>, region?: { x: number; y: number; width: number; height: number; stride: number }): void {
    const put = (v: number): void => {
      if (!(v >= 0) || v >= SATURATED) return;
      this.counts[Math.min(GREY_BINS - 1, Math.floor(v * GREY_BINS))]!++;
    };
    if (!region) for (let i = 0; i < grey.length; i++) put(grey[i]!);
    else
      for (let yy = region.y; yy < region.y + region.height; yy++) {
        for (let xx = region.x; xx < region.x + region.width; xx++) put(grey[yy * region.stride + xx]!);
      }
    this.images++;
  }

  get pixels(): number {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  /** The quantiles at `levels` (linear inside a bin of the cumulative distribution). */
  quantiles(levels: readonly number[] = GREY_LEVELS): number[] {
    return histogramQuantiles(this.counts, levels);
  }
}

/** Quantiles of a histogram over [0, 1] with equal bins: np.interp(levels, cdf, edges) with cdf starting at 0. */
export function histogramQuantiles(counts: ArrayLike<number>, levels: readonly number[]): number[] {
  const bins = counts.length;
  let total = 0;
  for (let i = 0; i < bins; i++) total += counts[i]!;
  if (!(total > 0)) throw new RangeError('grey histogram: no pixels counted');
  const cdf = new Float64Array(bins + 1);
  for (let i = 0; i < bins; i++) cdf[i + 1] = cdf[i]! + counts[i]! / total;
  return levels.map((q) => {
    // np.interp over (cdf, edges): the first edge whose cdf reaches q, interpolated from the previous one.
    if (q <= cdf[0]!) return 0;
    let hi = 1;
    while (hi < bins && cdf[hi]! < q) hi++;
    // Skip empty bins at the start of a flat run: np.interp takes the last point with cdf <= q on a plateau.
    let lo = hi - 1;
    while (lo > 0 && cdf[lo - 1] === cdf[lo]) lo--;
    const c0 = cdf[lo]!;
    const c1 = cdf[hi]!;
    const e0 = lo / bins;
    const e1 = hi / bins;
    if (c1 <= c0) return e1;
    return e0 + ((Math.min(q, c1) - c0) / (c1 - c0)) * (e1 - e0);
  });
}

/**
 * The map that sends the local quantiles onto the reference ones: knots (local[k], reference[k]) plus (0, 0) and
 * (1, 1); knots whose local quantile does not increase are merged (mean of their reference values), and the
 * reference values are made non-decreasing, so the map is monotone.
 */
export function fitGreyMap(local: readonly number[], reference: readonly number[]): GreyMap {
  if (local.length !== reference.length || !local.length) throw new RangeError(`fitGreyMap: ${local.length} local and ${reference.length} reference quantiles`);
  const pts: { x: number; y: number; n: number }[] = [{ x: 0, y: 0, n: 1 }];
  for (let k = 0; k < local.length; k++) {
    const x = local[k]!;
    const y = reference[k]!;
    if (!(x > 0 && x < 1) || !(y >= 0 && y <= 1)) continue;
    const last = pts[pts.length - 1]!;
    if (x <= last.x + 1e-9) {
      // A tie (a grey level that holds several quantiles): one knot at the mean of their reference values.
      if (pts.length > 1) {
        last.y = (last.y * last.n + y) / (last.n + 1);
        last.n++;
      }
      continue;
    }
    pts.push({ x, y, n: 1 });
  }
  pts.push({ x: 1, y: 1, n: 1 });
  const x = pts.map((p) => p.x);
  const y = pts.map((p) => p.y);
  for (let i = 1; i < y.length; i++) if (y[i]! < y[i - 1]!) y[i] = y[i - 1]!;
  return { x, y };
}

/** Checks a GreyMap read from a file (metadata, head file) and returns it typed. */
export function validateGreyMap(value: unknown, where = 'grey map'): GreyMap {
  const fail = (msg: string): never => {
    throw new GreyMapError(`${where}: ${msg}`);
  };
  if (typeof value !== 'object' || value === null) return fail('expected an object {x, y}');
  const { x, y } = value as Record<string, unknown>;
  if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length || x.length < 2) return fail('x and y must be arrays of the same length (at least 2)');
  const xs = x as unknown[];
  const ys = y as unknown[];
  if (!xs.every((v) => typeof v === 'number' && v >= 0 && v <= 1) || !ys.every((v) => typeof v === 'number' && v >= 0 && v <= 1)) fail('knots must be numbers in [0, 1]');
  if (xs[0] !== 0 || xs[xs.length - 1] !== 1) fail('x must run from 0 to 1');
  for (let i = 1; i < xs.length; i++) {
    if (!((xs[i] as number) > (xs[i - 1] as number))) fail('x must be strictly increasing');
    if ((ys[i] as number) < (ys[i - 1] as number)) fail('y must be non-decreasing');
  }
  return { x: [...(xs as number[])], y: [...(ys as number[])] };
}

/** Applies the map in place to values in [0, 1] (piecewise linear between knots). */
export function applyGreyMap(grey: Float32Array, map: GreyMap, from = 0, to = grey.length): Float32Array {
  const { x, y } = map;
  const last = x.length - 1;
  for (let i = from; i < to; i++) {
    const v = grey[i]!;
    // Binary search for the segment [x[k], x[k+1]] holding v.
    let lo = 0;
    let hi = last;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (x[mid]! <= v) lo = mid;
      else hi = mid;
    }
    const t = (v - x[lo]!) / (x[hi]! - x[lo]!);
    grey[i] = Math.min(1, Math.max(0, y[lo]! + Math.min(1, Math.max(0, t)) * (y[hi]! - y[lo]!)));
  }
  return grey;
}
