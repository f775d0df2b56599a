/**
 * Re-splitting MURA's `valid` set into a validation part and a held-out test part (MURA's own test set is not
 * public), and reading such splits back for training and evaluation.
 *
 * Why not a random image split: the seed report split MURA valid's 3,197 images 2,557/640 at random, which puts
 * views of the same patient (even of the same study) on both sides, so test numbers are optimistic. Here the unit
 * of assignment is the patient, and the assignment is stratified by (region, label) study counts, with the total
 * number of images as one more balanced quantity (see `stratifiedPatientSplit`).
 *
 * A split is a plain file a user can read (JSON, or CSV with `#` header lines): format version, seed, fraction,
 * the fingerprint of the dataset CSVs it was made from, and per subset its patients, studies and per-region
 * counts. `loadSplit` refuses a file in which a patient is on both sides, and (given the dataset) one naming
 * studies the dataset does not have.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { Rng, type Seed } from '../util/rng.js';
import { DatasetError, type MuraDataset } from './mura.js';
import { parseMuraPath } from './paths.js';
import { countStudies, type RegionCounts } from './summary.js';
import { REGIONS, type ImageRecord, type Label, type Region, type Study } from './types.js';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';
import { csvField, parseCsvLine } from '../util/csv.js';

export const SPLIT_FILE_FORMAT = 'nextray-mura-split';
export const SPLIT_FILE_VERSION = 1;

/** The subsets training and evaluation ask for: MURA train, and the two parts of MURA valid. */
export type Subset = 'train' | 'validation' | 'test';
export type HeldOutSubset = 'validation' | 'test';
export const HELD_OUT_SUBSETS: readonly HeldOutSubset[] = ['validation', 'test'];

/** One part of MURA valid. */
export interface SplitPart {
  /** Patient ids, sorted. */
  patients: string[];
  /** Study keys as in `valid_labeled_studies.csv` (trailing slash), sorted. */
  studies: string[];
  /** Per-region counts (regions with no study omitted), same keys as `nextray data summary --json`. */
  counts: Partial<Record<Region, RegionCounts>>;
  totals: RegionCounts;
}

/** The split file (JSON form; the CSV form carries the same information). */
export interface MuraSplitFile {
  format: typeof SPLIT_FILE_FORMAT;
  version: number;
  seed: Seed;
  /** Fraction of MURA valid's studies (per region and label) that goes to validation; the rest is test. */
  val_fraction: number;
  /** How the assignment was made, in words. */
  method: string;
  source: {
    /** The dataset folder name, e.g. `MURA-v1.1`. */
    dataset: string;
    /** The MURA split that was divided. */
    split: 'valid';
    /** `MuraDataset.fingerprint` of the dataset it was made from (all four CSVs). */
    fingerprint: string;
    /** Hashes of the two CSVs that define MURA valid, to tell whether a dataset still matches. */
    csv_sha256: Record<string, string | null>;
  };
  subsets: Record<HeldOutSubset, SplitPart>;
}

