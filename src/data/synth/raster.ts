/**
 * The projection rasteriser of the synthetic generator. Everything is drawn as X-ray attenuation (the line
 * integral of density along the beam) into Float32Array layers, then converted to a detector image — so
 * overlapping bones add up, a tube of cortical bone is bright at its edges and darker over the medullary canal
 * (the chord through the cortical shell is longest near the edge), and metal saturates. Shapes are drawn only
 * inside their bounding boxes, which keeps a 512 px image at a few milliseconds.
 */
import type { Rng } from '../../util/rng.js';

/** The line that cuts a bone at a fracture (in pixel coordinates). */
export interface Clip {
  /** A point on the fracture line. */
  px: number;
  py: number;
  /** Unit normal of the line (roughly along the bone). */
  nx: number;
  ny: number;
  /** Half width of the gap, px. */
  half: number;
  /** Jaggedness: the line is displaced by amp * sin(freq * tangential + phase). */
  amp: number;
  freq: number;
  phase: number;
  /** +1 keeps the side the normal points to, -1 the other side, 0 removes only the band (an undisplaced crack). */
  side: -1 | 0 | 1;
  /** For side 0: the band is only cut where the tangential coordinate exceeds this (an incomplete break). */
  tMin: number;
  /** Orientation of the tangential coordinate (a mirror flips it). */
  tDir: 1 | -1;
}

/** A bone segment: hollow tube (cortex + medulla) with linearly varying radius and rounded ends. */
export interface TubePrim {
  type: 'tube';
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Shaft radius at each end (linear in between). */
  r0: number;
  r1: number;
  /** Extra radius at each end (metaphysis/epiphysis flare) and the fraction of the length it fades over. */
  e0: number;
  l0: number;
  e1: number;
  l1: number;
  /** Cortical thickness in px along the shaft (thinner where the bone flares); >= radius means solid. */
  cortex: number;
  /** Attenuation per cm of cortical and of medullary (trabecular) bone. */
  dCortex: number;
  dMedulla: number;
  clips?: Clip[];
}

/** An ellipsoid seen from above: carpal bones, humeral head, condyles, lesions, soft tissue. */
export interface EllipsePrim {
  type: 'ellipse';
  cx: number;
  cy: number;
  a: number;
  b: number;
  angle: number;
  /** Cortical shell thickness in px (>= min(a, b) means solid). */
  cortex: number;
  dCortex: number;
  dMedulla: number;
  /** Depth of the ellipsoid relative to min(a, b) (flat bones < 1). */
  depth?: number;
}

/** A flat plate of constant thickness: scapula body, metal plates, plaster, labels. */
export interface PolyPrim {
  type: 'poly';
  pts: number[];
  /** Attenuation of the plate (mu * thickness), independent of the image scale. */
  density: number;
  /** Width of the soft edge in px. */
  soft: number;
}

/** A constant-thickness stroke: wires, screws, lead marker letters, ribs. */
export interface StrokePrim {
  type: 'stroke';
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  r: number;
  /** Attenuation (mu * thickness), independent of the image scale. */
  density: number;
  /** Hollow stroke: only a rim of this fraction of r (a rib's cortex seen edge-on). */
  rim?: number;
}

export type Prim = TubePrim | EllipsePrim | PolyPrim | StrokePrim;

/** Image-space layers: bone (where lytic lesions subtract) and everything else. */
export interface Layers {
  size: number;
  bone: Float32Array;
  other: Float32Array;
  /** Trabecular texture, mean ~1, multiplies medullary attenuation. */
  texture: Float32Array;
  /** Scratch layer for unions (max) of the parts of one bone, zero outside a draw. */
  scratch: Float32Array;
  /** Length of one pixel in the physical unit densities refer to (cm per px). */
  cmPerPx: number;
}

/**
 * Full-frame buffers reused from one image to the next on the same thread: allocating ~8 MB of typed arrays per
 * 512 px image made garbage collection as costly as the drawing itself.
 */
const pool = new Map<string, Float32Array>();

export function frameBuffer(name: string, size: number, fill = 0): Float32Array {
  const key = `${name}:${size}`;
  let buf = pool.get(key);
  if (!buf) {
    if (pool.size > 32) pool.clear(); // sizes changed many times: drop the old ones
    buf = new Float32Array(size * size);
    pool.set(key, buf);
  }
  return buf.fill(fill);
}

