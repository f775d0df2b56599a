/**
 * Training-time augmentation: random horizontal flip and random rotation, on float images (HW grey or HWC).
 *
 * Reproducibility: the random parameters of image `index` in epoch `epoch` come from their own stream,
 * `augmentRng(seed, epoch, index)`, never from a shared generator, so they do not depend on which worker
 * decoded the image, in which order, or how many images another worker had done. Resuming at epoch e gives the
 * same augmentations as an uninterrupted run. Parameters are drawn first (`drawAugmentParams`) and applied
 * separately (`applyAugment`), so the loader can draw on the main thread and apply anywhere.
 *
 * Pure TypeScript (no Node imports): the browser can reuse it.
 */
import { Rng, type Seed } from '../util/rng.js';

export interface AugmentOptions {
  /** Probability of a horizontal flip (default 0.5). The published report's only augmentation. */
  hflipProbability?: number;
  /** Rotations are uniform in [-maxRotationDeg, +maxRotationDeg] (default 30; 0 disables rotation). */
  maxRotationDeg?: number;
  /** Value for pixels rotated in from outside the image (default 0 = black, like the letterbox bars). */
  background?: number;
}

export const DEFAULT_AUGMENT: Readonly<Required<AugmentOptions>> = Object.freeze({
  hflipProbability: 0.5,
  maxRotationDeg: 30,
  background: 0,
});

/** The drawn augmentation for one image. */
export interface AugmentParams {
  flip: boolean;
  /** Counter-clockwise as displayed (y axis pointing down), in degrees; same sense as torchvision's rotate. */
  angleDeg: number;
}

/** The independent random stream for image `index` (its position in the dataset, not in the shuffled order). */
export function augmentRng(seed: Seed, epoch: number, index: number): Rng {
  return new Rng(seed).fork(`augment/epoch-${epoch}/image-${index}`);
}

function resolved(opts: AugmentOptions): Required<AugmentOptions> {
  const o: Required<AugmentOptions> = {
    hflipProbability: opts.hflipProbability ?? DEFAULT_AUGMENT.hflipProbability,
    maxRotationDeg: opts.maxRotationDeg ?? DEFAULT_AUGMENT.maxRotationDeg,
    background: opts.background ?? DEFAULT_AUGMENT.background,
  };
  if (!(o.hflipProbability >= 0 && o.hflipProbability <= 1))
    throw new RangeError(`augment: hflipProbability must be in [0, 1], got ${o.hflipProbability}`);
  if (!(o.maxRotationDeg >= 0 && o.maxRotationDeg <= 180))
    throw new RangeError(`augment: maxRotationDeg must be in [0, 180], got ${o.maxRotationDeg}`);
  return o;
}

/** Draws flip then angle, always both (so changing one option never shifts the other's draw). */
export function drawAugmentParams(rng: Rng, opts: AugmentOptions = {}): AugmentParams {
  const o = resolved(opts);
  const flip = rng.next() < o.hflipProbability;
  const u = rng.next();
  const angleDeg = o.maxRotationDeg === 0 ? 0 : (2 * u - 1) * o.maxRotationDeg;
  return { flip, angleDeg };
}

/** Exact left-right mirror: out[y][x] = in[y][width-1-x] (all channels of a pixel move together). */
export function hflip(img: Float32Array, width: number, height: number, channels = 1): Float32Array {
  checkShape(img, width, height, channels, 'hflip');
  const out = new Float32Array(img.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const s = (row + width - 1 - x) * channels;
      const d = (row + x) * channels;
      for (let c = 0; c < channels; c++) out[d + c] = img[s + c]!;
    }
  }
  return out;
}

/**
 * Rotates about the image centre ((width-1)/2, (height-1)/2) by `angleDeg` counter-clockwise, with bilinear
 * sampling; samples that fall outside the image read `background`, so edges blend into it smoothly.
 */
export function rotate(img: Float32Array, width: number, height: number, angleDeg: number, background = 0, channels = 1): Float32Array {
  checkShape(img, width, height, channels, 'rotate');
  if (angleDeg === 0) return img.slice();
  const t = (angleDeg * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const out = new Float32Array(img.length);
  const at = (x: number, y: number, c: number): number =>
    x < 0 || y < 0 || x >= width || y >= height ? background : img[(y * width + x) * channels + c]!;
  for (let y = 0; y < height; y++) {
    const dy = y - cy;
    for (let x = 0; x < width; x++) {
      const dx = x - cx;
      // Inverse map: the source point that lands on (x, y) after a counter-clockwise turn (y axis down).
      const sx = cx + dx * cos - dy * sin;
      const sy = cy + dx * sin + dy * cos;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const d = (y * width + x) * channels;
      for (let c = 0; c < channels; c++) {
        const top = at(x0, y0, c) * (1 - fx) + at(x0 + 1, y0, c) * fx;
        const bottom = at(x0, y0 + 1, c) * (1 - fx) + at(x0 + 1, y0 + 1, c) * fx;
        out[d + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

/** Applies drawn parameters: flip first, then rotation. Returns a new array. */
export function applyAugment(
  img: Float32Array,
  width: number,
  height: number,
  params: AugmentParams,
  opts: AugmentOptions = {},
  channels = 1,
): Float32Array {
  const o = resolved(opts);
  let out = params.flip ? hflip(img, width, height, channels) : img;
  if (params.angleDeg !== 0) out = rotate(out, width, height, params.angleDeg, o.background, channels);
  return out === img ? img.slice() : out;
}

/** Draws parameters from `rng` and applies them. */
export function augment(
  img: Float32Array,
  width: number,
  height: number,
  rng: Rng,
  opts: AugmentOptions = {},
  channels = 1,
): { image: Float32Array; params: AugmentParams } {
  const params = drawAugmentParams(rng, opts);
  return { image: applyAugment(img, width, height, params, opts, channels), params };
}

function checkShape(img: Float32Array, width: number, height: number, channels: number, what: string): void {
  if (img.length !== width * height * channels)
    throw new RangeError(`${what}: ${img.length} values for ${width} x ${height} x ${channels}`);
}
