/**
 * The Node host of site adaptation (`nextray adapt`): reads a clinic's labelled studies (a MURA-layout folder, or a
 * CSV `image,label[,study[,patient]]`), runs the deployed .onnx model over them with onnxruntime-node for its
 * `features` and `logits` outputs, hands them to the browser-safe fitting (src/calibrate/adapt/), and writes the
 * adapted model (the same file with its head replaced and an `adaptation` record; or, when the deployed model is
 * kept, the same file with only the record added) and optionally the small head file. Everything runs on this
 * machine; no image or feature leaves it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { loadMuraDataset } from '../data/mura.js';
import { Ensemble } from '../inference/core/ensemble.js';
import { muraStudyOf, studyKeyOf } from '../inference/core/study.js';
import { openModel } from '../inference/node/models.js';
import { predictFiles, type BadFile } from '../inference/node/predict.js';
import { ONNX_FEATURES, ONNX_LOGITS } from '../models/onnx/format.js';
import { replaceHead, setMetadata } from '../models/onnx/adapt-graph.js';
import { OnnxModelError } from '../models/onnx/info.js';
import { writeFileAtomic } from '../util/atomic.js';
import { GreyHistogram, type GreyMap } from '../data/grey-map.js';
import type { SiteFilter } from '../data/site-filter.js';
import { greyRegion, type Preprocessing } from '../data/preprocess.js';
import { checkGreyReference, greyReferenceOf, type GreyReference } from './adapt/site-grey.js';
import { decodeForPrediction } from '../inference/node/decode.js';
import { csvFields } from '../util/csv.js';
import { cardFromOnnxMetadata, cardToOnnxMetadata, ONNX_CARD_KEY, type ModelCard } from '../models/card.js';
import { readModelInfo } from '../models/onnx/graph.js';
import { ADAPT_DEFAULTS, type AdaptImage, type AdaptOptions, type AdaptResult, type FittedHead, type ThresholdRule } from './adapt/adapt.js';
import { adaptWithSitePreprocessing, sitePrepLabel, type SitePrepOutcome } from './adapt/site-prep.js';
import { AdaptError, adaptationRecord, makeHeadFile, serializeHeadFile, type AdaptationRecord, type BaseModelInfo, type GreyNormalisationRecord } from './adapt/head-file.js';

export interface LocalImage extends AdaptImage {
  file: string;
}

/**
 * The labelled local images. A folder: the MURA layout (its CSVs; both splits). A .csv file: a header naming at
 * least `image` and `label` (0/1), optionally `study` (default: the MURA study folder of the path, else its folder)
 * and `patient` (default: the MURA patient folder, else the study: every study its own patient). Relative image
 * paths are relative to the CSV's folder.
 */
export async function readLocalStudies(data: string): Promise<{ images: LocalImage[]; problems: string[]; kind: 'mura' | 'csv' }> {
  if (!existsSync(data)) throw new AdaptError(`--data ${data}: no such file or folder`);
  if (statSync(data).isDirectory()) {
    const ds = await loadMuraDataset(data);
    if (!ds.images.length) throw new AdaptError(`--data ${data}: no usable images in the MURA layout`);
    return {
      kind: 'mura',
      images: ds.images.map((r) => ({ file: r.absPath, study: r.study, patient: r.patient, label: r.label })),
      problems: ds.issues.map((i) => `${i.path}: ${i.message}`),
    };
  }
  const text = readFileSync(data, 'utf8').replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/);
  const header = csvFields(lines[0] ?? '').map((h) => h.toLowerCase());
  const col = (name: string): number => header.indexOf(name);
  if (col('image') < 0 || col('label') < 0) throw new AdaptError(`--data ${data}: the CSV needs a header with columns image,label (optional: study, patient); got "${lines[0] ?? ''}"`);
  const images: LocalImage[] = [];
  const problems: string[] = [];
  const base = dirname(resolve(data));
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i]!.trim()) continue;
    const f = csvFields(lines[i]!);
    const image = f[col('image')] ?? '';
    const label = f[col('label')];
    if (!image) {
      problems.push(`${data}:${i + 1}: empty image path`);
      continue;
    }
    if (label !== '0' && label !== '1') {
      problems.push(`${data}:${i + 1}: label is "${label ?? ''}", not 0 or 1`);
      continue;
    }
    const file = isAbsolute(image) ? image : join(base, image);
    const mura = muraStudyOf(image);
    const study = (col('study') >= 0 && f[col('study')]) || studyKeyOf(image).key;
    let patient = col('patient') >= 0 ? f[col('patient')] ?? '' : '';
    if (!patient && mura) patient = /\/(patient\d+)\/study\d+_(positive|negative)\/$/.exec(mura.key)?.[1] ?? '';
    images.push({ file, study, patient: patient || `study:${study}`, label: label === '1' ? 1 : 0 });
  }
  if (!images.length) throw new AdaptError(`--data ${data}: no usable rows (${problems.length} bad)`);
  return { kind: 'csv', images, problems };
}

