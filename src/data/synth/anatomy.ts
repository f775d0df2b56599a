/**
 * A simplified upper limb in centimetres — scapula, clavicle, ribs, humerus, radius, ulna, carpus, metacarpals
 * and phalanges, with their soft tissue — from which every MURA region is a viewport: a finger view is the same
 * hand zoomed on one digit, an elbow view is where the humerus meets radius and ulna. Sharing one model keeps
 * the regions anatomically consistent (a finger is short thin phalanges with joints, a humerus one long thick
 * bone) and gives each view the overlaps, joint lines and neighbours that real radiographs have.
 *
 * Coordinates: x to the radial/lateral side, y distal-wards (arm hanging down), origin at the glenohumeral joint.
 */
import type { Region } from '../types.js';
import { mapPoints, rotationAbout, apply } from './geom.js';
import type { Clip, Prim, TubePrim, EllipsePrim } from './raster.js';

/** Linear attenuation per cm (relative units): soft tissue, cortical bone, trabecular bone. */
export const MU_TISSUE = 0.2;
export const MU_CORTEX = 1.0;
export const MU_MEDULLA = 0.3;

export type ViewKind = 'PA' | 'lateral' | 'oblique';

export interface Bone {
  name: string;
  /** Parts drawn as one union. For tubular bones parts[0] is the shaft, the axis findings are placed on. */
  parts: Prim[];
  tubular: boolean;
}

export interface Joint {
  name: string;
  /** Proximal and distal bone. */
  a: string;
  b: string;
  /** Centre of the joint space and the unit direction from `a` to `b`. */
  cx: number;
  cy: number;
  ux: number;
  uy: number;
  /** Half width of the articular surfaces and the normal joint space, cm. */
  w: number;
  gap: number;
  /** Bones that move with `b` when the joint space narrows. */
  downstream: string[];
}

export interface Fossa {
  cx: number;
  cy: number;
  a: number;
  b: number;
  angle: number;
  strength: number;
}

export interface Anatomy {
  bones: Bone[];
  joints: Joint[];
  /** Soft tissue of the limb (drawn as one union). */
  soft: Prim[];
  /** Soft tissue drawn additively (the chest wall behind a shoulder). */
  softExtra: Prim[];
  /** Normal bony structures drawn independently (ribs, sesamoids). */
  extraBone: Prim[];
  /** Normal thin-bone areas (the olecranon fossa): look like lytic lesions but are anatomy. */
  fossae: Fossa[];
}

export interface LimbParams {
  view: ViewKind;
  /** Elbow flexion (radians), applied about the elbow. */
  flex: number;
  /** Abduction of the arm about the shoulder (radians). */
  abduct: number;
  /** Individual variation: bone thickness and cortical thickness factors, finger spread (radians). */
  thick: number;
  cortex: number;
  spread: number;
  /** Sesamoid bones at the thumb MCP joint (normal variant). */
  sesamoids: boolean;
}

const HAND_ORIGIN: [number, number] = [0.2, 58.3];
const ELBOW: [number, number] = [0.4, 31.1];
const FOREARM_AXIS_X = 0.2;
const JOINT_GAP = 0.16;

function tube(x0: number, y0: number, x1: number, y1: number, r0: number, r1: number, e0: number, l0: number, e1: number, l1: number, cortex: number): TubePrim {
  return { type: 'tube', x0, y0, x1, y1, r0, r1, e0, l0, e1, l1, cortex, dCortex: MU_CORTEX, dMedulla: MU_MEDULLA };
}

function ellipse(cx: number, cy: number, a: number, b: number, angleDeg: number, cortex: number): EllipsePrim {
  return { type: 'ellipse', cx, cy, a, b, angle: (angleDeg * Math.PI) / 180, cortex, dCortex: MU_CORTEX, dMedulla: MU_MEDULLA };
}

function softTube(x0: number, y0: number, x1: number, y1: number, r0: number, r1: number): TubePrim {
  return { type: 'tube', x0, y0, x1, y1, r0, r1, e0: 0, l0: 0, e1: 0, l1: 0, cortex: 1e9, dCortex: MU_TISSUE, dMedulla: 0 };
}

