/**
 * Renders one synthetic radiograph: the study's design (anatomy variant, findings, which views show them) is
 * drawn from the study's random stream, the view (projection, positioning, exposure, markers, noise) from the
 * image's own stream `Rng(seed).fork(imagePath)`, so an image's bytes depend only on the seed and its path.
 */
import { Rng, type Seed } from '../../util/rng.js';
import type { Label, Region } from '../types.js';
import { buildLimb, viewportOf, type ViewKind, type LimbParams, MU_TISSUE } from './anatomy.js';
import { drawFindingSpecs, plantFindings, type FindingSpec, type PlantResult } from './findings.js';
import { compose, translation, rotationAbout, transformPrim, apply, scaleOf, type Affine } from './geom.js';
import { createLayers, frameBuffer, draw, drawUnion, scaleBone, valueNoise, boxBlur, type Prim, type TubePrim, type Clip } from './raster.js';
import type { SynthFinding, SynthImageSidecar } from './types.js';
import { applySiteCollimation, applySiteNoise, applySiteOptics, applySiteText, applySiteTone, isIdentitySite, siteProfile, type SiteName, type SiteProfile } from './sites.js';

/** Everything decided once per study. */
export interface StudyDesign {
  region: Region;
  label: Label;
  /** Finger shown by XR_FINGER views (2 = index ... 5 = little). */
  digit: number;
  limb: Omit<LimbParams, 'view' | 'flex' | 'abduct'>;
  fovScale: number;
  /** Skeletally immature patient: open growth plates (dark lines near bone ends that are NOT fractures). */
  young: boolean;
  findings: FindingSpec[];
  views: ViewKind[];
  /** Per view: whether it shows the findings (most views of an abnormal study do). */
  shows: boolean[];
}

// Nearly every view of an abnormal study shows its finding: the study label is given to every view, and views
// labelled abnormal with nothing to see were label noise that a small CNN trained on ~1-2k images could not afford.
const VIEW_SHOWS_FINDING = 0.95;

export function designStudy(seed: Seed, studyKey: string, region: Region, label: Label, nViews: number): StudyDesign {
  const rng = new Rng(seed).fork(studyKey);
  const digit = 2 + rng.int(4);
  const limb = {
    thick: rng.uniform(0.9, 1.12),
    cortex: rng.uniform(0.8, 1.25),
    spread: rng.uniform(-0.02, 0.08),
    sesamoids: rng.chance(0.5),
  };
  const fovScale = rng.uniform(0.92, 1.08);
  const young = rng.chance(0.06);
  const kinds: ViewKind[] = ['PA', 'lateral', 'oblique'];
  const views: ViewKind[] = [];
  for (let v = 0; v < nViews; v++) views.push(v < 3 ? kinds[v]! : rng.pick(kinds));
  // First view is usually the PA, but not always (a linear model must not learn "view 1 looks like X").
  if (nViews > 1 && rng.chance(0.3)) rng.shuffle(views);
  const findings = label === 1 ? drawFindingSpecs(rng.fork('findings'), region, digit) : [];
  const shows: boolean[] = [];
  for (let v = 0; v < nViews; v++) shows.push(label === 1 && rng.chance(VIEW_SHOWS_FINDING));
  if (label === 1 && !shows.some(Boolean)) shows[rng.int(nViews)] = true;
  return { region, label, digit, limb, fovScale, young, findings, views, shows };
}

/** Box of a footprint after the transform, clipped to the image; null when too little of it is on the film. */
function footprintBox(fp: [number, number, number][], m: Affine, size: number): [number, number, number, number] | null {
  const s = scaleOf(m);
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const [x, y, r] of fp) {
    const [px, py] = apply(m, x, y);
    const rp = r * s;
    x0 = Math.min(x0, px - rp);
    y0 = Math.min(y0, py - rp);
    x1 = Math.max(x1, px + rp);
    y1 = Math.max(y1, py + rp);
  }
  const bx0 = Math.max(0, Math.floor(x0));
  const by0 = Math.max(0, Math.floor(y0));
  const bx1 = Math.min(size, Math.ceil(x1));
  const by1 = Math.min(size, Math.ceil(y1));
  if (bx1 - bx0 < 2 || by1 - by0 < 2) return null;
  const full = Math.max(1, (x1 - x0) * (y1 - y0));
  if (((bx1 - bx0) * (by1 - by0)) / full < 0.7) return null;
  // Keep findings off the outermost 3 % (where collimation and labels live).
  const margin = 0.03 * size;
  if (bx1 < margin || by1 < margin || bx0 > size - margin || by0 > size - margin) return null;
  return [bx0, by0, bx1, by1];
}

