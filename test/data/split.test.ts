/**
 * Re-splitting MURA valid: the assignment (patient-disjoint, stratified within tolerance on a large generated
 * list, deterministic by seed), split files (JSON and CSV round trips), loadSplit's refusals (leaking patients,
 * unknown studies, malformed files) and selectSubset.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { loadMuraDataset, type MuraDataset } from '../../src/data/mura.js';
import {
  createSplit,
  loadSplit,
  selectSubset,
  SplitFileError,
  stratifiedPatientSplit,
  writeSplit,
  type MuraSplitFile,
  type PatientUnit,
} from '../../src/data/splits.js';
import { Rng } from '../../src/util/rng.js';
import { REGIONS, type Label } from '../../src/data/types.js';
import { buildMura, REFERENCE_STUDIES, type StudySpec } from './mura-fixture.js';

/** A MURA-valid-like population: mostly one study per patient, some with several of different regions/labels. */
function generatePatients(count: number, seed: number): PatientUnit[] {
  const rng = new Rng(seed);
  const out: PatientUnit[] = [];
  for (let p = 0; p < count; p++) {
    const ns = rng.chance(0.6) ? 1 : rng.chance(0.7) ? 2 : 3;
    const studies = [];
    for (let k = 0; k < ns; k++) {
      // Skewed region frequencies and per-region abnormality rates, as in MURA.
      const r = Math.min(6, Math.floor(rng.next() ** 1.3 * 7));
      studies.push({ region: REGIONS[r]!, label: (rng.chance(0.25 + r * 0.05) ? 1 : 0) as Label, images: rng.intBetween(1, 5) });
    }
    out.push({ patient: `patient${String(11185 + p).padStart(5, '0')}`, studies });
  }
  return out;
}

/** Per (region, label) study counts in validation and overall, plus images, computed independently. */
function tally(units: readonly PatientUnit[], side: Map<string, string>) {
  const n = new Map<string, number>();
  const v = new Map<string, number>();
  let images = 0;
  let valImages = 0;
  for (const u of units)
    for (const s of u.studies) {
      const k = `${s.region}/${s.label}`;
      n.set(k, (n.get(k) ?? 0) + 1);
      images += s.images;
      if (side.get(u.patient) === 'validation') {
        v.set(k, (v.get(k) ?? 0) + 1);
        valImages += s.images;
      }
    }
  return { n, v, images, valImages };
}

describe('stratifiedPatientSplit', () => {
  const units = generatePatients(700, 3);

  for (const f of [0.8, 0.5]) {
    it(`puts ${f} of every (region, label) stratum in validation, within one study (700 patients)`, () => {
      const side = stratifiedPatientSplit(units, f, 42);
      assert.equal(side.size, units.length);
      const { n, v, images, valImages } = tally(units, side);
      assert.equal(n.size, 14, 'the generated list covers all 14 strata');
      for (const [k, total] of n) {
        const dev = Math.abs((v.get(k) ?? 0) - f * total);
        assert.ok(dev <= 1, `${k}: ${v.get(k)} of ${total} in validation, target ${f * total}`);
      }
      assert.ok(Math.abs(valImages - f * images) <= 0.005 * images, `images ${valImages} of ${images}`);
    });
  }

  it('is deterministic for a seed, whatever the input order, and changes with the seed', () => {
    const a = stratifiedPatientSplit(units, 0.8, 7);
    const b = stratifiedPatientSplit([...units].reverse(), 0.8, 7);
    assert.deepEqual([...a].sort(), [...b].sort());
    const c = stratifiedPatientSplit(units, 0.8, 8);
    const differ = units.filter((u) => a.get(u.patient) !== c.get(u.patient)).length;
    assert.ok(differ > 50, `only ${differ} patients moved between seeds 7 and 8`);
    const d = stratifiedPatientSplit(units, 0.8, 'seven');
    assert.ok(units.some((u) => a.get(u.patient) !== d.get(u.patient)));
  });

  it('refuses a fraction outside (0, 1) and a patient given twice', () => {
    assert.throws(() => stratifiedPatientSplit(units, 1, 1), RangeError);
    assert.throws(() => stratifiedPatientSplit(units, 0, 1), RangeError);
    assert.throws(() => stratifiedPatientSplit([units[0]!, units[0]!], 0.5, 1), /given twice/);
  });
});

/** Reference train studies plus 40 valid patients with 1-3 studies each (some spanning regions and labels). */
function splitDatasetSpec(): StudySpec[] {
  const specs: StudySpec[] = REFERENCE_STUDIES.filter((s) => s.split === 'train');
  const rng = new Rng('split-fixture');
  for (let p = 0; p < 40; p++) {
    const ns = p % 3 === 0 ? 3 : p % 3 === 1 ? 2 : 1;
    for (let k = 1; k <= ns; k++)
      specs.push({
        split: 'valid',
        region: REGIONS[(p + k) % 7]!,
        patient: 20000 + p,
        study: k,
        label: ((p + k) % 2) as Label,
        images: 1 + rng.int(2),
      });
  }
  return specs;
}

