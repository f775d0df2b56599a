/**
 * The model card: one typed description of a trained model, in the spirit of torchvision's weights enums (each
 * `Weights` entry carries its transforms and a `meta` dict: categories, recipe, metrics, file size). What the model
 * is (architecture, input size, preprocessing, head), how it decides (decision threshold and the operating point
 * it came from, temperature, OOD gate), what it was trained on and how (training summary, dataset fingerprint),
 * what made it (versions) and which bytes it is (sha256), and, for a model adapted to a site, the adaptation.
 *
 * Every place a model is described is a serialisation of this one type, with one serialise / parse pair each:
 *   - the checkpoint's model.json          cardToCheckpoint / cardFromCheckpoint
 *   - the ONNX export's metadata_props     cardToOnnxMetadata / cardFromOnnxMetadata
 *   - JSON (the page, the REST server)     cardToJson / cardFromJson
 * Files written before a field existed still load: every field beyond the model's shape is optional.
 *
 * Browser-safe (pure data).
 */
import { validatePreprocessing, type Preprocessing } from '../data/preprocess.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../util/errors.js';
import { parseOodMetadata } from './onnx/extras.js';

/** How the decision threshold was chosen. */
export interface OperatingPoint {
  /**
   * 'max-kappa': the threshold maximising Cohen's kappa on the fitting data (what training and `nextray calibrate`
   * choose by default); 'sensitivity-target': the largest threshold reaching `targetSensitivity` on the fitting
   * data (src/evaluate threshold rule); 'default': the untuned 0.5; other rules may be added by name.
   */
  rule: 'max-kappa' | 'sensitivity-target' | 'default' | (string & {});
  threshold: number;
  /** The sensitivity asked for (rule 'sensitivity-target'). */
  targetSensitivity?: number;
  /** What the threshold reached on the data it was fitted on. */
  sensitivity?: number;
  /** Null when that data held no normal case. */
  specificity?: number | null;
  /** Cohen's kappa at the threshold on that data; null when it held one class only. */
  kappa?: number | null;
  /** Cases and abnormal cases it was fitted on. */
  cases?: number;
  positives?: number;
  /** Whether the cases were images or studies (mean of views). */
  level: 'image' | 'study';
  /** Which split it was fitted on, e.g. 'validation'. */
  fittedOn: string;
}

/** Temperature scaling: the logit is divided by `value` before the sigmoid. */
export interface TemperatureCard {
  value: number;
  /** Whether it was fitted on image logits or study-level outputs. */
  level: 'image' | 'study';
  fittedOn: string;
  images?: number;
  studies?: number;
  nllBefore?: number;
  nllAfter?: number;
  /** Image-level ECE at T = 1 and at the chosen T. */
  eceBefore?: number;
  eceAfter?: number;
  /** Study-level ECE at T = 1 and at the chosen T. */
  studyEceBefore?: number;
  studyEceAfter?: number;
  /** Both fits, for the record: the image-level and the study-level temperature. */
  candidates?: { image: number; study: number };
}

/** A summary of the out-of-distribution gate (the statistics themselves live in the graph / model.json). */
export interface OodGateCard {
  method: 'mahalanobis';
  threshold: number;
  /** The quantile of the fitting images' scores the threshold sits at. */
  quantile: number;
  /** Which split it was fitted on (the statistics), e.g. 'train'; and the scores the threshold came from. */
  fittedOn: string;
  thresholdFittedOn?: string;
  images: number;
  layers?: string[];
  dim?: number;
  /** Share of images flagged at the threshold, per split (test only when the split has one). */
  flagRates?: { train: number; validation: number; test?: number };
}

/** What the training run was, in brief. */
export interface TrainingSummary {
  epochs?: number;
  bestEpoch?: number;
  selectBy?: string;
  loss?: string;
  optimizer?: string;
  learningRate?: number;
  batchSize?: number;
  seed?: number | string;
  engine?: string;
  /** Validation metrics at the chosen epoch (image level), e.g. { val_auc: 0.91 }. */
  validationMetrics?: Record<string, number>;
  [extra: string]: unknown;
}

