/**
 * The training configuration: every field, its default (the seed report's chosen model: ResNet-152, Adam lr 1e-5,
 * L2 0.1 on the head's kernel, dropout 0.5, 148 layers frozen, batch 16, random horizontal flips), its CLI flag,
 * and validation with messages that name the field and the source (config file or flag).
 *
 * A config file is JSON with any subset of the fields below (camelCase, as in `config.json` of a run directory);
 * flags override the file; defaults fill the rest. The resolved config is written to the run directory, so a run
 * can always be repeated from its own config.json.
 */
import { readFileSync } from 'node:fs';
import { isRegion, type Region } from '../data/types.js';
import type { EngineName, Precision } from '../engine/index.js';
import { PRECISIONS } from '../engine/options.js';
import { LOSS_KINDS, type LossKind, type RegionWeights } from './losses.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../util/errors.js';
import { ALL_ARCHS } from '../models/registry.js';

/**
 * Validation metrics that can pick the best checkpoint (higher is better; losses are negated):
 *   kappa    study-level Cohen's kappa at its maximum-kappa threshold — the decision the model will be used at
 *            (the default: it is the report's headline metric, measured at the operating point `calibrate` stores);
 *   nll      image NLL after temperature scaling on validation — probability quality without the scale of the logits;
 *   auc, recall (at 0.5), accuracy (at 0.5), loss (BCE).
 */
export const SELECT_METRICS = ['kappa', 'nll', 'recall', 'auc', 'accuracy', 'loss'] as const;
export type SelectMetric = (typeof SELECT_METRICS)[number];

export interface TrainConfig {
  /** Dataset folder (MURA-v1.1 layout, real or synthetic). */
  data: string;
  /** Split file (JSON/CSV from `nextray data split`); null: created from `seed` and `valFraction`, saved in the run. */
  split: string | null;
  /** Fraction of MURA valid used for validation when the split is created here (the rest is the test set). */
  valFraction: number;
  arch: string;
  /** Starting weights (torchvision ImageNet .pth / .safetensors); null: from scratch (seeded init). */
  weights: string | null;
  inputSize: number;
  resize: 'pad' | 'stretch';
  dropout: number;
  /** Keras-style L2 on the head's dense kernel: loss += l2 * sum(w^2). */
  l2: number;
  frozenLayers: number;
  batchSize: number;
  lr: number;
  beta1: number;
  beta2: number;
  /** Adam epsilon (PyTorch's default; Keras uses 1e-7). */
  epsilon: number;
  epochs: number;
  hflip: boolean;
  /** Random rotation up to +/- this many degrees (0 = none). */
  rotation: number;
  loss: LossKind;
  /**
   * For loss 'region-weighted': a fixed weight per region (regions not named get 1), or 'validation' to derive
   * them after every epoch from the validation loss per region (see losses.ts regionWeightsFromValidation).
   */
  regionWeights: RegionWeights | 'validation';
  /** Divide the learning rate by 10 after this many epochs without a lower validation loss (0 = never). */
  plateauPatience: number;
  /** Stop after this many epochs without improving `selectBy` (0 = never). */
  earlyStopPatience: number;
  /**
   * Validation metric that picks the best checkpoint. Default 'kappa' (study-level kappa at the validation-chosen
   * threshold): the seed report chose by recall at 0.5, which rewards an epoch that calls nearly everything abnormal.
   */
  selectBy: SelectMetric;
  seed: number;
  engine: EngineName;
  /**
   * The training steps' convolutions: 'bf16' (native engine on a CPU with avx512_core_bf16 or AMX) reads bfloat16
   * copies of activations, filters and gradients; weights, batch-norm statistics and Adam stay float32, and
   * validation, evaluation and export run in float32. Elsewhere bf16 trains in float32 (one line on stderr).
   */
  precision: Precision;
  /** Image-decoding worker threads (0 = decode on the training thread). */
  workers: number;
  /** Memory for decoded images kept across epochs (training and validation), in MiB; 0 = decode every epoch. */
  cacheMb: number;
  /** Use at most this many training / validation images (a seeded, patient-agnostic random subset); 0 = all. */
  maxTrainImages: number;
  maxValImages: number;
  /**
   * The frozen-feature cache (src/train/feature-cache/): 'auto' (default) caches the frozen prefix's output in the
   * default folder (`nextray-features` beside the dataset's MURA-v1.1 folder, else ~/.cache/nextray/features) where
   * it can be cached exactly, and trains uncached with one line saying why where it cannot; a folder path does the
   * same in that folder and makes a configuration that cannot be cached a usage error; 'off' never caches.
   */
  featureCache: string;
  /**
   * How cached prefix outputs are stored: 'fp16' (half the disk and reads; features rounded to float16, also when
   * they are computed rather than read, so a run does not depend on what the cache held) or 'fp32' (exact).
   */
  featurePrecision: 'fp16' | 'fp32';
}

