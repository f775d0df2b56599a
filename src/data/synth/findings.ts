/**
 * Abnormalities of the kinds MURA's radiologists labelled — fractures (cortical breaks, displacement),
 * orthopaedic hardware (plates with screws, wires/pins/rods), lytic and sclerotic lesions, degenerative joint
 * change (narrowing, osteophytes, subchondral sclerosis) — decided once per study and planted into each view's
 * anatomy. Each planted finding reports its footprint as circles in anatomy centimetres so the renderer can
 * turn it into a tight pixel box after rotation and scaling.
 */
import type { Rng } from '../../util/rng.js';
import type { Region } from '../types.js';
import { type Anatomy, type Bone, findingSites, MU_CORTEX } from './anatomy.js';
import { rotationAbout, translation, compose, apply, transformPrim, type Affine } from './geom.js';
import { tubeRadiusAt, type Clip, type Prim, type TubePrim } from './raster.js';
import type { FindingKind } from './types.js';

/** Steel: far denser than cortical bone, so hardware saturates like on film. */
export const MU_METAL = 25;

/** Kind weights per region, roughly the mix of MURA's abnormal studies (fractures and hardware dominate). */
const KIND_WEIGHTS: Record<Region, Partial<Record<FindingKind, number>>> = {
  XR_FINGER: { fracture: 0.45, hardware_wire: 0.12, hardware_plate: 0.05, lesion_lytic: 0.08, lesion_sclerotic: 0.05, degenerative: 0.25 },
  XR_HAND: { fracture: 0.45, hardware_wire: 0.12, hardware_plate: 0.1, lesion_lytic: 0.08, lesion_sclerotic: 0.05, degenerative: 0.2 },
  XR_WRIST: { fracture: 0.45, hardware_plate: 0.18, hardware_wire: 0.12, lesion_lytic: 0.06, lesion_sclerotic: 0.04, degenerative: 0.15 },
  XR_FOREARM: { fracture: 0.5, hardware_plate: 0.3, hardware_wire: 0.08, lesion_lytic: 0.07, lesion_sclerotic: 0.05 },
  XR_ELBOW: { fracture: 0.45, hardware_plate: 0.12, hardware_wire: 0.15, lesion_lytic: 0.08, lesion_sclerotic: 0.05, degenerative: 0.15 },
  XR_HUMERUS: { fracture: 0.45, hardware_plate: 0.3, hardware_wire: 0.05, lesion_lytic: 0.12, lesion_sclerotic: 0.08 },
  XR_SHOULDER: { fracture: 0.35, hardware_plate: 0.2, hardware_wire: 0.1, lesion_lytic: 0.08, lesion_sclerotic: 0.07, degenerative: 0.2 },
};

/**
 * Share of findings drawn subtle; plates are never subtle, so ~17 % of all findings are. Subtle means small or
 * faint at 128 px (a 1-2 px crack, a thin wire, a low-contrast lesion) but still there: at first they were
 * sub-pixel after downscaling, i.e. invisible label noise that capped what any model could reach.
 */
const SUBTLE_RATE = 0.2;

/** A finding decided for a study, in anatomy terms (bone + position), so every view shows the same lesion. */
export interface FindingSpec {
  kind: FindingKind;
  subtle: boolean;
  /** Bone name (or joint name for degenerative change). */
  site: string;
  /** Position along the bone's shaft, 0 = proximal end. */
  t: number;
  /** Which side of the bone (plates, lesion offset, incomplete fractures). */
  side: 1 | -1;
  /** Kind-specific random draws in [0, 1), interpreted by the planter; fixed per study. */
  u: number[];
}

function weightedKey<K extends string>(rng: Rng, weights: Partial<Record<K, number>>): K {
  const entries = Object.entries(weights) as [K, number][];
  let total = 0;
  for (const [, w] of entries) total += w;
  let x = rng.next() * total;
  for (const [k, w] of entries) {
    x -= w;
    if (x < 0) return k;
  }
  return entries[entries.length - 1]![0];
}