/** A split file that cannot be used; the message names the file and the problem. */
export class SplitFileError extends NextrayError {
  constructor(
    /** The split file, or null when the problem is between an in-memory split and a dataset. */
    readonly file: string | null,
    message: string,
  ) {
    super(file === null ? message : `${file}: ${message}`, { code: 'ERR_SPLIT_FILE', exitStatus: EXIT_USAGE });
    this.name = 'SplitFileError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Assignment

/** What the assignment needs to know about a patient: the region, label and image count of each study. */
export interface PatientUnit {
  patient: string;
  studies: { region: Region; label: Label; images: number }[];
}

const N_STRATA = REGIONS.length * 2;
/** Index of the total-images quantity, balanced alongside the 14 (region, label) study counts. */
const IMAGES_CELL = N_STRATA;

function vectorOf(p: PatientUnit): Float64Array {
  const v = new Float64Array(N_STRATA + 1);
  for (const s of p.studies) {
    v[REGIONS.indexOf(s.region) * 2 + s.label]! += 1;
    v[IMAGES_CELL]! += s.images;
  }
  return v;
}

export const SPLIT_METHOD =
  'patient-disjoint; patients shuffled by the seed, larger patients first, greedily assigned to keep each ' +
  '(region, label) study count and the image count of the patients placed so far at the fraction, then ' +
  'refined by single moves and pairwise swaps that reduce the squared relative deviation from the fraction';

/**
 * Assigns every patient to validation or test so that, for each (region, label) stratum, about `valFraction` of
 * the studies go to validation, and the total image count too; a patient's studies always stay together (a
 * patient may have studies of several regions and labels, so exact per-stratum fractions are not always
 * possible; the deviation is minimised instead).
 *
 * 1. Patients are sorted by id, shuffled by `seed`, then stably sorted by number of studies, largest first: big
 *    patients are placed while later ones can still compensate, ties are broken at random.
 * 2. Greedy: each patient goes to the side that keeps the patients placed so far closest to the fraction,
 *    measured by F = sum over quantities c of (V_c - f * P_c)^2 / N_c (V: validation so far, P: placed so far,
 *    N: total); dividing by N_c weighs a one-study error in a small stratum more than in a large one.
 * 3. Local search on the final F: move single patients across, then swap pairs, while F decreases (bounded).
 *
 * Deterministic for a given seed and set of patients (the input order does not matter).
 */
export function stratifiedPatientSplit(
  patients: readonly PatientUnit[],
  valFraction: number,
  seed: Seed,
): Map<string, HeldOutSubset> {
  if (!(valFraction > 0 && valFraction < 1)) throw new RangeError(`valFraction must be in (0, 1), got ${valFraction}`);
  const rng = new Rng(seed).fork('mura-split');
  const sorted = [...patients].sort((a, b) => (a.patient < b.patient ? -1 : a.patient > b.patient ? 1 : 0));
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i]!.patient === sorted[i - 1]!.patient) throw new Error(`patient ${sorted[i]!.patient} given twice`);
  const order = rng.shuffle(sorted.map((p) => ({ p, v: vectorOf(p) })));
  order.sort((a, b) => b.p.studies.length - a.p.studies.length); // stable: keeps the shuffle within ties

  const C = N_STRATA + 1;
  const total = new Float64Array(C);
  for (const { v } of order) for (let c = 0; c < C; c++) total[c]! += v[c]!;
  const w = total.map((n) => (n > 0 ? 1 / n : 0));
  const f = valFraction;

  // Greedy pass over the prefix objective.
  const val = new Float64Array(C);
  const placed = new Float64Array(C);
  const inVal = new Array<boolean>(order.length);
  order.forEach(({ v }, i) => {
    let costVal = 0;
    let costTest = 0;
    for (let c = 0; c < C; c++) {
      if (!w[c]) continue;
      const target = f * (placed[c]! + v[c]!);
      costVal += w[c]! * (val[c]! + v[c]! - target) ** 2;
      costTest += w[c]! * (val[c]! - target) ** 2;
    }
    const toVal = costVal < costTest - 1e-12 ? true : costTest < costVal - 1e-12 ? false : rng.chance(f);
    inVal[i] = toVal;
    for (let c = 0; c < C; c++) {
      placed[c]! += v[c]!;
      if (toVal) val[c]! += v[c]!;
    }
  });