export function createLayers(size: number, cmPerPx: number, texture: Float32Array): Layers {
  return { size, bone: frameBuffer('bone', size), other: frameBuffer('other', size), scratch: frameBuffer('scratch', size), texture, cmPerPx };
}

type Box = [number, number, number, number];

/** Accumulates a value: added for independent objects, max for the parts of one object (a union). */
function put(target: Float32Array, i: number, v: number, max: boolean): void {
  if (max) {
    if (v > target[i]!) target[i] = v;
  } else target[i] = target[i]! + v;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function clipWeight(clips: Clip[] | undefined, x: number, y: number): number {
  if (!clips) return 1;
  let w = 1;
  for (const c of clips) {
    const dx = x - c.px;
    const dy = y - c.py;
    const tang = c.tDir * (-dx * c.ny + dy * c.nx);
    const s = dx * c.nx + dy * c.ny + c.amp * Math.sin(c.freq * tang + c.phase);
    if (c.side === 1) w *= clamp01(s - c.half + 0.5);
    else if (c.side === -1) w *= clamp01(-s - c.half + 0.5);
    else if (tang > c.tMin) w *= clamp01(Math.abs(s) - c.half + 0.5);
    if (w === 0) return 0;
  }
  return w;
}

/** Integer pixel box [x0, y0, x1, y1) of a shape, clipped to the image; null if empty. */
function pixelBox(size: number, minX: number, minY: number, maxX: number, maxY: number): Box | null {
  const x0 = Math.max(0, Math.floor(minX));
  const y0 = Math.max(0, Math.floor(minY));
  const x1 = Math.min(size, Math.ceil(maxX) + 1);
  const y1 = Math.min(size, Math.ceil(maxY) + 1);
  return x0 < x1 && y0 < y1 ? [x0, y0, x1, y1] : null;
}

/**
 * Columns [xa, xb) of a row where a capsule (segment from (x0, .) by (dx, dy), radius r) can cover pixels: the
 * capsule is convex, so intersecting its bounding slab with the row gives one interval; scanning only that
 * interval instead of the bounding box makes long oblique bones cheap.
 */
const span = new Int32Array(2);

function setSpan(a: number, b: number): Int32Array {
  span[0] = a;
  span[1] = b;
  return span;
}

function capsuleSpan(dx: number, dy: number, r: number, py: number, x0: number, bx0: number, bx1: number): Int32Array {
  const len = Math.hypot(dx, dy);
  if (len < 1e-6) return setSpan(bx0, bx1);
  const ux = dx / len;
  const uy = dy / len;
  let lo = -Infinity;
  let hi = Infinity;
  // |cross| = |px*uy - py*ux| <= r  (distance to the infinite line)
  if (Math.abs(uy) > 1e-9) {
    const a = (py * ux - r) / uy;
    const b = (py * ux + r) / uy;
    lo = Math.min(a, b);
    hi = Math.max(a, b);
  } else if (Math.abs(py) > r) return setSpan(0, 0);
  // -r <= px*ux + py*uy <= len + r  (between the end caps)
  if (Math.abs(ux) > 1e-9) {
    const a = (-r - py * uy) / ux;
    const b = (len + r - py * uy) / ux;
    lo = Math.max(lo, Math.min(a, b));
    hi = Math.min(hi, Math.max(a, b));
  } else {
    const s = py * uy;
    if (s < -r || s > len + r) return setSpan(0, 0);
  }
  const xa = Math.max(bx0, Math.floor(lo + x0 - 1));
  const xb = Math.min(bx1, Math.ceil(hi + x0 + 1));
  return xa < xb ? setSpan(xa, xb) : setSpan(0, 0);
}

function drawTube(L: Layers, p: TubePrim, target: Float32Array, max: boolean): Box | null {
  const rMax = Math.max(p.r0 + p.e0, p.r1 + p.e1, p.r0, p.r1);
  const box = pixelBox(L.size, Math.min(p.x0, p.x1) - rMax, Math.min(p.y0, p.y1) - rMax, Math.max(p.x0, p.x1) + rMax, Math.max(p.y0, p.y1) + rMax);
  if (!box) return null;
  const dx = p.x1 - p.x0;
  const dy = p.y1 - p.y0;
  const len2 = dx * dx + dy * dy || 1e-9;
  const k = L.cmPerPx;
  const il0 = p.l0 > 0 ? 1 / p.l0 : 0;
  const il1 = p.l1 > 0 ? 1 / p.l1 : 0;
  for (let y = box[1]; y < box[3]; y++) {
    const py = y + 0.5 - p.y0;
    const row = y * L.size;
    const sp = capsuleSpan(dx, dy, rMax, py, p.x0, box[0], box[2]);
    const xb = sp[1]!;
    for (let x = sp[0]!; x < xb; x++) {
      const px = x + 0.5 - p.x0;
      let t = (px * dx + py * dy) / len2;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = px - t * dx;
      const ey = py - t * dy;
      const d2 = ex * ex + ey * ey;
      const base = p.r0 + (p.r1 - p.r0) * t;
      let R = base;
      // Smooth flare towards each end: (1 - u)^2 fades the extra radius over l0 / l1 of the length.
      if (il0 > 0 && t < p.l0) {
        const u = 1 - t * il0;
        R += p.e0 * u * u * (3 - 2 * u);
      }
      if (il1 > 0 && t > 1 - p.l1) {
        const u = 1 - (1 - t) * il1;
        R += p.e1 * u * u * (3 - 2 * u);
      }
      if (d2 >= R * R) continue;
      const outer = 2 * Math.sqrt(R * R - d2);
      // Epiphyses have a thin cortex: keep the shell thickness proportional to shaft/total radius.
      const ri = R - p.cortex * (base / R);
      const inn = ri > 0 && d2 < ri * ri ? 2 * Math.sqrt(ri * ri - d2) : 0;
      const w = clipWeight(p.clips, x + 0.5, y + 0.5);
      if (w === 0) continue;
      const i = row + x;
      put(target, i, w * k * (p.dCortex * (outer - inn) + p.dMedulla * inn * L.texture[i]!), max);
    }
  }
  return box;
}

function drawEllipse(L: Layers, p: EllipsePrim, target: Float32Array, max: boolean): Box | null {
  const c = Math.cos(p.angle);
  const s = Math.sin(p.angle);
  const hx = Math.sqrt(p.a * p.a * c * c + p.b * p.b * s * s);
  const hy = Math.sqrt(p.a * p.a * s * s + p.b * p.b * c * c);
  const box = pixelBox(L.size, p.cx - hx, p.cy - hy, p.cx + hx, p.cy + hy);
  if (!box) return null;
  const depth = (p.depth ?? 1) * Math.min(p.a, p.b);
  const inner = Math.max(0, 1 - p.cortex / Math.min(p.a, p.b));
  const k = L.cmPerPx;
  // Row interval of the ellipse: quadratic A x^2 + B x + C <= 1 in dx.
  const qa = (c * c) / (p.a * p.a) + (s * s) / (p.b * p.b);
  for (let y = box[1]; y < box[3]; y++) {
    const dy = y + 0.5 - p.cy;
    const qb = 2 * dy * c * s * (1 / (p.a * p.a) - 1 / (p.b * p.b));
    const qc = dy * dy * ((s * s) / (p.a * p.a) + (c * c) / (p.b * p.b)) - 1;
    const disc = qb * qb - 4 * qa * qc;
    if (disc < 0) continue;
    const sq = Math.sqrt(disc);
    const xa = Math.max(box[0], Math.floor(p.cx + (-qb - sq) / (2 * qa) - 1));
    const xb = Math.min(box[2], Math.ceil(p.cx + (-qb + sq) / (2 * qa) + 1));
    for (let x = xa; x < xb; x++) {
      const dx = x + 0.5 - p.cx;
      const u = (dx * c + dy * s) / p.a;
      const v = (-dx * s + dy * c) / p.b;
      const rho2 = u * u + v * v;
      if (rho2 >= 1) continue;
      const outer = 2 * depth * Math.sqrt(1 - rho2);
      let inn = 0;
      if (inner > 0) {
        const ri2 = rho2 / (inner * inner);
        if (ri2 < 1) inn = 2 * depth * inner * Math.sqrt(1 - ri2);
      }
      const i = y * L.size + x;
      put(target, i, k * (p.dCortex * (outer - inn) + p.dMedulla * inn * L.texture[i]!), max);
    }
  }
  return box;
}

function drawPoly(L: Layers, p: PolyPrim, target: Float32Array, max: boolean): Box | null {
  const n = p.pts.length / 2;
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, p.pts[2 * i]!);
    maxX = Math.max(maxX, p.pts[2 * i]!);
    minY = Math.min(minY, p.pts[2 * i + 1]!);
    maxY = Math.max(maxY, p.pts[2 * i + 1]!);
  }
  const box = pixelBox(L.size, minX - 1, minY - 1, maxX + 1, maxY + 1);
  if (!box) return null;
  const soft = Math.max(p.soft, 0.5);
  for (let y = box[1]; y < box[3]; y++) {
    const py = y + 0.5;
    for (let x = box[0]; x < box[2]; x++) {
      const px = x + 0.5;
      let inside = false;
      let dmin = Infinity;
      for (let i = 0, j = n - 1; i < n; j = i++) {
        const xi = p.pts[2 * i]!;
        const yi = p.pts[2 * i + 1]!;
        const xj = p.pts[2 * j]!;
        const yj = p.pts[2 * j + 1]!;
        if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
        const ex = xj - xi;
        const ey = yj - yi;
        let t = ((px - xi) * ex + (py - yi) * ey) / (ex * ex + ey * ey || 1e-9);
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ddx = px - xi - t * ex;
        const ddy = py - yi - t * ey;
        dmin = Math.min(dmin, ddx * ddx + ddy * ddy);
      }
      const sd = (inside ? 1 : -1) * Math.sqrt(dmin);
      const w = clamp01(sd / soft + 0.5);
      if (w === 0) continue;
      put(target, y * L.size + x, w * p.density, max);
    }
  }
  return box;
}