/** Stroke paths of the lead markers, in a unit box (x right, y down). */
const LETTERS: Record<'L' | 'R', [number, number, number, number][]> = {
  L: [
    [0, 0, 0, 1],
    [0, 1, 0.6, 1],
  ],
  R: [
    [0, 0, 0, 1],
    [0, 0, 0.42, 0],
    [0.42, 0, 0.6, 0.12],
    [0.6, 0.12, 0.6, 0.38],
    [0.6, 0.38, 0.42, 0.5],
    [0.42, 0.5, 0, 0.5],
    [0.25, 0.5, 0.62, 1],
  ],
};

/** Lead letter "L"/"R" and burned-in text: bright, sharp, and present on normal films too. */
function markerPrims(rng: Rng, size: number): Prim[] {
  const out: Prim[] = [];
  const corner = rng.int(4);
  const margin = rng.uniform(0.03, 0.1) * size;
  const h = rng.uniform(0.035, 0.06) * size;
  const r = h * rng.uniform(0.08, 0.12);
  const ox = corner % 2 === 0 ? margin : size - margin - 0.6 * h;
  const oy = corner < 2 ? margin : size - margin - h;
  const rot = rotationAbout(rng.uniform(-0.25, 0.25), ox + 0.3 * h, oy + 0.5 * h);
  const letter = rng.chance(0.5) ? 'L' : 'R';
  for (const [a, b, c, d] of LETTERS[letter]) {
    const [x0, y0] = apply(rot, ox + a * h, oy + b * h);
    const [x1, y1] = apply(rot, ox + c * h, oy + d * h);
    out.push({ type: 'stroke', x0, y0, x1, y1, r, density: 4 });
  }
  if (rng.chance(0.35)) {
    // A square frame around the letter, as many marker holders have.
    const pad = 0.25 * h;
    const pts: [number, number][] = [
      [ox - pad, oy - pad],
      [ox + 0.6 * h + pad, oy - pad],
      [ox + 0.6 * h + pad, oy + h + pad],
      [ox - pad, oy + h + pad],
    ];
    for (let i = 0; i < 4; i++) {
      const [x0, y0] = apply(rot, ...pts[i]!);
      const [x1, y1] = apply(rot, ...pts[(i + 1) % 4]!);
      out.push({ type: 'stroke', x0, y0, x1, y1, r: r * 0.5, density: 2 });
    }
  }
  return out;
}

function textPrims(rng: Rng, size: number): Prim[] {
  const out: Prim[] = [];
  const ch = rng.uniform(0.012, 0.02) * size;
  const rows = 1 + rng.int(3);
  const corner = rng.int(4);
  const width = ch * 0.7 * 12;
  const x0 = corner % 2 === 0 ? 0.02 * size : size - 0.02 * size - width;
  const y0 = corner < 2 ? 0.02 * size : size - 0.02 * size - rows * ch * 1.6;
  for (let r = 0; r < rows; r++) {
    const n = 4 + rng.int(9);
    for (let k = 0; k < n; k++) {
      if (rng.chance(0.15)) continue; // a space
      const x = x0 + k * ch * 0.75;
      const y = y0 + r * ch * 1.6;
      // A glyph: one to three strokes in a character cell.
      const strokes = 1 + rng.int(3);
      for (let s = 0; s < strokes; s++) {
        const ax = x + rng.uniform(0, 0.5) * ch;
        const ay = y + rng.uniform(0, 1) * ch;
        const bx = x + rng.uniform(0, 0.5) * ch;
        const by = y + rng.uniform(0, 1) * ch;
        out.push({ type: 'stroke', x0: ax, y0: ay, x1: bx, y1: by, r: ch * 0.09, density: 3 });
      }
    }
  }
  return out;
}