  // Local search on the final objective: d_c = V_c - f N_c.
  const d = new Float64Array(C);
  for (let c = 0; c < C; c++) d[c] = val[c]! - f * total[c]!;
  /** Change of F when adding `sign * v` to the validation side. */
  const deltaMove = (v: Float64Array, sign: number) => {
    let s = 0;
    for (let c = 0; c < C; c++) if (w[c]) s += w[c]! * ((d[c]! + sign * v[c]!) ** 2 - d[c]! ** 2);
    return s;
  };
  const apply = (v: Float64Array, sign: number) => {
    for (let c = 0; c < C; c++) d[c]! += sign * v[c]!;
  };
  const EPS = 1e-9;
  for (let pass = 0; pass < 50; pass++) {
    let improved = false;
    for (let i = 0; i < order.length; i++) {
      const sign = inVal[i] ? -1 : 1;
      if (deltaMove(order[i]!.v, sign) < -EPS) {
        apply(order[i]!.v, sign);
        inVal[i] = !inVal[i];
        improved = true;
      }
    }
    // Pairwise swaps: a (validation) <-> b (test) changes validation by v_b - v_a.
    const diff = new Float64Array(C);
    for (let a = 0; a < order.length; a++) {
      if (!inVal[a]) continue;
      for (let b = 0; b < order.length; b++) {
        if (inVal[b] || !inVal[a]) continue;
        const va = order[a]!.v;
        const vb = order[b]!.v;
        for (let c = 0; c < C; c++) diff[c] = vb[c]! - va[c]!;
        if (deltaMove(diff, 1) < -EPS) {
          apply(diff, 1);
          inVal[a] = false;
          inVal[b] = true;
          improved = true;
        }
      }
    }
    if (!improved) break;
  }