function softEllipse(cx: number, cy: number, a: number, b: number, angleDeg: number): EllipsePrim {
  return { type: 'ellipse', cx, cy, a, b, angle: (angleDeg * Math.PI) / 180, cortex: 1e9, dCortex: MU_TISSUE, dMedulla: 0 };
}

/** End radius of a tube at t = 0 or 1 (shaft radius plus flare): how far its rounded cap reaches. */
function endRadius(t: TubePrim, end: 0 | 1): number {
  return end === 0 ? t.r0 + t.e0 : t.r1 + t.e1;
}

interface Ray {
  bones: Bone[];
  joints: Joint[];
  soft: Prim[];
  tip: [number, number];
}

/**
 * A ray of the hand: metacarpal then 2–3 phalanges along a slightly bending direction, each separated from the
 * next by the joint space. Lengths and radii in cm, for one digit.
 */
function handRay(
  digit: number,
  base: [number, number],
  angle: number,
  bend: number,
  segs: { name: string; len: number; r0: number; r1: number; e0: number; l0: number; e1: number; l1: number; cortex: number }[],
  softR: number,
): Ray {
  const bones: Bone[] = [];
  const joints: Joint[] = [];
  let [x, y] = base;
  let a = angle;
  let prev: TubePrim | null = null;
  let prevName = '';
  const names = segs.map((s) => `${s.name}_${digit}`);
  let firstSoft: [number, number] | null = null;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    const ux = Math.sin(a);
    const uy = Math.cos(a);
    if (prev) {
      const ra = endRadius(prev, 1);
      const rb = s.r0 + s.e0;
      const jx = prev.x1 + ux * (ra + JOINT_GAP / 2);
      const jy = prev.y1 + uy * (ra + JOINT_GAP / 2);
      joints.push({
        name: jointName(prevName, digit, i, segs.length),
        a: prevName,
        b: names[i]!,
        cx: jx,
        cy: jy,
        ux,
        uy,
        w: Math.max(ra, rb),
        gap: JOINT_GAP,
        downstream: names.slice(i),
      });
      x = prev.x1 + ux * (ra + JOINT_GAP + rb);
      y = prev.y1 + uy * (ra + JOINT_GAP + rb);
      if (!firstSoft) firstSoft = [jx, jy];
    }
    const t = tube(x, y, x + ux * s.len, y + uy * s.len, s.r0, s.r1, s.e0, s.l0, s.e1, s.l1, s.cortex);
    bones.push({ name: names[i]!, parts: [t], tubular: true });
    prev = t;
    prevName = names[i]!;
    a += bend;
  }
  const tip: [number, number] = [prev!.x1 + Math.sin(a - bend) * 0.35, prev!.y1 + Math.cos(a - bend) * 0.35];
  const from = firstSoft ?? base;
  return { bones, joints, soft: [softTube(from[0], from[1], tip[0], tip[1], softR, softR * 0.85)], tip };
}

function jointName(prev: string, digit: number, i: number, n: number): string {
  if (prev.startsWith('metacarpal')) return `MCP_${digit}`;
  if (n === 3) return `IP_${digit}`; // thumb: metacarpal, proximal, distal phalanx
  return i === 2 ? `PIP_${digit}` : `DIP_${digit}`;
}

