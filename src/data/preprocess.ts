/**
 * Model-input preprocessing on already-decoded greyscale pixels: resize (letterbox or stretch), replicate to
 * three channels and ImageNet-normalise, producing a Float32Array in HWC order. Pure TypeScript with no Node or
 * sharp imports, so the browser app runs exactly the same arithmetic on pixels it decoded itself.
 *
 * The `Preprocessing` object describes all of it and is stored with every model checkpoint: a model is only
 * meaningful together with the preprocessing it was trained with.
 *
 * Resize default: 'pad' (keep the aspect ratio, letterbox with black). MURA radiographs range from about 1:2 to
 * 2:1; stretching them to a square distorts bone widths and joint angles by a different factor in every image,
 * a nuisance variation the model would have to learn to ignore and one that differs between a portrait and a
 * landscape view of the same study. Padding keeps anatomy geometry identical across views, and the black bars
 * look like the collimated, air-dark borders radiographs already have. 'stretch' (what Keras' target_size and
 * the MURA baseline's Resize((320, 320)) do) is available for parity with those pipelines.
 *
 * Interpolation: separable triangle filter widened by the downscale factor (antialiased bilinear), with
 * half-pixel centres — the same resampling as PIL's Image.resize(BILINEAR), which torchvision's Resize uses on PIL
 * images. Plain bilinear would alias when MURA's 512 px images shrink to 320.
 */

import { applyGreyMap, validateGreyMap, type GreyMap } from './grey-map.js';
import { applySiteFilter, validateSiteFilter, type SiteFilter } from './site-filter.js';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/** Preprocessing settings (in a checkpoint, an export's metadata or a config) that are not valid; names where. */
export class PreprocessingError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_PREPROCESSING', exitStatus: EXIT_USAGE });
    this.name = 'PreprocessingError';
  }
}

export type ResizeMode = 'pad' | 'stretch';

