/**
 * The adapted head as a small file (browser-safe): what `nextray adapt --head-out` writes and the page keeps in
 * IndexedDB, exports and imports. It holds the head in the offset form of adapt.ts (z' = z_base + x . dw + db,
 * p = sigmoid(z' / T)), the decision threshold, the SHA-256 of the exact model file it was fitted for (refused on
 * any other model: features of another model mean something else), and the adaptation record (data size, date,
 * held-out metrics, decision) that the adapted ONNX file carries as metadata `adaptation` too.
 *
 * JSON, UTF-8; the weights are little-endian float32 in base64 (a 2,048-feature head is about 11 kB).
 */
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';
import { base64ToFloats, floatsToBase64 } from '../../inference/core/ood.js';
import { validateGreyMap, type GreyMap } from '../../data/grey-map.js';
import { validateSiteFilter, type SiteFilter } from '../../data/site-filter.js';
import type { AdaptResult, FittedHead, HeldOutComparison, ThresholdRule } from './adapt.js';
import type { SitePrepTrial } from './site-prep.js';

export const ADAPTED_HEAD_FORMAT = 'nextray-adapted-head';
/**
 * 1: the head alone; 2: the head plus the site's grey map (`head.grey_map`: the features it reads come from mapped
 * images); 3: also the site filter (`head.site_filter`: overlay suppression, smoothing, unsharp mask, before the map). A head is
 * written with the lowest version that holds it, so that an older reader refuses what it could not apply rather than
 * applying the head to features of other images.
 */
export const ADAPTED_HEAD_FORMAT_VERSION = 3;

/** A head file or adaptation input the user must fix (exit 2), or a head made for another model. */
export class AdaptError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_ADAPT', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'AdaptError';
  }
}

/** The deployed model an adaptation was fitted for. */
export interface BaseModelInfo {
  /** SHA-256 (lowercase hex) of the .onnx file's bytes. */
  sha256: string;
  arch: string;
  featuresDim: number;
  /** Its own temperature and threshold (the "before"). */
  temperature: number;
  threshold: number;
}

type JsonMetrics = Record<string, number | null>;

/** What an adaptation did and measured; JSON-safe (metadata `adaptation` of an adapted model, and the head file). */
export interface AdaptationRecord {
  base_sha256: string;
  date: string;
  /** Where the local studies came from (a folder or CSV name; never image content). */
  source: string;
  data: {
    studies: number;
    images: number;
    patients: number;
    abnormal_studies: number;
    fit: { patients: number; studies: number; images: number; abnormal_studies: number };
    held_out: { patients: number; studies: number; images: number; abnormal_studies: number };
  };
  method: {
    head: 'logistic-l2-towards-base';
    /** The penalty chosen by cross-fitting; 'infinity' = the deployed weights with a shifted logit. */
    lambda: number | 'infinity';
    folds: number;
    /**
     * How the deployed head was made: 'bagged', the mean of `fold_heads` cross-fitting heads over `fold_splits` fold
     * splits; 'refit', one fit on the whole fitting part.
     */
    head_fit?: { head: 'bagged' | 'refit'; fold_heads: number; fold_splits: number };
    temperature: number;
    threshold: number;
    threshold_rule: string;
    held_out_fraction: number;
    min_studies_per_class: number;
    seed: string;
    /**
     * The site's grey-level normalisation (src/data/grey-map.ts) in front of the model, or null (none: no reference
     * quantiles of the training site, or the head alone fitted better inside the fitting part).
     */
    grey_normalisation?: GreyNormalisationRecord | null;
    /**
     * The site preprocessing candidates tried (src/calibrate/adapt/site-prep.ts), each with its cross-fitted log loss
     * inside the fitting part, and the one kept (null filter: none).
     */
    site_preprocessing?: { trials: SitePrepTrial[]; site_filter: SiteFilter | null; grey_map_used: boolean } | null;
  };
  held_out: {
    studies: number;
    abnormal: number;
    before: JsonMetrics;
    after: JsonMetrics;
    intervals_95: { before: Record<string, [number, number] | null>; after: Record<string, [number, number] | null>; difference: Record<string, [number, number] | null> };
    bootstrap_replicates: number;
  };
  too_small: boolean;
  decision: 'adapted' | 'kept-base';
  reason: string;
  improvement_claimed: boolean;
}

export interface GreyNormalisationRecord {
  /** Where the training site's reference quantiles came from, and on how many images. */
  reference_source: string;
  reference_images: number;
  /** Images of the fitting part whose grey levels were counted (never the held-out part). */
  fitted_images: number;
  /** The map's knots (grey levels in [0, 1]). */
  map: GreyMap;
  /** Cross-fitted image log loss inside the fitting part: head alone, head after the map (the lower one was used). */
  cv_log_loss: { head_only: number; with_map: number };
  used: boolean;
}