/** The whole limb in the PA position, then bent into the requested view. */
export function buildLimb(p: LimbParams): Anatomy {
  const th = p.thick;
  const cx = p.cortex;
  const bones: Bone[] = [];
  const joints: Joint[] = [];
  const groupOf = new Map<string, 'shoulder' | 'humerus' | 'forearm' | 'hand'>();
  const soft: { prim: Prim; group: 'shoulder' | 'humerus' | 'forearm' | 'hand' }[] = [];
  const softExtra: Prim[] = [];
  const extraBone: { prim: Prim; group: 'shoulder' | 'hand' }[] = [];
  const fossae: (Fossa & { group: 'humerus' })[] = [];
  const cuts = new Map<string, [number, number]>();
  const add = (b: Bone, g: 'shoulder' | 'humerus' | 'forearm' | 'hand') => {
    bones.push(b);
    groupOf.set(b.name, g);
  };

  // Shoulder girdle.
  add({ name: 'clavicle', tubular: true, parts: [tube(-13, -5.7, 1.7, -4.4, 0.62 * th, 0.55 * th, 0.15, 0.1, 0.35, 0.12, 0.18 * cx)] }, 'shoulder');
  add(
    {
      name: 'scapula',
      tubular: false,
      parts: [
        ellipse(-2.15, 0.3, 0.6, 1.9, 0, 0.22 * cx),
        { type: 'poly', pts: [-2.5, -1.2, -10.5, -3.6, -11.6, -2.0, -9.2, 12.5, -3.0, 3.8], density: 0.32, soft: 0.5 },
        tube(-2.9, 2.2, -8.9, 12.3, 0.45, 0.35, 0, 0, 0.2, 0.1, 0.15),
        tube(-3.1, -2.4, -0.9, -1.7, 0.38, 0.3, 0, 0, 0.2, 0.2, 0.12),
        tube(-11, -2.3, 2.7, -3.2, 0.42, 0.45, 0, 0, 0.5, 0.15, 0.14),
      ],
    },
    'shoulder',
  );
  for (let k = 0; k < 5; k++) {
    // Ribs behind the scapula: thin curved bones, a classic source of "lines" on a shoulder film.
    const ry = -5.5 + 3.3 * k;
    let prevPt: [number, number] | null = null;
    const segs: Prim[] = [];
    for (let s = 0; s <= 8; s++) {
      const ang = (-70 + (s * 95) / 8) * (Math.PI / 180);
      const pt: [number, number] = [-17 + 13 * Math.cos(ang), ry + 4.5 * Math.sin(ang) + 0.25 * s];
      if (prevPt) segs.push({ ...tube(prevPt[0], prevPt[1], pt[0], pt[1], 0.5, 0.5, 0, 0, 0, 0, 0.12), dCortex: 0.6 * MU_CORTEX, dMedulla: 0.15 });
      prevPt = pt;
    }
    add({ name: `rib_${k + 1}`, tubular: false, parts: segs }, 'shoulder');
  }
  softExtra.push({ type: 'poly', pts: [-40, -14, -3.6, -12, -3.0, 16, -40, 16], density: 1.1, soft: 2.0 });

  // Humerus.
  add(
    {
      name: 'humerus',
      tubular: true,
      parts: [
        tube(0.75, 1.5, 0.4, 29.9, 1.15 * th, 0.95 * th, 0.8, 0.12, 1.45, 0.13, 0.32 * cx),
        ellipse(0.95, 0.25, 2.3 * th, 2.5 * th, 0, 0.14 * cx),
        ellipse(2.3, 1.0, 1.0, 1.5, 10, 0.1),
        ellipse(0.4, 30.3, 1.9 * th, 0.8, 0, 0.12 * cx),
      ],
    },
    'humerus',
  );
  cuts.set('humerus', [1, 0.45]);
  fossae.push({ cx: 0.45, cy: 29.3, a: 0.75, b: 0.8, angle: 0, strength: 0.35, group: 'humerus' });
  soft.push({ prim: softTube(0.6, -1.5, 0.4, 30.5, 4.6, 3.9), group: 'humerus' });
  soft.push({ prim: softEllipse(1.5, 1.2, 4.9, 6.8, 0), group: 'humerus' });
  joints.push({ name: 'glenohumeral', a: 'scapula', b: 'humerus', cx: -1.45, cy: 0.3, ux: 1, uy: 0, w: 1.9, gap: 0.2, downstream: [] });

  // Forearm.
  add({ name: 'ulna', tubular: true, parts: [tube(1.0, 29.95, 1.6, 56.0, 0.75 * th, 0.42 * th, 0.5, 0.1, 0.3, 0.06, 0.22 * cx)] }, 'forearm');
  add({ name: 'radius', tubular: true, parts: [tube(-1.1, 31.75, -1.2, 55.9, 0.5 * th, 0.62 * th, 0.42, 0.045, 0.95, 0.12, 0.2 * cx)] }, 'forearm');
  // Flat articular ends instead of the tube's round caps: the distal radius, ulnar head and humeral condyles.
  cuts.set('radius', [1, 0.35]);
  cuts.set('ulna', [1, 0.5]);
  soft.push({ prim: softTube(0.2, 30.0, 0.2, 57.0, 3.6, 2.5), group: 'forearm' });
  joints.push({ name: 'elbow', a: 'humerus', b: 'ulna', cx: ELBOW[0], cy: ELBOW[1] - 0.2, ux: 0, uy: 1, w: 2.5, gap: 0.2, downstream: [] });

  // Hand, in its own frame (origin at the carpus, fingers towards +y), then placed at the wrist.
  const hb: Bone[] = [];
  const hj: Joint[] = [];
  const hs: Prim[] = [];
  const carpals: [string, number, number, number, number, number][] = [
    ['scaphoid', -1.55, -0.55, 0.95, 0.5, 60],
    ['lunate', -0.3, -0.85, 0.68, 0.6, 0],
    ['triquetrum', 0.95, -0.6, 0.58, 0.5, -20],
    ['pisiform', 1.35, -0.35, 0.38, 0.38, 0],
    ['trapezium', -2.15, 0.7, 0.6, 0.55, 30],
    ['trapezoid', -1.05, 0.85, 0.5, 0.45, 0],
    ['capitate', 0.05, 0.7, 0.55, 0.85, 0],
    ['hamate', 1.2, 0.6, 0.6, 0.72, 10],
  ];
  for (const [name, x, y, a, b, ang] of carpals) hb.push({ name, tubular: false, parts: [ellipse(x, y, a * th, b * th, ang, 0.1 * cx)] });
  const mcBase: [number, number][] = [[-1.35, 1.95], [-0.25, 2.05], [0.85, 2.0], [1.8, 1.85]];
  const mcAngle = [-9, -3, 3, 10].map((d) => (d * Math.PI) / 180);
  const mcLen = [6.3, 6.0, 5.4, 5.0];
  const lenScale = [1.0, 1.1, 1.03, 0.83];
  const radScale = [1.0, 1.03, 0.97, 0.88];
  for (let i = 0; i < 4; i++) {
    const digit = i + 2;
    const rs = radScale[i]! * th;
    const ls = lenScale[i]!;
    const ray = handRay(
      digit,
      mcBase[i]!,
      mcAngle[i]!,
      mcAngle[i]! * 0.3 + p.spread * (i - 1.5),
      [
        { name: 'metacarpal', len: mcLen[i]!, r0: 0.42 * rs, r1: 0.36 * rs, e0: 0.2, l0: 0.15, e1: 0.26, l1: 0.14, cortex: 0.14 * cx },
        { name: 'proximal_phalanx', len: 3.9 * ls, r0: 0.4 * rs, r1: 0.3 * rs, e0: 0.16, l0: 0.18, e1: 0.12, l1: 0.16, cortex: 0.1 * cx },
        { name: 'middle_phalanx', len: 2.4 * ls, r0: 0.32 * rs, r1: 0.25 * rs, e0: 0.13, l0: 0.2, e1: 0.09, l1: 0.18, cortex: 0.09 * cx },
        { name: 'distal_phalanx', len: 1.6 * ls, r0: 0.24 * rs, r1: 0.12 * rs, e0: 0.12, l0: 0.3, e1: 0.13, l1: 0.18, cortex: 0.07 * cx },
      ],
      0.85 * rs,
    );
    hb.push(...ray.bones);
    hj.push(...ray.joints);
    hs.push(...ray.soft);
  }
  const thumb = handRay(
    1,
    [-2.45, 1.25],
    (-38 * Math.PI) / 180,
    (8 * Math.PI) / 180,
    [
      { name: 'metacarpal', len: 4.2, r0: 0.5 * th, r1: 0.42 * th, e0: 0.22, l0: 0.15, e1: 0.28, l1: 0.15, cortex: 0.15 * cx },
      { name: 'proximal_phalanx', len: 3.0, r0: 0.45 * th, r1: 0.35 * th, e0: 0.16, l0: 0.18, e1: 0.14, l1: 0.16, cortex: 0.11 * cx },
      { name: 'distal_phalanx', len: 2.2, r0: 0.32 * th, r1: 0.16 * th, e0: 0.12, l0: 0.3, e1: 0.15, l1: 0.18, cortex: 0.08 * cx },
    ],
    1.0 * th,
  );
  hb.push(...thumb.bones);
  hj.push(...thumb.joints);
  hs.push(...thumb.soft);
  const handExtra: Prim[] = [];
  if (p.sesamoids) {
    const mcp = thumb.joints[0]!;
    for (const side of [-1, 1]) {
      handExtra.push(ellipse(mcp.cx - mcp.uy * 0.42 * side - mcp.ux * 0.15, mcp.cy + mcp.ux * 0.42 * side - mcp.uy * 0.15, 0.2, 0.17, 0, 0.06));
    }
  }
  hs.push({ type: 'poly', pts: [-3.0, -1.8, 2.5, -1.8, 2.9, 7.0, 0.0, 7.6, -2.2, 7.3, -3.6, 3.0], density: MU_TISSUE * 2.6, soft: 0.6 });
  hs.push(softTube(0.0, -3.5, 0.0, 1.0, 2.6, 2.9));

  // View: a lateral projection stacks the digits (and radius over ulna); an oblique half-way.
  const handSquash = p.view === 'lateral' ? 0.28 : p.view === 'oblique' ? 0.62 : 1;
  const forearmSquash = p.view === 'lateral' ? 0.3 : p.view === 'oblique' ? 0.7 : 1;
  const handToLimb = (x: number, y: number): [number, number] => [HAND_ORIGIN[0] + x * handSquash, HAND_ORIGIN[1] + y];
  const thumbToLimb = (x: number, y: number): [number, number] => [HAND_ORIGIN[0] + x * Math.max(handSquash, 0.75), HAND_ORIGIN[1] + y];
  const forearmView = (x: number, y: number): [number, number] => [FOREARM_AXIS_X + (x - FOREARM_AXIS_X) * forearmSquash, y];
  const flex = rotationAbout(p.flex, ELBOW[0], ELBOW[1]);
  const abduct = rotationAbout(p.abduct, 0, 0);
  const distal = (x: number, y: number): [number, number] => {
    const [fx, fy] = forearmView(x, y);
    return apply(abduct, ...apply(flex, fx, fy));
  };
  const humeral = (x: number, y: number): [number, number] => apply(abduct, x, y);

  const thumbNames = new Set(thumb.bones.map((b) => b.name));
  for (const b of hb) {
    const toLimb = thumbNames.has(b.name) ? thumbToLimb : handToLimb;
    add({ ...b, parts: b.parts.map((q) => mapPoints(mapPoints(q, toLimb), distal)) }, 'hand');
  }
  for (const q of hs) soft.push({ prim: mapPoints(mapPoints(q, handToLimb), distal), group: 'hand' });
  for (const q of handExtra) extraBone.push({ prim: mapPoints(mapPoints(q, thumbToLimb), distal), group: 'hand' });
  const mapJoint = (j: Joint, f: (x: number, y: number) => [number, number]): Joint => {
    const [jx, jy] = f(j.cx, j.cy);
    const [ex, ey] = f(j.cx + j.ux, j.cy + j.uy);
    const n = Math.hypot(ex - jx, ey - jy) || 1;
    return { ...j, cx: jx, cy: jy, ux: (ex - jx) / n, uy: (ey - jy) / n };
  };
  for (const j of hj) {
    const f = thumbNames.has(j.b) ? thumbToLimb : handToLimb;
    joints.push(mapJoint(j, (x, y) => distal(...f(x, y))));
  }
  // Radiocarpal joint: between the distal radius and the proximal carpal row.
  joints.push(mapJoint({ name: 'radiocarpal', a: 'radius', b: 'lunate', cx: -0.9, cy: 56.7, ux: 0, uy: 1, w: 1.4, gap: 0.3, downstream: [] }, distal));

  // Apply view/flexion/abduction to the non-hand groups.
  for (const b of bones) {
    const g = groupOf.get(b.name);
    if (g === 'forearm') b.parts = b.parts.map((q) => mapPoints(q, distal));
    else if (g === 'humerus') b.parts = b.parts.map((q) => mapPoints(q, humeral));
  }
  const softOut = soft.map(({ prim, group }) => (group === 'forearm' ? mapPoints(prim, distal) : group === 'humerus' ? mapPoints(prim, humeral) : prim));
  const fossaOut = fossae.map(({ group: _g, ...f }) => {
    const [fx, fy] = humeral(f.cx, f.cy);
    return { ...f, cx: fx, cy: fy, angle: f.angle + p.abduct };
  });
  // The glenohumeral joint stays with the scapula (abduction turns the humerus about it); the elbow moves with the humerus.
  for (let i = 0; i < joints.length; i++) if (joints[i]!.name === 'elbow') joints[i] = mapJoint(joints[i]!, humeral);

  // Downstream sets for joint-space narrowing, by group.
  const namesIn = (...gs: string[]) => bones.filter((b) => gs.includes(groupOf.get(b.name)!)).map((b) => b.name);
  for (const b of bones) {
    const cut = cuts.get(b.name);
    if (!cut) continue;
    const t = b.parts[0] as TubePrim;
    const len = Math.hypot(t.x1 - t.x0, t.y1 - t.y0);
    const ux = (t.x1 - t.x0) / len;
    const uy = (t.y1 - t.y0) / len;
    const clips: Clip[] = [];
    if (cut[0] < 1) clips.push({ px: t.x0 - ux * endRadius(t, 0) * cut[0], py: t.y0 - uy * endRadius(t, 0) * cut[0], nx: ux, ny: uy, half: 0, amp: 0, freq: 0, phase: 0, side: 1, tMin: -1e9, tDir: 1 });
    if (cut[1] < 1) clips.push({ px: t.x1 + ux * endRadius(t, 1) * cut[1], py: t.y1 + uy * endRadius(t, 1) * cut[1], nx: ux, ny: uy, half: 0, amp: 0, freq: 0, phase: 0, side: -1, tMin: -1e9, tDir: 1 });
    b.parts[0] = { ...t, clips: [...(t.clips ?? []), ...clips] };
  }
  for (const j of joints) {
    if (j.name === 'glenohumeral') j.downstream = namesIn('humerus', 'forearm', 'hand');
    else if (j.name === 'elbow') j.downstream = namesIn('forearm', 'hand');
    else if (j.name === 'radiocarpal') j.downstream = namesIn('hand');
  }
  return { bones, joints, soft: softOut, softExtra, extraBone: extraBone.map((e) => e.prim), fossae: fossaOut };
}

