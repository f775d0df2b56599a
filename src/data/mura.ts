/**
 * Reads a MURA-format dataset (`MURA-v1.1/{train,valid}_image_paths.csv`, `*_labeled_studies.csv` and the image
 * tree) into the shared dataset model (images grouped into studies, with patient, region, label and split) and
 * validates it on the way: every problem found becomes a `DatasetIssue` naming the file and what to fix, and
 * loading never stops at the first one. Callers decide what a problem means (the CLI exits non-zero).
 *
 * Checks, all cheap enough for the real dataset (40,005 images load in seconds):
 * - CSV files: missing, unreadable, empty, malformed lines, duplicated lines;
 * - paths: outside the dataset root (`..`, absolute paths, symlinks that leave the root), not following the MURA
 *   grammar, listed under the wrong split;
 * - consistency: image listed but missing on disk, study label in `*_labeled_studies.csv` disagreeing with its
 *   `_positive/_negative` folder, study in one CSV but not the other, image files on disk not listed, a patient
 *   present in both train and valid;
 * - optionally (`checkImages`), that every listed image decodes (`checkImage` from images.ts, run concurrently),
 *   which catches truncated/corrupt/empty/non-image/huge files. It decodes every pixel, so it is opt-in.
 *
 * What is kept when something is wrong (documented so counts are predictable): an image line with a problem that
 * makes the file unusable (bad path, outside the root, wrong split, missing, undecodable) is left out of `images`;
 * a duplicated line is counted once; a study's label is the one in `*_labeled_studies.csv` (MURA's published
 * label source) and falls back to the folder name when the study has no row there. A study exists in `studies`
 * only when at least one of its images is usable. A missing or empty CSV is reported once, not once for every
 * study or file it would have covered.
 */
import { sha256Hex } from '../util/hash.js';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { checkImage as defaultCheckImage, type CheckImageResult } from './images.js';
import { parseMuraPath } from './paths.js';
import { MURA_SPLITS, type ImageRecord, type Label, type MuraSplit, type Study } from './types.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../util/errors.js';

/** The folder name MURA's CSV paths start with. */
export const MURA_ROOT_NAME = 'MURA-v1.1';

/** Everything `loadMuraDataset` can find wrong. */
export const DATASET_ISSUE_KINDS = [
  'csv-missing',
  'csv-unreadable',
  'csv-empty',
  'csv-malformed',
  'csv-duplicate',
  'path-outside-root',
  'path-grammar',
  'split-mismatch',
  'image-missing',
  'image-unreadable',
  'unlisted-image',
  'label-mismatch',
  'study-unlabeled',
  'study-without-images',
  'patient-in-both-splits',
] as const;
export type DatasetIssueKind = (typeof DATASET_ISSUE_KINDS)[number];

/** One problem in the dataset. */
export interface DatasetIssue {
  /**
   * The file to look at: the CSV (absolute path) for a problem with one of its lines, the image file (absolute)
   * for a problem with an image, the study folder (absolute) for a study-level disagreement.
   */
  path: string;
  kind: DatasetIssueKind | 'image-warning';
  /** What is wrong and, where it helps, what to do; names the CSV line when a line is at fault. */
  message: string;
  /** 1-based line in the CSV named by `csv`, when a CSV line is involved. */
  line?: number;
  /** CSV file name (e.g. `valid_image_paths.csv`) when a CSV line is involved. */
  csv?: string;
}

/** Image checker with the signature of images.ts `checkImage`; injectable for tests. */
export type ImageChecker = (path: string) => Promise<CheckImageResult>;

export interface LoadMuraOptions {
  /** Decode every listed image (slow on the full dataset: ~40k decodes). Default false. */
  checkImages?: boolean;
  /** Images decoded at once when `checkImages` (default 8; sharp runs them on libuv's thread pool). */
  concurrency?: number;
  /** Called as images are checked (`checkImages` only), e.g. to drive a progress bar. */
  onImageChecked?: (done: number, total: number) => void;
  /** Replaces images.ts `checkImage` (tests). */
  checkImage?: ImageChecker;
  /** Skip the walk that finds image files on disk that no CSV lists (default false). */
  skipUnlistedCheck?: boolean;
}