/** Draws the findings of one abnormal study (one, sometimes two). */
export function drawFindingSpecs(rng: Rng, region: Region, digit: number): FindingSpec[] {
  const sites = findingSites(region, digit);
  const out: FindingSpec[] = [];
  const n = rng.chance(0.45) ? 2 : 1;
  for (let i = 0; i < n; i++) {
    const weights = { ...KIND_WEIGHTS[region] };
    if (!sites.joints.length) delete weights.degenerative;
    const kind = weightedKey(rng, weights);
    const subtle = kind === 'hardware_plate' ? false : rng.chance(SUBTLE_RATE);
    let site: string;
    let t = 0.5;
    if (kind === 'degenerative') site = rng.pick(sites.joints);
    else {
      const [name, lo, hi] = rng.pick(sites.bones);
      site = name;
      t = rng.uniform(lo, hi);
    }
    const u: number[] = [];
    for (let k = 0; k < 12; k++) u.push(rng.next());
    out.push({ kind, subtle, site, t, side: rng.chance(0.5) ? 1 : -1, u });
  }
  return out;
}

/** A planted finding: what to draw, and its footprint (x, y, radius in cm) for the box. */
export interface Planted {
  spec: FindingSpec;
  footprint: [number, number, number][];
  details: Record<string, number | string | boolean>;
}

export interface PlantResult {
  /** Drawn additively into the bone layer (sclerotic lesions, osteophytes). */
  boneAdd: Prim[];
  /** Drawn into the other layer after exposure is set (metal saturates like on film). */
  metal: Prim[];
  /** Lytic lesions: bone multiplied down inside these ellipses. */
  lytic: { cx: number; cy: number; a: number; b: number; angle: number; strength: number }[];
  planted: Planted[];
}

function lerp(lo: number, hi: number, u: number): number {
  return lo + (hi - lo) * u;
}

function shaftOf(b: Bone): TubePrim {
  return b.parts[0] as TubePrim;
}

function ellipseFootprint(cx: number, cy: number, a: number, b: number, angle: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  for (let k = 0; k < 24; k++) {
    const th = (k / 24) * 2 * Math.PI;
    const x = a * Math.cos(th);
    const y = b * Math.sin(th);
    out.push([cx + x * c - y * s, cy + x * s + y * c, 0]);
  }
  return out;
}

function moveBone(b: Bone, m: Affine): void {
  b.parts = b.parts.map((p) => transformPrim(m, p));
}

/**
 * Plants `specs` into `an` (mutated: fractures split bones, narrowing moves bones). `fov` (cm) lets sizes that
 * must survive downscaling be set relative to the film rather than the bone. Sites missing from the anatomy
 * are skipped (not planted).
 */
