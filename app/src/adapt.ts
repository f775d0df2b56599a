/**
 * "Adapt to this site" in the page: the clinic picks a folder of its own labelled studies; the page runs the deployed
 * model over them for its `features` and `logits` outputs (engine.ts's session, onnxruntime-web), hands them to the
 * same browser-safe fitting as `nextray adapt` (src/calibrate/adapt/: split by patient, head refit, temperature,
 * threshold, held-out before/after, the "too small" rule), keeps an adopted head in IndexedDB, exports and imports it
 * as the small head file (refused when fitted for another model file), and resets to the deployed head.
 *
 * Nothing here fetches: no image, feature or label leaves the device.
 *
 * Labels come from the folder, as `nextray adapt --data` reads it:
 *  - the MURA layout (`…/train|valid/XR_<REGION>/patient<N>/study<K>_positive|negative/image.png`): the study and
 *    patient from the path, the label from the folder name; in the order of `train_image_paths.csv` then
 *    `valid_image_paths.csv` when the folder has them (the order `nextray adapt` reads), else by path;
 *  - or a CSV among the picked files with a header naming `image,label` (optional `study`, `patient`), image paths
 *    relative to the CSV's folder.
 */
import { adaptation, csv, greyLevels, muraPaths } from 'nextray/browser';
import type { SiteHook } from './engine.js';

const { ADAPT_DEFAULTS, AdaptError, adaptWithSitePreprocessing, adaptationRecord, makeHeadFile, parseHeadFile, checkHeadBase, serializeHeadFile } = adaptation;
const { GreyHistogram } = greyLevels;
type GreyNormalisationRecord = adaptation.GreyNormalisationRecord;
const { parseMuraPath } = muraPaths;
type AdaptImage = adaptation.AdaptImage;
type AdaptResult = adaptation.AdaptResult;
type AdaptationRecord = adaptation.AdaptationRecord;
type LoadedHead = adaptation.LoadedHead;

export interface LabelledFile extends AdaptImage {
  file: File;
  /** The path inside the picked folder. */
  path: string;
}

const IMAGE = /\.(png|jpe?g|dcm)$/i;