/** Everything needed to turn a decoded grey image into model input; stored with model checkpoints. */
export interface Preprocessing {
  /** Output is size x size pixels. */
  size: number;
  resize: ResizeMode;
  /** Antialiased bilinear, PIL/torchvision compatible (see module comment). */
  interpolation: 'bilinear-antialias';
  /** Per-channel mean and std applied to [0, 1] values: (v - mean[c]) / std[c]. */
  mean: [number, number, number];
  std: [number, number, number];
  /** The grey image is replicated to this many channels (3 for ImageNet-initialised networks). */
  channels: 3;
  /** Memory order of one image: height, width, channel (batches are NHWC). */
  layout: 'HWC';
  /** How file samples become [0, 1]: 8-bit /255, 16-bit /65535; colour via BT.601 luma. */
  valueScaling: 'bitdepth-max';
  /** Grey value (in [0, 1], before normalisation) of letterbox bars and of areas rotated in by augmentation. */
  background: number;
  /**
   * A site grey-level normalisation (src/data/grey-map.ts), applied to the image resized into its placement (not to
   * the letterbox bars) before the channel normalisation. Absent on trained models; `nextray adapt` sets it when it
   * maps a site's grey levels onto the training site's.
   */
  greyMap?: GreyMap;
  /**
   * Site filters (src/data/site-filter.ts: burned-in overlay suppression, smoothing), applied to the image resized into
   * its placement before the grey map. Absent on trained models; `nextray adapt` sets them when they help at a site.
   */
  siteFilter?: SiteFilter;
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

export const DEFAULT_PREPROCESSING: Readonly<Preprocessing> = Object.freeze({
  size: 320,
  resize: 'pad',
  interpolation: 'bilinear-antialias',
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  channels: 3,
  layout: 'HWC',
  valueScaling: 'bitdepth-max',
  background: 0,
});

/** A full Preprocessing from defaults plus overrides, validated. */
export function makePreprocessing(overrides: Partial<Preprocessing> = {}): Preprocessing {
  const p: Preprocessing = {
    ...DEFAULT_PREPROCESSING,
    mean: [...DEFAULT_PREPROCESSING.mean],
    std: [...DEFAULT_PREPROCESSING.std],
    ...overrides,
  };
  return validatePreprocessing(p);
}

/**
 * Checks a Preprocessing (e.g. one read back from a checkpoint file) and returns it typed; throws an error
 * saying which field is wrong.
 */
export function validatePreprocessing(value: unknown, where = 'preprocessing'): Preprocessing {
  const fail = (msg: string): never => {
    throw new PreprocessingError(`${where}: ${msg}`);
  };
  if (typeof value !== 'object' || value === null) return fail('expected an object');
  const p = value as Record<string, unknown>;
  if (!Number.isInteger(p.size) || (p.size as number) < 1 || (p.size as number) > 4096)
    fail(`size must be an integer from 1 to 4096, got ${JSON.stringify(p.size)}`);
  if (p.resize !== 'pad' && p.resize !== 'stretch') fail(`resize must be 'pad' or 'stretch', got ${JSON.stringify(p.resize)}`);
  if (p.interpolation !== 'bilinear-antialias')
    fail(`interpolation must be 'bilinear-antialias', got ${JSON.stringify(p.interpolation)}`);
  for (const key of ['mean', 'std'] as const) {
    const a = p[key];
    if (!Array.isArray(a) || a.length !== 3 || !a.every((x) => typeof x === 'number' && Number.isFinite(x)))
      fail(`${key} must be three finite numbers, got ${JSON.stringify(a)}`);
  }
  if (!(p.std as number[]).every((s) => s > 0)) fail(`std must be positive, got ${JSON.stringify(p.std)}`);
  if (p.channels !== 3) fail(`channels must be 3, got ${JSON.stringify(p.channels)}`);
  if (p.layout !== 'HWC') fail(`layout must be 'HWC', got ${JSON.stringify(p.layout)}`);
  if (p.valueScaling !== 'bitdepth-max') fail(`valueScaling must be 'bitdepth-max', got ${JSON.stringify(p.valueScaling)}`);
  if (typeof p.background !== 'number' || !(p.background >= 0 && p.background <= 1))
    fail(`background must be a number in [0, 1], got ${JSON.stringify(p.background)}`);
  return {
    size: p.size as number,
    resize: p.resize as ResizeMode,
    interpolation: 'bilinear-antialias',
    mean: [...(p.mean as [number, number, number])],
    std: [...(p.std as [number, number, number])],
    channels: 3,
    layout: 'HWC',
    valueScaling: 'bitdepth-max',
    background: p.background as number,
    ...(p.greyMap !== undefined ? { greyMap: validateGreyMap(p.greyMap, `${where}: greyMap`) } : {}),
    ...(p.siteFilter !== undefined ? { siteFilter: validateSiteFilter(p.siteFilter, `${where}: siteFilter`) } : {}),
  };
}

/** Where the resized image lies inside the size x size output (the rest is letterbox). */
export interface Placement {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Placement of a width x height image in the output. Pad: scaled to fit (aspect kept, longer side = size, shorter
 * side rounded), centred, with any odd leftover pixel of the bars going to the right/bottom. Stretch: the whole output.
 */
export function placement(width: number, height: number, p: Pick<Preprocessing, 'size' | 'resize'>): Placement {
  const size = p.size;
  if (p.resize === 'stretch') return { x: 0, y: 0, width: size, height: size };
  const scale = Math.min(size / width, size / height);
  const w = Math.max(1, Math.min(size, Math.round(width * scale)));
  const h = Math.max(1, Math.min(size, Math.round(height * scale)));
  return { x: Math.floor((size - w) / 2), y: Math.floor((size - h) / 2), width: w, height: h };
}

interface Coeffs {
  /** First source index for each output index. */
  start: Int32Array;
  /** Number of taps for each output index. */
  count: Int32Array;
  /** Normalised weights, `maxTaps` per output index. */
  weights: Float64Array;
  maxTaps: number;
}

/** Triangle-filter coefficients for resampling inSize -> outSize, as PIL's precompute_coeffs does. */
function coefficients(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle support 1, widened when shrinking (antialias)
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * maxTaps);
  const inv = 1 / filterScale;
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let total = 0;
    const n = hi - lo;
    for (let k = 0; k < n; k++) {
      const t = Math.abs((k + lo - centre + 0.5) * inv);
      const w = t < 1 ? 1 - t : 0;
      weights[o * maxTaps + k] = w;
      total += w;
    }
    if (total !== 0) for (let k = 0; k < n; k++) weights[o * maxTaps + k]! /= total;
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, maxTaps };
}