function drawStroke(L: Layers, p: StrokePrim, target: Float32Array, max: boolean): Box | null {
  const box = pixelBox(L.size, Math.min(p.x0, p.x1) - p.r - 1, Math.min(p.y0, p.y1) - p.r - 1, Math.max(p.x0, p.x1) + p.r + 1, Math.max(p.y0, p.y1) + p.r + 1);
  if (!box) return null;
  const dx = p.x1 - p.x0;
  const dy = p.y1 - p.y0;
  const len2 = dx * dx + dy * dy || 1e-9;
  const rimInner = p.rim ? p.r * (1 - p.rim) : -1;
  for (let y = box[1]; y < box[3]; y++) {
    const py = y + 0.5 - p.y0;
    const sp = capsuleSpan(dx, dy, p.r + 1, py, p.x0, box[0], box[2]);
    const xb = sp[1]!;
    for (let x = sp[0]!; x < xb; x++) {
      const px = x + 0.5 - p.x0;
      let t = (px * dx + py * dy) / len2;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = px - t * dx;
      const ey = py - t * dy;
      const d = Math.sqrt(ex * ex + ey * ey);
      let w = clamp01(p.r - d + 0.5);
      if (rimInner > 0) w *= clamp01(d - rimInner + 0.5);
      if (w === 0) continue;
      put(target, y * L.size + x, w * p.density, max);
    }
  }
  return box;
}