export interface MuraDataset {
  /** Absolute path of the dataset folder (the one holding the CSVs, normally named `MURA-v1.1`). */
  root: string;
  /** Absolute folder the CSV paths are relative to (the parent of `root`). */
  base: string;
  /** Usable images in CSV order (train first, then valid). */
  images: ImageRecord[];
  /** Studies with at least one usable image, in order of first appearance. */
  studies: Study[];
  /** Problems: anything here means the dataset is not as MURA describes it. */
  issues: DatasetIssue[];
  /** Not errors, but probably not what the user meant (e.g. an image whose pixels are all equal). */
  warnings: DatasetIssue[];
  /** `sha256:<hex>` over the four CSVs (name and bytes, fixed order); identifies the dataset version. */
  fingerprint: string;
  /** `sha256:<hex>` of each CSV by file name, or null where the file is missing. */
  csvHashes: Record<string, string | null>;
}

/** The dataset cannot be read at all (folder missing, no CSV anywhere). */
export class DatasetError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_DATASET', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'DatasetError';
  }
}

/** CSV file names, in the fixed order the fingerprint hashes them. */
export function muraCsvNames(): string[] {
  return MURA_SPLITS.flatMap((s) => [`${s}_image_paths.csv`, `${s}_labeled_studies.csv`]);
}

/**
 * Finds the dataset folder. DIR may be the folder holding `MURA-v1.1/` or `MURA-v1.1` itself (any folder that
 * holds the CSVs or the split folders). Throws DatasetError with what was looked for.
 */
export async function resolveMuraRoot(dir: string): Promise<{ root: string; base: string }> {
  const abs = resolve(dir);
  const st = await stat(abs).catch(() => null);
  if (!st) throw new DatasetError(`${abs}: no such folder`);
  if (!st.isDirectory()) throw new DatasetError(`${abs}: is a file, not a dataset folder`);
  const looksLikeRoot = async (d: string) => {
    for (const name of [...muraCsvNames(), ...MURA_SPLITS]) if (await stat(join(d, name)).catch(() => null)) return true;
    return false;
  };
  const nested = join(abs, MURA_ROOT_NAME);
  if ((await stat(nested).catch(() => null))?.isDirectory()) return { root: nested, base: abs };
  if (await looksLikeRoot(abs)) return { root: abs, base: dirname(abs) };
  throw new DatasetError(
    `${abs}: not a MURA dataset: found neither ${MURA_ROOT_NAME}/ inside it nor train_image_paths.csv / ` +
      `valid_image_paths.csv (or train/, valid/) in it`,
  );
}

const IMAGE_FILE = /\.(png|jpe?g)$/i;

/** What the walk found at a dataset-relative path (relative to `root`, forward slashes). */
type DiskEntry =
  | { type: 'file' }
  /** `aliasOf`: a symlink to a folder that the walk lists under its own path (root-relative) instead. */
  | { type: 'dir'; aliasOf?: string }
  | { type: 'escape'; target: string }
  | { type: 'unreadable'; reason: string };

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Lists every file and folder under root/train and root/valid. Symlinks are followed only while they stay inside
 * the dataset root; one that leaves it is recorded as an escape (so a listed image behind it is refused rather
 * than read). A link to a folder inside a split is walked under its own path only, never through the link (an
 * alias: `patient1/up -> ..` would otherwise list every image again, as unlisted, under `up/`); other link targets
 * once each. Breadth-first in batches so huge trees neither recurse deeply nor open thousands of folders at once.
 */
