/**
 * The synthetic MURA generator: exact MURA layout and CSV format, patient-disjoint splits, byte-for-byte
 * determinism (also across worker counts), 8-bit greyscale PNGs, sidecars whose boxes hold what was planted,
 * and a summary that matches counts recomputed from the CSVs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { generateSyntheticMura, planDataset, designStudy, renderImage, abnormalRate, sidecarPath, type SynthResult, type SynthImageSidecar } from '../../src/data/synth/index.js';
import { REGIONS } from '../../src/data/types.js';
import { tempDir } from '../helpers/paths.js';

const SIZE = 64;
const STUDIES = 30;
const tmp = tempDir('nextray-synth-');
const dirA = join(tmp.dir, 'a');
const dirB = join(tmp.dir, 'b');
const dirC = join(tmp.dir, 'c');
let sumA: SynthResult;
let sumB: SynthResult;

before(async () => {
  sumA = await generateSyntheticMura({ outDir: dirA, studies: STUDIES, seed: 5, size: SIZE, validFraction: 0.25, workers: 2 });
  sumB = await generateSyntheticMura({ outDir: dirB, studies: STUDIES, seed: 5, size: SIZE, validFraction: 0.25, workers: 0 });
  await generateSyntheticMura({ outDir: dirC, studies: STUDIES, seed: 6, size: SIZE, validFraction: 0.25, workers: 1 });
});
after(() => tmp.cleanup());

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

function lines(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), `${path} ends with a newline`);
  return text.split('\n').filter((l) => l !== '');
}

const IMAGE_RE = /^MURA-v1\.1\/(train|valid)\/(XR_[A-Z]+)\/(patient\d{5})\/(study\d+)_(positive|negative)\/image\d+\.png$/;
const STUDY_RE = /^(MURA-v1\.1\/(train|valid)\/(XR_[A-Z]+)\/(patient\d{5})\/study\d+_(positive|negative)\/),([01])$/;

test('writes the MURA-v1.1 layout and the four CSVs exactly as MURA ships them', () => {
  const root = join(dirA, 'MURA-v1.1');
  const files = walk(dirA).map((p) => relative(dirA, p).split('\\').join('/'));
  const pngs = files.filter((f) => f.endsWith('.png')).sort();
  assert.ok(pngs.length >= STUDIES, 'at least one image per study');
  for (const f of files) {
    const ok =
      IMAGE_RE.test(f) ||
      /^MURA-v1\.1\/.*\/image\d+\.findings\.json$/.test(f) ||
      ['MURA-v1.1/train_image_paths.csv', 'MURA-v1.1/train_labeled_studies.csv', 'MURA-v1.1/valid_image_paths.csv', 'MURA-v1.1/valid_labeled_studies.csv', 'synth.json'].includes(f);
    assert.ok(ok, `unexpected file ${f}`);
  }
  for (const r of new Set(pngs.map((p) => IMAGE_RE.exec(p)![2]!))) assert.ok((REGIONS as readonly string[]).includes(r), r);

  const listed: string[] = [];
  const studyKeys = new Set<string>();
  for (const split of ['train', 'valid'] as const) {
    const imgs = lines(join(root, `${split}_image_paths.csv`));
    const studies = lines(join(root, `${split}_labeled_studies.csv`));
    assert.ok(imgs.length > 0 && studies.length > 0, `${split} is not empty`);
    for (const l of imgs) {
      const m = IMAGE_RE.exec(l);
      assert.ok(m, `${split}_image_paths.csv line "${l}" is a MURA image path (no header, no quotes)`);
      assert.equal(m[1], split);
      listed.push(l);
    }
    for (const l of studies) {
      const m = STUDY_RE.exec(l);
      assert.ok(m, `${split}_labeled_studies.csv line "${l}" is "<study>/,<label>"`);
      assert.equal(m[2], split);
      assert.equal(m[6], m[5] === 'positive' ? '1' : '0', `label of ${l} matches its folder`);
      studyKeys.add(m[1]!);
      assert.ok(existsSync(join(dirA, m[1]!)), `${m[1]} exists`);
    }
  }
  assert.deepEqual([...listed].sort(), pngs, 'the image CSVs list exactly the PNGs on disk');
  const studiesOfImages = new Set(listed.map((p) => p.slice(0, p.lastIndexOf('/') + 1)));
  assert.deepEqual([...studiesOfImages].sort(), [...studyKeys].sort(), 'every study has images and every image a labelled study');
  assert.equal(studyKeys.size, STUDIES);
  for (const key of studyKeys) {
    const n = listed.filter((p) => p.startsWith(key)).length;
    assert.ok(n >= 1 && n <= 4, `${key} has 1-4 views`);
  }
});

test('splits are patient-disjoint and the summary matches counts recomputed from the CSVs', () => {
  const root = join(dirA, 'MURA-v1.1');
  const patients = { train: new Set<string>(), valid: new Set<string>() };
  const expected: Record<string, Record<string, { images: number; studies: Set<string>; patients: Set<string>; abnormal: number }>> = { train: {}, valid: {} };
  for (const split of ['train', 'valid'] as const) {
    for (const l of lines(join(root, `${split}_labeled_studies.csv`))) {
      const m = STUDY_RE.exec(l)!;
      patients[split].add(m[4]!);
      const e = (expected[split]![m[3]!] ??= { images: 0, studies: new Set(), patients: new Set(), abnormal: 0 });
      e.studies.add(m[1]!);
      e.patients.add(m[4]!);
      if (m[6] === '1') e.abnormal++;
    }
    for (const l of lines(join(root, `${split}_image_paths.csv`))) expected[split]![IMAGE_RE.exec(l)![2]!]!.images++;
  }
  for (const p of patients.train) assert.ok(!patients.valid.has(p), `${p} is in both splits`);
  for (const split of ['train', 'valid'] as const) {
    const got = sumA.splits[split];
    assert.deepEqual(Object.keys(got).sort(), Object.keys(expected[split]!).sort());
    for (const [region, e] of Object.entries(expected[split]!)) {
      assert.deepEqual(got[region as keyof typeof got], {
        images: e.images,
        studies: e.studies.size,
        patients: e.patients.size,
        abnormal_studies: e.abnormal,
        normal_studies: e.studies.size - e.abnormal,
      });
    }
  }
  const manifest = JSON.parse(readFileSync(join(dirA, 'synth.json'), 'utf8'));
  assert.equal(manifest.generator, 'nextray-synth');
  assert.match(manifest.version, /^\d+\.\d+\.\d+$/);
  assert.deepEqual(manifest.options, { studies: STUDIES, seed: 5, size: SIZE, validFraction: 0.25, site: 'default' });
  assert.deepEqual(manifest.summary.splits, sumA.splits);
  assert.deepEqual(sumA.failed, []);
});

test('the plan: global 5-digit patient ids, repeat patients, MURA-like regions and abnormal rate, valid share of patients', () => {
  const plan = planDataset({ studies: 3000, seed: 9, validFraction: 0.2 });
  assert.equal(plan.length, 3000);
  const byPatient = new Map<string, typeof plan>();
  for (const s of plan) byPatient.set(s.patient, [...(byPatient.get(s.patient) ?? []), s]);
  for (const [p, ss] of byPatient) {
    assert.match(p, /^patient\d{5}$/);
    assert.equal(new Set(ss.map((s) => s.split)).size, 1, `${p} in one split only`);
    // Study numbers per patient and region run 1..k.
    for (const r of new Set(ss.map((s) => s.region))) {
      const ks = ss.filter((s) => s.region === r).map((s) => Number(/^study(\d+)_/.exec(s.folder)![1]));
      assert.deepEqual(ks, ks.map((_, i) => i + 1));
    }
  }
  assert.ok([...byPatient.values()].some((ss) => ss.length > 1), 'some patients have several studies');
  assert.ok([...byPatient.values()].some((ss) => new Set(ss.map((s) => s.region)).size > 1), 'some patients were imaged in several regions');
  const validPatients = [...byPatient.values()].filter((ss) => ss[0]!.split === 'valid').length;
  assert.equal(validPatients, Math.round(0.2 * byPatient.size));
  // MURA v1.1 train (Rajpurkar et al. 2017, Table 1): 13,457 studies, 5,177 abnormal (38.5 %); wrist 3,460
  // studies (25.7 %), humerus 592 (4.4 %).
  const abnormal = plan.filter((s) => s.label === 1).length / plan.length;
  assert.ok(Math.abs(abnormal - 5177 / 13457) < 0.03, `abnormal share ${abnormal}`);
  const share = (r: string) => plan.filter((s) => s.region === r).length / plan.length;
  assert.ok(Math.abs(share('XR_WRIST') - 3460 / 13457) < 0.03, `wrist share ${share('XR_WRIST')}`);
  assert.ok(Math.abs(share('XR_HUMERUS') - 592 / 13457) < 0.015, `humerus share ${share('XR_HUMERUS')}`);
  assert.ok(Math.abs(abnormalRate('XR_SHOULDER') - 1457 / 2821) < 1e-12);
  const views = plan.reduce((n, s) => n + s.images.length, 0) / plan.length;
  assert.ok(views > 2.4 && views < 3.0, `views per study ${views} (MURA: 2.7)`);
});

test('same seed gives identical bytes in every file, whatever the number of workers; another seed differs', () => {
  const filesA = walk(dirA).map((p) => relative(dirA, p)).sort();
  const filesB = walk(dirB).map((p) => relative(dirB, p)).sort();
  assert.deepEqual(filesA, filesB);
  for (const f of filesA) assert.ok(readFileSync(join(dirA, f)).equals(readFileSync(join(dirB, f))), `${f} differs between two runs with seed 5`);
  assert.deepEqual(sumA.splits, sumB.splits);
  const filesC = new Set(walk(dirC).map((p) => relative(dirC, p)));
  const pngA = filesA.filter((f) => f.endsWith('.png'));
  const common = pngA.filter((f) => filesC.has(f));
  const differing = common.filter((f) => !readFileSync(join(dirA, f)).equals(readFileSync(join(dirC, f))));
  assert.ok(common.length === 0 || differing.length === common.length, 'a different seed gives different images at the same paths');
  assert.ok(!readFileSync(join(dirA, 'MURA-v1.1/train_image_paths.csv')).equals(readFileSync(join(dirC, 'MURA-v1.1/train_image_paths.csv'))) || differing.length > 0);
});

test('PNGs are 8-bit greyscale of the requested size and not blank', async () => {
  const pngs = walk(dirA).filter((p) => p.endsWith('.png'));
  for (const p of pngs.slice(0, 40)) {
    const buf = readFileSync(p);
    // IHDR: width, height (big-endian), bit depth 8, colour type 0 (greyscale).
    assert.equal(buf.readUInt32BE(16), SIZE, `${p} width`);
    assert.equal(buf.readUInt32BE(20), SIZE, `${p} height`);
    assert.equal(buf[24], 8, `${p} bit depth`);
    assert.equal(buf[25], 0, `${p} colour type`);
    const meta = await sharp(buf).metadata();
    assert.equal(meta.channels, 1, `${p} has one channel`);
    assert.equal(meta.depth, 'uchar');
    const data = await sharp(buf).extractChannel(0).raw().toBuffer();
    let lo = 255;
    let hi = 0;
    for (const v of data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.ok(hi - lo > 60, `${p} has contrast (${lo}..${hi})`);
  }
});

test('sidecars: one per image, boxes inside the image, findings only in abnormal studies and in most of their views', () => {
  const root = join(dirA, 'MURA-v1.1');
  const byStudy = new Map<string, SynthImageSidecar[]>();
  for (const split of ['train', 'valid']) {
    for (const path of lines(join(root, `${split}_image_paths.csv`))) {
      const sc = JSON.parse(readFileSync(sidecarPath(join(dirA, path)), 'utf8')) as SynthImageSidecar;
      const m = IMAGE_RE.exec(path)!;
      assert.equal(sc.image, path);
      assert.equal(sc.region, m[2]);
      assert.equal(sc.label, m[5] === 'positive' ? 1 : 0);
      assert.equal(sc.width, SIZE);
      assert.equal(sc.height, SIZE);
      for (const f of sc.findings) {
        const [x0, y0, x1, y1] = f.box;
        assert.ok(Number.isInteger(x0) && Number.isInteger(y1), 'integer pixel box');
        assert.ok(0 <= x0 && x0 < x1 && x1 <= SIZE && 0 <= y0 && y0 < y1 && y1 <= SIZE, `${path}: box ${f.box} inside ${SIZE}x${SIZE}`);
        assert.equal(typeof f.subtle, 'boolean');
        assert.ok(f.kind.length > 0 && f.site.length > 0);
      }
      if (sc.label === 0) assert.deepEqual(sc.findings, [], `${path}: a normal study carries no finding`);
      const key = path.slice(0, path.lastIndexOf('/') + 1);
      byStudy.set(key, [...(byStudy.get(key) ?? []), sc]);
    }
  }
  let abnormalViews = 0;
  let shown = 0;
  for (const [key, scs] of byStudy) {
    if (scs[0]!.label !== 1) continue;
    assert.ok(scs.some((s) => s.findings.length > 0), `${key}: an abnormal study shows its finding in at least one view`);
    abnormalViews += scs.length;
    shown += scs.filter((s) => s.findings.length > 0).length;
  }
  assert.ok(abnormalViews > 0);
  assert.ok(shown / abnormalViews >= 0.6, `most views of abnormal studies show the finding (${shown}/${abnormalViews})`);
});

test('a finding box holds the pixels the finding changed (lesions, hardware, undisplaced fractures; with and without)', () => {
  const size = 160;
  let checked = 0;
  const kindsSeen = new Set<string>();
  for (let i = 0; i < 600 && checked < 30; i++) {
    const region = REGIONS[i % REGIONS.length]!;
    const key = `MURA-v1.1/train/${region}/patient${String(i + 1).padStart(5, '0')}/study1_positive/`;
    const design = designStudy(21, key, region, 1, 1);
    // Findings that change pixels only where they are (displaced fractures and joint narrowing move whole bones).
    if (!design.findings.every((f) => f.kind.startsWith('lesion') || f.kind.startsWith('hardware') || (f.kind === 'fracture' && f.subtle))) continue;
    const withF = renderImage(21, design, 0, `${key}image1.png`, size);
    const without = renderImage(21, { ...design, shows: [false] }, 0, `${key}image1.png`, size);
    // Same film only when the positioning did not have to move to fit the finding on it.
    if (JSON.stringify(withF.sidecar.pose) !== JSON.stringify(without.sidecar.pose)) continue;
    if (withF.sidecar.findings.length !== design.findings.length) continue;
    const boxes = withF.sidecar.findings.map((f) => f.box);
    let inside = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d = Math.abs(withF.pixels[y * size + x]! - without.pixels[y * size + x]!);
        if (d === 0) continue;
        // One pixel of slack for anti-aliased edges.
        const inBox = boxes.some(([x0, y0, x1, y1]) => x >= x0 - 1 && x < x1 + 1 && y >= y0 - 1 && y < y1 + 1);
        assert.ok(inBox, `${key}: pixel (${x},${y}) changed by ${d} outside the boxes ${JSON.stringify(boxes)}`);
        inside++;
      }
    }
    assert.ok(inside > 0, `${key}: the finding changed some pixels`);
    for (const f of design.findings) kindsSeen.add(f.kind);
    checked++;
  }
  assert.ok(checked >= 10, `checked ${checked} films`);
  assert.ok(kindsSeen.size >= 4, `kinds covered: ${[...kindsSeen].join(', ')}`);
});

test('difficulty: about one finding in six is subtle; the others stay several pixels wide at 128 px; most views show them', () => {
  // Design level (no pixels): the subtle share is SUBTLE_RATE (0.2) times the share of findings that are not
  // plates (plates are never subtle). Plates are ~16.6 % of findings when the per-region kind weights are averaged
  // over MURA's abnormal-study counts (by hand: 861 / 5177), so the expected share is 0.2 * 0.834 = 0.167.
  let findings = 0;
  let subtle = 0;
  let views = 0;
  let shown = 0;
  for (let i = 0; i < 1500; i++) {
    const region = REGIONS[i % REGIONS.length]!;
    const design = designStudy(31, `MURA-v1.1/train/${region}/patient${String(i + 1).padStart(5, '0')}/study1_positive/`, region, 1, 3);
    findings += design.findings.length;
    subtle += design.findings.filter((f) => f.subtle).length;
    views += design.shows.length;
    shown += design.shows.filter(Boolean).length;
  }
  // ~2000 findings: one standard error of the share is ~0.008, so +-0.035 is four of them.
  assert.ok(Math.abs(subtle / findings - 0.167) < 0.035, `subtle share ${(subtle / findings).toFixed(3)} should be ~0.167`);
  // 95 % of views show the finding, plus the forced one when none would (3 views: 1 - 0.05^3 of studies).
  assert.ok(shown / views > 0.92, `views showing the finding ${(shown / views).toFixed(3)}`);

  // Pixel level: a non-subtle finding must survive the demo's 128 px input (a CNN stem downsamples ~4x), so its
  // box is at least 4 px on its shorter side in nearly every film.
  const size = 128;
  let big = 0;
  let small = 0;
  for (let i = 0; i < 70; i++) {
    const region = REGIONS[i % REGIONS.length]!;
    const key = `MURA-v1.1/train/${region}/patient${String(i + 1).padStart(5, '0')}/study1_positive/`;
    const design = designStudy(32, key, region, 1, 1);
    for (const f of renderImage(32, design, 0, `${key}image1.png`, size).sidecar.findings) {
      if (f.subtle) continue;
      const [x0, y0, x1, y1] = f.box;
      if (Math.min(x1 - x0, y1 - y0) >= 4) big++;
      else small++;
    }
  }
  assert.ok(big >= 40, `non-subtle findings checked: ${big + small}`);
  assert.ok(small / (big + small) <= 0.05, `${small} of ${big + small} non-subtle findings are under 4 px at ${size} px`);
});

test('rejects bad options with a message naming the option, and refuses to overwrite without force', async () => {
  await assert.rejects(generateSyntheticMura({ outDir: join(tmp.dir, 'x'), studies: 0 }), /studies must be an integer/);
  await assert.rejects(generateSyntheticMura({ outDir: join(tmp.dir, 'x'), studies: 2, size: 8 }), /size must be an integer in \[32, 2048\]/);
  await assert.rejects(generateSyntheticMura({ outDir: join(tmp.dir, 'x'), studies: 2, validFraction: 1.5 }), /validFraction/);
  await assert.rejects(generateSyntheticMura({ outDir: dirA, studies: 2, size: 32 }), /already exists.*--force/);
});