/** The path a picked file has inside the picked folder (its name when it was picked alone). */
export function relPath(f: File): string {
  return ((f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name).replace(/\\/g, '/');
}

const dirOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/') + 1) : '');

/** Joins a relative path onto a folder ('a/b/' + '../c.png' -> 'a/c.png'). */
function joinPath(dir: string, rel: string): string {
  const parts = (dir + rel.replace(/^\.\//, '')).split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '..') out.pop();
    else if (p !== '.' && p !== '') out.push(p);
  }
  return out.join('/');
}

/** The MURA-layout part of a path ('picked/MURA-v1.1/train/XR_HAND/…' -> 'MURA-v1.1/train/XR_HAND/…'). */
function muraTail(path: string): string | null {
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) {
    if (segs[i] === 'train' || segs[i] === 'valid') {
      const tail = segs.slice(i - 1).join('/');
      if (parseMuraPath(tail)?.image) return tail;
    }
  }
  return null;
}

/** The labelled images among the picked files (see the module comment), with the problems found on the way. */
export async function labelledFiles(files: readonly File[]): Promise<{ images: LabelledFile[]; problems: string[]; kind: 'mura' | 'csv' }> {
  const byPath = new Map(files.map((f) => [relPath(f), f]));
  const problems: string[] = [];
  // A CSV naming image,label wins (the MURA layout's own CSVs have no header and are read below).
  for (const f of files) {
    if (!/\.csv$/i.test(f.name) || /_(image_paths|labeled_studies)\.csv$/.test(f.name)) continue;
    const text = (await f.text()).replace(/^\uFEFF/, '');
    const lines = text.split(/\r?\n/);
    const header = csv.csvFields(lines[0] ?? '').map((h) => h.toLowerCase());
    const col = (n: string): number => header.indexOf(n);
    if (col('image') < 0 || col('label') < 0) continue;
    const where = relPath(f);
    const images: LabelledFile[] = [];
    for (let i = 1; i < lines.length; i++) {
      if (!lines[i]!.trim()) continue;
      const c = csv.csvFields(lines[i]!);
      const image = c[col('image')] ?? '';
      const label = c[col('label')];
      if (!image) {
        problems.push(`${where}:${i + 1}: empty image path`);
        continue;
      }
      if (label !== '0' && label !== '1') {
        problems.push(`${where}:${i + 1}: label is "${label ?? ''}", not 0 or 1`);
        continue;
      }
      const path = joinPath(dirOf(where), image);
      const file = byPath.get(path);
      if (!file) {
        problems.push(`${where}:${i + 1}: ${image} is not among the picked files`);
        continue;
      }
      const study = (col('study') >= 0 && c[col('study')]) || dirOf(image) || image;
      const mura = parseMuraPath(muraTail(path) ?? '');
      const patient = (col('patient') >= 0 && c[col('patient')]) || mura?.patient || `study:${study}`;
      images.push({ file, path, study, patient, label: label === '1' ? 1 : 0 });
    }
    if (!images.length) throw new AdaptError(`${where}: no usable rows (${problems.length} bad)`);
    return { images, problems, kind: 'csv' };
  }
  // The MURA layout: the order of the split CSVs when present (as nextray adapt reads), then the rest by path.
  const order = new Map<string, number>();
  for (const split of ['train', 'valid']) {
    const listFile = files.find((f) => f.name === `${split}_image_paths.csv`);
    if (!listFile) continue;
    for (const line of (await listFile.text()).split(/\r?\n/)) {
      const p = line.trim().replace(/^"|"$/g, '');
      if (p && !order.has(p)) order.set(p, order.size);
    }
  }
  const images: LabelledFile[] = [];
  for (const [path, file] of byPath) {
    if (!IMAGE.test(path)) continue;
    const tail = muraTail(path);
    const parts = tail ? parseMuraPath(tail) : null;
    if (!parts) {
      problems.push(`${path}: not in a MURA study folder (…/patient<N>/study<K>_positive|negative/), and no CSV image,label names it`);
      continue;
    }
    images.push({ file, path: tail!, study: parts.study, patient: parts.patient, label: parts.label });
  }
  const rank = (p: string): number => order.get(p) ?? Number.MAX_SAFE_INTEGER;
  images.sort((a, b) => rank(a.path) - rank(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (!images.length) throw new AdaptError('the picked folder holds no labelled images: pick a folder in the MURA layout (…/study<K>_positive|negative/) or one with a CSV image,label');
  return { images, problems, kind: 'mura' };
}

export interface AdaptRun {
  result: AdaptResult;
  record: AdaptationRecord;
  /** The head file text when the head was adopted (null: the deployed model is kept). */
  headText: string | null;
  images: { listed: number; used: number; failed: string[]; problems: string[] };
}

export interface AdaptRunOptions {
  minStudiesPerClass?: number;
  bootstrap?: number;
  targetSensitivity?: number;
  /** The picked folder's name (the record's `source`; never image content). */
  source: string;
  onProgress?: (text: string, done: number, total: number) => void;
}

/** Features of every labelled image, then the fitting of `nextray adapt` (same defaults, same seed). */
export async function runAdaptation(site: SiteHook, files: readonly File[], o: AdaptRunOptions): Promise<AdaptRun> {
  if (!site.hasFeatures) throw new AdaptError("this model file has no 'features' output: export it with 'nextray export --features' to adapt it in the page");
  const local = await labelledFiles(files);
  const kept: LabelledFile[] = [];
  const rows: Float32Array[] = [];
  const logits: number[] = [];
  const failed: string[] = [];
  for (let i = 0; i < local.images.length; i++) {
    const im = local.images[i]!;
    o.onProgress?.(`Reading the studies: image ${i + 1} of ${local.images.length}`, i, local.images.length);
    try {
      const r = await site.outputs(im.file);
      kept.push(im);
      rows.push(r.features);
      logits.push(r.logit);
    } catch (err) {
      failed.push(`${im.path}: ${(err as Error).message}`);
    }
  }
  if (!kept.length) throw new AdaptError(`none of the ${local.images.length} images could be read`);
  const dim = rows[0]!.length;
  const features = new Float32Array(kept.length * dim);
  rows.forEach((r, i) => features.set(r, i * dim));
  const { temperature, threshold } = site.base;
  // Yield once so the progress line is painted before the fitting (synchronous) starts.
  await new Promise((r) => setTimeout(r, 0));
  const images = kept.map(({ study, patient, label }) => ({ study, patient, label }));
  const deployedLogits = Float64Array.from(logits, (z) => z * temperature);
  const fitOpts = {
    rule: o.targetSensitivity !== undefined ? ({ kind: 'sensitivity-target', sensitivity: o.targetSensitivity } as const) : ({ kind: 'max-kappa' } as const),
    ...(o.minStudiesPerClass !== undefined ? { minStudiesPerClass: o.minStudiesPerClass } : {}),
    ...(o.bootstrap !== undefined ? { bootstrap: o.bootstrap } : {}),
    onProgress: (done: number, total: number, what: string) => o.onProgress?.(`Fitting: ${what}`, done, total),
  };
  // The site's preprocessing, as nextray adapt chooses it (src/calibrate/adapt/site-prep.ts): the site filters, each
  // without and with the grey map (when the model carries its training site's reference grey levels: an adapted model
  // does; the map fitted on the fitting part's grey levels), the model run again over the studies after each, the
  // head refitted on each, the lowest cross-fitted log loss inside the fitting part kept.
  const reference = site.greyReference;
  // The core's own checks (sizes, a positive temperature) hold by construction here (the card check refuses a
  // non-positive temperature); what a user can get wrong (labels, too few studies) it reports as AdaptError itself.
  const outcome: adaptation.SitePrepOutcome = await adaptWithSitePreprocessing(
    images,
    dim,
    { features, baseLogits: deployedLogits },
    { temperature, threshold },
    {
      async outputs(prep, what) {
        const f = new Float32Array(kept.length * dim);
        const z = new Float64Array(kept.length);
        for (let i = 0; i < kept.length; i++) {
          o.onProgress?.(`Reading the studies after ${what}: image ${i + 1} of ${kept.length}`, i, kept.length);
          const r = await site.outputs(kept[i]!.file, prep);
          f.set(r.features, i * dim);
          z[i] = r.logit * temperature;
        }
        return { features: f, baseLogits: z };
      },
      async histogramOf(idx, siteFilter) {
        const h = new GreyHistogram();
        for (let k = 0; k < idx.length; k++) {
          o.onProgress?.(`Measuring the grey levels: image ${k + 1} of ${idx.length}`, k, idx.length);
          await site.greyLevels(kept[idx[k]!]!.file, h, siteFilter ?? null);
        }
        return h;
      },
    },
    { ...fitOpts, reference },
  );
  const result = outcome.result;
  let grey: GreyNormalisationRecord | null = null;
  if (reference && outcome.greyFit && outcome.greyCv) {
    grey = { reference_source: reference.source, reference_images: reference.images, fitted_images: outcome.greyFit.images, map: outcome.greyFit.map, cv_log_loss: outcome.greyCv, used: outcome.greyMap !== null };
  }
  const record = adaptationRecord(result, {
    baseSha256: site.base.sha256,
    date: new Date().toISOString(),
    source: o.source,
    folds: ADAPT_DEFAULTS.folds,
    heldOutFraction: ADAPT_DEFAULTS.heldOutFraction,
    minStudiesPerClass: o.minStudiesPerClass ?? ADAPT_DEFAULTS.minStudiesPerClass,
    seed: String(ADAPT_DEFAULTS.seed),
    greyNormalisation: grey,
    sitePreprocessing: { trials: outcome.trials, site_filter: outcome.siteFilter, grey_map_used: outcome.greyMap !== null },
  });
  const base = { sha256: site.base.sha256, arch: site.base.arch, featuresDim: dim, temperature, threshold };
  const headText = result.adopted ? serializeHeadFile(makeHeadFile(result.adopted, base, record)) : null;
  return { result, record, headText, images: { listed: local.images.length, used: kept.length, failed, problems: local.problems } };
}

/** Parses a head file and refuses one fitted for another model file (the reason is the error's message). */
export function importHead(text: string, name: string, modelSha256: string): LoadedHead {
  const head = parseHeadFile(text, name);
  checkHeadBase(head, modelSha256, name);
  return head;
}

// ---------------------------------------------------------------------------------------------------------------
// IndexedDB: the adapted head kept per model file (keyed by its SHA-256), so a page reload keeps it.

const DB = 'nextray-adaptation';
const STORE = 'heads';

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB refused'));
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    return await new Promise<T>((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error ?? new Error('IndexedDB transaction failed'));
    });
  } finally {
    db.close();
  }
}

/** The head text kept for this model, or null. */
export async function storedHead(modelSha256: string): Promise<string | null> {
  const v = await tx('readonly', (s) => s.get(modelSha256) as IDBRequest<string | undefined>);
  return typeof v === 'string' ? v : null;
}

export async function keepHead(modelSha256: string, text: string): Promise<void> {
  await tx('readwrite', (s) => s.put(text, modelSha256));
}

export async function forgetHead(modelSha256: string): Promise<void> {
  await tx('readwrite', (s) => s.delete(modelSha256));
}