export interface ModelOutputs {
  /** The images that decoded, in input order, with their features [kept, dim] and logits. */
  kept: LocalImage[];
  features: Float32Array;
  dim: number;
  /** The `logits` output (already divided by the model's temperature). */
  logits: Float32Array;
  bad: BadFile[];
  sha256: string;
  arch: string;
  temperature: number;
  threshold: number;
  seconds: number;
}

/** Runs the deployed model over the images for its `features` and `logits` outputs. */
export async function computeModelOutputs(modelPath: string, images: readonly LocalImage[], opts: { threads?: number; workers?: number; batchSize?: number; greyMap?: GreyMap; siteFilter?: SiteFilter; onProgress?: (done: number, total: number) => void; onBadFile?: (b: BadFile) => void } = {}): Promise<ModelOutputs> {
  if (!existsSync(modelPath) || !statSync(modelPath).isFile()) throw new AdaptError(`--model ${modelPath}: give the deployed .onnx file (exported with 'nextray export --features')`);
  const model = await openModel(modelPath, { engine: 'onnx', ...(opts.threads ? { threads: opts.threads } : {}) });
  try {
    if (!model.card.outputs.includes(ONNX_FEATURES)) {
      throw new AdaptError(`--model ${modelPath} has no '${ONNX_FEATURES}' output; export it again with 'nextray export --features' (the page and nextray adapt read the head's input from it)`);
    }
    const temperature = model.card.metadata.temperature === undefined ? 1 : Number(model.card.metadata.temperature);
    // The features of the site-normalised images: the model's own preprocessing with the site's grey map (this opened
    // model is ours alone, so its card may carry it).
    if (opts.greyMap || opts.siteFilter) {
      (model.card as { preprocessing: Preprocessing }).preprocessing = {
        ...model.card.preprocessing,
        ...(opts.greyMap ? { greyMap: opts.greyMap } : {}),
        ...(opts.siteFilter ? { siteFilter: opts.siteFilter } : {}),
      };
    }
    const ens = new Ensemble([model]);
    const feats = new Map<string, Float32Array>();
    const logits = new Map<string, number>();
    let dim = 0;
    const t0 = performance.now();
    const r = await predictFiles(
      ens,
      images.map((im) => im.file),
      {
        outputs: [ONNX_FEATURES, ONNX_LOGITS],
        ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
        ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        ...(opts.onBadFile ? { onBadFile: opts.onBadFile } : {}),
        onBatch: (results, raw) => {
          const f = raw.extra[0]![ONNX_FEATURES]!;
          const z = raw.extra[0]![ONNX_LOGITS]!;
          dim = f.dims[1]!;
          results.forEach((res, k) => {
            feats.set(res.image, f.data.slice(k * dim, (k + 1) * dim));
            logits.set(res.image, z.data[k]!);
          });
        },
      },
    );
    const kept = images.filter((im) => feats.has(im.file));
    const features = new Float32Array(kept.length * dim);
    kept.forEach((im, i) => features.set(feats.get(im.file)!, i * dim));
    return {
      kept,
      features,
      dim,
      logits: Float32Array.from(kept.map((im) => logits.get(im.file)!)),
      bad: r.bad,
      sha256: model.card.sha256,
      arch: model.card.arch,
      temperature,
      threshold: model.card.threshold,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await model.release();
  }
}

/**
 * The grey-level histogram of images as the model sees them: decoded (PNG, JPEG, DICOM: the prediction path),
 * resized into their placement in the model grid, letterbox bars left out; the model's own grey map (an adapted
 * model adapted again) applied when it has one. Unreadable files are skipped (counted).
 */
/**
 * The grey-level histogram of images as the model sees them: decoded (PNG, JPEG, DICOM: the prediction path),
 * resized into their placement in the model grid, without any grey map (an adapted model's map is replaced, not
 * stacked), counted inside `greyRegion` (the middle of the placement: collimator borders and burned-in labels sit at
 * the edges). Unreadable files are skipped (counted).
 */
export async function greyHistogramOf(files: readonly string[], pre: Preprocessing, onProgress?: (done: number, total: number) => void): Promise<{ histogram: GreyHistogram; bad: number }> {
  const { greyMap: _own, ...rest } = pre;
  // Mean 0 and std 1: the decoded input's first channel is then the grey image in the model grid.
  const probe: Preprocessing = { ...rest, mean: [0, 0, 0], std: [1, 1, 1] };
  const histogram = new GreyHistogram();
  const size = pre.size;
  const grid = new Float32Array(size * size);
  let bad = 0;
  for (let i = 0; i < files.length; i++) {
    const r = await decodeForPrediction({ id: i, file: files[i]!, preprocessings: [probe] });
    if (!r.ok) bad++;
    else {
      const x = r.inputs[0]!;
      for (let k = 0; k < grid.length; k++) grid[k] = x[3 * k]!;
      histogram.add(grid, { ...greyRegion(r.width, r.height, pre), stride: size });
    }
    onProgress?.(i + 1, files.length);
  }
  return { histogram, bad };
}

/** At most this many training-site images measure the reference quantiles (spread evenly over the list). */
export const REFERENCE_MAX_IMAGES = 2000;

/**
 * The training site's reference quantiles from its images (`--reference-data`: a MURA-layout folder or a CSV with an
 * `image` column; labels are not needed), measured as greyHistogramOf measures the local ones.
 */
export async function greyReferenceFrom(data: string, pre: Preprocessing, onProgress?: (done: number, total: number) => void): Promise<GreyReference> {
  let files: string[];
  if (existsSync(data) && statSync(data).isDirectory()) {
    const ds = await loadMuraDataset(data);
    files = ds.images.map((r) => r.absPath);
  } else {
    if (!existsSync(data)) throw new AdaptError(`--reference-data ${data}: no such file or folder`);
    const lines = readFileSync(data, 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/);
    const header = csvFields(lines[0] ?? '').map((h) => h.toLowerCase());
    const col = header.indexOf('image');
    if (col < 0) throw new AdaptError(`--reference-data ${data}: the CSV needs a header with an image column`);
    const base = dirname(resolve(data));
    files = lines.slice(1).filter((l) => l.trim()).map((l) => csvFields(l)[col] ?? '').filter(Boolean).map((f) => (isAbsolute(f) ? f : join(base, f)));
  }
  if (!files.length) throw new AdaptError(`--reference-data ${data}: no images`);
  const step = Math.max(1, files.length / REFERENCE_MAX_IMAGES);
  const picked: string[] = [];
  for (let k = 0; Math.floor(k * step) < files.length && picked.length < REFERENCE_MAX_IMAGES; k++) picked.push(files[Math.floor(k * step)]!);
  const { histogram } = await greyHistogramOf(picked, pre, onProgress);
  if (!(histogram.pixels > 0)) throw new AdaptError(`--reference-data ${data}: none of its images could be read`);
  return greyReferenceOf(histogram, data.split(/[\\/]/).filter(Boolean).pop() ?? data);
}

/** Metadata key of the training site's reference quantiles in an adapted .onnx (JSON of a GreyReference). */
export const ONNX_GREY_REFERENCE_KEY = 'grey_reference';

export interface RunAdaptOptions extends Omit<AdaptOptions, 'rule'> {
  model: string;
  data: string;
  targetSensitivity?: number;
  /** Adapted .onnx to write. */
  out?: string;
  /** Small head file to write (only when the adapted head is adopted). */
  headOut?: string;
  /**
   * Images of the training site (a MURA-layout folder or a CSV with an `image` column) for the reference grey
   * levels, when the model does not carry them (metadata `grey_reference`, written by an earlier adaptation).
   */
  referenceData?: string;
  /**
   * The site's grey map: 'auto' (default) used when it lowers the cross-fitted log loss inside the fitting part, 'on'
   * always (given reference grey levels), 'off' never (the head alone).
   */
  greyMap?: 'auto' | 'on' | 'off';
  /** Site filters (overlay suppression, smoothing, unsharp mask): 'auto' (default) tried and kept when better, 'off' never. */
  siteFilter?: 'auto' | 'off';
  /** Called before each candidate preprocessing is computed. */
  onCandidate?: (k: number, total: number, what: string) => void;
  threads?: number;
  workers?: number;
  /** ISO date for the record (default now). */
  date?: string;
  onImages?: (done: number, total: number) => void;
  onBadFile?: (b: BadFile) => void;
  /** Progress of the grey-level passes (reference images, then the fitting part's). */
  onGrey?: (what: string, done: number, total: number) => void;
}

export interface RunAdaptResult {
  result: AdaptResult;
  record: AdaptationRecord;
  base: BaseModelInfo;
  images: { listed: number; used: number; bad: BadFile[]; problems: string[] };
  written: { model?: string; head?: string };
  seconds: { features: number; fit: number };
  /** The grey normalisation tried (null: none, and why in `greyNote`). */
  grey: GreyNormalisationRecord | null;
  greyNote: string;
  /** The site filter kept (or none), and why. */
  filterNote: string;
}

/**
 * The adapted model's preprocessing: the base's with the adopted site filter and grey map, each replacing the base's
 * own (a model adapted again: computeModelOutputs computed the candidates that way).
 */
function adoptedPreprocessing(pre: Preprocessing, adopted: FittedHead): Preprocessing {
  const { greyMap: _g, siteFilter: _f, ...rest } = pre;
  return { ...rest, ...(adopted.siteFilter ? { siteFilter: adopted.siteFilter } : {}), ...(adopted.greyMap ? { greyMap: adopted.greyMap } : {}) };
}

/**
 * The `model_card` metadata of the adapted model: the base model's card with the adapted decision laid over it
 * (operating point and temperature fitted on the site's studies, the adaptation section) and without the base's
 * sha256 (the adapted file is other bytes). replaceHead writes `decision_threshold` and `temperature` themselves;
 * the card has to say the same, since the facade, the server, the page and the PACS SR read the operating point
 * from it.
 */
function adaptedCardMetadata(bytes: Uint8Array, path: string, result: AdaptResult, record: AdaptationRecord): string {
  const adopted = result.adopted!;
  const name = path.split(/[\\/]/).pop() ?? path;
  const { sha256: _base, ...base } = cardFromOnnxMetadata(readModelInfo(bytes).metadata, name, path);
  base.preprocessing = adoptedPreprocessing(base.preprocessing, adopted);
  const rule = result.candidate.rule;
  const oof = result.candidate.outOfFold;
  const h = record.held_out;
  const card: ModelCard = {
    ...base,
    decisionThreshold: adopted.threshold,
    operatingPoint: {
      rule: rule.kind,
      threshold: adopted.threshold,
      ...(rule.kind === 'sensitivity-target' ? { targetSensitivity: rule.sensitivity } : {}),
      level: 'study',
      fittedOn: 'site (cross-fitted)',
      ...(oof.sensitivity !== null ? { sensitivity: oof.sensitivity } : {}),
      specificity: oof.specificity,
      kappa: oof.kappa,
      cases: oof.studies,
      positives: record.data.fit.abnormal_studies,
    },
    temperature: { value: adopted.temperature, level: 'study', fittedOn: 'site (cross-fitted)', images: record.data.fit.images, studies: record.data.fit.studies },
    adaptation: {
      baseSha256: record.base_sha256,
      images: record.data.images,
      studies: record.data.studies,
      date: record.date,
      metrics: Object.fromEntries(Object.entries(h.after).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]))),
    },
  };
  return cardToOnnxMetadata(card)[ONNX_CARD_KEY]!;
}

