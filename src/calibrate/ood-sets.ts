/**
 * Generated out-of-distribution image sets for measuring the OOD gate: things a user might drop into the tool that
 * are not upper-extremity radiographs. All seeded, greyscale values in [0, 1] as the decoder would give them
 * (colour sets are rendered in RGB and converted with BT.601 luma, as src/data/images.ts does):
 *   photo      smooth colour scenes: a sky-to-ground gradient, soft blobs, fine texture (photograph-like statistics)
 *   drawing    black strokes (lines, circles, boxes) on white paper
 *   text       a page of text-like lines: dark glyph boxes in words, margins, on white
 *   noise      uniform or Gaussian pixel noise
 *   flat       a constant grey field
 *   colour     saturated colour blocks (a chart / UI screenshot)
 *   inverted   held-out radiographs with inverted grey levels (a MONOCHROME1 / negative mix-up); built by the caller
 *   chest      a crude synthetic chest radiograph (lungs, ribs, spine): another body part
 */
import { Rng } from '../util/rng.js';

export const OOD_KINDS = ['photo', 'drawing', 'text', 'noise', 'flat', 'colour', 'chest'] as const;
export type OodKind = (typeof OOD_KINDS)[number] | 'inverted';

export interface GreyPicture {
  data: Float32Array;
  width: number;
  height: number;
}

const luma = (r: number, g: number, b: number): number => 0.299 * r + 0.587 * g + 0.114 * b;
const clamp = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

function size(rng: Rng): [number, number] {
  const w = 160 + Math.floor(rng.next() * 160);
  const h = 160 + Math.floor(rng.next() * 160);
  return [w, h];
}

function photo(rng: Rng): GreyPicture {
  const [w, h] = size(rng);
  const sky = [rng.next(), rng.next(), 0.5 + 0.5 * rng.next()];
  const ground = [0.2 * rng.next(), 0.3 + 0.5 * rng.next(), 0.2 * rng.next()];
  const horizon = 0.3 + 0.4 * rng.next();
  const blobs = Array.from({ length: 3 + Math.floor(rng.next() * 5) }, () => ({ x: rng.next() * w, y: rng.next() * h, r: 10 + rng.next() * 60, c: [rng.next(), rng.next(), rng.next()] }));
  const data = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = y / h;
      const base = t < horizon ? sky.map((s) => s * (1 - 0.5 * t)) : ground.map((g) => g * (0.7 + 0.3 * t));
      let [r, g, b] = base as [number, number, number];
      for (const bl of blobs) {
        const d2 = ((x - bl.x) ** 2 + (y - bl.y) ** 2) / (bl.r * bl.r);
        const a = Math.exp(-d2);
        r = r * (1 - a) + bl.c[0]! * a;
        g = g * (1 - a) + bl.c[1]! * a;
        b = b * (1 - a) + bl.c[2]! * a;
      }
      const n = 0.04 * (rng.next() - 0.5);
      data[y * w + x] = clamp(luma(r, g, b) + n);
    }
  }
  return { data, width: w, height: h };
}

function stroke(data: Float32Array, w: number, h: number, x0: number, y0: number, x1: number, y1: number, width: number, v: number): void {
  const steps = Math.ceil(Math.hypot(x1 - x0, y1 - y0)) + 1;
  for (let s = 0; s <= steps; s++) {
    const cx = x0 + ((x1 - x0) * s) / steps;
    const cy = y0 + ((y1 - y0) * s) / steps;
    for (let dy = -width; dy <= width; dy++) for (let dx = -width; dx <= width; dx++) {
      const px = Math.round(cx + dx);
      const py = Math.round(cy + dy);
      if (px >= 0 && py >= 0 && px < w && py < h) data[py * w + px] = v;
    }
  }
}

function drawing(rng: Rng): GreyPicture {
  const [w, h] = size(rng);
  const data = new Float32Array(w * h).fill(0.95 + 0.05 * rng.next());
  const n = 5 + Math.floor(rng.next() * 15);
  for (let i = 0; i < n; i++) {
    const k = rng.next();
    const x = rng.next() * w;
    const y = rng.next() * h;
    const s = 10 + rng.next() * 60;
    const lw = Math.floor(rng.next() * 2);
    if (k < 0.4) stroke(data, w, h, x, y, rng.next() * w, rng.next() * h, lw, 0.05);
    else if (k < 0.7) {
      for (let a = 0; a < 64; a++) stroke(data, w, h, x + s * Math.cos((a * Math.PI) / 32), y + s * Math.sin((a * Math.PI) / 32), x + s * Math.cos(((a + 1) * Math.PI) / 32), y + s * Math.sin(((a + 1) * Math.PI) / 32), lw, 0.05);
    } else {
      stroke(data, w, h, x, y, x + s, y, lw, 0.05);
      stroke(data, w, h, x + s, y, x + s, y + s, lw, 0.05);
      stroke(data, w, h, x + s, y + s, x, y + s, lw, 0.05);
      stroke(data, w, h, x, y + s, x, y, lw, 0.05);
    }
  }
  return { data, width: w, height: h };
}