/**
 * Resizes a grey image (row-major) with antialiased bilinear filtering. Horizontal pass first, then vertical,
 * with a float32 intermediate (as PIL does for 'F' images), so results match PIL to float32 rounding.
 */
export function resizeGrey(src: Float32Array, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  if (src.length !== width * height) throw new RangeError(`resizeGrey: ${src.length} values for ${width} x ${height}`);
  if (width === outWidth && height === outHeight) return src.slice();
  const cx = coefficients(width, outWidth);
  const tmp = new Float32Array(outWidth * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let o = 0; o < outWidth; o++) {
      const s = cx.start[o]!;
      const n = cx.count[o]!;
      const wo = o * cx.maxTaps;
      let acc = 0;
      for (let k = 0; k < n; k++) acc += src[row + s + k]! * cx.weights[wo + k]!;
      tmp[y * outWidth + o] = acc;
    }
  }
  const cy = coefficients(height, outHeight);
  const out = new Float32Array(outWidth * outHeight);
  for (let o = 0; o < outHeight; o++) {
    const s = cy.start[o]!;
    const n = cy.count[o]!;
    const wo = o * cy.maxTaps;
    for (let x = 0; x < outWidth; x++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += tmp[(s + k) * outWidth + x]! * cy.weights[wo + k]!;
      out[o * outWidth + x] = acc;
    }
  }
  return out;
}

/**
 * Throws when values are not grey levels in [0, 1] — the usual mistake is passing 0..255 bytes or an
 * already-normalised image, which would otherwise give silently wrong predictions.
 */
function assertUnitRange(grey: Float32Array, what: string): void {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < grey.length; i++) {
    const v = grey[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    if (Number.isNaN(v)) throw new RangeError(`${what}: pixel ${i} is NaN`);
  }
  if (min < 0 || max > 1) {
    const hint = max > 1 && max <= 255 ? ' (divide 8-bit values by 255)' : max > 255 ? ' (divide 16-bit values by 65535)' : min < 0 ? ' (it looks already normalised)' : '';
    throw new RangeError(`${what}: grey values must be in [0, 1], got range [${min}, ${max}]${hint}`);
  }
}

/** Share of the placement's width and height left out on each side when a site's grey levels are measured. */
export const GREY_REGION_MARGIN = 0.15;

/**
 * Where a site's grey levels are measured (src/data/grey-map.ts): the middle of the image's placement in the model
 * grid, GREY_REGION_MARGIN of its width and height left out on each side. Collimator borders (bright, unexposed) and
 * burned-in labels sit at the edges and corners of a film; they are the reader's and the technician's, not the
 * anatomy's grey levels, and their share of the film varies from film to film.
 */
export function greyRegion(width: number, height: number, p: Pick<Preprocessing, 'size' | 'resize'>): Placement {
  const pl = placement(width, height, p);
  const mx = Math.floor(pl.width * GREY_REGION_MARGIN);
  const my = Math.floor(pl.height * GREY_REGION_MARGIN);
  return { x: pl.x + mx, y: pl.y + my, width: Math.max(1, pl.width - 2 * mx), height: Math.max(1, pl.height - 2 * my) };
}

/**
 * Resizes a decoded grey image (values in [0, 1]) to the size x size model grid: the image resized into its
 * placement, the rest filled with `background`. Returns size*size grey values (what augmentation works on).
 */
export function resizeToInput(grey: Float32Array, width: number, height: number, p: Preprocessing, what = 'image'): Float32Array {
  if (grey.length !== width * height) throw new RangeError(`${what}: ${grey.length} values for ${width} x ${height}`);
  assertUnitRange(grey, what);
  const pl = placement(width, height, p);
  const resized = resizeGrey(grey, width, height, pl.width, pl.height);
  if (p.siteFilter) applySiteFilter(resized, pl.width, pl.height, p.siteFilter);
  if (p.greyMap) applyGreyMap(resized, p.greyMap);
  if (pl.width === p.size && pl.height === p.size) return resized;
  const out = new Float32Array(p.size * p.size).fill(p.background);
  for (let y = 0; y < pl.height; y++) out.set(resized.subarray(y * pl.width, (y + 1) * pl.width), (y + pl.y) * p.size + pl.x);
  return out;
}