async function walkTree(root: string, realRoot: string, splits: readonly string[]): Promise<Map<string, DiskEntry>> {
  const entries = new Map<string, DiskEntry>();
  const visitedReal = new Set<string>([realRoot]);
  const walkedSplits: { rel: string; real: string }[] = [];
  let level: string[] = [];
  for (const s of splits) {
    const st = await stat(join(root, s)).catch(() => null);
    if (st?.isDirectory()) {
      entries.set(s, { type: 'dir' });
      level.push(s);
      walkedSplits.push({ rel: s, real: await realpath(join(root, s)) });
    }
  }
  const BATCH = 64;
  while (level.length) {
    const next: string[] = [];
    for (let i = 0; i < level.length; i += BATCH) {
      await Promise.all(
        level.slice(i, i + BATCH).map(async (relDir) => {
          let dirents;
          try {
            dirents = await readdir(join(root, relDir), { withFileTypes: true });
          } catch (err) {
            entries.set(relDir, { type: 'unreadable', reason: (err as Error).message });
            return;
          }
          for (const d of dirents) {
            const rel = `${relDir}/${d.name}`;
            if (d.isDirectory()) {
              entries.set(rel, { type: 'dir' });
              next.push(rel);
            } else if (d.isSymbolicLink()) {
              const target = await realpath(join(root, rel)).catch(() => null);
              if (target === null) continue; // dangling link: reported as missing if listed
              if (!isInside(target, realRoot)) {
                entries.set(rel, { type: 'escape', target });
                continue;
              }
              const tst = await stat(target).catch(() => null);
              const split = tst?.isDirectory() ? walkedSplits.find((w) => isInside(target, w.real)) : undefined;
              if (split) {
                const inside = relative(split.real, target).split(sep).filter(Boolean);
                entries.set(rel, { type: 'dir', aliasOf: [split.rel, ...inside].join('/') });
              } else if (tst?.isDirectory()) {
                entries.set(rel, { type: 'dir' });
                if (!visitedReal.has(target)) {
                  visitedReal.add(target);
                  next.push(rel);
                }
              } else if (tst) entries.set(rel, { type: 'file' });
            } else {
              entries.set(rel, { type: 'file' });
            }
          }
        }),
      );
    }
    level = next;
  }
  return entries;
}

/**
 * Why a path the walk did not reach is unreachable: the nearest folder above it is a symlink leaving the root or
 * a folder that could not be listed. Undefined when the nearest known folder is an ordinary one (plain missing).
 */
/** The entry of `rel` when a folder above it is an alias (a link to a folder listed under its own path). */
function throughAlias(disk: Map<string, DiskEntry>, rel: string, depth = 0): DiskEntry | undefined {
  if (depth > 40) return undefined;
  for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
    const e = disk.get(rel.slice(0, i));
    if (e?.type === 'dir' && e.aliasOf !== undefined) {
      const real = e.aliasOf + rel.slice(i);
      return disk.get(real) ?? throughAlias(disk, real, depth + 1);
    }
    if (e) return undefined;
  }
  return undefined;
}

function blockedAbove(disk: Map<string, DiskEntry>, rel: string): DiskEntry | undefined {
  for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
    const e = disk.get(rel.slice(0, i));
    if (e?.type === 'escape' || e?.type === 'unreadable') return e;
    if (e) return undefined;
  }
  return undefined;
}

interface CsvLine {
  line: number;
  text: string;
}

type CsvRead = { ok: true; lines: CsvLine[]; bytes: Buffer } | { ok: false; kind: DatasetIssueKind; message: string };

async function readCsv(path: string): Promise<CsvRead> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, kind: 'csv-missing', message: 'CSV file is missing' };
    if (code === 'EISDIR') return { ok: false, kind: 'csv-unreadable', message: 'is a folder, not a CSV file' };
    return { ok: false, kind: 'csv-unreadable', message: `cannot be read: ${(err as Error).message}` };
  }
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const lines: CsvLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const t = raw.replace(/\r$/, '').trim();
    if (t) lines.push({ line: i + 1, text: t });
  });
  return { ok: true, lines, bytes };
}

/**
 * Checks a CSV path is a canonical path inside the dataset: relative, forward slashes, no `.`/`..` segments, first
 * component the dataset folder. Returns the normalised path or the problem.
 */