/** Where a region's film is centred, its main axis, and how much of the limb it covers. */
export interface Viewport {
  cx: number;
  cy: number;
  /** Direction of the region's long axis (unit), pointing distally. */
  ax: number;
  ay: number;
  /** Field of view: the side of the square film, cm. */
  fov: number;
}

function bone(an: Anatomy, name: string): Bone {
  const b = an.bones.find((x) => x.name === name);
  if (!b) throw new Error(`synthetic anatomy has no bone ${name}`);
  return b;
}

function jointOf(an: Anatomy, name: string): Joint {
  const j = an.joints.find((x) => x.name === name);
  if (!j) throw new Error(`synthetic anatomy has no joint ${name}`);
  return j;
}

function unit(x: number, y: number): [number, number] {
  const n = Math.hypot(x, y) || 1;
  return [x / n, y / n];
}

/** The viewport of a region on an anatomy (after its view was applied). `digit` selects the finger (2–5). */
export function viewportOf(region: Region, an: Anatomy, digit: number, fovScale: number): Viewport {
  const shaft = (name: string) => bone(an, name).parts[0] as TubePrim;
  switch (region) {
    case 'XR_FINGER': {
      const mcp = jointOf(an, `MCP_${digit}`);
      const dip = jointOf(an, `DIP_${digit}`);
      const pip = jointOf(an, `PIP_${digit}`);
      const [ax, ay] = unit(dip.cx - mcp.cx, dip.cy - mcp.cy);
      return { cx: pip.cx - ax * 0.4, cy: pip.cy - ay * 0.4, ax, ay, fov: 10.5 * fovScale };
    }
    case 'XR_HAND': {
      const mc = shaft('metacarpal_3');
      const [ax, ay] = unit(mc.x1 - mc.x0, mc.y1 - mc.y0);
      // Centred between the carpus and the fingertips (~15 cm from the metacarpal bases) so the whole hand fits.
      return { cx: mc.x0 + ax * 5.2 - ay * 0.5, cy: mc.y0 + ay * 5.2 + ax * 0.5, ax, ay, fov: 25 * fovScale };
    }
    case 'XR_WRIST': {
      const r = shaft('radius');
      const c = bone(an, 'capitate').parts[0] as EllipsePrim;
      const [ax, ay] = unit(r.x1 - r.x0, r.y1 - r.y0);
      return { cx: c.cx - ax * 1.3, cy: c.cy - ay * 1.3, ax, ay, fov: 11.5 * fovScale };
    }
    case 'XR_FOREARM': {
      const u = shaft('ulna');
      const r = shaft('radius');
      const [ax, ay] = unit(u.x1 - u.x0, u.y1 - u.y0);
      return { cx: (u.x0 + u.x1 + r.x0 + r.x1) / 4, cy: (u.y0 + u.y1 + r.y0 + r.y1) / 4, ax, ay, fov: 30 * fovScale };
    }
    case 'XR_ELBOW': {
      const e = jointOf(an, 'elbow');
      const h = shaft('humerus');
      const [ax, ay] = unit(h.x1 - h.x0, h.y1 - h.y0);
      return { cx: e.cx, cy: e.cy - 0.8 * ay, ax, ay, fov: 15 * fovScale };
    }
    case 'XR_HUMERUS': {
      const h = shaft('humerus');
      const [ax, ay] = unit(h.x1 - h.x0, h.y1 - h.y0);
      return { cx: (h.x0 + h.x1) / 2, cy: (h.y0 + h.y1) / 2, ax, ay, fov: 37 * fovScale };
    }
    case 'XR_SHOULDER':
      return { cx: -1.6, cy: 0.8, ax: 0, ay: 1, fov: 23 * fovScale };
  }
}