export const DEFAULT_CONFIG: Readonly<Omit<TrainConfig, 'data'>> = Object.freeze({
  split: null,
  valFraction: 0.8,
  arch: 'resnet152',
  weights: null,
  inputSize: 320,
  resize: 'pad',
  dropout: 0.5,
  l2: 0.1,
  frozenLayers: 148,
  batchSize: 16,
  lr: 1e-5,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  epochs: 10,
  hflip: true,
  rotation: 0,
  loss: 'bce',
  regionWeights: 'validation',
  plateauPatience: 2,
  earlyStopPatience: 5,
  selectBy: 'kappa',
  seed: 0,
  engine: 'auto',
  precision: 'fp32',
  workers: 2,
  cacheMb: 1024,
  maxTrainImages: 0,
  maxValImages: 0,
  featureCache: 'auto',
  featurePrecision: 'fp16',
});

/** Field -> CLI flag (for messages and --help); every field has one. */
export const CONFIG_FLAGS: Readonly<Record<keyof TrainConfig, string>> = Object.freeze({
  data: '--data',
  split: '--split',
  valFraction: '--val-fraction',
  arch: '--arch',
  weights: '--weights',
  inputSize: '--input-size',
  resize: '--resize',
  dropout: '--dropout',
  l2: '--l2',
  frozenLayers: '--frozen',
  batchSize: '--batch-size',
  lr: '--lr',
  beta1: '--beta1',
  beta2: '--beta2',
  epsilon: '--epsilon',
  epochs: '--epochs',
  hflip: '--hflip / --no-hflip',
  rotation: '--rotation',
  loss: '--loss',
  regionWeights: '--region-weights',
  plateauPatience: '--plateau-patience',
  earlyStopPatience: '--early-stop',
  selectBy: '--select-by',
  seed: '--seed',
  engine: '--engine',
  precision: '--precision',
  workers: '--workers',
  cacheMb: '--cache-mb',
  maxTrainImages: '--max-train-images',
  maxValImages: '--max-val-images',
  featureCache: '--feature-cache DIR / --no-feature-cache',
  featurePrecision: '--feature-precision',
});

const ENGINES: readonly EngineName[] = ['auto', 'cpu', 'native', 'tfjs-node'];

export class ConfigError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_CONFIG', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'ConfigError';
  }
}

/**
 * Parses `--region-weights`: 'validation', or `XR_WRIST=2,XR_HAND=1.5` (regions not named get 1), or a JSON object.
 */