/** Which data the model saw. */
export interface DatasetCard {
  fingerprint: string;
  /** 'synthetic' for the generator's data, else 'mura' (the research-use notice errs on the safe side). */
  kind?: 'mura' | 'synthetic';
  name?: string;
  trainImages?: number;
  valImages?: number;
}

/** A model adapted to a site's data from a base model. */
export interface AdaptationCard {
  /** SHA-256 of the base model the adaptation started from. */
  baseSha256: string;
  /** Images (and studies) of site data used. */
  images: number;
  studies?: number;
  /** ISO 8601 date. */
  date: string;
  /** Metrics measured on held-out site data, e.g. { auc: 0.88 }. */
  metrics?: Record<string, number>;
}

export interface ModelCard {
  /** Short name (a file or folder base name). */
  name: string;
  /** Architecture id as the model registry knows it, e.g. 'resnet152'. */
  arch: string;
  /** Height = width of the model input. */
  inputSize: number;
  preprocessing: Preprocessing;
  head: { kind: 'binary' | 'imagenet'; outputs: number; dropout?: number };
  /** Binary head: abnormal when probability > threshold (src/evaluate's rule); null for a multi-class head. */
  decisionThreshold: number | null;
  operatingPoint?: OperatingPoint;
  temperature?: TemperatureCard;
  ood?: OodGateCard;
  training?: TrainingSummary;
  dataset?: DatasetCard;
  /** Versions of what made it (nextray, TF.js, ...). */
  versions?: Record<string, string>;
  /** SHA-256 (hex) identifying the model: of the .onnx file, or of a checkpoint's manifest. */
  sha256?: string;
  adaptation?: AdaptationCard;
}

/** A card that cannot be read (a field of the wrong type); the message names the field and where it came from. */
export class ModelCardError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_MODEL_CARD', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'ModelCardError';
  }
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const str = (v: unknown): v is string => typeof v === 'string';

/** A JSON object from metadata text, or null when the text is not one. */
function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function check(ok: boolean, where: string, field: string, why: string): void {
  if (!ok) throw new ModelCardError(`${where}: model card field '${field}' ${why}`);
}

/** Checks the optional sections' types (the shape fields are checked by whoever parsed them). */
function checkOptional(c: ModelCard, where: string): void {
  if (c.operatingPoint !== undefined) {
    const o = c.operatingPoint;
    check(!!o && str(o.rule) && num(o.threshold) && (o.level === 'image' || o.level === 'study') && str(o.fittedOn), where, 'operatingPoint', 'needs rule, threshold, level (image | study) and fittedOn');
  }
  if (c.temperature !== undefined) {
    const t = c.temperature;
    check(!!t && num(t.value) && t.value > 0 && (t.level === 'image' || t.level === 'study') && str(t.fittedOn), where, 'temperature', 'needs value > 0, level (image | study) and fittedOn');
  }
  if (c.ood !== undefined) {
    const g = c.ood;
    check(!!g && g.method === 'mahalanobis' && num(g.threshold) && num(g.quantile) && str(g.fittedOn) && num(g.images), where, 'ood', 'needs method mahalanobis, threshold, quantile, fittedOn and images');
  }
  if (c.dataset !== undefined) check(!!c.dataset && str(c.dataset.fingerprint), where, 'dataset', 'needs a fingerprint');
  if (c.adaptation !== undefined) {
    const a = c.adaptation;
    check(!!a && str(a.baseSha256) && num(a.images) && str(a.date), where, 'adaptation', 'needs baseSha256, images and date');
  }
  if (c.versions !== undefined) check(!!c.versions && Object.values(c.versions).every(str), where, 'versions', 'must map names to version strings');
  if (c.sha256 !== undefined) check(str(c.sha256) && /^[0-9a-f]{64}(\+[0-9a-f]{64})*$/.test(c.sha256), where, 'sha256', 'must be hex SHA-256');
}