  const out = new Map<string, HeldOutSubset>();
  order.forEach(({ p }, i) => out.set(p.patient, inVal[i] ? 'validation' : 'test'));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Building, writing and reading split files

function sortedUnique(xs: Iterable<string>): string[] {
  return [...new Set(xs)].sort();
}

function countsByRegion(studies: readonly Study[]): Partial<Record<Region, RegionCounts>> {
  const out: Partial<Record<Region, RegionCounts>> = {};
  for (const region of REGIONS) {
    const r = studies.filter((s) => s.region === region);
    if (r.length) out[region] = countStudies(r);
  }
  return out;
}

function partOf(studies: readonly Study[]): SplitPart {
  return {
    patients: sortedUnique(studies.map((s) => s.patient)),
    studies: sortedUnique(studies.map((s) => s.key)),
    counts: countsByRegion(studies),
    totals: countStudies(studies),
  };
}

export interface CreateSplitOptions {
  /** Fraction of MURA valid going to validation, in (0, 1); the seed report used 0.8. */
  valFraction: number;
  seed: Seed;
}

/** Divides the dataset's MURA `valid` studies into validation and test, patient-disjoint and stratified. */
export function createSplit(dataset: MuraDataset, options: CreateSplitOptions): MuraSplitFile {
  const { valFraction, seed } = options;
  if (!(valFraction > 0 && valFraction < 1))
    throw new RangeError(`the validation fraction must be between 0 and 1 (exclusive), got ${valFraction}`);
  const valid = dataset.studies.filter((s) => s.split === 'valid');
  if (!valid.length) throw new DatasetError(`${dataset.root}: the dataset has no usable study in valid/, nothing to split`);
  const byPatient = new Map<string, Study[]>();
  for (const s of valid) {
    const list = byPatient.get(s.patient);
    if (list) list.push(s);
    else byPatient.set(s.patient, [s]);
  }
  const units: PatientUnit[] = [...byPatient].map(([patient, studies]) => ({
    patient,
    studies: studies.map((s) => ({ region: s.region, label: s.label, images: s.images.length })),
  }));
  const assignment = stratifiedPatientSplit(units, valFraction, seed);
  const part = (subset: HeldOutSubset) => partOf(valid.filter((s) => assignment.get(s.patient) === subset));
  const datasetName = valid[0]!.key.slice(0, valid[0]!.key.indexOf('/'));
  return {
    format: SPLIT_FILE_FORMAT,
    version: SPLIT_FILE_VERSION,
    seed,
    val_fraction: valFraction,
    method: SPLIT_METHOD,
    source: {
      dataset: datasetName,
      split: 'valid',
      fingerprint: dataset.fingerprint,
      csv_sha256: {
        'valid_image_paths.csv': dataset.csvHashes['valid_image_paths.csv'] ?? null,
        'valid_labeled_studies.csv': dataset.csvHashes['valid_labeled_studies.csv'] ?? null,
      },
    },
    subsets: { validation: part('validation'), test: part('test') },
  };
}

export type SplitFormat = 'json' | 'csv';

/** `csv` for a `.csv` file name, else `json`. */
export function splitFormatFor(file: string): SplitFormat {
  return extname(file).toLowerCase() === '.csv' ? 'csv' : 'json';
}

const CSV_HEADER = 'subset,patient,study,region,label,images';

/**
 * The CSV form: `#` lines carrying the metadata (`# key: <JSON value>`), then one row per study. Per-region
 * counts are not stored (they follow from the rows). Read it with pandas as `read_csv(f, comment='#')`.
 */
export function splitToCsv(split: MuraSplitFile, dataset: MuraDataset): string {
  const byKey = new Map(dataset.studies.map((s) => [s.key, s]));
  const lines = [
    `# format: ${JSON.stringify(split.format)}`,
    `# version: ${split.version}`,
    `# seed: ${JSON.stringify(split.seed)}`,
    `# val_fraction: ${split.val_fraction}`,
    `# method: ${JSON.stringify(split.method)}`,
    `# source: ${JSON.stringify(split.source)}`,
    CSV_HEADER,
  ];
  for (const subset of HELD_OUT_SUBSETS) {
    for (const key of split.subsets[subset].studies) {
      const s = byKey.get(key);
      if (!s) throw new SplitFileError(null, `study ${key} is not in the dataset at ${dataset.root}`);
      lines.push([subset, s.patient, s.key, s.region, s.label, s.images.length].map(csvField).join(','));
    }
  }
  return lines.join('\n') + '\n';
}

/** Writes the split atomically (a reader never sees half a file). */
export function writeSplit(file: string, split: MuraSplitFile, dataset: MuraDataset, format = splitFormatFor(file)): void {
  if (format === 'csv') writeFileAtomic(file, splitToCsv(split, dataset));
  else writeJsonAtomic(file, split);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Parses the CSV form into the JSON form (counts rebuilt from the rows). */
function parseSplitCsv(file: string, text: string): unknown {
  const meta: Record<string, unknown> = {};
  const rows: { subset: string; study: string; region: string; label: number; images: number; patient: string }[] = [];
  let headerSeen = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (!line) return;
    const n = i + 1;
    if (line.startsWith('#')) {
      const m = /^#\s*([a-z_]+):\s*(.*)$/.exec(line);
      if (!m) return; // free-text comment
      try {
        meta[m[1]!] = JSON.parse(m[2]!);
      } catch {
        meta[m[1]!] = m[2]!;
      }
      return;
    }
    if (!headerSeen) {
      if (line !== CSV_HEADER) throw new SplitFileError(file, `line ${n}: expected the header "${CSV_HEADER}", found "${line}"`);
      headerSeen = true;
      return;
    }
    const f = parseCsvLine(line);
    if (!f) throw new SplitFileError(file, `line ${n}: malformed quoting`);
    if (f.length !== 6) throw new SplitFileError(file, `line ${n}: expected 6 fields (${CSV_HEADER}), found ${f.length}`);
    const [subset, patient, study, region, label, images] = f as [string, string, string, string, string, string];
    if (!/^\d+$/.test(images) || (label !== '0' && label !== '1'))
      throw new SplitFileError(file, `line ${n}: label must be 0 or 1 and images a count, found "${label}", "${images}"`);
    rows.push({ subset, patient, study, region, label: Number(label), images: Number(images) });
  });
  if (!headerSeen) throw new SplitFileError(file, `no "${CSV_HEADER}" header line: not a split CSV`);
  const subsets: Record<string, unknown> = {};
  for (const subset of HELD_OUT_SUBSETS) {
    const mine = rows.filter((r) => r.subset === subset);
    const studies: Study[] = mine.map((r) => ({
      key: r.study,
      patient: r.patient,
      region: r.region as Region,
      label: r.label as Label,
      split: 'valid',
      images: new Array<ImageRecord>(r.images), // only the length is read: the counts come from the rows
    }));
    subsets[subset] = { ...partOf(studies), patients: sortedUnique(mine.map((r) => r.patient)), studies: mine.map((r) => r.study) };
  }
  const unknown = rows.find((r) => !(HELD_OUT_SUBSETS as readonly string[]).includes(r.subset));
  if (unknown) throw new SplitFileError(file, `unknown subset "${unknown.subset}" (expected validation or test)`);
  // Row-level region/patient must agree with the study path.
  for (const r of rows) {
    const p = parseMuraPath(r.study);
    if (p && (p.patient !== r.patient || p.region !== r.region))
      throw new SplitFileError(file, `study ${r.study} is listed with patient ${r.patient} and region ${r.region}, but its path says ${p.patient}, ${p.region}`);
  }
  return { ...meta, subsets };
}