describe('createSplit, split files and selectSubset', () => {
  const tmp = tempDir('nextray-split-');
  after(() => tmp.cleanup());
  let ds: MuraDataset;
  let split: MuraSplitFile;
  const specs = splitDatasetSpec();
  const validSpecs = specs.filter((s) => s.split === 'valid');

  before(async () => {
    await buildMura(tmp.dir, specs);
    ds = await loadMuraDataset(tmp.dir);
    assert.deepEqual(ds.issues, []);
    split = createSplit(ds, { valFraction: 0.75, seed: 11 });
  });

  it('is patient-disjoint and covers every valid study exactly once', () => {
    const { validation, test } = split.subsets;
    const vp = new Set(validation.patients);
    assert.ok(test.patients.every((p) => !vp.has(p)));
    assert.equal(validation.patients.length + test.patients.length, 40);
    const all = [...validation.studies, ...test.studies].sort();
    assert.deepEqual(all, ds.studies.filter((s) => s.split === 'valid').map((s) => s.key).sort());
    for (const key of validation.studies) assert.ok(vp.has(key.split('/')[3]!));
  });

  it('records seed, fraction, source fingerprint and counts that match the studies', () => {
    assert.equal(split.format, 'nextray-mura-split');
    assert.equal(split.version, 1);
    assert.equal(split.seed, 11);
    assert.equal(split.val_fraction, 0.75);
    assert.equal(split.source.fingerprint, ds.fingerprint);
    assert.equal(split.source.dataset, 'MURA-v1.1');
    assert.match(split.source.csv_sha256['valid_image_paths.csv']!, /^sha256:/);
    const totalImages = validSpecs.reduce((a, s) => a + s.images, 0);
    assert.equal(split.subsets.validation.totals.images + split.subsets.test.totals.images, totalImages);
    assert.equal(split.subsets.validation.totals.studies + split.subsets.test.totals.studies, validSpecs.length);
    for (const subset of ['validation', 'test'] as const) {
      const part = split.subsets[subset];
      const keys = new Set(part.studies);
      const mine = validSpecs.filter((s) => keys.has(`MURA-v1.1/valid/${s.region}/patient${s.patient}/study${s.study}_${s.label ? 'positive' : 'negative'}/`));
      assert.equal(mine.length, part.studies.length);
      for (const region of REGIONS) {
        const r = mine.filter((s) => s.region === region);
        if (!r.length) {
          assert.equal(part.counts[region], undefined);
          continue;
        }
        assert.deepEqual(part.counts[region], {
          images: r.reduce((a, s) => a + s.images, 0),
          studies: r.length,
          patients: new Set(r.map((s) => s.patient)).size,
          abnormal_studies: r.filter((s) => s.label === 1).length,
          normal_studies: r.filter((s) => s.label === 0).length,
        });
      }
    }
  });

  it('same seed, same file; different seed, different assignment', () => {
    assert.deepEqual(createSplit(ds, { valFraction: 0.75, seed: 11 }), split);
    assert.notDeepEqual(createSplit(ds, { valFraction: 0.75, seed: 12 }).subsets.test.patients, split.subsets.test.patients);
  });

  it('round-trips through JSON and CSV files', () => {
    const json = join(tmp.dir, 'split.json');
    writeSplit(json, split, ds);
    assert.deepEqual(loadSplit(json, ds), split);
    const csv = join(tmp.dir, 'split.csv');
    writeSplit(csv, split, ds);
    const text = readFileSync(csv, 'utf8');
    assert.match(text, /^# format: "nextray-mura-split"\n# version: 1\n# seed: 11\n# val_fraction: 0.75\n/);
    assert.match(text, /\nsubset,patient,study,region,label,images\n(validation|test),patient2\d{4},MURA-v1\.1\/valid\//);
    const fromCsv = loadSplit(csv, ds);
    assert.equal(fromCsv.seed, 11);
    assert.equal(fromCsv.val_fraction, 0.75);
    assert.deepEqual(fromCsv.source, split.source);
    for (const subset of ['validation', 'test'] as const) {
      assert.deepEqual(fromCsv.subsets[subset].patients, split.subsets[subset].patients);
      assert.deepEqual([...fromCsv.subsets[subset].studies].sort(), split.subsets[subset].studies);
      assert.deepEqual(fromCsv.subsets[subset].counts, split.subsets[subset].counts);
      assert.deepEqual(fromCsv.subsets[subset].totals, split.subsets[subset].totals);
    }
  });

  function writeEdited(name: string, edit: (doc: MuraSplitFile) => void): string {
    const doc = JSON.parse(JSON.stringify(split)) as MuraSplitFile;
    edit(doc);
    const file = join(tmp.dir, name);
    writeFileSync(file, JSON.stringify(doc));
    return file;
  }
  const refuses = (file: string, pattern: RegExp, dataset?: MuraDataset) =>
    assert.throws(
      () => loadSplit(file, dataset),
      (e: unknown) => e instanceof SplitFileError && e.message.startsWith(file) && pattern.test(e.message),
    );

  it('refuses a split in which a patient is on both sides', () => {
    // Move one study of a multi-study validation patient to test (patient lists updated, so only the leak is wrong).
    const file = writeEdited('leak.json', (doc) => {
      const v = doc.subsets.validation;
      const key = v.studies.find((k) => v.studies.filter((o) => o.split('/')[3] === k.split('/')[3]).length > 1)!;
      const patient = key.split('/')[3]!;
      v.studies = v.studies.filter((k) => k !== key);
      doc.subsets.test.studies.push(key);
      doc.subsets.test.patients.push(patient);
    });
    refuses(file, /patient\(s\) patient2\d{4} have studies in both validation and test; this split leaks patients/);
  });

  it('refuses a study on both sides, or listed twice', () => {
    refuses(
      writeEdited('both.json', (doc) => {
        const key = doc.subsets.validation.studies[0]!;
        doc.subsets.test.studies.push(key);
        doc.subsets.test.patients.push(key.split('/')[3]!);
      }),
      /is in both validation and test/,
    );
    refuses(
      writeEdited('twice.json', (doc) => doc.subsets.test.studies.push(doc.subsets.test.studies[0]!)),
      /listed twice/,
    );
  });

  it('refuses studies the dataset does not have (only when given the dataset)', () => {
    const file = writeEdited('unknown.json', (doc) => {
      doc.subsets.test.studies.push('MURA-v1.1/valid/XR_HAND/patient99999/study1_positive/');
      doc.subsets.test.patients.push('patient99999');
    });
    assert.doesNotThrow(() => loadSplit(file));
    refuses(file, /1 study is not in the dataset at .*: MURA-v1\.1\/valid\/XR_HAND\/patient99999\/study1_positive\//, ds);
    const loaded = loadSplit(file);
    assert.throws(() => selectSubset(ds, loaded, 'test'), (e: unknown) => e instanceof SplitFileError && /patient99999/.test(e.message));
  });

  it('refuses malformed files with a message naming the problem', () => {
    refuses(join(tmp.dir, 'absent.json'), /split file not found/);
    const notJson = join(tmp.dir, 'bad.json');
    writeFileSync(notJson, '{"format": ');
    refuses(notJson, /not valid JSON/);
    refuses(writeEdited('fmt.json', (d) => ((d as { format: string }).format = 'other')), /not a split file/);
    refuses(writeEdited('ver.json', (d) => (d.version = 2)), /newer than this nextray understands/);
    refuses(writeEdited('frac.json', (d) => (d.val_fraction = 1.5)), /"val_fraction" must be a number in \(0, 1\)/);
    refuses(writeEdited('train.json', (d) => d.subsets.test.studies.push('MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/')), /not in MURA's valid split/);
    refuses(writeEdited('pat.json', (d) => d.subsets.test.patients.pop()), /have studies there but are not in its patient list/);
    refuses(writeEdited('nopart.json', (d) => delete (d.subsets as Partial<MuraSplitFile['subsets']>).test), /subset "test" is missing/);
    const badCsv = join(tmp.dir, 'bad.csv');
    writeFileSync(badCsv, '# format: "nextray-mura-split"\nsubset,patient,study\n');
    refuses(badCsv, /expected the header/);
  });

  it('selectSubset: train is MURA train; validation and test are the split parts', () => {
    const train = selectSubset(ds, split, 'train');
    assert.equal(train.studies.length, 5);
    assert.equal(train.images.length, 12);
    assert.deepEqual(selectSubset(ds, null, 'train'), train);
    assert.throws(() => selectSubset(ds, null, 'test'), /needs a split file/);
    let seen = 0;
    for (const subset of ['validation', 'test'] as const) {
      const sel = selectSubset(ds, split, subset);
      assert.equal(sel.subset, subset);
      assert.deepEqual(sel.studies.map((s) => s.key).sort(), split.subsets[subset].studies);
      assert.equal(sel.images.length, split.subsets[subset].totals.images);
      assert.ok(sel.images.every((i) => i.split === 'valid' && split.subsets[subset].studies.includes(i.study)));
      seen += sel.images.length;
    }
    assert.equal(seen, ds.images.filter((i) => i.split === 'valid').length);
  });

  it('createSplit refuses a dataset without valid studies and a bad fraction', async () => {
    assert.throws(() => createSplit(ds, { valFraction: 0, seed: 1 }), /between 0 and 1/);
    const dir = join(tmp.dir, 'trainonly');
    await buildMura(dir, REFERENCE_STUDIES.filter((s) => s.split === 'train'));
    const trainOnly = await loadMuraDataset(dir);
    assert.throws(() => createSplit(trainOnly, { valFraction: 0.8, seed: 1 }), /no usable study in valid/);
  });
});