/** The optional sections of a card, present ones only (the part the ONNX metadata key `model_card` holds). */
function optionalSections(c: ModelCard): Partial<ModelCard> {
  const out: Partial<ModelCard> = {};
  for (const k of ['operatingPoint', 'temperature', 'ood', 'training', 'dataset', 'versions', 'sha256', 'adaptation'] as const) {
    if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON (the page, the REST server)

/** The card as JSON text. */
export function cardToJson(card: ModelCard): string {
  return JSON.stringify(card);
}

/** A card from JSON text (what cardToJson wrote); `where` names the source in errors. */
export function cardFromJson(text: string, where = 'model card'): ModelCard {
  let c: ModelCard;
  try {
    c = JSON.parse(text) as ModelCard;
  } catch (err) {
    throw new ModelCardError(`${where}: not JSON (${(err as Error).message})`);
  }
  check(!!c && typeof c === 'object', where, '(card)', 'must be an object');
  check(str(c.name) && str(c.arch), where, 'name/arch', 'must be strings');
  check(Number.isInteger(c.inputSize) && c.inputSize > 0, where, 'inputSize', 'must be a positive integer');
  try {
    c.preprocessing = validatePreprocessing(c.preprocessing, `${where}: preprocessing`);
  } catch (err) {
    throw new ModelCardError((err as Error).message);
  }
  check(!!c.head && (c.head.kind === 'binary' || c.head.kind === 'imagenet') && Number.isInteger(c.head.outputs), where, 'head', "must be { kind: 'binary' | 'imagenet', outputs }");
  check(c.decisionThreshold === null || (num(c.decisionThreshold) && c.decisionThreshold >= 0 && c.decisionThreshold <= 1), where, 'decisionThreshold', 'must be a number in [0, 1] or null');
  checkOptional(c, where);
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX metadata_props (src/models/onnx/export.ts writes them, info.ts reads them)

/** The metadata key holding the card's optional sections as JSON. */
export const ONNX_CARD_KEY = 'model_card';

/**
 * The metadata_props that describe the model: the exporter's own keys for the model's shape and decision
 * (arch, input_size, preprocessing, head, decision_threshold, temperature) plus `model_card` (JSON of the optional
 * sections). The graph's own keys (format, layout, outputs, the OOD gate's statistics in `ood`) are the exporter's.
 */
export function cardToOnnxMetadata(card: ModelCard): Record<string, string> {
  const optional = optionalSections(card);
  return {
    arch: card.arch,
    input_size: String(card.inputSize),
    preprocessing: JSON.stringify(card.preprocessing),
    head: JSON.stringify(card.head),
    decision_threshold: card.decisionThreshold === null ? '' : String(card.decisionThreshold),
    ...(card.temperature && card.temperature.value !== 1 ? { temperature: String(card.temperature.value) } : {}),
    ...(Object.keys(optional).length ? { [ONNX_CARD_KEY]: JSON.stringify(optional) } : {}),
  };
}

/**
 * The card of an exported model from its metadata_props. Files exported before `model_card` existed still give a
 * card: temperature and the OOD gate's summary come from the keys `temperature` and `ood`.
 */
export function cardFromOnnxMetadata(m: Readonly<Record<string, string>>, name: string, where = name): ModelCard {
  const inputSize = Number(m.input_size);
  check(Number.isInteger(inputSize) && inputSize > 0, where, 'input_size', 'must be a positive integer');
  let preprocessing: Preprocessing;
  let head: ModelCard['head'];
  try {
    preprocessing = validatePreprocessing(JSON.parse(m.preprocessing ?? 'null'), `${where}: metadata 'preprocessing'`);
    head = JSON.parse(m.head ?? 'null') as ModelCard['head'];
  } catch (err) {
    throw new ModelCardError(err instanceof SyntaxError ? `${where}: metadata 'preprocessing' or 'head' is not JSON` : (err as Error).message);
  }
  check(!!head && (head.kind === 'binary' || head.kind === 'imagenet'), where, 'head', "must be { kind: 'binary' | 'imagenet', outputs }");
  const threshold = m.decision_threshold === undefined || m.decision_threshold === '' ? null : Number(m.decision_threshold);
  check(threshold === null || (threshold >= 0 && threshold <= 1), where, 'decision_threshold', 'must be a number in [0, 1]');
  let optional: Partial<ModelCard> = {};
  if (m[ONNX_CARD_KEY] !== undefined) {
    try {
      optional = JSON.parse(m[ONNX_CARD_KEY]) as Partial<ModelCard>;
    } catch {
      throw new ModelCardError(`${where}: metadata '${ONNX_CARD_KEY}' is not JSON`);
    }
  }
  const card: ModelCard = { name, arch: m.arch ?? 'unknown', inputSize, preprocessing, head, decisionThreshold: threshold, ...optional };
  // Older exports: what the graph carries, summarised.
  if (!card.temperature && m.temperature !== undefined && Number(m.temperature) !== 1) {
    card.temperature = { value: Number(m.temperature), level: 'image', fittedOn: 'unknown' };
  }
  // The reader of the model's info (info.ts) names a broken `ood`; the card just has no summary of it.
  const g = card.ood ? null : parseOodMetadata(m.ood).ood;
  if (g) {
    card.ood = { method: g.method, threshold: g.threshold, quantile: g.quantile, fittedOn: 'unknown', images: g.images, ...(g.layers ? { layers: g.layers } : {}), ...(g.dim ? { dim: g.dim } : {}) };
  }
  if (!card.versions && m.nextray_version) card.versions = { nextray: m.nextray_version };
  // Older exports of a checkpoint: what it was trained on and how it scored, as `export --checkpoint` records them
  // beside the card (metadata `dataset`, `validation_metrics`; src/cli/export.ts trainingFacts).
  if (!card.dataset && m.dataset !== undefined) {
    const d = parseJsonObject(m.dataset);
    if (d && str(d.fingerprint)) {
      card.dataset = {
        fingerprint: d.fingerprint,
        ...(d.kind === 'mura' || d.kind === 'synthetic' ? { kind: d.kind } : {}),
        ...(str(d.name) && d.name ? { name: d.name } : {}),
        ...(num(d.train_images) ? { trainImages: d.train_images } : {}),
        ...(num(d.val_images) ? { valImages: d.val_images } : {}),
      };
    }
  }
  if (!card.training?.validationMetrics && m.validation_metrics !== undefined) {
    const v = parseJsonObject(m.validation_metrics);
    const metrics = v ? Object.fromEntries(Object.entries(v).filter(([k, x]) => k !== 'epoch' && num(x))) as Record<string, number> : {};
    if (Object.keys(metrics).length) card.training = { ...card.training, validationMetrics: metrics };
  }
  checkOptional(card, where);
  return card;
}

// ---------------------------------------------------------------------------------------------------------------
// The checkpoint's model.json (src/models/weights/checkpoint.ts; trust fields under extra.trust, as
// src/calibrate/trust.ts writes them)

/** The parts of model.json a card is read from and written to. */
export interface CheckpointCardFields {
  arch: string;
  inputShape: number[];
  preprocessing: Preprocessing;
  head: { kind: string; [k: string]: unknown };
  decisionThreshold: number;
  training?: Record<string, unknown>;
  dataset?: { fingerprint: string; [k: string]: unknown };
  versions?: Record<string, string>;
  extra?: Record<string, unknown>;
}

interface StoredTrust {
  temperature?: { value: number; fittedOn: string; level?: 'image' | 'study'; images?: number; studies?: number; nllBefore?: number; nllAfter?: number; eceBefore?: number; eceAfter?: number; studyEceBefore?: number; studyEceAfter?: number; candidates?: { image: number; study: number } };
  /** `thresholdFrom` is what src/calibrate/trust.ts writes (the split whose score quantile is the threshold). */
  ood?: { method: 'mahalanobis'; threshold: number; quantile: number; images: number; layers?: string[]; dim?: number; fittedOn?: string; thresholdFittedOn?: string; thresholdFrom?: string; flagRates?: { train: number; validation: number; test?: number } };
  operatingPoint?: {
    threshold: number;
    rule?: string;
    targetSensitivity?: number;
    validationSensitivity?: number;
    validationSpecificity?: number | null;
    validationKappa?: number | null;
    validationCases?: number;
    validationPositives?: number;
    level: 'image' | 'study';
    fittedOn: string;
  };
}

/** The card of a checkpoint (model.json); `sha256` is the checkpoint's identity when the caller computed it. */
export function cardFromCheckpoint(meta: CheckpointCardFields, name: string, sha256?: string): ModelCard {
  const dropout = typeof meta.head.dropout === 'number' ? meta.head.dropout : undefined;
  const head: ModelCard['head'] = meta.head.kind === 'imagenet' ? { kind: 'imagenet', outputs: Number(meta.head.units ?? meta.head.outputs ?? 1000) } : { kind: 'binary', outputs: 1, ...(dropout !== undefined ? { dropout } : {}) };
  const card: ModelCard = { name, arch: meta.arch, inputSize: meta.inputShape[0] ?? meta.preprocessing.size, preprocessing: meta.preprocessing, head, decisionThreshold: head.kind === 'binary' ? meta.decisionThreshold : null };
  const trust = ((meta.extra as { trust?: StoredTrust } | undefined)?.trust ?? {}) as StoredTrust;
  if (trust.operatingPoint) {
    const o = trust.operatingPoint;
    card.operatingPoint = {
      rule: o.rule ?? (o.targetSensitivity !== undefined ? 'sensitivity-target' : 'default'),
      threshold: o.threshold,
      ...(o.targetSensitivity !== undefined ? { targetSensitivity: o.targetSensitivity } : {}),
      ...(o.validationSensitivity !== undefined ? { sensitivity: o.validationSensitivity } : {}),
      ...(o.validationSpecificity !== undefined ? { specificity: o.validationSpecificity } : {}),
      ...(o.validationKappa !== undefined ? { kappa: o.validationKappa } : {}),
      ...(o.validationCases !== undefined ? { cases: o.validationCases } : {}),
      ...(o.validationPositives !== undefined ? { positives: o.validationPositives } : {}),
      level: o.level,
      fittedOn: o.fittedOn,
    };
  }
  if (trust.temperature) {
    const { value, fittedOn, level, ...rest } = trust.temperature;
    card.temperature = { value, level: level ?? 'image', fittedOn, ...rest };
  }
  if (trust.ood) {
    const g = trust.ood;
    card.ood = {
      method: g.method,
      threshold: g.threshold,
      quantile: g.quantile,
      fittedOn: g.fittedOn ?? 'train',
      ...(g.thresholdFittedOn ?? g.thresholdFrom ? { thresholdFittedOn: (g.thresholdFittedOn ?? g.thresholdFrom)! } : {}),
      images: g.images,
      ...(g.layers ? { layers: [...g.layers] } : {}),
      ...(g.dim !== undefined ? { dim: g.dim } : {}),
      ...(g.flagRates ? { flagRates: { ...g.flagRates } } : {}),
    };
  }
  const extraCard = (meta.extra as { card?: Partial<ModelCard> } | undefined)?.card;
  if (meta.training) card.training = { ...(extraCard?.training ?? {}), ...summariseTraining(meta.training) };
  else if (extraCard?.training) card.training = extraCard.training;
  if (meta.dataset) {
    const d = meta.dataset;
    card.dataset = {
      fingerprint: d.fingerprint,
      ...(extraCard?.dataset?.kind ? { kind: extraCard.dataset.kind } : {}),
      ...(extraCard?.dataset?.name ? { name: extraCard.dataset.name } : typeof d.root === 'string' && d.root ? { name: d.root.split(/[\\/]/).filter(Boolean).pop()! } : {}),
      ...(typeof d.train_images === 'number' ? { trainImages: d.train_images } : {}),
      ...(typeof d.val_images === 'number' ? { valImages: d.val_images } : {}),
    };
  }
  if (meta.versions) card.versions = { ...meta.versions };
  if (sha256) card.sha256 = sha256;
  if (extraCard?.adaptation) card.adaptation = extraCard.adaptation;
  checkOptional(card, name);
  return card;
}

/** A training summary from model.json's free-form `training` (the trainer's config, state and engine). */
function summariseTraining(t: Record<string, unknown>): TrainingSummary {
  const config = (t.config ?? {}) as Record<string, unknown>;
  const state = (t.state ?? {}) as Record<string, unknown>;
  const out: TrainingSummary = {};
  if (num(state.epoch)) out.epochs = state.epoch;
  if (num(state.bestEpoch)) out.bestEpoch = state.bestEpoch;
  if (str(config.selectBy)) out.selectBy = config.selectBy;
  if (str(config.loss)) out.loss = config.loss;
  if (num(config.lr)) out.learningRate = config.lr;
  if (num(config.batchSize)) out.batchSize = config.batchSize;
  if (num(config.seed) || str(config.seed)) out.seed = config.seed;
  if (str(t.engine)) out.engine = t.engine;
  return out;
}

/**
 * The model.json fields that carry a card: the shape fields, extra.trust (operating point, temperature, OOD
 * summary fields beside the gate's statistics, which the caller keeps) and extra.card (the sections model.json
 * has no field of its own for: dataset kind, training summary, adaptation). `base` is the model.json being
 * rewritten: its training, dataset and extra are kept and the card's sections laid over them.
 */
export function cardToCheckpoint(card: ModelCard, base: Partial<CheckpointCardFields> = {}): CheckpointCardFields {
  const baseExtra = (base.extra ?? {}) as Record<string, unknown>;
  const baseTrust = ((baseExtra.trust ?? {}) as Record<string, unknown>) ?? {};
  const trust: Record<string, unknown> = { ...baseTrust };
  if (card.operatingPoint) {
    const o = card.operatingPoint;
    trust.operatingPoint = {
      threshold: o.threshold,
      rule: o.rule,
      ...(o.targetSensitivity !== undefined ? { targetSensitivity: o.targetSensitivity } : {}),
      ...(o.sensitivity !== undefined ? { validationSensitivity: o.sensitivity } : {}),
      ...(o.specificity !== undefined ? { validationSpecificity: o.specificity } : {}),
      ...(o.kappa !== undefined ? { validationKappa: o.kappa } : {}),
      ...(o.cases !== undefined ? { validationCases: o.cases } : {}),
      ...(o.positives !== undefined ? { validationPositives: o.positives } : {}),
      level: o.level,
      fittedOn: o.fittedOn,
    };
  }
  if (card.temperature) trust.temperature = { ...((baseTrust.temperature as object) ?? {}), ...card.temperature };
  if (card.ood) trust.ood = { ...((baseTrust.ood as object) ?? {}), ...card.ood };
  const extraCard: Partial<ModelCard> = {};
  if (card.training) extraCard.training = card.training;
  if (card.dataset && (card.dataset.kind || card.dataset.name)) {
    extraCard.dataset = { fingerprint: card.dataset.fingerprint, ...(card.dataset.kind ? { kind: card.dataset.kind } : {}), ...(card.dataset.name ? { name: card.dataset.name } : {}) };
  }
  if (card.adaptation) extraCard.adaptation = card.adaptation;
  const extra: Record<string, unknown> = { ...baseExtra, ...(Object.keys(trust).length ? { trust } : {}), ...(Object.keys(extraCard).length ? { card: extraCard } : {}) };
  const dataset = card.dataset
    ? {
        ...(base.dataset ?? {}),
        fingerprint: card.dataset.fingerprint,
        ...(card.dataset.trainImages !== undefined ? { train_images: card.dataset.trainImages } : {}),
        ...(card.dataset.valImages !== undefined ? { val_images: card.dataset.valImages } : {}),
      }
    : base.dataset;
  return {
    arch: card.arch,
    inputShape: [card.inputSize, card.inputSize, 3],
    preprocessing: card.preprocessing,
    head: card.head.kind === 'binary' ? { ...(base.head ?? { kind: 'dropout-dense-sigmoid', units: 1 }), ...(card.head.dropout !== undefined ? { dropout: card.head.dropout } : {}) } : { kind: 'imagenet', units: card.head.outputs },
    decisionThreshold: card.decisionThreshold ?? 0.5,
    ...(base.training ? { training: base.training } : {}),
    ...(dataset ? { dataset } : {}),
    ...(card.versions ? { versions: { ...card.versions } } : base.versions ? { versions: base.versions } : {}),
    ...(Object.keys(extra).length ? { extra } : {}),
  };
}