function drawInto(L: Layers, p: Prim, target: Float32Array, max: boolean): Box | null {
  if (p.type === 'tube') return drawTube(L, p, target, max);
  if (p.type === 'ellipse') return drawEllipse(L, p, target, max);
  if (p.type === 'poly') return drawPoly(L, p, target, max);
  return drawStroke(L, p, target, max);
}

/** Draws independent objects: their attenuations add (overlapping bones look brighter, as on film). */
export function draw(L: Layers, p: Prim, layer: 'bone' | 'other'): void {
  drawInto(L, p, layer === 'bone' ? L.bone : L.other, false);
}

/**
 * Draws the parts of ONE object (shaft + head + condyles, or the soft tissue of a limb) as a union: each pixel
 * takes the largest part, so the parts do not add where they overlap, then the union is added to the layer.
 */
export function drawUnion(L: Layers, parts: readonly Prim[], layer: 'bone' | 'other'): void {
  let ux0 = Infinity;
  let uy0 = Infinity;
  let ux1 = -Infinity;
  let uy1 = -Infinity;
  for (const p of parts) {
    const b = drawInto(L, p, L.scratch, true);
    if (!b) continue;
    ux0 = Math.min(ux0, b[0]);
    uy0 = Math.min(uy0, b[1]);
    ux1 = Math.max(ux1, b[2]);
    uy1 = Math.max(uy1, b[3]);
  }
  if (ux0 === Infinity) return;
  const target = layer === 'bone' ? L.bone : L.other;
  for (let y = uy0; y < uy1; y++) {
    for (let i = y * L.size + ux0, end = y * L.size + ux1; i < end; i++) {
      target[i] = target[i]! + L.scratch[i]!;
      L.scratch[i] = 0;
    }
  }
}