export function plantFindings(an: Anatomy, specs: readonly FindingSpec[], fov: number): PlantResult {
  const res: PlantResult = { boneAdd: [], metal: [], lytic: [], planted: [] };
  for (const spec of specs) {
    const u = spec.u;
    if (spec.kind === 'degenerative') {
      const j = an.joints.find((x) => x.name === spec.site);
      if (!j) continue;
      const px = -j.uy;
      const py = j.ux;
      const narrow = spec.subtle ? lerp(0.45, 0.6, u[0]!) : lerp(0.65, 0.95, u[0]!);
      const delta = j.gap * narrow;
      const shift = translation(-j.ux * delta, -j.uy * delta);
      for (const name of j.downstream) {
        const b = an.bones.find((x) => x.name === name);
        if (b) moveBone(b, shift);
      }
      const footprint: [number, number, number][] = [];
      // Osteophytes: bony spurs at the joint margins, on both sides of the joint.
      const size = spec.subtle ? Math.max(lerp(0.15, 0.25, u[1]!) * j.w, 0.015 * fov) : Math.max(lerp(0.3, 0.5, u[1]!) * j.w, lerp(0.045, 0.065, u[10]!) * fov);
      const nSpurs = spec.subtle ? 1 + Math.floor(u[2]! * 2) : 2 + Math.floor(u[2]! * 3);
      for (let k = 0; k < nSpurs; k++) {
        const s = k % 2 === 0 ? 1 : -1;
        const along = (k < 2 ? -1 : 1) * (0.15 + 0.3 * u[3 + (k % 4)]!) * j.w;
        const bx = j.cx + px * s * j.w * 0.92 + j.ux * along;
        const by = j.cy + py * s * j.w * 0.92 + j.uy * along;
        const dirAlong = along >= 0 ? 1 : -1;
        const tipx = bx + px * s * size + j.ux * dirAlong * size * 0.6;
        const tipy = by + py * s * size + j.uy * dirAlong * size * 0.6;
        const half = size * 0.45;
        const pts = [bx - j.ux * half, by - j.uy * half, tipx, tipy, bx + j.ux * half, by + j.uy * half, bx - px * s * half, by - py * s * half];
        res.boneAdd.push({ type: 'poly', pts, density: 0.65, soft: 0.03 });
        footprint.push([tipx, tipy, 0], [bx - j.ux * half, by - j.uy * half, 0], [bx + j.ux * half, by + j.uy * half, 0]);
      }
      // Subchondral sclerosis: dense bands along both articular surfaces.
      const gapNow = j.gap - delta;
      for (const s of [-1, 1]) {
        const ox = j.cx + j.ux * s * (gapNow / 2 + 0.05 * j.w);
        const oy = j.cy + j.uy * s * (gapNow / 2 + 0.05 * j.w);
        res.boneAdd.push({ type: 'stroke', x0: ox - px * j.w * 0.75, y0: oy - py * j.w * 0.75, x1: ox + px * j.w * 0.75, y1: oy + py * j.w * 0.75, r: (spec.subtle ? 0.07 : 0.1) * j.w, density: spec.subtle ? 0.3 : 0.9 });
      }
      footprint.push(
        [j.cx + px * j.w - j.ux * 0.25 * j.w, j.cy + py * j.w - j.uy * 0.25 * j.w, 0],
        [j.cx - px * j.w + j.ux * 0.25 * j.w, j.cy - py * j.w + j.uy * 0.25 * j.w, 0],
      );
      res.planted.push({ spec, footprint, details: { joint_space_narrowing: +narrow.toFixed(2), osteophytes: nSpurs } });
      continue;
    }

    const bone = an.bones.find((x) => x.name === spec.site);
    if (!bone || !bone.tubular) continue;
    const S = shaftOf(bone);
    const dx = S.x1 - S.x0;
    const dy = S.y1 - S.y0;
    const len = Math.hypot(dx, dy);
    const ux = dx / len;
    const uy = dy / len;
    const px = -uy;
    const py = ux;
    const Fx = S.x0 + dx * spec.t;
    const Fy = S.y0 + dy * spec.t;
    const R = tubeRadiusAt(S, spec.t);
    const axisAngle = Math.atan2(uy, ux);

    switch (spec.kind) {
      case 'fracture': {
        const phi = lerp(-0.6, 0.6, u[0]!);
        const nx = Math.cos(axisAngle + phi);
        const ny = Math.sin(axisAngle + phi);
        const lx = -ny;
        const ly = nx;
        const halfLen = R / Math.max(Math.cos(phi), 0.5);
        const half = spec.subtle ? lerp(0.004, 0.007, u[1]!) * fov : lerp(0.018, 0.028, u[1]!) * fov;
        const amp = half * lerp(0.3, 1.2, u[2]!);
        const base: Clip = { px: Fx, py: Fy, nx, ny, half, amp, freq: (2 * Math.PI) / (lerp(0.35, 0.8, u[3]!) * R), phase: u[4]! * 6.28, side: 0, tMin: -1e9, tDir: 1 };
        const footprint: [number, number, number][] = [];
        const addLine = (m: Affine | null) => {
          for (let k = 0; k <= 6; k++) {
            const s = lerp(-halfLen, halfLen, k / 6);
            const x = Fx + lx * s;
            const y = Fy + ly * s;
            footprint.push(m ? [...apply(m, x, y), half + amp] : [x, y, half + amp]);
          }
        };
        if (spec.subtle) {
          // Hairline crack, undisplaced; half of them incomplete (through one cortex only). 1-2 px wide at 128 px.
          const incomplete = u[5]! < 0.5;
          const clip: Clip = { ...base, tMin: incomplete ? lerp(-0.1, 0.4, u[6]!) * R : -1e9, tDir: spec.side };
          S.clips = [...(S.clips ?? []), clip];
          addLine(null);
          if (incomplete) {
            // Only the cut part of the line belongs to the footprint.
            footprint.length = 0;
            for (let k = 0; k <= 6; k++) {
              const s = lerp(clip.tMin, halfLen, k / 6);
              footprint.push([Fx + lx * s * spec.side, Fy + ly * s * spec.side, half + amp]);
            }
          }
          res.planted.push({ spec, footprint, details: { displacement_cm: 0, gap_cm: +(2 * half).toFixed(3), incomplete } });
        } else {
          // Displaced: the distal fragment shifts sideways, may override (shorten) and angulate.
          // At least ~4 px of step-off after downscaling 512 -> 128, so the demo's small CNN can see it.
          const shiftSide = Math.max(lerp(0.8, 1.3, u[5]!) * R, lerp(0.06, 0.1, u[9]!) * fov) * spec.side;
          const shorten = u[6]! < 0.35 ? lerp(0.1, 0.5, u[7]!) * R : 0;
          const ang = (u[8]! < 0.5 ? -1 : 1) * lerp(0.15, 0.4, u[10]!);
          const m = compose(translation(px * shiftSide - ux * shorten, py * shiftSide - uy * shorten), rotationAbout(ang, Fx, Fy));
          const proximal: TubePrim = { ...S, clips: [...(S.clips ?? []), { ...base, side: -1 }] };
          const distalShaft: TubePrim = { ...S, clips: [...(S.clips ?? []), { ...base, side: 1 }] };
          // A rigid move carries the fragment's own clips (its cut end, the fracture line) along with it.
          const movedShaft = transformPrim(m, distalShaft);
          const proxParts: Prim[] = [proximal];
          const distParts: Prim[] = [movedShaft];
          for (const q of bone.parts.slice(1)) {
            const c = q.type === 'ellipse' ? [q.cx, q.cy] : q.type === 'poly' ? [q.pts[0]!, q.pts[1]!] : [(q.x0 + q.x1) / 2, (q.y0 + q.y1) / 2];
            if ((c[0]! - Fx) * ux + (c[1]! - Fy) * uy > 0) distParts.push(transformPrim(m, q));
            else proxParts.push(q);
          }
          bone.parts = proxParts;
          an.bones.push({ name: `${bone.name}#distal_fragment`, parts: distParts, tubular: false });
          addLine(null);
          addLine(m);
          // Most displaced fractures seen on follow-up films are healing: a fusiform cuff of callus around the
          // break, wider than the shaft, which is what makes them visible at a glance (and at 128 px).
          const callus = u[11]! < 0.75;
          if (callus) {
            // A cuff a few mm proud of the cortex, capped so a wide metaphysis does not get a ball of bone.
            const ca = Math.min(Math.max(lerp(1.0, 1.6, u[1]!) * R, 0.05 * fov), 0.1 * fov);
            const cb = lerp(1.15, 1.35, u[2]!) * R + 0.012 * fov;
            res.boneAdd.push({ type: 'ellipse', cx: Fx, cy: Fy, a: ca, b: cb, angle: axisAngle, cortex: 1e9, dCortex: MU_CORTEX * lerp(0.35, 0.6, u[3]!), dMedulla: 0 });
            footprint.push(...ellipseFootprint(Fx, Fy, ca, cb, axisAngle));
          }
          res.planted.push({
            spec,
            footprint,
            details: { displacement_cm: +Math.abs(shiftSide).toFixed(2), shortening_cm: +shorten.toFixed(2), angulation_deg: +((ang * 180) / Math.PI).toFixed(1), callus, gap_cm: +(2 * half).toFixed(3) },
          });
        }
        break;
      }
      case 'hardware_plate': {
        const hl = Math.min(lerp(0.15, 0.3, u[0]!) * len, lerp(0.12, 0.2, u[1]!) * fov);
        let t0 = spec.t - hl / len;
        let t1 = spec.t + hl / len;
        if (t0 < 0.02) [t0, t1] = [0.02, 0.02 + 2 * hl / len];
        if (t1 > 0.98) [t0, t1] = [0.98 - 2 * hl / len, 0.98];
        const w = Math.min(Math.max(lerp(0.28, 0.4, u[2]!) * R, 0.035 * fov), 0.9 * R);
        const off = spec.side * R * 0.85;
        const ax0 = S.x0 + dx * t0 + px * off;
        const ay0 = S.y0 + dy * t0 + py * off;
        const ax1 = S.x0 + dx * t1 + px * off;
        const ay1 = S.y0 + dy * t1 + py * off;
        const pts = [ax0 - px * w / 2, ay0 - py * w / 2, ax1 - px * w / 2, ay1 - py * w / 2, ax1 + px * w / 2, ay1 + py * w / 2, ax0 + px * w / 2, ay0 + py * w / 2];
        res.metal.push({ type: 'poly', pts, density: MU_METAL * 0.35, soft: 0.02 });
        const footprint: [number, number, number][] = [];
        for (let i = 0; i < 8; i += 2) footprint.push([pts[i]!, pts[i + 1]!, 0]);
        const nScrews = Math.max(2, Math.min(10, Math.round((2 * hl) / (2.4 * w))));
        for (let k = 0; k < nScrews; k++) {
          const tt = lerp(t0, t1, (k + 0.5) / nScrews);
          const sx = S.x0 + dx * tt;
          const sy = S.y0 + dy * tt;
          const rt = tubeRadiusAt(S, tt);
          const tilt = (u[3 + (k % 6)]! - 0.5) * 0.3;
          const ex = sx - (px * Math.cos(tilt) - ux * Math.sin(tilt)) * spec.side * rt * 1.1;
          const ey = sy - (py * Math.cos(tilt) - uy * Math.sin(tilt)) * spec.side * rt * 1.1;
          const bx = sx + px * (off + spec.side * w * 0.3);
          const by = sy + py * (off + spec.side * w * 0.3);
          const r = 0.2 * w;
          res.metal.push({ type: 'tube', x0: bx, y0: by, x1: ex, y1: ey, r0: r, r1: r * 0.8, e0: r * 0.9, l0: 0.12, e1: 0, l1: 0, cortex: 1e9, dCortex: MU_METAL, dMedulla: 0 });
          footprint.push([ex, ey, r], [bx, by, r * 1.9]);
        }
        res.planted.push({ spec, footprint, details: { screws: nScrews, length_cm: +(2 * hl).toFixed(1) } });
        break;
      }
      case 'hardware_wire': {
        const footprint: [number, number, number][] = [];
        const longBone = bone.name === 'humerus' || bone.name === 'radius' || bone.name === 'ulna' || bone.name === 'clavicle';
        const r = spec.subtle ? lerp(0.004, 0.006, u[0]!) * fov : Math.max(lerp(0.011, 0.016, u[0]!) * fov, 0.06);
        const nWires = spec.subtle ? 1 : longBone && u[1]! < 0.4 ? 1 : 1 + Math.floor(u[2]! * 3);
        for (let k = 0; k < nWires; k++) {
          let ang: number;
          let L: number;
          if (longBone && nWires === 1 && !spec.subtle) {
            // An intramedullary rod or pin along the shaft.
            ang = axisAngle + lerp(-0.05, 0.05, u[3]!);
            L = Math.min(lerp(0.35, 0.6, u[4]!) * len, 0.7 * fov);
          } else {
            ang = axisAngle + spec.side * (k % 2 === 0 ? 1 : -1) * lerp(0.3, 0.8, u[3 + k]!);
            L = spec.subtle ? lerp(0.12, 0.2, u[6]!) * fov : lerp(0.22, 0.4, u[6 + k]!) * fov;
          }
          const cx = Fx + ux * (k - (nWires - 1) / 2) * R * 0.8;
          const cy = Fy + uy * (k - (nWires - 1) / 2) * R * 0.8;
          const hx = (Math.cos(ang) * L) / 2;
          const hy = (Math.sin(ang) * L) / 2;
          res.metal.push({ type: 'tube', x0: cx - hx, y0: cy - hy, x1: cx + hx, y1: cy + hy, r0: r, r1: r, e0: 0, l0: 0, e1: 0, l1: 0, cortex: 1e9, dCortex: spec.subtle ? MU_METAL * 0.5 : MU_METAL, dMedulla: 0 });
          footprint.push([cx - hx, cy - hy, r], [cx + hx, cy + hy, r]);
        }
        res.planted.push({ spec, footprint, details: { wires: nWires, radius_cm: +r.toFixed(3) } });
        break;
      }
      case 'lesion_lytic': {
        // Sizes that matter at 128 px are set against the film (fov) as well as the bone: a lesion is at least
        // ~2.5 % of the film long, and may expand a thin bone (as aneurysmal or giant-cell lesions do).
        const a = spec.subtle ? lerp(0.5, 0.8, u[0]!) * R : Math.max(lerp(0.75, 1.6, u[0]!) * R, lerp(0.06, 0.1, u[5]!) * fov);
        const b = spec.subtle ? lerp(0.4, 0.6, u[1]!) * R : Math.max(lerp(0.55, 0.85, u[1]!) * R, Math.min(0.03 * fov, 1.5 * R));
        const strength = spec.subtle ? lerp(0.4, 0.55, u[2]!) : lerp(0.85, 1.0, u[2]!);
        const off = spec.side * lerp(0, 0.3, u[3]!) * R;
        const cx = Fx + px * off;
        const cy = Fy + py * off;
        res.lytic.push({ cx, cy, a, b, angle: axisAngle, strength });
        const rim = !spec.subtle && u[4]! < 0.4;
        if (rim) res.boneAdd.push({ type: 'ellipse', cx, cy, a: a * 1.08, b: b * 1.08, angle: axisAngle, cortex: 0.12 * b, dCortex: MU_CORTEX * 0.8, dMedulla: 0 });
        res.planted.push({ spec, footprint: ellipseFootprint(cx, cy, a * (rim ? 1.08 : 1), b * (rim ? 1.08 : 1), axisAngle), details: { strength: +strength.toFixed(2), sclerotic_rim: rim } });
        break;
      }
      case 'lesion_sclerotic': {
        const a = spec.subtle ? lerp(0.45, 0.7, u[0]!) * R : Math.max(lerp(0.6, 1.3, u[0]!) * R, lerp(0.055, 0.085, u[5]!) * fov);
        const b = spec.subtle ? lerp(0.35, 0.55, u[1]!) * R : Math.max(lerp(0.45, 0.8, u[1]!) * R, Math.min(0.028 * fov, 1.4 * R));
        const density = MU_CORTEX * (spec.subtle ? lerp(0.6, 0.9, u[2]!) : lerp(2.0, 3.0, u[2]!));
        const off = spec.side * lerp(0, 0.3, u[3]!) * R;
        const cx = Fx + px * off;
        const cy = Fy + py * off;
        res.boneAdd.push({ type: 'ellipse', cx, cy, a, b, angle: axisAngle + lerp(-0.3, 0.3, u[4]!), cortex: 1e9, dCortex: density, dMedulla: 0 });
        res.planted.push({ spec, footprint: ellipseFootprint(cx, cy, a, b, axisAngle + lerp(-0.3, 0.3, u[4]!)), details: { density: +density.toFixed(2) } });
        break;
      }
      default:
        break;
    }
  }
  return res;
}