function listSome(xs: readonly string[], n = 5): string {
  return xs.slice(0, n).join(', ') + (xs.length > n ? ` and ${xs.length - n} more` : '');
}

/**
 * Reads and validates a split file (JSON or CSV, told apart by content). Refuses, with SplitFileError naming the
 * file: an unreadable or malformed file, an unknown format or newer version, a study that is not a MURA `valid`
 * study path, a study or patient on both sides (a leaking split), patient lists that disagree with the studies,
 * and, when `dataset` is given, studies the dataset does not have.
 *
 * The fingerprint is not compared: a dataset whose CSVs changed (say a duplicated line removed) can still use a
 * split whose every study it has; compare `split.source.fingerprint` with `dataset.fingerprint` to be strict.
 */
export function loadSplit(file: string, dataset?: MuraDataset): MuraSplitFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SplitFileError(file, code === 'ENOENT' ? 'split file not found' : `cannot be read: ${(err as Error).message}`);
  }
  let doc: unknown;
  if (text.trimStart().startsWith('{')) {
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new SplitFileError(file, `not valid JSON: ${(err as Error).message}`);
    }
  } else {
    doc = parseSplitCsv(file, text);
  }
  const bad = (msg: string): never => {
    throw new SplitFileError(file, msg);
  };
  if (!isObject(doc)) return bad('not a split file (expected a JSON object)');
  if (doc.format !== SPLIT_FILE_FORMAT) bad(`not a split file: format is ${JSON.stringify(doc.format)}, expected "${SPLIT_FILE_FORMAT}"`);
  if (typeof doc.version !== 'number' || !Number.isInteger(doc.version)) bad('"version" must be an integer');
  if ((doc.version as number) > SPLIT_FILE_VERSION)
    bad(`version ${String(doc.version)} is newer than this nextray understands (${SPLIT_FILE_VERSION}); upgrade nextray`);
  if (typeof doc.seed !== 'number' && typeof doc.seed !== 'string') bad('"seed" must be a number or a string');
  const fr = doc.val_fraction;
  if (typeof fr !== 'number' || !(fr > 0 && fr < 1)) bad(`"val_fraction" must be a number in (0, 1), found ${JSON.stringify(fr)}`);
  if (!isObject(doc.source) || typeof doc.source.fingerprint !== 'string') bad('"source.fingerprint" is missing');
  if (!isObject(doc.subsets)) return bad('"subsets" is missing');
  const subsets = doc.subsets;

  const sideOfStudy = new Map<string, HeldOutSubset>();
  const sideOfPatient = new Map<string, HeldOutSubset>();
  const leaks = new Map<string, string[]>();
  for (const subset of HELD_OUT_SUBSETS) {
    const part = subsets[subset];
    if (!isObject(part)) return bad(`subset "${subset}" is missing`);
    if (!Array.isArray(part.studies) || !part.studies.every((s) => typeof s === 'string'))
      bad(`"subsets.${subset}.studies" must be a list of study paths`);
    if (!Array.isArray(part.patients) || !part.patients.every((s) => typeof s === 'string'))
      bad(`"subsets.${subset}.patients" must be a list of patient ids`);
    const studyPatients = new Set<string>();
    for (const key of part.studies as string[]) {
      const p = parseMuraPath(key);
      if (!p || p.image !== undefined) bad(`${subset}: "${key}" is not a MURA study path`);
      if (p!.split !== 'valid') bad(`${subset}: study ${key} is not in MURA's valid split (only valid is re-split)`);
      const other = sideOfStudy.get(p!.study);
      if (other === subset) bad(`${subset}: study ${key} is listed twice`);
      if (other) bad(`study ${key} is in both validation and test`);
      sideOfStudy.set(p!.study, subset);
      studyPatients.add(p!.patient);
    }
    const listed = new Set(part.patients as string[]);
    const unlisted = [...studyPatients].filter((p) => !listed.has(p));
    const empty = [...listed].filter((p) => !studyPatients.has(p));
    if (unlisted.length) bad(`${subset}: patients ${listSome(unlisted)} have studies there but are not in its patient list`);
    if (empty.length) bad(`${subset}: patients ${listSome(empty)} are listed but have no study there`);
    for (const patient of studyPatients) {
      const other = sideOfPatient.get(patient);
      if (other && other !== subset) leaks.set(patient, [other, subset]);
      sideOfPatient.set(patient, subset);
    }
  }
  if (leaks.size)
    bad(
      `patient(s) ${listSome([...leaks.keys()])} have studies in both validation and test; this split leaks ` +
        `patients between the two and would overstate test results. Re-create it with \`nextray data split\`.`,
    );

  if (dataset) {
    const known = new Set(dataset.studies.filter((s) => s.split === 'valid').map((s) => s.key));
    const missing = [...sideOfStudy.keys()].filter((k) => !known.has(k));
    if (missing.length)
      bad(
        `${missing.length} stud${missing.length === 1 ? 'y is' : 'ies are'} not in the dataset at ${dataset.root}: ` +
          `${listSome(missing)}. The split was made from a different dataset (or images are missing).`,
      );
  }
  return doc as unknown as MuraSplitFile;
}