export interface AdaptedHeadFile {
  format: typeof ADAPTED_HEAD_FORMAT;
  format_version: number;
  base_model: { sha256: string; arch: string; features_dim: number; temperature: number; threshold: number };
  head: { form: 'offset'; delta_weight: string; delta_bias: number; temperature: number; threshold: number; grey_map?: GreyMap; site_filter?: SiteFilter };
  adaptation: AdaptationRecord;
}

export function ruleText(rule: ThresholdRule): string {
  return rule.kind === 'max-kappa' ? 'max-kappa' : `sensitivity-target-${rule.sensitivity}`;
}

function metricsJson(m: HeldOutComparison['before']): JsonMetrics {
  return { auc: m.auc, sensitivity: m.sensitivity, specificity: m.specificity, kappa: m.kappa, ece: m.ece, log_loss: m.logLoss, threshold: m.threshold };
}

function intervalsJson(r: Record<string, [number, number] | null>): Record<string, [number, number] | null> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k === 'logLoss' ? 'log_loss' : k, v]));
}

/** The record of an adaptation run (the caller supplies the date and source so the core stays deterministic). */
export function adaptationRecord(
  result: AdaptResult,
  ctx: { baseSha256: string; date: string; source: string; folds: number; heldOutFraction: number; minStudiesPerClass: number; seed: string; greyNormalisation?: GreyNormalisationRecord | null; sitePreprocessing?: { trials: SitePrepTrial[]; site_filter: SiteFilter | null; grey_map_used: boolean } | null },
): AdaptationRecord {
  const f = result.split.fit;
  const h = result.split.heldOut;
  const c = result.candidate;
  return {
    base_sha256: ctx.baseSha256,
    date: ctx.date,
    source: ctx.source,
    data: {
      studies: f.studies + h.studies,
      images: f.images + h.images,
      patients: f.patients + h.patients,
      abnormal_studies: f.abnormalStudies + h.abnormalStudies,
      fit: { patients: f.patients, studies: f.studies, images: f.images, abnormal_studies: f.abnormalStudies },
      held_out: { patients: h.patients, studies: h.studies, images: h.images, abnormal_studies: h.abnormalStudies },
    },
    method: {
      head: 'logistic-l2-towards-base',
      lambda: c.lambda === Infinity ? 'infinity' : c.lambda,
      folds: ctx.folds,
      ...(c.fit ? { head_fit: { head: c.fit.head, fold_heads: c.fit.folds, fold_splits: c.fit.repeats } } : {}),
      temperature: c.temperature,
      threshold: c.threshold,
      threshold_rule: ruleText(c.rule),
      held_out_fraction: ctx.heldOutFraction,
      min_studies_per_class: ctx.minStudiesPerClass,
      seed: ctx.seed,
      ...(ctx.greyNormalisation !== undefined ? { grey_normalisation: ctx.greyNormalisation } : {}),
      ...(ctx.sitePreprocessing !== undefined ? { site_preprocessing: ctx.sitePreprocessing } : {}),
    },
    held_out: {
      studies: result.heldOut.studies,
      abnormal: result.heldOut.abnormal,
      before: metricsJson(result.heldOut.before),
      after: metricsJson(result.heldOut.after),
      intervals_95: {
        before: intervalsJson(result.heldOut.intervals.before),
        after: intervalsJson(result.heldOut.intervals.after),
        difference: intervalsJson(result.heldOut.intervals.difference),
      },
      bootstrap_replicates: result.heldOut.replicates,
    },
    too_small: result.tooSmall,
    decision: result.decision,
    reason: result.decisionReason,
    improvement_claimed: result.improvementClaimed,
  };
}

export function makeHeadFile(head: FittedHead, base: BaseModelInfo, record: AdaptationRecord): AdaptedHeadFile {
  if (head.deltaWeight.length !== base.featuresDim) throw new RangeError(`head has ${head.deltaWeight.length} weights, the model ${base.featuresDim} features`);
  return {
    format: ADAPTED_HEAD_FORMAT,
    format_version: head.siteFilter ? 3 : head.greyMap ? 2 : 1,
    base_model: { sha256: base.sha256, arch: base.arch, features_dim: base.featuresDim, temperature: base.temperature, threshold: base.threshold },
    head: { form: 'offset', delta_weight: floatsToBase64(head.deltaWeight), delta_bias: head.deltaBias, temperature: head.temperature, threshold: head.threshold, ...(head.greyMap ? { grey_map: head.greyMap } : {}), ...(head.siteFilter ? { site_filter: head.siteFilter } : {}) },
    adaptation: record,
  };
}

export function serializeHeadFile(f: AdaptedHeadFile): string {
  return JSON.stringify(f, null, 1) + '\n';
}

