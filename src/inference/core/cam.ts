/**
 * Class activation maps after the model: normalise, bring to the model's input grid, and bring back onto the
 * original image with the letterbox undone. Browser-safe (plain arrays, no Node imports): onnxruntime-web's `cam`
 * output goes through exactly these functions in the web app, onnxruntime-node's in `nextray predict`.
 *
 * Geometry. The model saw the image resized into `placement(width, height, preprocessing)` inside a size x size grid
 * (src/data/preprocess.ts); the map covers that whole grid (bars included) at a coarser resolution h x w. Image
 * pixel (x, y) has its centre at grid position (pl.x + (x + 0.5) * pl.width / width, pl.y + (y + 0.5) * pl.height /
 * height), which lies at map position (gx * w / size - 0.5, gy * h / size - 0.5) in pixel-centre coordinates; the
 * map is sampled there bilinearly with edge clamping — the same sampling as PyTorch's
 * F.interpolate(mode='bilinear', align_corners=False) — so the map is never resampled twice.
 */
import { placement, type Preprocessing } from '../../data/preprocess.js';

/** ReLU, then divided by the maximum (an all-zero map stays zero). Returns a new array. */
export function normaliseMap(map: Float32Array): Float32Array {
  let max = 0;
  for (let i = 0; i < map.length; i++) if (map[i]! > max) max = map[i]!;
  const out = new Float32Array(map.length);
  if (max > 0) for (let i = 0; i < map.length; i++) out[i] = map[i]! > 0 ? map[i]! / max : 0;
  return out;
}

/** Bilinear sample of a row-major h x w map at continuous pixel-centre coordinates (u across, v down), edges clamped. */
function sample(map: Float32Array, h: number, w: number, u: number, v: number): number {
  const uc = u < 0 ? 0 : u > w - 1 ? w - 1 : u;
  const vc = v < 0 ? 0 : v > h - 1 ? h - 1 : v;
  const x0 = Math.floor(uc);
  const y0 = Math.floor(vc);
  const x1 = Math.min(x0 + 1, w - 1);
  const y1 = Math.min(y0 + 1, h - 1);
  const fx = uc - x0;
  const fy = vc - y0;
  const top = map[y0 * w + x0]! * (1 - fx) + map[y0 * w + x1]! * fx;
  const bottom = map[y1 * w + x0]! * (1 - fx) + map[y1 * w + x1]! * fx;
  return top * (1 - fy) + bottom * fy;
}

/** Resize an h x w map to outH x outW (bilinear, half-pixel centres, align_corners=False like PyTorch). */
export function resizeMap(map: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  if (map.length !== h * w) throw new RangeError(`resizeMap: ${map.length} values for ${h} x ${w}`);
  const out = new Float32Array(outH * outW);
  const sy = h / outH;
  const sx = w / outW;
  for (let y = 0; y < outH; y++) {
    const v = (y + 0.5) * sy - 0.5;
    for (let x = 0; x < outW; x++) out[y * outW + x] = sample(map, h, w, (x + 0.5) * sx - 0.5, v);
  }
  return out;
}

/**
 * A map over one model's input grid (`from`: size, letterbox or stretch) resampled onto another model's input grid
 * (`to`) for the same width x height image: each `to` grid pixel is traced back to the image and on into the `from`
 * grid, where the map is sampled bilinearly (pixel centres, edges clamped). Not normalised. With the same geometry
 * (size and resize) this is resizeMap(map, h, w, to.size, to.size).
 */
export function mapToGrid(
  map: Float32Array,
  h: number,
  w: number,
  width: number,
  height: number,
  from: Pick<Preprocessing, 'size' | 'resize'>,
  to: Pick<Preprocessing, 'size' | 'resize'>,
): Float32Array {
  if (map.length !== h * w) throw new RangeError(`mapToGrid: ${map.length} values for ${h} x ${w}`);
  if (from.size === to.size && from.resize === to.resize) return resizeMap(map, h, w, to.size, to.size);
  const pf = placement(width, height, from);
  const pt = placement(width, height, to);
  const size = to.size;
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    const gy = pf.y + ((y + 0.5 - pt.y) / pt.height) * pf.height;
    const v = (gy * h) / from.size - 0.5;
    for (let x = 0; x < size; x++) {
      const gx = pf.x + ((x + 0.5 - pt.x) / pt.width) * pf.width;
      out[y * size + x] = sample(map, h, w, (gx * w) / from.size - 0.5, v);
    }
  }
  return out;
}

/** The map at the model's input resolution (size x size), ReLU'd and divided by its maximum: what `.cam.npy` holds. */
export function camAtInput(map: Float32Array, h: number, w: number, size: number): Float32Array {
  return normaliseMap(resizeMap(map, h, w, size, size));
}

/**
 * The map on the original width x height image, letterbox undone (see the module comment), ReLU'd and divided by
 * the maximum over the image (bars excluded). `map` is h x w over the whole size x size input grid.
 */
export function camOnImage(map: Float32Array, h: number, w: number, width: number, height: number, pre: Pick<Preprocessing, 'size' | 'resize'>): Float32Array {
  if (map.length !== h * w) throw new RangeError(`camOnImage: ${map.length} values for ${h} x ${w}`);
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new RangeError(`camOnImage: bad image size ${width} x ${height}`);
  const pl = placement(width, height, pre);
  const size = pre.size;
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const gy = pl.y + ((y + 0.5) * pl.height) / height;
    const v = (gy * h) / size - 0.5;
    for (let x = 0; x < width; x++) {
      const gx = pl.x + ((x + 0.5) * pl.width) / width;
      out[y * width + x] = sample(map, h, w, (gx * w) / size - 0.5, v);
    }
  }
  return normaliseMap(out);
}

/** Row-major index of the largest value (first on ties) as [x, y]. */
export function argmax2d(map: Float32Array, width: number): [number, number] {
  let best = 0;
  for (let i = 1; i < map.length; i++) if (map[i]! > map[best]!) best = i;
  return [best % width, Math.floor(best / width)];
}