/** Robust maximum (99.7th percentile of the covered pixels) of the summed attenuation maps, for auto-exposure. */
function robustMax(A: Float32Array, B: Float32Array): number {
  const E = frameBuffer('robust', Math.round(Math.sqrt(A.length)));
  for (let i = 0; i < E.length; i++) E[i] = A[i]! + B[i]!;
  let max = 0;
  for (let i = 0; i < E.length; i++) if (E[i]! > max) max = E[i]!;
  if (max <= 0) return 1;
  const bins = 1024;
  const hist = new Uint32Array(bins);
  let n = 0;
  const thr = max * 0.02;
  for (let i = 0; i < E.length; i++) {
    const e = E[i]!;
    if (e <= thr) continue;
    hist[Math.min(bins - 1, Math.floor((e / max) * bins))]!++;
    n++;
  }
  let acc = 0;
  const target = n * 0.997;
  for (let b = 0; b < bins; b++) {
    acc += hist[b]!;
    if (acc >= target) return ((b + 1) / bins) * max;
  }
  return max;
}

export interface RenderedImage {
  pixels: Uint8Array;
  sidecar: SynthImageSidecar;
}

/**
 * Renders view `v` (0-based) of a designed study as `size`×`size` 8-bit greyscale pixels plus its sidecar, as the
 * machine of `site` (sites.ts) would take it: the default site is the generator's own look; any other site takes
 * the same anatomy, pose and findings and changes only the acquisition, from a random stream of its own.
 */