/** The head of a file, decoded: what applyAdaptedHead needs. */
export interface LoadedHead {
  file: AdaptedHeadFile;
  deltaWeight: Float32Array;
  /** The site's grey map: the features the head reads must come from images preprocessed with it. */
  greyMap: GreyMap | null;
  /** The site filter (src/data/site-filter.ts), applied before the grey map: the features must come after it too. */
  siteFilter: SiteFilter | null;
}

/** Parses and checks a head file's text; `where` names it in errors. */
export function parseHeadFile(text: string, where = 'adapted head'): LoadedHead {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AdaptError(`${where}: not JSON (${(err as Error).message})`);
  }
  const f = raw as Partial<AdaptedHeadFile> | null;
  if (!f || typeof f !== 'object' || f.format !== ADAPTED_HEAD_FORMAT) throw new AdaptError(`${where}: not an adapted-head file (format ${JSON.stringify((f as { format?: unknown } | null)?.format ?? null)})`);
  if (f.format_version !== 1 && f.format_version !== 2 && f.format_version !== ADAPTED_HEAD_FORMAT_VERSION) throw new AdaptError(`${where}: format version ${String(f.format_version)} is not supported (this nextray reads ${ADAPTED_HEAD_FORMAT_VERSION})`);
  const b = f.base_model;
  const h = f.head;
  if (!b || typeof b.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.sha256) || !Number.isInteger(b.features_dim) || b.features_dim < 1) throw new AdaptError(`${where}: base_model must name the model's sha256 and features_dim`);
  if (!h || h.form !== 'offset' || typeof h.delta_weight !== 'string' || !Number.isFinite(h.delta_bias) || !(h.temperature > 0) || !(h.threshold >= 0 && h.threshold <= 1)) {
    throw new AdaptError(`${where}: head must hold form 'offset', delta_weight, delta_bias, temperature > 0 and threshold in [0, 1]`);
  }
  let deltaWeight: Float32Array;
  try {
    deltaWeight = base64ToFloats(h.delta_weight, `${where}: head.delta_weight`);
  } catch (err) {
    throw new AdaptError((err as Error).message);
  }
  if (deltaWeight.length !== b.features_dim) throw new AdaptError(`${where}: ${deltaWeight.length} weights for ${b.features_dim} features`);
  for (const v of deltaWeight) if (!Number.isFinite(v)) throw new AdaptError(`${where}: head.delta_weight holds a non-finite value`);
  let greyMap: GreyMap | null = null;
  if (h.grey_map !== undefined) {
    if (f.format_version < 2) throw new AdaptError(`${where}: head.grey_map needs format version 2`);
    try {
      greyMap = validateGreyMap(h.grey_map, `${where}: head.grey_map`);
    } catch (err) {
      throw new AdaptError((err as Error).message);
    }
  }
  let siteFilter: SiteFilter | null = null;
  if (h.site_filter !== undefined) {
    if (f.format_version < 3) throw new AdaptError(`${where}: head.site_filter needs format version 3`);
    try {
      siteFilter = validateSiteFilter(h.site_filter, `${where}: head.site_filter`);
    } catch (err) {
      throw new AdaptError((err as Error).message);
    }
  }
  return { file: f as AdaptedHeadFile, deltaWeight, greyMap, siteFilter };
}

/** Refuses a head fitted for another model file: features of another model mean something else. */
export function checkHeadBase(head: LoadedHead, modelSha256: string, where = 'adapted head'): void {
  const want = head.file.base_model.sha256;
  if (want !== modelSha256.toLowerCase()) {
    throw new AdaptError(`${where} was fitted for the model with SHA-256 ${want.slice(0, 12)}..., but the running model is ${modelSha256.slice(0, 12)}...; adapt this model again (or load the model it was made for)`, {
      hint: 'a head only fits the exact model file it was fitted with',
    });
  }
}

/**
 * The adapted logits (after the head's temperature) and probabilities of `n` images, from the model's `features`
 * (of images preprocessed with `head.greyMap` when the head has one)
 * [n, dim] and its `logits` output (divided by its own temperature `baseTemperature`, as the graph outputs it).
 */
export function applyAdaptedHead(head: LoadedHead, features: Float32Array, n: number, baseLogits: ArrayLike<number>, baseTemperature: number): { logits: Float64Array; probabilities: Float64Array } {
  const d = head.deltaWeight.length;
  if (features.length !== n * d) throw new AdaptError(`adapted head: ${features.length} feature values for ${n} images of ${d} features`);
  if (baseLogits.length !== n) throw new AdaptError(`adapted head: ${baseLogits.length} logits for ${n} images`);
  const t = head.file.head.temperature;
  const logits = new Float64Array(n);
  const probabilities = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let z = baseLogits[i]! * baseTemperature + head.file.head.delta_bias;
    for (let j = 0; j < d; j++) z += features[i * d + j]! * head.deltaWeight[j]!;
    z /= t;
    logits[i] = z;
    probabilities[i] = z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
  }
  return { logits, probabilities };
}