/** Images and studies of one subset. */
export interface SubsetSelection {
  subset: Subset;
  studies: Study[];
  images: ImageRecord[];
}

/**
 * The studies and images of a subset: `train` is MURA's train split (the split file is not consulted and may be
 * null);
 * `validation` and `test` are the parts of MURA valid the split names, in the dataset's order. Throws
 * SplitFileError when the split names a study the dataset does not have (the same check as
 * `loadSplit(file, dataset)`), so training never silently runs on less data than the split promises.
 */
export function selectSubset(dataset: MuraDataset, split: MuraSplitFile | null, subset: Subset): SubsetSelection {
  let studies: Study[];
  if (subset === 'train') {
    studies = dataset.studies.filter((s) => s.split === 'train');
  } else {
    if (!split) throw new SplitFileError(null, `the ${subset} subset needs a split file (make one with \`nextray data split\`)`);
    const part = split.subsets[subset];
    if (!part) throw new SplitFileError(null, `the split has no subset "${subset}"`);
    const keys = new Set(part.studies);
    studies = dataset.studies.filter((s) => s.split === 'valid' && keys.has(s.key));
    if (studies.length !== keys.size) {
      const have = new Set(studies.map((s) => s.key));
      const missing = [...keys].filter((k) => !have.has(k));
      throw new SplitFileError(
        null,
        `the split's ${subset} subset names ${missing.length} stud${missing.length === 1 ? 'y' : 'ies'} not in the dataset at ${dataset.root}: ${listSome(missing)}`,
      );
    }
  }
  return { subset, studies, images: studies.flatMap((s) => s.images) };
}