/**
 * A lytic lesion: multiplies the bone layer by (1 - strength * profile) inside an ellipse with a soft edge, so
 * bone looks eaten away while soft tissue and overlapping metal stay.
 */
export function scaleBone(L: Layers, cx: number, cy: number, a: number, b: number, angle: number, strength: number): void {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const hx = Math.sqrt(a * a * c * c + b * b * s * s);
  const hy = Math.sqrt(a * a * s * s + b * b * c * c);
  const box = pixelBox(L.size, cx - hx, cy - hy, cx + hx, cy + hy);
  if (!box) return;
  for (let y = box[1]; y < box[3]; y++) {
    const dy = y + 0.5 - cy;
    for (let x = box[0]; x < box[2]; x++) {
      const dx = x + 0.5 - cx;
      const u = (dx * c + dy * s) / a;
      const v = (-dx * s + dy * c) / b;
      const rho = Math.sqrt(u * u + v * v);
      if (rho >= 1) continue;
      // Flat in the middle, 20 % soft margin: lytic lesions have a fairly sharp (geographic) border.
      const prof = rho < 0.8 ? 1 : (1 - rho) / 0.2;
      const i = y * L.size + x;
      L.bone[i] = L.bone[i]! * (1 - strength * prof);
    }
  }
}

/** Value noise with `period` px, mean 0 and roughly unit amplitude; deterministic from `rng`. */
export function valueNoise(rng: Rng, size: number, period: number, out: Float32Array, weight: number): void {
  const g = Math.ceil(size / period) + 2;
  const grid = new Float32Array(g * g);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.next() * 2 - 1;
  const inv = 1 / period;
  for (let y = 0; y < size; y++) {
    const fy = y * inv;
    const iy = Math.floor(fy);
    let ty = fy - iy;
    ty = ty * ty * (3 - 2 * ty);
    for (let x = 0; x < size; x++) {
      const fx = x * inv;
      const ix = Math.floor(fx);
      let tx = fx - ix;
      tx = tx * tx * (3 - 2 * tx);
      const a = grid[iy * g + ix]!;
      const b = grid[iy * g + ix + 1]!;
      const c = grid[(iy + 1) * g + ix]!;
      const d = grid[(iy + 1) * g + ix + 1]!;
      const v = a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
      const i = y * size + x;
      out[i] = out[i]! + weight * v;
    }
  }
}

/** Separable box blur of radius r (in place, r >= 1). */
export function boxBlur(img: Float32Array, size: number, r: number): void {
  if (r < 1) return;
  const tmp = new Float32Array(size);
  const w = 2 * r + 1;
  for (let pass = 0; pass < 2; pass++) {
    const stride = pass === 0 ? 1 : size;
    const step = pass === 0 ? size : 1;
    for (let line = 0; line < size; line++) {
      const base = line * step;
      let acc = 0;
      for (let k = -r; k <= r; k++) acc += img[base + Math.min(size - 1, Math.max(0, k)) * stride]!;
      for (let i = 0; i < size; i++) {
        tmp[i] = acc / w;
        const add = Math.min(size - 1, i + r + 1);
        const sub = Math.max(0, i - r);
        acc += img[base + add * stride]! - img[base + sub * stride]!;
      }
      for (let i = 0; i < size; i++) img[base + i * stride] = tmp[i]!;
    }
  }
}

/** Outer radius of a tube at axis parameter t (shaft plus end flares), as drawTube computes it. */
export function tubeRadiusAt(p: TubePrim, t: number): number {
  let R = p.r0 + (p.r1 - p.r0) * t;
  if (p.l0 > 0 && t < p.l0) {
    const u = 1 - t / p.l0;
    R += p.e0 * u * u * (3 - 2 * u);
  }
  if (p.l1 > 0 && t > 1 - p.l1) {
    const u = 1 - (1 - t) / p.l1;
    R += p.e1 * u * u * (3 - 2 * u);
  }
  return R;
}