export function parseRegionWeights(value: unknown, where: string): RegionWeights | 'validation' {
  if (value === 'validation') return 'validation';
  let obj: unknown = value;
  if (typeof value === 'string') {
    const s = value.trim();
    if (s.startsWith('{')) {
      try {
        obj = JSON.parse(s);
      } catch (err) {
        throw new ConfigError(`${where}: not valid JSON (${(err as Error).message})`);
      }
    } else {
      obj = Object.fromEntries(
        s.split(',').filter(Boolean).map((kv) => {
          const [k, v] = kv.split('=');
          return [k?.trim(), Number(v)];
        }),
      );
    }
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError(`${where}: expected 'validation' or per-region weights like XR_WRIST=2,XR_HAND=1.5`);
  }
  const out: RegionWeights = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!isRegion(k)) throw new ConfigError(`${where}: unknown region '${k}' (regions are XR_ELBOW ... XR_WRIST)`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${where}: weight of ${k} must be a number >= 0, got ${JSON.stringify(v)}`);
    out[k as Region] = v;
  }
  return out;
}

type Check = (v: unknown) => string | null;
const num =
  (min: number, max: number, integer = false, minExclusive = false): Check =>
  (v) =>
    typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v > max || (minExclusive ? v <= min : v < min)
      ? `must be ${integer ? 'an integer' : 'a number'} in ${minExclusive ? '(' : '['}${min}, ${max}]`
      : null;
const oneOf =
  (values: readonly string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v) ? null : `must be one of ${values.join(', ')}`;
const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'must be a non-empty string');
const strOrNull: Check = (v) => (v === null || (typeof v === 'string' && v.length > 0) ? null : 'must be a path or null');
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'must be true or false');

const CHECKS: Record<keyof TrainConfig, Check> = {
  data: str,
  split: strOrNull,
  valFraction: num(0, 1, false, true),
  // Checked here, before a run folder exists: a typo must not leave a half-made run behind.
  arch: oneOf(ALL_ARCHS),
  weights: strOrNull,
  inputSize: num(32, 4096, true),
  resize: oneOf(['pad', 'stretch']),
  dropout: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'must be a number in [0, 1)'),
  l2: num(0, 1e6),
  frozenLayers: num(0, 100000, true),
  batchSize: num(1, 4096, true),
  lr: num(0, 10, false, true),
  beta1: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'must be a number in [0, 1)'),
  beta2: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'must be a number in [0, 1)'),
  epsilon: num(0, 1, false, true),
  epochs: num(1, 100000, true),
  hflip: bool,
  rotation: num(0, 180),
  loss: oneOf(LOSS_KINDS),
  regionWeights: () => null, // parsed by parseRegionWeights
  plateauPatience: num(0, 100000, true),
  earlyStopPatience: num(0, 100000, true),
  selectBy: oneOf(SELECT_METRICS),
  seed: num(0, 2 ** 32 - 1, true),
  engine: oneOf(ENGINES),
  precision: oneOf(PRECISIONS),
  workers: num(0, 64, true),
  cacheMb: num(0, 1e7, true),
  maxTrainImages: num(0, 1e9, true),
  maxValImages: num(0, 1e9, true),
  featureCache: (v) => (typeof v === 'string' && v.length > 0 ? null : "must be 'auto', 'off' or a folder path"),
  featurePrecision: oneOf(['fp16', 'fp32']),
};

/** Reads a JSON config file: an object with a subset of TrainConfig's fields; unknown fields are an error. */
export function readConfigFile(path: string): Partial<TrainConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${path}: a config file must be a JSON object`);
  return parsed as Partial<TrainConfig>;
}

/**
 * Defaults <- file <- flags, validated. `sources` names where the partials came from, for messages.
 * Unknown keys are rejected (a typo must not silently train with a default).
 */
export function resolveConfig(
  layers: { values: Record<string, unknown>; source: string }[],
): TrainConfig {
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG };
  const from: Record<string, string> = {};
  for (const { values, source } of layers) {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) continue;
      if (!(k in CHECKS)) {
        throw new ConfigError(`${source}: unknown config field '${k}'; known fields: ${Object.keys(CHECKS).join(', ')}`);
      }
      merged[k] = v;
      from[k] = source;
    }
  }
  const where = (k: string) => `${from[k] ?? 'default'}: ${k} (${CONFIG_FLAGS[k as keyof TrainConfig]})`;
  if (merged.data === undefined) throw new ConfigError(`no dataset: give --data DIR (or "data" in the config file)`);
  merged.regionWeights = parseRegionWeights(merged.regionWeights, where('regionWeights'));
  for (const [k, check] of Object.entries(CHECKS)) {
    const problem = check(merged[k]);
    if (problem) throw new ConfigError(`${where(k)} ${problem}, got ${JSON.stringify(merged[k])}`);
  }
  return merged as unknown as TrainConfig;
}

/** The fields that make two runs different experiments (everything but where/how it runs). */
export function experimentKey(c: TrainConfig): Record<string, unknown> {
  // Where the feature cache lives does not change a run; whether it is used does (fp16 features).
  const { engine: _e, workers: _w, cacheMb: _c, featureCache, ...rest } = c;
  return { ...rest, featureCache: featureCache === 'off' ? 'off' : 'on' };
}

/** The loss names, for CLI choices. */
export const LOSS_KINDS_FOR_CLI = LOSS_KINDS;