/** The whole of `nextray adapt`: read, compute features, fit, write. */
/**
 * The deployed model's file checked before any image is read (a few milliseconds: its header, not its weights): an
 * .onnx file from `nextray export` with the `features` output, else an AdaptError that says what to do.
 */
export function checkDeployedModel(modelPath: string): void {
  if (!existsSync(modelPath) || !statSync(modelPath).isFile()) throw new AdaptError(`--model ${modelPath}: give the deployed .onnx file (exported with 'nextray export --features')`);
  let outputs: string[];
  try {
    outputs = readModelInfo(readFileSync(modelPath)).outputs.map((x) => x.name);
  } catch (err) {
    throw new AdaptError(`--model ${modelPath}: not a readable ONNX model (${(err as Error).message}); give the .onnx file that 'nextray export --features' wrote`);
  }
  if (!outputs.includes(ONNX_FEATURES)) {
    throw new AdaptError(`--model ${modelPath} has no '${ONNX_FEATURES}' output; export it again with 'nextray export --features' (the page and nextray adapt read the head's input from it)`);
  }
}

export async function runAdapt(o: RunAdaptOptions): Promise<RunAdaptResult> {
  checkDeployedModel(o.model);
  const local = await readLocalStudies(o.data);
  const out = await computeModelOutputs(o.model, local.images, {
    ...(o.threads ? { threads: o.threads } : {}),
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    ...(o.onImages ? { onProgress: o.onImages } : {}),
    ...(o.onBadFile ? { onBadFile: o.onBadFile } : {}),
  });
  if (!out.kept.length) throw new AdaptError(`--data ${o.data}: none of the ${local.images.length} images could be read`, { exitStatus: 1 });
  const rule: ThresholdRule = o.targetSensitivity !== undefined ? { kind: 'sensitivity-target', sensitivity: o.targetSensitivity } : { kind: 'max-kappa' };
  const deployedLogits = Float64Array.from(out.logits, (z) => z * out.temperature);
  const { siteFilter: filterMode, greyMap: mapMode, ...restOpts } = o;
  const fitOpts = { ...restOpts, rule };

  // The site's preprocessing (site-prep.ts): every candidate filter, with and without the grey map fitted on the
  // fitting part's grey levels (given the training site's reference), the model run again over the local images after
  // each, the head refitted on each; the lowest cross-fitted log loss inside the fitting part is kept.
  const modelBytes = new Uint8Array(readFileSync(o.model));
  const info = readModelInfo(modelBytes);
  const pre = cardFromOnnxMetadata(info.metadata, o.model, o.model).preprocessing;
  let reference: GreyReference | null = null;
  let greyNote = '';
  if (mapMode === 'off') greyNote = 'no grey normalisation (--grey-map off)';
  else if (info.metadata[ONNX_GREY_REFERENCE_KEY]) {
    const where = `--model ${o.model}: metadata '${ONNX_GREY_REFERENCE_KEY}'`;
    let value: unknown;
    try {
      value = JSON.parse(info.metadata[ONNX_GREY_REFERENCE_KEY]!);
    } catch (err) {
      throw new AdaptError(`${where}: not JSON (${(err as Error).message})`);
    }
    reference = checkGreyReference(value, where);
  } else if (o.referenceData) reference = await greyReferenceFrom(o.referenceData, pre, (d, t) => o.onGrey?.('reference grey levels', d, t));
  else greyNote = `no grey normalisation: the model carries no reference grey levels of its training site (give --reference-data with the training images)`;
  let featureSeconds = out.seconds;
  const kept = out.kept;
  const t0 = performance.now();
  let outcome: SitePrepOutcome;
  try {
    outcome = await adaptWithSitePreprocessing(
      kept,
      out.dim,
      { features: out.features, baseLogits: deployedLogits },
      { temperature: out.temperature, threshold: out.threshold },
      {
        async outputs(prep) {
          const r = await computeModelOutputs(o.model, kept, { ...(o.threads ? { threads: o.threads } : {}), ...(o.workers !== undefined ? { workers: o.workers } : {}), ...prep, ...(o.onImages ? { onProgress: o.onImages } : {}) });
          featureSeconds += r.seconds;
          if (r.kept.length !== kept.length) throw new AdaptError(`${kept.length - r.kept.length} image(s) decoded once and not the second time; check the files are not changing`, { exitStatus: 1 });
          return { features: r.features, baseLogits: Float64Array.from(r.logits, (z) => z * out.temperature) };
        },
        async histogramOf(idx, siteFilter) {
          return (await greyHistogramOf(idx.map((i) => kept[i]!.file), siteFilter ? { ...pre, siteFilter } : pre, (d, t) => o.onGrey?.('site grey levels (fitting part)', d, t))).histogram;
        },
      },
      { ...fitOpts, reference, ...(mapMode ? { greyMap: mapMode } : {}), ...(filterMode ? { siteFilter: filterMode } : {}), ...(o.onCandidate ? { onCandidate: o.onCandidate } : {}) },
    );
  } catch (err) {
    // What the local data cannot give (too few labelled studies of a class, views that disagree, unreadable
    // images) is an AdaptError of the fit: name the folder or CSV it came from.
    if (err instanceof AdaptError && !err.message.startsWith('--')) err.message = `--data ${o.data}: ${err.message}`;
    throw err;
  }
  const fitSeconds = (performance.now() - t0) / 1000 - (featureSeconds - out.seconds);
  const result = outcome.result;
  let grey: GreyNormalisationRecord | null = null;
  if (reference && outcome.greyFit && outcome.greyCv) {
    const used = outcome.greyMap !== null;
    grey = { reference_source: reference.source, reference_images: reference.images, fitted_images: outcome.greyFit.images, map: outcome.greyFit.map, cv_log_loss: outcome.greyCv, used };
    greyNote = mapMode === 'on' ? 'grey map used (--grey-map on)' : used ? 'grey map used (lower cross-fitted log loss inside the fitting part)' : 'grey map not used (the head alone fitted better inside the fitting part)';
  }
  const filterNote = outcome.siteFilter ? `site filter used: ${sitePrepLabel(outcome.siteFilter, false)} (lowest cross-fitted log loss of ${outcome.trials.length} candidates inside the fitting part)` : filterMode === 'off' ? 'no site filter (--site-filter off)' : `no site filter (none of the ${outcome.trials.length - 1} other candidates fitted better inside the fitting part)`;
  const base: BaseModelInfo = { sha256: out.sha256, arch: out.arch, featuresDim: out.dim, temperature: out.temperature, threshold: out.threshold };
  const record = adaptationRecord(result, {
    baseSha256: out.sha256,
    date: o.date ?? new Date().toISOString(),
    source: o.data.split(/[\\/]/).filter(Boolean).pop() ?? o.data,
    folds: o.folds ?? ADAPT_DEFAULTS.folds,
    heldOutFraction: o.heldOutFraction ?? ADAPT_DEFAULTS.heldOutFraction,
    minStudiesPerClass: o.minStudiesPerClass ?? ADAPT_DEFAULTS.minStudiesPerClass,
    seed: String(o.seed ?? ADAPT_DEFAULTS.seed),
    greyNormalisation: grey,
    sitePreprocessing: { trials: outcome.trials, site_filter: outcome.siteFilter, grey_map_used: outcome.greyMap !== null },
  });
  const written: RunAdaptResult['written'] = {};
  if (o.out) {
    const bytes = modelBytes;
    const meta: Record<string, string> = { adaptation: JSON.stringify(record) };
    // The training site's reference travels on, so adapting this file again needs no --reference-data.
    if (reference) meta[ONNX_GREY_REFERENCE_KEY] = JSON.stringify(reference);
    if (result.adopted) meta[ONNX_CARD_KEY] = adaptedCardMetadata(bytes, o.model, result, record);
    // The grey map is part of the adapted model's preprocessing: every host (predict, serve, the page, the PACS
    // worker) applies it through the facade's preprocessing.
    if (result.adopted?.greyMap || result.adopted?.siteFilter) meta.preprocessing = JSON.stringify(adoptedPreprocessing(pre, result.adopted));
    let chunks: Uint8Array[];
    try {
      chunks = result.adopted
        ? replaceHead(bytes, { deltaWeight: result.adopted.deltaWeight, deltaBias: result.adopted.deltaBias, temperature: result.adopted.temperature, threshold: result.adopted.threshold, metadata: meta })
        : setMetadata(bytes, meta);
    } catch (err) {
      // A graph the head cannot be put into (not one nextray export wrote): name the model file.
      if (err instanceof OnnxModelError) err.message = `--model ${o.model}: ${err.message}`;
      throw err;
    }
    writeFileAtomic(o.out, chunks);
    written.model = o.out;
  }
  if (o.headOut && result.adopted) {
    writeFileAtomic(o.headOut, serializeHeadFile(makeHeadFile(result.adopted, base, record)));
    written.head = o.headOut;
  }
  return {
    result,
    record,
    base,
    images: { listed: local.images.length, used: out.kept.length, bad: out.bad, problems: local.problems },
    written,
    seconds: { features: featureSeconds, fit: fitSeconds },
    grey,
    greyNote,
    filterNote,
  };
}