function checkRelPath(
  raw: string,
  rootName: string,
): { ok: true; path: string } | { ok: false; kind: 'path-outside-root' | 'path-grammar'; message: string } {
  const p = raw.replace(/\\/g, '/').replace(/^\.\//, '');
  if (p.startsWith('/') || /^[A-Za-z]:\//.test(p))
    return { ok: false, kind: 'path-outside-root', message: `absolute path "${raw}"; paths must be relative, starting with ${MURA_ROOT_NAME}/` };
  const segs = p.split('/');
  if (segs.some((s) => s === '..' || s === '.')) {
    const norm = posix.normalize(p);
    const escapes = norm === '..' || norm.startsWith('../') || norm.split('/')[0] !== segs[0];
    if (escapes) return { ok: false, kind: 'path-outside-root', message: `path "${raw}" leads outside the dataset root` };
    return { ok: false, kind: 'path-grammar', message: `path "${raw}" has "." or ".." segments; write it as ${norm}` };
  }
  if (segs[0] !== MURA_ROOT_NAME && segs[0] !== rootName)
    return {
      ok: false,
      kind: 'path-grammar',
      message: `path "${raw}" does not start with the dataset folder (${MURA_ROOT_NAME}/)`,
    };
  return { ok: true, path: p };
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

const labeledCsvOf = (imageCsv: string) => imageCsv.replace('_image_paths.csv', '_labeled_studies.csv');
const imageCsvOf = (labeledCsv: string) => labeledCsv.replace('_labeled_studies.csv', '_image_paths.csv');

interface PendingImage {
  rec: ImageRecord;
  /** Path relative to root (`train/XR_.../imageM.png`), the walk's key. */
  rel: string;
}

/** Everything the steps of loadMuraDataset share: where the dataset is, what was read, what was found wrong. */
interface LoadState {
  root: string;
  base: string;
  rootName: string;
  issues: DatasetIssue[];
  warnings: DatasetIssue[];
  /** The CSV files as read (or why not), by name. */
  reads: Map<string, CsvRead>;
  /** CSVs missing, unreadable or empty: their absence is reported once, not once per study it would have named. */
  unusable: Set<string>;
  /** Root-relative path -> what the walk found there. */
  disk: Map<string, DiskEntry>;
  /** Images listed, existing and inside the root, waiting for the study-label pass and the optional deep check. */
  pending: PendingImage[];
  /** Root-relative paths some image CSV line names (usable or not), for the unlisted-file check. */
  listed: Set<string>;
  /** Study key -> first image CSV line naming it (for messages), over all lines that parsed. */
  studiesListed: Map<string, { csv: string; line: number }>;
  labels: Map<string, { label: Label; csv: string; line: number }>;
}

function lineIssue(st: LoadState, csv: string, line: number, kind: DatasetIssueKind, message: string): void {
  st.issues.push({ path: join(st.root, csv), kind, message: `line ${line}: ${message}`, line, csv });
}

const studyDir = (st: LoadState, key: string): string => join(st.base, ...key.split('/').filter(Boolean));

/**
 * Loads and validates a MURA-format dataset. DIR is the folder holding `MURA-v1.1/` or that folder itself.
 * Throws DatasetError only when there is no dataset at all; everything else is reported in `issues`.
 * Named steps, in order (issues come out in this order): read the CSVs, report unusable ones, walk the tree, parse
 * each split's two CSVs, reconcile study labels, report unlisted files, optionally decode every image, group views
 * into studies, check that no patient is in both splits.
 */
export async function loadMuraDataset(dir: string, options: LoadMuraOptions = {}): Promise<MuraDataset> {
  const { root, base } = await resolveMuraRoot(dir);
  const { reads, csvHashes, fingerprint } = await readMuraCsvs(root);
  const st: LoadState = {
    root,
    base,
    rootName: basename(root),
    issues: [],
    warnings: [],
    reads,
    unusable: new Set(),
    disk: new Map(),
    pending: [],
    listed: new Set(),
    studiesListed: new Map(),
    labels: new Map(),
  };
  reportUnusableCsvs(st);
  // Walk the tree before the CSV lines: existence, symlink escapes and unlisted files all come from this one pass.
  st.disk = await walkTree(root, await realpath(root), MURA_SPLITS);
  for (const split of MURA_SPLITS) {
    parseLabeledStudiesCsv(st, split);
    parseImagePathsCsv(st, split);
  }
  reconcileStudyLabels(st);
  if (!options.skipUnlistedCheck) reportUnlistedImages(st);
  const usable = options.checkImages && st.pending.length ? await checkImagesDeep(st, options) : st.pending;
  const images = usable.map((p) => p.rec);
  const studies = groupStudies(images);
  reportPatientsInBothSplits(st);
  return { root, base, images, studies, issues: st.issues, warnings: st.warnings, fingerprint, csvHashes };
}

/** Reads the four CSVs (each may be missing); their hashes and the dataset fingerprint come from the bytes read. */
async function readMuraCsvs(root: string): Promise<{ reads: Map<string, CsvRead>; csvHashes: Record<string, string | null>; fingerprint: string }> {
  const csvHashes: Record<string, string | null> = {};
  const fingerprintParts: Array<Uint8Array | string> = [];
  const reads = new Map<string, CsvRead>();
  for (const name of muraCsvNames()) {
    const r = await readCsv(join(root, name));
    reads.set(name, r);
    csvHashes[name] = r.ok ? `sha256:${sha256Hex(r.bytes)}` : null;
    fingerprintParts.push(`${name}\0${r.ok ? r.bytes.length : -1}\0`);
    if (r.ok) fingerprintParts.push(r.bytes);
  }
  const anyCsv = [...reads.values()].some((r) => r.ok);
  if (!anyCsv)
    throw new DatasetError(`${root}: no MURA CSV file found (looked for ${muraCsvNames().join(', ')})`);
  return { reads, csvHashes, fingerprint: `sha256:${sha256Hex(...fingerprintParts)}` };
}

/** CSVs missing, unreadable or empty: reported once each, with what that means for the load. */
function reportUnusableCsvs(st: LoadState): void {
  const { reads, unusable, issues, root } = st;
  const consequence = (name: string) =>
    name.endsWith('_labeled_studies.csv')
      ? `; study labels of ${name.split('_')[0]} are taken from the study folder names`
      : `; no image of ${name.split('_')[0]} is loaded`;
  for (const [name, r] of reads) {
    if (!r.ok) {
      unusable.add(name);
      issues.push({ path: join(root, name), kind: r.kind, message: r.message + consequence(name), csv: name });
    } else if (r.lines.length === 0) {
      unusable.add(name);
      issues.push({ path: join(root, name), kind: 'csv-empty', message: 'CSV file has no lines' + consequence(name), csv: name });
    }
  }
}

/** `<split>_labeled_studies.csv`: one `<study path>/,<0|1>` per line -> st.labels. */
function parseLabeledStudiesCsv(st: LoadState, split: MuraSplit): void {
  const { reads, rootName, labels } = st;
  const lcsv = `${split}_labeled_studies.csv`;
  const lr = reads.get(lcsv)!;
  if (lr.ok) {
    for (const { line, text } of lr.lines) {
      const fields = text.split(',');
      if (fields.length !== 2) {
        lineIssue(st, lcsv, line, 'csv-malformed', `expected "<study path>,<0|1>", found ${fields.length} field(s): ${text}`);
        continue;
      }
      const [rawPath, rawLabel] = [fields[0]!.trim(), fields[1]!.trim()];
      if (rawLabel !== '0' && rawLabel !== '1') {
        lineIssue(st, lcsv, line, 'csv-malformed', `label must be 0 (normal) or 1 (abnormal), found "${rawLabel}": ${text}`);
        continue;
      }
      const checked = checkRelPath(rawPath, rootName);
      if (!checked.ok) {
        lineIssue(st, lcsv, line, checked.kind, checked.message);
        continue;
      }
      const parts = parseMuraPath(checked.path);
      if (!parts || parts.image !== undefined) {
        lineIssue(st, 
          lcsv,
          line,
          'path-grammar',
          `"${rawPath}" is not a MURA study path (${MURA_ROOT_NAME}/<train|valid>/XR_<REGION>/patient<N>/study<K>_<positive|negative>/)`,
        );
        continue;
      }
      if (parts.split !== split) {
        lineIssue(st, lcsv, line, 'split-mismatch', `study "${rawPath}" is in ${parts.split}/ but listed in the ${split} CSV`);
        continue;
      }
      const label = Number(rawLabel) as Label;
      const prev = labels.get(parts.study);
      if (prev) {
        lineIssue(st, 
          lcsv,
          line,
          'csv-duplicate',
          prev.label === label
            ? `study "${parts.study}" repeats line ${prev.line}`
            : `study "${parts.study}" repeats line ${prev.line} with a different label (${label} here, ${prev.label} there); line ${prev.line} is used`,
        );
        continue;
      }
      labels.set(parts.study, { label, csv: lcsv, line });
    }
  }

}

/** `<split>_image_paths.csv`: one image path per line, checked against the walk -> st.pending (or an issue). */
function parseImagePathsCsv(st: LoadState, split: MuraSplit): void {
  const { reads, rootName, listed, studiesListed, root, disk, issues, pending } = st;
  const icsv = `${split}_image_paths.csv`;
  const ir = reads.get(icsv)!;
  if (!ir.ok) return;
  const seen = new Map<string, number>();
  for (const { line, text } of ir.lines) {
    if (text.includes(',')) {
      lineIssue(st, icsv, line, 'csv-malformed', `expected one image path per line, found ${text.split(',').length} fields: ${text}`);
      continue;
    }
    const checked = checkRelPath(text, rootName);
    if (!checked.ok) {
      lineIssue(st, icsv, line, checked.kind, checked.message);
      continue;
    }
    const parts = parseMuraPath(checked.path);
    if (!parts || parts.image === undefined || !IMAGE_FILE.test(parts.image)) {
      lineIssue(st, 
        icsv,
        line,
        'path-grammar',
        `"${text}" is not a MURA image path (${MURA_ROOT_NAME}/<train|valid>/XR_<REGION>/patient<N>/study<K>_<positive|negative>/image<M>.png)`,
      );
      continue;
    }
    const rel = checked.path.slice(checked.path.indexOf('/') + 1);
    listed.add(rel);
    const dup = seen.get(checked.path);
    if (dup !== undefined) {
      lineIssue(st, icsv, line, 'csv-duplicate', `"${text}" repeats line ${dup}`);
      continue;
    }
    seen.set(checked.path, line);
    if (parts.split !== split) {
      lineIssue(st, icsv, line, 'split-mismatch', `image "${text}" is in ${parts.split}/ but listed in the ${split} CSV`);
      continue;
    }
    if (!studiesListed.has(parts.study)) studiesListed.set(parts.study, { csv: icsv, line });
    const absPath = join(root, ...rel.split('/'));
    const onDisk = disk.get(rel) ?? throughAlias(disk, rel) ?? blockedAbove(disk, rel);
    if (!onDisk || onDisk.type === 'dir') {
      issues.push({
        path: absPath,
        kind: 'image-missing',
        message: onDisk
          ? `listed at ${icsv} line ${line} but is a folder, not an image`
          : `listed at ${icsv} line ${line} but not found on disk`,
        line,
        csv: icsv,
      });
      continue;
    }
    if (onDisk.type === 'unreadable') {
      issues.push({
        path: absPath,
        kind: 'image-missing',
        message: `listed at ${icsv} line ${line} but a folder above it cannot be read (${onDisk.reason})`,
        line,
        csv: icsv,
      });
      continue;
    }
    if (onDisk.type === 'escape') {
      issues.push({
        path: absPath,
        kind: 'path-outside-root',
        message: `listed at ${icsv} line ${line}: it is, or lies under, a symbolic link that points outside the dataset root (to ${onDisk.target})`,
        line,
        csv: icsv,
      });
      continue;
    }
    pending.push({
      rel,
      rec: {
        path: checked.path,
        absPath,
        study: parts.study,
        patient: parts.patient,
        region: parts.region,
        label: parts.label,
        split: parts.split,
      },
    });
  }
}

/**
 * Study-level consistency between the two CSVs (unlabeled studies, label vs folder name, labeled studies without
 * images); then every pending image takes its study's CSV label, which wins over the folder name.
 */
function reconcileStudyLabels(st: LoadState): void {
  const { studiesListed, labels, unusable, issues, pending } = st;
  for (const [key, at] of studiesListed) {
    const folderLabel = parseMuraPath(key)!.label;
    const lab = labels.get(key);
    if (!lab) {
      if (unusable.has(labeledCsvOf(at.csv))) continue;
      issues.push({
        path: studyDir(st, key),
        kind: 'study-unlabeled',
        message: `study has images in ${at.csv} (line ${at.line}) but no row in ${labeledCsvOf(at.csv)}; its folder name (label ${folderLabel}) is used`,
      });
    } else if (lab.label !== folderLabel) {
      issues.push({
        path: studyDir(st, key),
        kind: 'label-mismatch',
        message: `${lab.csv} line ${lab.line} labels it ${lab.label} (${lab.label ? 'abnormal' : 'normal'}) but the folder says ${folderLabel ? '_positive' : '_negative'}; the CSV label is used`,
        line: lab.line,
        csv: lab.csv,
      });
    }
  }
  for (const [key, lab] of labels) {
    if (!studiesListed.has(key) && !unusable.has(imageCsvOf(lab.csv)))
      issues.push({
        path: studyDir(st, key),
        kind: 'study-without-images',
        message: `${lab.csv} line ${lab.line} labels this study but ${imageCsvOf(lab.csv)} lists no image of it`,
        line: lab.line,
        csv: lab.csv,
      });
  }
  for (const p of pending) {
    const lab = labels.get(p.rec.study);
    if (lab) p.rec.label = lab.label;
  }
}

/** Image files on disk that no CSV lists (only for splits whose image CSV was read: otherwise everything would be). */
function reportUnlistedImages(st: LoadState): void {
  const { unusable, disk, listed, issues, root } = st;
  // A missing or empty image list is already reported; listing every file as unlisted would only bury that.
  const checkedSplits = MURA_SPLITS.filter((s) => !unusable.has(`${s}_image_paths.csv`));
  for (const [rel, e] of disk) {
    // Dot files (`._image1.png` from macOS copies and the like) are not images anyone listed or meant to.
    if (e.type !== 'file' && e.type !== 'escape') continue;
    if (!IMAGE_FILE.test(rel) || listed.has(rel) || rel.slice(rel.lastIndexOf('/') + 1).startsWith('.')) continue;
    const split = rel.slice(0, rel.indexOf('/'));
    if (!checkedSplits.includes(split as MuraSplit)) continue;
    issues.push({
      path: join(root, ...rel.split('/')),
      kind: 'unlisted-image',
      message: `image file on disk is not listed in ${split}_image_paths.csv`,
    });
  }
}

/** The optional deep check: decode every usable image, concurrently; returns those that decode. */
async function checkImagesDeep(st: LoadState, options: LoadMuraOptions): Promise<PendingImage[]> {
  const { pending, issues, warnings } = st;
  const check = options.checkImage ?? ((p: string) => defaultCheckImage(p));
  let done = 0;
  const results = await mapLimit(pending, options.concurrency ?? 8, async (p) => {
    let r: CheckImageResult;
    try {
      r = await check(p.rec.absPath);
    } catch (err) {
      r = { ok: false, problem: `cannot be checked: ${(err as Error).message}` };
    }
    options.onImageChecked?.(++done, pending.length);
    return r;
  });
  const usable: PendingImage[] = [];
  results.forEach((r, i) => {
    const p = pending[i]!;
    if (!r.ok) {
      issues.push({ path: p.rec.absPath, kind: 'image-unreadable', message: r.problem });
      return;
    }
    for (const w of r.warnings ?? []) warnings.push({ path: p.rec.absPath, kind: 'image-warning', message: w });
    usable.push(p);
  });
  return usable;
}

/** Groups views into studies (first-seen order). */
function groupStudies(images: ImageRecord[]): Study[] {
  const byKey = new Map<string, Study>();
  for (const img of images) {
    let s = byKey.get(img.study);
    if (!s) {
      s = { key: img.study, patient: img.patient, region: img.region, label: img.label, split: img.split, images: [] };
      byKey.set(img.study, s);
    }
    s.images.push(img);
  }
  return [...byKey.values()];
}

/** MURA's splits are patient-disjoint; a patient on both sides would leak into validation. */
function reportPatientsInBothSplits(st: LoadState): void {
  const { studiesListed, issues } = st;
  const patientSplits = new Map<string, Map<MuraSplit, string>>();
  for (const key of studiesListed.keys()) {
    const parts = parseMuraPath(key)!;
    let m = patientSplits.get(parts.patient);
    if (!m) patientSplits.set(parts.patient, (m = new Map()));
    if (!m.has(parts.split)) m.set(parts.split, key);
  }
  for (const [patient, m] of patientSplits) {
    if (m.size > 1)
      issues.push({
        path: studyDir(st, m.get('valid')!),
        kind: 'patient-in-both-splits',
        message: `patient ${patient} has studies in both train (${m.get('train')}) and valid (${m.get('valid')}); MURA's splits should not share patients`,
      });
  }
}

/** Issue counts by kind, for end-of-run summaries. */
export function countIssues(issues: readonly DatasetIssue[]): Partial<Record<DatasetIssue['kind'], number>> {
  const out: Partial<Record<DatasetIssue['kind'], number>> = {};
  for (const i of issues) out[i.kind] = (out[i.kind] ?? 0) + 1;
  return out;
}

/** One line per issue, `path: message [kind]`, the way the CLI prints them. */
export function formatIssue(issue: DatasetIssue): string {
  return `${issue.path}: ${issue.message} [${issue.kind}]`;
}