/**
 * Replicates a size x size grey image to 3 channels and normalises: out[(y*size+x)*3+c] = (v - mean[c]) / std[c].
 * Writes into `out` at `offset` when given (a batch buffer), else into a new array; returns the array written.
 */
export function normaliseToChannels(grey: Float32Array, p: Preprocessing, out?: Float32Array, offset = 0): Float32Array {
  const n = p.size * p.size;
  if (grey.length !== n) throw new RangeError(`normaliseToChannels: ${grey.length} values, expected ${n}`);
  const target = out ?? new Float32Array(n * 3);
  if (offset + n * 3 > target.length) throw new RangeError('normaliseToChannels: output buffer too small');
  const [m0, m1, m2] = p.mean;
  const [s0, s1, s2] = p.std;
  for (let i = 0, o = offset; i < n; i++, o += 3) {
    const v = grey[i]!;
    target[o] = (v - m0) / s0;
    target[o + 1] = (v - m1) / s1;
    target[o + 2] = (v - m2) / s2;
  }
  return target;
}

/**
 * The whole preprocessing on an already-decoded grey image (row-major, values in [0, 1]): resize per
 * `p.resize`, replicate to 3 channels, normalise. Returns size*size*3 floats, HWC.
 */
export function preprocessGrey(grey: Float32Array, width: number, height: number, p: Preprocessing = DEFAULT_PREPROCESSING): Float32Array {
  return normaliseToChannels(resizeToInput(grey, width, height, p), p);
}

/**
 * Interleaved samples (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA channels; 0..maxValue) to grey in [0, 1]: grey content
 * (R = G = B) is taken as is, colour by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, PIL's convert('L')), alpha
 * composited over black. Shared by the Node decoder (sharp's samples) and the browser app (canvas RGBA), so both
 * turn the same pixels into the same grey values.
 */
export function samplesToGrey(samples: ArrayLike<number>, n: number, channels: number, maxValue: number): Float32Array {
  if (samples.length !== n * channels) throw new RangeError(`samplesToGrey: ${samples.length} samples, expected ${n * channels}`);
  const out = new Float32Array(n);
  const hasAlpha = channels === 2 || channels === 4;
  const rgb = channels >= 3;
  for (let i = 0, o = 0; i < n; i++, o += channels) {
    let v = samples[o] as number;
    if (rgb) {
      const g = samples[o + 1] as number;
      const b = samples[o + 2] as number;
      // Grey content (R = G = B) is taken as is, so it decodes exactly like the same image stored as grey.
      if (g !== v || b !== v) v = 0.299 * v + 0.587 * g + 0.114 * b;
    }
    if (hasAlpha) v = (v * (samples[o + channels - 1] as number)) / maxValue;
    out[i] = v / maxValue;
  }
  return out;
}

export interface GreyStats {
  min: number;
  max: number;
  mean: number;
  std: number;
}

export function greyStats(grey: Float32Array): GreyStats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < grey.length; i++) {
    const v = grey[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
  }
  const n = grey.length || 1;
  const mean = sum / n;
  return { min, max, mean, std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)) };
}

/**
 * Warnings for inputs that decode but are probably wrong (torchxrayvision's lesson: silent normalisation errors
 * are users' most common failure). `bitDepth` lets 16-bit images that only use 12 bits be recognised.
 */
export function greyWarnings(grey: Float32Array, bitDepth = 8): string[] {
  const s = greyStats(grey);
  const out: string[] = [];
  if (s.min === s.max) {
    out.push(`every pixel has the same value (${s.min.toFixed(4)} of full scale); the image carries no information`);
    return out;
  }
  if (bitDepth === 16 && Math.round(s.max * 65535) <= 4095)
    out.push(
      `16-bit image whose values never exceed ${Math.round(s.max * 65535)} (at most 12 bits used): it will look ` +
        'almost black after scaling by 1/65535; rescale it to the full 16-bit range when exporting',
    );
  else if (s.max - s.min < 0.05) out.push(`very low contrast: all values lie within ${(100 * (s.max - s.min)).toFixed(1)}% of full scale`);
  return out;
}