/** Where findings may be planted in a region: bones with the part of their shaft (t range) the film shows, joints. */
export function findingSites(region: Region, digit: number): { bones: [string, number, number][]; joints: string[] } {
  switch (region) {
    case 'XR_FINGER':
      return {
        bones: [
          [`proximal_phalanx_${digit}`, 0.15, 0.85],
          [`middle_phalanx_${digit}`, 0.15, 0.85],
          [`distal_phalanx_${digit}`, 0.2, 0.6],
        ],
        joints: [`PIP_${digit}`, `DIP_${digit}`, `MCP_${digit}`],
      };
    case 'XR_HAND':
      return {
        bones: [
          ...[1, 2, 3, 4, 5].map((d): [string, number, number] => [`metacarpal_${d}`, 0.2, 0.8]),
          ...[1, 2, 3, 4, 5].map((d): [string, number, number] => [`proximal_phalanx_${d}`, 0.2, 0.8]),
          ...[2, 3, 4, 5].map((d): [string, number, number] => [`middle_phalanx_${d}`, 0.2, 0.8]),
        ],
        joints: ['MCP_2', 'MCP_3', 'MCP_4', 'MCP_5', 'PIP_2', 'PIP_3', 'PIP_4', 'PIP_5', 'IP_1', 'MCP_1'],
      };
    case 'XR_WRIST':
      return {
        bones: [
          ['radius', 0.9, 0.97],
          ['ulna', 0.92, 0.97],
          ['metacarpal_2', 0.1, 0.3],
          ['metacarpal_3', 0.1, 0.3],
          ['metacarpal_1', 0.1, 0.4],
        ],
        joints: ['radiocarpal'],
      };
    case 'XR_FOREARM':
      return { bones: [['radius', 0.15, 0.85], ['ulna', 0.15, 0.85]], joints: [] };
    case 'XR_ELBOW':
      return { bones: [['humerus', 0.87, 0.95], ['radius', 0.04, 0.2], ['ulna', 0.08, 0.2]], joints: ['elbow'] };
    case 'XR_HUMERUS':
      return { bones: [['humerus', 0.1, 0.9]], joints: [] };
    case 'XR_SHOULDER':
      return { bones: [['humerus', 0.02, 0.14], ['clavicle', 0.6, 0.9]], joints: ['glenohumeral'] };
  }
}

export { bone as boneByName, jointOf };
