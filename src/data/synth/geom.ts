/**
 * Plane geometry for the synthetic generator: similarity transforms (rotation, uniform scale, translation,
 * mirror) applied to the drawing primitives, from anatomy centimetres to image pixels and for displacing a
 * fracture fragment. Uniform scale keeps round bones round and makes finding boxes exact after the transform.
 */
import type { Clip, Prim, TubePrim } from './raster.js';

/** x' = a x + b y + tx, y' = c x + d y + ty with [[a, b], [c, d]] = scale * rotation (possibly mirrored). */
export interface Affine {
  a: number;
  b: number;
  c: number;
  d: number;
  tx: number;
  ty: number;
}

export const IDENTITY: Affine = { a: 1, b: 0, c: 0, d: 1, tx: 0, ty: 0 };

/** Rotation by `theta` (radians) about (cx, cy). */
export function rotationAbout(theta: number, cx: number, cy: number): Affine {
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  return { a: c, b: -s, c: s, d: c, tx: cx - c * cx + s * cy, ty: cy - s * cx - c * cy };
}

export function translation(tx: number, ty: number): Affine {
  return { a: 1, b: 0, c: 0, d: 1, tx, ty };
}

/** The transform that applies `first`, then `second`. */
export function compose(second: Affine, first: Affine): Affine {
  return {
    a: second.a * first.a + second.b * first.c,
    b: second.a * first.b + second.b * first.d,
    c: second.c * first.a + second.d * first.c,
    d: second.c * first.b + second.d * first.d,
    tx: second.a * first.tx + second.b * first.ty + second.tx,
    ty: second.c * first.tx + second.d * first.ty + second.ty,
  };
}

export function apply(m: Affine, x: number, y: number): [number, number] {
  return [m.a * x + m.b * y + m.tx, m.c * x + m.d * y + m.ty];
}

export function scaleOf(m: Affine): number {
  return Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
}

function mirrored(m: Affine): boolean {
  return m.a * m.d - m.b * m.c < 0;
}

function transformClip(m: Affine, c: Clip): Clip {
  const s = scaleOf(m);
  const [px, py] = apply(m, c.px, c.py);
  const nx = (m.a * c.nx + m.b * c.ny) / s;
  const ny = (m.c * c.nx + m.d * c.ny) / s;
  return {
    ...c,
    px,
    py,
    nx,
    ny,
    half: c.half * s,
    amp: c.amp * s,
    freq: c.freq / s,
    tMin: c.tMin * s,
    // A mirror reverses the tangential direction; flipping tDir keeps the jagged edge and the incomplete side.
    tDir: mirrored(m) ? (c.tDir === 1 ? -1 : 1) : c.tDir,
  };
}

/** The primitive under a similarity transform (radii and thicknesses scale, densities do not). */
export function transformPrim<P extends Prim>(m: Affine, p: P): P {
  const s = scaleOf(m);
  switch (p.type) {
    case 'tube': {
      const [x0, y0] = apply(m, p.x0, p.y0);
      const [x1, y1] = apply(m, p.x1, p.y1);
      const out: TubePrim = { ...p, x0, y0, x1, y1, r0: p.r0 * s, r1: p.r1 * s, e0: p.e0 * s, e1: p.e1 * s, cortex: p.cortex * s };
      if (p.clips) out.clips = p.clips.map((c) => transformClip(m, c));
      return out as P;
    }
    case 'ellipse': {
      const [cx, cy] = apply(m, p.cx, p.cy);
      const ux = m.a * Math.cos(p.angle) + m.b * Math.sin(p.angle);
      const uy = m.c * Math.cos(p.angle) + m.d * Math.sin(p.angle);
      return { ...p, cx, cy, a: p.a * s, b: p.b * s, angle: Math.atan2(uy, ux), cortex: p.cortex * s };
    }
    case 'poly': {
      const pts: number[] = [];
      for (let i = 0; i < p.pts.length; i += 2) pts.push(...apply(m, p.pts[i]!, p.pts[i + 1]!));
      return { ...p, pts, soft: p.soft * s };
    }
    case 'stroke': {
      const [x0, y0] = apply(m, p.x0, p.y0);
      const [x1, y1] = apply(m, p.x1, p.y1);
      return { ...p, x0, y0, x1, y1, r: p.r * s };
    }
  }
}

/** Moves the anchor points of a primitive through an arbitrary point map, sizes unchanged (views, flexion). */
export function mapPoints<P extends Prim>(p: P, f: (x: number, y: number) => [number, number]): P {
  switch (p.type) {
    case 'tube': {
      const [x0, y0] = f(p.x0, p.y0);
      const [x1, y1] = f(p.x1, p.y1);
      return { ...p, x0, y0, x1, y1 };
    }
    case 'ellipse': {
      const [cx, cy] = f(p.cx, p.cy);
      const [ax, ay] = f(p.cx + Math.cos(p.angle), p.cy + Math.sin(p.angle));
      return { ...p, cx, cy, angle: Math.atan2(ay - cy, ax - cx) };
    }
    case 'poly': {
      const pts: number[] = [];
      for (let i = 0; i < p.pts.length; i += 2) pts.push(...f(p.pts[i]!, p.pts[i + 1]!));
      return { ...p, pts };
    }
    case 'stroke': {
      const [x0, y0] = f(p.x0, p.y0);
      const [x1, y1] = f(p.x1, p.y1);
      return { ...p, x0, y0, x1, y1 };
    }
  }
}