function text(rng: Rng): GreyPicture {
  const w = 180 + Math.floor(rng.next() * 60);
  const h = Math.round(w * 1.414);
  const data = new Float32Array(w * h).fill(0.97);
  const line = 6 + Math.floor(rng.next() * 5);
  const glyph = Math.max(2, Math.floor(line * 0.45));
  const margin = Math.floor(w * 0.1);
  for (let y = margin; y < h - margin - line; y += line) {
    let x = margin;
    const end = w - margin - (rng.next() < 0.15 ? Math.floor(rng.next() * w * 0.5) : 0);
    while (x < end) {
      const word = 2 + Math.floor(rng.next() * 7);
      for (let c = 0; c < word && x < end; c++) {
        const gh = glyph + (rng.next() < 0.3 ? 2 : 0);
        for (let dy = 0; dy < gh; dy++) for (let dx = 0; dx < glyph - 1; dx++) if (rng.next() < 0.7) data[(y + line - gh + dy) * w + x + dx] = 0.1;
        x += glyph;
      }
      x += glyph;
    }
  }
  return { data, width: w, height: h };
}

function noise(rng: Rng): GreyPicture {
  const [w, h] = size(rng);
  const data = new Float32Array(w * h);
  const gaussian = rng.next() < 0.5;
  const m = 0.3 + 0.4 * rng.next();
  for (let i = 0; i < data.length; i++) data[i] = gaussian ? clamp(m + 0.2 * rng.normal()) : rng.next();
  return { data, width: w, height: h };
}

function flat(rng: Rng): GreyPicture {
  const [w, h] = size(rng);
  return { data: new Float32Array(w * h).fill(rng.next()), width: w, height: h };
}

function colour(rng: Rng): GreyPicture {
  const [w, h] = size(rng);
  const data = new Float32Array(w * h).fill(luma(rng.next(), rng.next(), rng.next()));
  const n = 4 + Math.floor(rng.next() * 12);
  for (let i = 0; i < n; i++) {
    const c = [0, 0, 0].map(() => (rng.next() < 0.5 ? 0.1 : 0.9) * (0.7 + 0.3 * rng.next()));
    const v = luma(c[0]!, c[1]!, c[2]!);
    const x0 = Math.floor(rng.next() * w);
    const y0 = Math.floor(rng.next() * h);
    const x1 = Math.min(w, x0 + 10 + Math.floor(rng.next() * w * 0.5));
    const y1 = Math.min(h, y0 + 10 + Math.floor(rng.next() * h * 0.5));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[y * w + x] = v;
  }
  return { data, width: w, height: h };
}

function chest(rng: Rng): GreyPicture {
  const w = 220 + Math.floor(rng.next() * 60);
  const h = Math.round(w * (1.0 + 0.2 * rng.next()));
  const data = new Float32Array(w * h);
  const cx = w / 2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Body soft tissue, darker lungs either side of the mediastinum, bright spine.
      const body = Math.abs(x - cx) < w * 0.45 ? 0.45 : 0.05;
      const lx = Math.abs(Math.abs(x - cx) - w * 0.2) / (w * 0.15);
      const ly = (y - h * 0.45) / (h * 0.3);
      const lung = lx * lx + ly * ly < 1 ? -0.25 : 0;
      const spine = Math.abs(x - cx) < w * 0.04 ? 0.3 : 0;
      data[y * w + x] = clamp(body + lung + spine + 0.02 * rng.normal());
    }
  }
  for (let r = 0; r < 10; r++) {
    const y0 = h * (0.2 + r * 0.06);
    for (const side of [-1, 1]) {
      for (let t = 0; t < 40; t++) {
        const a = t / 40;
        const x = cx + side * (w * 0.05 + a * w * 0.35);
        const y = y0 + Math.sin(a * Math.PI) * h * 0.05 + a * h * 0.04;
        const xi = Math.round(x);
        for (let dy = -2; dy <= 2; dy++) {
          const yi = Math.round(y) + dy;
          if (xi >= 0 && xi < w && yi >= 0 && yi < h) data[yi * w + xi] = clamp(data[yi * w + xi]! + 0.25);
        }
      }
    }
  }
  return { data, width: w, height: h };
}

const MAKERS: Record<(typeof OOD_KINDS)[number], (rng: Rng) => GreyPicture> = { photo, drawing, text, noise, flat, colour, chest };

/** `n` seeded pictures of one kind. */
export function makeOodSet(kind: (typeof OOD_KINDS)[number], n: number, seed = 1): GreyPicture[] {
  const rng = new Rng(`ood/${kind}/${seed}`);
  return Array.from({ length: n }, () => MAKERS[kind](rng));
}

/** A radiograph with inverted grey levels. */
export function invert(p: GreyPicture): GreyPicture {
  return { ...p, data: p.data.map((v) => 1 - v) };
}