export function renderImage(seed: Seed, design: StudyDesign, v: number, imagePath: string, size: number, site: SiteName | SiteProfile = 'default'): RenderedImage {
  const rng = new Rng(seed).fork(imagePath);
  const profile = typeof site === 'string' ? siteProfile(site) : site;
  const siteOn = !isIdentitySite(profile);
  const srng = new Rng(seed).fork('site').fork(profile.name).fork(imagePath);
  const region = design.region;
  const view = design.views[v]!;

  // Positioning of the limb for this film.
  let flex = rng.uniform(-0.08, 0.08);
  let abduct = 0;
  if (region === 'XR_ELBOW') {
    if (view === 'lateral') flex = rng.uniform(1.2, 1.75);
    else if (view === 'oblique') flex = rng.uniform(0.2, 0.5);
  } else if (region === 'XR_SHOULDER') abduct = view === 'PA' ? rng.uniform(-0.1, 0.35) : rng.uniform(0.2, 0.8);
  else if (region === 'XR_HUMERUS') abduct = rng.uniform(-0.08, 0.25);
  const an = buildLimb({ ...design.limb, view, flex, abduct });
  const vp = viewportOf(region, an, design.digit, design.fovScale);

  const show = design.shows[v] === true;
  const planted: PlantResult = show ? plantFindings(an, design.findings, vp.fov) : { boneAdd: [], metal: [], lytic: [], planted: [] };

  if (design.young) {
    // Open physes: thin dark bands near both ends of every long bone.
    for (const b of an.bones) {
      if (!b.tubular) continue;
      const s = b.parts[0] as TubePrim;
      const dx = s.x1 - s.x0;
      const dy = s.y1 - s.y0;
      const len = Math.hypot(dx, dy);
      const ux = dx / len;
      const uy = dy / len;
      const extra: Clip[] = [];
      for (const t of [Math.max(0.03, s.l0 * 0.45), 1 - Math.max(0.03, s.l1 * 0.45)]) {
        extra.push({ px: s.x0 + dx * t, py: s.y0 + dy * t, nx: ux, ny: uy, half: 0.0012 * vp.fov + 0.015, amp: 0.01, freq: 20, phase: 0, side: 0, tMin: -1e9, tDir: 1 });
      }
      b.parts[0] = { ...s, clips: [...(s.clips ?? []), ...extra] };
    }
  }

  // Film orientation: distal up for hand/wrist/forearm (as such films are hung), down for the others.
  const distalUp = region === 'XR_FINGER' || region === 'XR_HAND' || region === 'XR_WRIST' || region === 'XR_FOREARM';
  const align = Math.atan2(distalUp ? -1 : 1, 0) - Math.atan2(vp.ay, vp.ax);
  const mirror = rng.chance(0.5);
  const turnQuarter = (region === 'XR_FOREARM' || region === 'XR_HUMERUS') && rng.chance(0.12);
  let m: Affine = translation(0, 0);
  let boxes: ([number, number, number, number] | null)[] = [];
  const attempts = 10;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const jitter = attempt < attempts - 1 ? 1 - attempt / attempts : 0;
    const rot = align + (turnQuarter ? Math.PI / 2 : 0) + jitter * rng.uniform(-0.2, 0.2);
    const zoom = 1 + jitter * rng.uniform(-0.08, 0.08);
    const offX = jitter * rng.uniform(-0.07, 0.07) * size;
    const offY = jitter * rng.uniform(-0.07, 0.07) * size;
    const scale = (size / vp.fov) * zoom;
    let t: Affine = translation(-vp.cx, -vp.cy);
    t = compose(rotationAbout(rot, 0, 0), t);
    t = compose({ a: scale * (mirror ? -1 : 1), b: 0, c: 0, d: scale, tx: 0, ty: 0 }, t);
    m = compose(translation(size / 2 + offX, size / 2 + offY), t);
    boxes = planted.planted.map((p) => footprintBox(p.footprint, m, size));
    if (boxes.every((b) => b !== null)) break;
  }
  const scale = scaleOf(m);
  const cmPerPx = 1 / scale;

  // Trabecular texture: two octaves of value noise at trabecular scale (~1.5 mm and ~4 mm).
  const texture = frameBuffer('texture', size, 1);
  const trab = rng.uniform(0.25, 0.45);
  valueNoise(rng, size, Math.max(1.5, 0.15 * scale), texture, trab);
  valueNoise(rng, size, Math.max(3, 0.4 * scale), texture, trab * 0.6);
  const L = createLayers(size, cmPerPx, texture);

  drawUnion(L, an.soft.map((p) => transformPrim(m, p)), 'other');
  for (const p of an.softExtra) draw(L, transformPrim(m, p), 'other');
  if (rng.chance(0.05)) {
    // A plaster cast around the limb: a confounder seen on normal and abnormal films alike.
    const half = 0.3 * vp.fov;
    const cast: TubePrim = { type: 'tube', x0: vp.cx - vp.ax * half, y0: vp.cy - vp.ay * half, x1: vp.cx + vp.ax * half, y1: vp.cy + vp.ay * half, r0: 0.2 * vp.fov, r1: 0.17 * vp.fov, e0: 0, l0: 0, e1: 0, l1: 0, cortex: 0.012 * vp.fov, dCortex: MU_TISSUE * 1.5, dMedulla: MU_TISSUE * 0.15 };
    draw(L, transformPrim(m, cast), 'other');
  }
  for (const b of an.bones) drawUnion(L, b.parts.map((p) => transformPrim(m, p)), 'bone');
  for (const p of an.extraBone) draw(L, transformPrim(m, p), 'bone');
  for (const f of an.fossae) {
    const [cx, cy] = apply(m, f.cx, f.cy);
    const [ax, ay] = apply(m, f.cx + Math.cos(f.angle), f.cy + Math.sin(f.angle));
    scaleBone(L, cx, cy, f.a * scale, f.b * scale, Math.atan2(ay - cy, ax - cx), f.strength);
  }
  // Auto-exposure is set by the anatomy alone, before findings and metal are added, so a finding never shifts
  // the brightness of the rest of the film (no global cue for a pixel-level model to pick up).
  const n = size * size;
  const eref = robustMax(L.other, L.bone);
  for (const f of planted.lytic) {
    const [cx, cy] = apply(m, f.cx, f.cy);
    const [ax, ay] = apply(m, f.cx + Math.cos(f.angle), f.cy + Math.sin(f.angle));
    scaleBone(L, cx, cy, f.a * scale, f.b * scale, Math.atan2(ay - cy, ax - cx), f.strength);
  }
  for (const p of planted.boneAdd) draw(L, transformPrim(m, p), 'bone');
  const E = L.other;
  for (let i = 0; i < n; i++) E[i] = E[i]! + L.bone[i]!;
  const metal = planted.metal.map((p) => transformPrim(m, p));
  for (const p of metal) draw(L, p, 'other');
  // Lead markers and burned-in text are saturated white strokes, the same look as screws and wires, so they are
  // kept (a model must learn to ignore them) but on fewer films than the 85 % / 35 % first used, which made
  // them the most common bright structure and slowed a small CNN's learning of what hardware looks like.
  if (rng.chance(0.5)) for (const p of markerPrims(rng, size)) draw(L, p, 'other');
  if (rng.chance(0.15)) for (const p of textPrims(rng, size)) draw(L, p, 'other');

  // Detector response and display: exponential saturation, window, gamma — all varied per film.
  const g = rng.uniform(1.0, 2.6);
  const norm = 1 / (1 - Math.exp(-g));
  const gamma = rng.uniform(0.7, 1.35);
  const bg = rng.uniform(0.0, 0.12);
  const hi = rng.uniform(0.8, 1.0);
  // The response saturates at E = eref (v = 1), so a table over [0, 1] of E / eref covers every pixel.
  const LUT_N = 4096;
  const lut = new Float32Array(LUT_N + 1);
  for (let k = 0; k <= LUT_N; k++) lut[k] = bg + (hi - bg) * Math.pow(Math.min(1, (1 - Math.exp((-g * k) / LUT_N)) * norm), gamma);
  const img = frameBuffer('img', size);
  const toLut = LUT_N / eref;
  for (let i = 0; i < n; i++) {
    const x = E[i]! * toLut;
    img[i] = lut[x <= 0 ? 0 : x >= LUT_N ? LUT_N : Math.round(x)]!;
  }
  if (siteOn) applySiteTone(img, profile);
  const blur = Math.round(rng.uniform(0, 1.6) * (size / 512));
  if (blur >= 1) boxBlur(img, size, blur);
  if (siteOn) applySiteOptics(img, size, profile);

  // Collimation: the unexposed border outside the shutters is white (or cropped black).
  if (rng.chance(0.2)) {
    const c = rotationAbout(rng.uniform(-0.05, 0.05), size / 2, size / 2);
    const l = rng.uniform(0.01, 0.1) * size;
    const r = size - rng.uniform(0.01, 0.1) * size;
    const t = rng.uniform(0.01, 0.1) * size;
    const b = size - rng.uniform(0.01, 0.1) * size;
    const val = rng.chance(0.6) ? rng.uniform(0.75, 0.95) : rng.uniform(0, 0.03);
    for (let y = 0; y < size; y++) {
      const yy = y + 0.5;
      for (let x = 0; x < size; x++) {
        const ux = c.a * (x + 0.5) + c.b * yy + c.tx;
        const uy = c.c * (x + 0.5) + c.d * yy + c.ty;
        if (ux < l || ux > r || uy < t || uy > b) img[y * size + x] = val;
      }
    }
  }

  if (siteOn) applySiteCollimation(img, size, profile, srng);

  // Noise: quantum-like grain plus low-frequency mottle and a heel-effect gradient.
  const sigma = rng.uniform(0.005, 0.02);
  const sigmaTri = sigma * Math.sqrt(6);
  const mottle = frameBuffer('mottle', size);
  valueNoise(rng, size, Math.max(4, size / 6), mottle, rng.uniform(0.005, 0.03));
  const heel = rng.uniform(-0.06, 0.06);
  const heelVertical = rng.chance(0.5);
  const pixels = new Uint8Array(n);
  // Another site's noise and text need the display values before they are rounded to 8 bits.
  const values = siteOn ? new Float64Array(n) : null;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      const pos = (heelVertical ? y : x) / size - 0.5;
      // Triangular noise from the two 16-bit halves of one draw: unit variance, much cheaper than Box–Muller.
      const bits = rng.nextUint32();
      const tri = ((bits >>> 16) + (bits & 0xffff)) / 65536 - 1;
      let v = img[i]! * (1 + heel * pos) + mottle[i]! + tri * sigmaTri;
      v = v <= 0 ? 0 : v >= 1 ? 1 : v;
      if (values) values[i] = v;
      else pixels[i] = Math.round(v * 255);
    }
  }
  if (values) {
    applySiteNoise(values, profile, srng);
    applySiteText(values, size, profile, srng);
    for (let i = 0; i < n; i++) {
      const x = values[i]!;
      pixels[i] = Math.round((x <= 0 ? 0 : x >= 1 ? 1 : x) * 255);
    }
  }

  const findings: SynthFinding[] = [];
  planted.planted.forEach((p, k) => {
    const box = boxes[k];
    if (!box) return;
    findings.push({ kind: p.spec.kind, box, subtle: p.spec.subtle, site: p.spec.site, details: p.details });
  });
  return {
    pixels,
    sidecar: {
      image: imagePath,
      region,
      label: design.label,
      width: size,
      height: size,
      view,
      pose: { rotation_deg: +((Math.atan2(m.c, m.a) * 180) / Math.PI).toFixed(2), px_per_cm: +scale.toFixed(3), mirrored: mirror },
      findings,
      ...(siteOn ? { site: profile.name } : {}),
    },
  };
}

