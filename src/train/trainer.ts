/**
 * The training loop behind `nextray train`: data -> model -> Adam on a weighted BCE + L2, validation each epoch,
 * LR / 10 on a validation-loss plateau, early stopping, best/last checkpoints, metrics and a log in a run
 * directory (layout in run-dir.ts).
 *
 * Resuming is exact: everything an epoch depends on is either derived from (seed, epoch) — the loader's order
 * and augmentation (src/data/loader.ts), the dropout masks (reseeded here at every epoch start) — or saved in
 * `checkpoints/last` at the end of the previous epoch: weights and batchnorm statistics, Adam's moments and step,
 * the learning rate, the plateau / early-stopping counters, the best metric, the region weights and the metrics
 * history. So `nextray train --resume RUN` after a kill at any moment replays the same epochs bit for bit (on the
 * same backend) and ends with the weights an uninterrupted run would have.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { BatchLoader, ImageCache, type BadImage, type Batch } from '../data/loader.js';
import type { CachedInference, FeatureBatch } from './feature-cache/session.js';
import { loadMuraDataset, resolveMuraRoot, type MuraDataset } from '../data/mura.js';
import { makePreprocessing, type Preprocessing } from '../data/preprocess.js';
import { createSplit, loadSplit, selectSubset, writeSplit, type MuraSplitFile } from '../data/splits.js';
import { REGIONS, type ImageRecord, type Label, type Region } from '../data/types.js';
import { initEngine, leanVariableGrads, withPrecision, type EngineInfo, type Precision } from '../engine/index.js';
import { prepareScores, rocAuc } from '../evaluate/metrics.js';
import { studyProbabilities, temperatureScaledNll } from '../evaluate/calibration.js';
import { thresholdForMaxKappa } from '../evaluate/threshold.js';
import { Dropout, type Model, type NetworkModel } from '../models/index.js';
import { loadCheckpoint, readStateDict, saveCheckpoint, type CheckpointInfo } from '../models/weights/index.js';
import { createProgress } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { Adam } from './adam.js';
import { buildModel } from './archs.js';
import { resolveConfig, type SelectMetric, type TrainConfig } from './config.js';
import { batchWeights, bceScalar, l2Penalty, muraClassWeights, regionWeightsFromValidation, weightedBceMean, type RegionClassWeights, type RegionWeights } from './losses.js';
import { inferRecords } from './validate.js';
import { inferRecordsWith } from '../data/records.js';
import { checkFeatureCacheConfig, setUpFeatureCache, type FeatureMode } from './feature-cache/session.js';
import { roundToFp16 } from './feature-cache/fp16.js';
import { forwardFrozenFixed } from './feature-cache/prefix.js';
import { RunLog, runPaths, writeJson, writeMetricsFile, type EpochMetrics, type RunPaths } from '../runs/run-dir.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../util/errors.js';

/** What checkpoints/last carries besides tensors (in model.json's `training.state`). */
export interface TrainState {
  /** Epochs completed. */
  epochsDone: number;
  /** Adam updates so far. */
  step: number;
  lr: number;
  bestValue: number | null;
  bestEpoch: number | null;
  epochsWithoutImprovement: number;
  plateauBestLoss: number | null;
  plateauWait: number;
  regionWeights: RegionWeights;
  history: EpochMetrics[];
  done: boolean;
  stoppedEarly: boolean;
}

export interface TrainOptions {
  /** Run directory (created). */
  runDir: string;
  /** No progress bar, no log echo on stderr. */
  quiet?: boolean;
  /** Called after every completed epoch (the CLI prints JSON lines with it). */
  onEpoch?: (m: EpochMetrics) => void;
  /** Log lines are echoed here as well as written to train.log (default: stderr unless quiet). */
  echo?: ((line: string) => void) | null;
}

export interface TrainResult {
  runDir: string;
  state: TrainState;
  engine: EngineInfo;
  badImages: BadImage[];
  /** true when the run had already finished before this call (resume of a finished run). */
  alreadyDone: boolean;
}

export class TrainError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_TRAIN', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'TrainError';
  }
}

function initialState(config: TrainConfig): TrainState {
  return {
    epochsDone: 0,
    step: 0,
    lr: config.lr,
    bestValue: null,
    bestEpoch: null,
    epochsWithoutImprovement: 0,
    plateauBestLoss: null,
    plateauWait: 0,
    regionWeights: {},
    history: [],
    done: false,
    stoppedEarly: false,
  };
}

/** A seeded random subset of at most `max` records, kept in dataset order (0 = all). */
function limitRecords(records: ImageRecord[], max: number, seed: number, label: string): ImageRecord[] {
  if (!max || records.length <= max) return records;
  const idx = new Rng(seed).fork(label).shuffle(records.map((_, i) => i)).slice(0, max).sort((a, b) => a - b);
  return idx.map((i) => records[i]!);
}

/**
 * Points every dropout layer of the model at a fresh stream derived from (seed, epoch), so the masks of epoch e do
 * not depend on how many masks earlier epochs drew (which a resumed process never drew).
 */
function reseedDropout(model: Model, seed: number, epoch: number, dropoutRate: number): void {
  const network = (model as unknown as NetworkModel).network;
  const seen = new Set<object>();
  let found = 0;
  const visit = (obj: object) => {
    if (seen.has(obj)) return;
    seen.add(obj);
    if (obj instanceof Dropout) {
      // The model zoo's Dropout keeps its Rng in a private field; replacing it is the one way to reseed it.
      (obj as unknown as { rng: Rng }).rng = new Rng(seed).fork(`dropout/epoch-${epoch}/${found++}`);
      return;
    }
    for (const v of Object.values(obj)) if (v && typeof v === 'object' && !(v instanceof tf.Tensor) && !ArrayBuffer.isView(v)) visit(v as object);
  };
  if (network) visit(network);
  if (!found && dropoutRate > 0) {
    throw new TrainError(`${model.arch}: no dropout layer found to reseed; a resumed run would not repeat the uninterrupted one`);
  }
}

function selectValue(metric: SelectMetric, m: EpochMetrics): number | null {
  switch (metric) {
    case 'recall':
      return m.val_recall;
    case 'auc':
      return m.val_auc;
    case 'accuracy':
      return m.val_accuracy;
    case 'loss':
      return Number.isFinite(m.val_loss) ? -m.val_loss : null; // higher is better everywhere below
    case 'kappa':
      return m.val_kappa ?? null;
    case 'nll':
      return m.val_nll_t !== undefined && Number.isFinite(m.val_nll_t) ? -m.val_nll_t : null;
  }
}

interface Prepared {
  dataset: MuraDataset;
  split: MuraSplitFile;
  train: ImageRecord[];
  val: ImageRecord[];
  preprocessing: Preprocessing;
}

async function prepareData(config: TrainConfig, paths: RunPaths, log: RunLog): Promise<Prepared> {
  const dataset = await loadMuraDataset(config.data);
  if (dataset.issues.length) log.line(`dataset: ${dataset.issues.length} problem(s) found in ${dataset.root}; affected images are skipped (run 'nextray data summary' for the list)`);
  let split: MuraSplitFile;
  // A run killed before its first checkpoint may or may not have written split.json yet.
  if (existsSync(paths.split)) {
    split = loadSplit(paths.split, dataset);
  } else if (config.split) {
    split = loadSplit(config.split, dataset);
    writeSplit(paths.split, split, dataset, 'json');
  } else {
    split = createSplit(dataset, { valFraction: config.valFraction, seed: config.seed });
    writeSplit(paths.split, split, dataset, 'json');
    log.line(`split: created a patient-disjoint validation/test split of MURA valid (seed ${config.seed}, validation fraction ${config.valFraction})`);
  }
  const train = limitRecords(selectSubset(dataset, split, 'train').images, config.maxTrainImages, config.seed, 'train-subset');
  const val = limitRecords(selectSubset(dataset, split, 'validation').images, config.maxValImages, config.seed, 'val-subset');
  if (!train.length) throw new TrainError(`${dataset.root}: no training images (MURA train/ is empty or unreadable)`);
  if (!val.length) throw new TrainError(`${paths.split}: the validation subset has no images`);
  const preprocessing = makePreprocessing({ size: config.inputSize, resize: config.resize });
  return { dataset, split, train, val, preprocessing };
}

async function createRunModel(config: TrainConfig, log: RunLog): Promise<Model> {
  const model = buildModel(config.arch, { dropout: config.dropout, seed: config.seed, init: config.weights ? 'none' : 'random' });
  try {
    if (config.weights) {
      const sd = await readStateDict(config.weights);
      const report = model.loadStateDict(sd, { strict: true, layout: 'auto', ignoreClassifier: true, source: config.weights });
      log.line(`weights: loaded ${report.loaded.length} tensors from ${config.weights} (classifier replaced by the binary head)`);
    }
    if (config.frozenLayers > model.layerCount()) {
      throw new TrainError(`--frozen ${config.frozenLayers}: ${config.arch} has only ${model.layerCount()} layers (use at most ${model.layerCount()})`);
    }
    model.freezeLayers(config.frozenLayers);
    return model;
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** Named trainable variables (state_dict key -> variable), in state_dict order. */
function namedTrainables(model: Model): { name: string; variable: tf.Variable }[] {
  const trainable = new Set(model.trainableVariables());
  return [...model.stateDict()].filter(([, v]) => trainable.has(v)).map(([name, variable]) => ({ name, variable }));
}

function checkpointInfo(config: TrainConfig, prep: Prepared, state: TrainState, engine: EngineInfo): CheckpointInfo {
  return {
    arch: config.arch,
    inputShape: [config.inputSize, config.inputSize, 3],
    preprocessing: prep.preprocessing,
    head: { kind: 'dropout-dense-sigmoid', dropout: config.dropout, units: 1 },
    decisionThreshold: 0.5,
    training: { config: { ...config }, state: { ...state }, engine: engine.description },
    dataset: { fingerprint: prep.dataset.fingerprint, root: prep.dataset.root, split_seed: prep.split.seed, train_images: prep.train.length, val_images: prep.val.length },
  };
}

interface Validation {
  /** Validation samples whose prefix output was read from the feature cache / computed (cache in play only). */
  featuresCached?: number;
  featuresComputed?: number;
  loss: number;
  accuracy: number;
  recall: number | null;
  auc: number | null;
  kappa: number | null;
  threshold: number | null;
  nllT: number;
  lossByRegion: Partial<Record<Region, number>>;
  images: number;
}

async function validate(model: Model, prep: Prepared, config: TrainConfig, cache: ImageCache | undefined, fm: FeatureMode): Promise<Validation & { bad: BadImage[] }> {
  const opts = { preprocessing: prep.preprocessing, batchSize: config.batchSize, workers: config.workers, ...(cache ? { cache } : {}) };
  const size = prep.preprocessing.size;
  const res =
    fm.kind === 'cached'
      ? await fm.session.validate(model)
      : fm.kind === 'computed' || (fm.kind === 'off' && fm.fixedPrefix)
        ? await inferRecordsWith(async (x, n) => tf.tidy(() => model.forwardTrainable(frozenFeatures(fm, model, tf.tensor4d(x, [n, size, size, 3])), false).dataSync() as Float32Array), prep.val, opts)
        : await inferRecords(model, prep.val, opts);
  const n = res.records.length;
  if (!n) throw new TrainError('every validation image failed to load');
  let loss = 0;
  let correct = 0;
  let tp = 0;
  let pos = 0;
  const regionSum = new Map<Region, { s: number; n: number }>();
  const labels = new Float64Array(n);
  res.records.forEach((r, i) => {
    const z = res.logits[i]!;
    const l = bceScalar(z, r.label);
    loss += l;
    const predicted = z > 0 ? 1 : 0; // sigmoid(z) > 0.5
    if (predicted === r.label) correct++;
    if (r.label === 1) {
      pos++;
      if (predicted === 1) tp++;
    }
    labels[i] = r.label;
    const g = regionSum.get(r.region) ?? { s: 0, n: 0 };
    g.s += l;
    g.n++;
    regionSum.set(r.region, g);
  });
  const lossByRegion: Partial<Record<Region, number>> = {};
  for (const region of REGIONS) {
    const g = regionSum.get(region);
    if (g) lossByRegion[region] = g.s / g.n;
  }
  // The decision the model will be used at: study probability (mean of the views) at the maximum-kappa threshold.
  const studyOf = new Map<string, number>();
  const studyLabels: number[] = [];
  const study = new Uint32Array(n);
  res.records.forEach((r, i) => {
    let s = studyOf.get(r.study);
    if (s === undefined) {
      s = studyLabels.push(r.label) - 1;
      studyOf.set(r.study, s);
    }
    study[i] = s;
  });
  const sp = studyProbabilities(res.logits, study, studyLabels.length);
  let kappa: number | null = null;
  let threshold: number | null = null;
  try {
    const k = thresholdForMaxKappa(studyLabels.map((label, s) => ({ label: label as Label, probability: sp[s]! })));
    kappa = k.validationKappa;
    threshold = k.threshold;
  } catch {
    // one class only: kappa is undefined
  }
  return {
    loss: loss / n,
    accuracy: correct / n,
    recall: pos ? tp / pos : null,
    auc: rocAuc(prepareScores(labels, res.logits)),
    kappa,
    threshold,
    nllT: temperatureScaledNll(res.logits, labels),
    lossByRegion,
    images: n,
    bad: res.badImages,
    ...(fm.kind === 'cached' ? { featuresCached: (res as CachedInference).cached, featuresComputed: (res as CachedInference).computed } : fm.kind === 'computed' ? { featuresCached: 0, featuresComputed: n } : {}),
  };
}

/**
 * The frozen prefix's output for pixels `x` (disposed here), computed in this step: as it comes, or, when the
 * feature cache is in play but no store is ('computed' mode), rounded to the storage precision as a cached run's
 * features are, so the run's numbers do not depend on whether a cache folder was usable.
 */
function frozenFeatures(fm: FeatureMode, model: Model, x: tf.Tensor4D): tf.Tensor4D {
  const f = fm.kind === 'computed' || (fm.kind === 'off' && fm.fixedPrefix) ? forwardFrozenFixed(model, x) : model.forwardFrozen(x);
  x.dispose();
  if (fm.kind !== 'computed' || fm.storage !== 'fp16' || fm.fp16Exceeded) return f;
  const values = f.dataSync().slice() as Float32Array;
  if (roundToFp16(values)) {
    // Features beyond float16's range would become infinite: this run keeps them in float32 from here on.
    fm.fp16Exceeded = true;
    fm.log('feature cache: the frozen prefix\'s output exceeds the float16 range; features stay float32 from here on (--feature-precision fp32 avoids the switch)');
    return f;
  }
  const shape = f.shape;
  f.dispose();
  return tf.tensor4d(values, shape);
}

/** Starts a new run in `runDir` (which must not hold a run already) with a resolved config. */
export async function train(config: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const paths = runPaths(opts.runDir);
  if (existsSync(paths.config)) {
    throw new TrainError(`${paths.dir} already holds a run (config.json exists): continue it with --resume ${opts.runDir}, or choose another --out`);
  }
  checkFeatureCacheConfig(config);
  await checkBeforeRun(config);
  writeJson(paths.config, config);
  return runTraining(config, paths, false, opts);
}

/**
 * What can be checked before a run folder is made: the dataset folder, the starting weights and the split file
 * exist. A mistake there must not leave a half-made run behind (which --out would then refuse as taken).
 */
async function checkBeforeRun(config: TrainConfig): Promise<void> {
  await resolveMuraRoot(config.data);
  for (const [what, path] of [['--weights', config.weights], ['--split', config.split]] as const) {
    if (path !== null && !existsSync(path)) throw new TrainError(`${what} ${path}: no such file`);
  }
}

/** Continues the run in `runDir` from its last completed epoch (or from the start if none completed). */
export async function resume(runDir: string, opts: Omit<TrainOptions, 'runDir'> = {}): Promise<TrainResult> {
  const paths = runPaths(runDir);
  if (!existsSync(paths.config)) throw new TrainError(`${paths.dir}: not a run directory (no config.json)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(paths.config, 'utf8'));
  } catch (err) {
    throw new TrainError(`${paths.config}: not valid JSON (${(err as Error).message})`);
  }
  const config = resolveConfig([{ values: raw as Record<string, unknown>, source: paths.config }]);
  return runTraining(config, paths, true, { ...opts, runDir });
}

/** The pieces one run holds while it trains: built once by runTraining, passed to each step. */
interface RunContext {
  config: TrainConfig;
  paths: RunPaths;
  opts: TrainOptions;
  log: RunLog;
  engine: EngineInfo;
  prep: Prepared;
  model: Model;
  params: { name: string; variable: tf.Variable }[];
  adam: Adam;
  classWeights: RegionClassWeights;
  cache: ImageCache;
  loader: BatchLoader;
  /** Where the frozen prefix's output comes from (src/train/feature-cache/session.ts). */
  features: FeatureMode;
}

/** What one pass over the training images measured. */
interface EpochTraining {
  lossSum: number;
  correct: number;
  seen: number;
  started: number;
  trainSeconds: number;
  lrThisEpoch: number;
  /** What the training steps' convolutions computed in. */
  precision: Precision;
  /** Samples whose frozen-prefix output was read from the feature cache / computed (null: no cache in play). */
  featuresCached: number | null;
  featuresComputed: number | null;
}

/**
 * One training run, as named steps: engine and data, the saved state (resume), model + optimiser + loader, restore
 * or start, then per epoch: train, validate, update best / learning rate / region weights, commit (checkpoints,
 * metrics, log); finally the run summary.
 */
async function runTraining(config: TrainConfig, paths: RunPaths, resuming: boolean, opts: TrainOptions): Promise<TrainResult> {
  const echo = opts.echo !== undefined ? opts.echo : opts.quiet ? null : (l: string) => process.stderr.write(l + '\n');
  const log = new RunLog(paths.log, echo);
  const engine = await initEngine(config.engine);
  log.line(`${resuming ? 'resuming' : 'starting'} run ${paths.dir} on engine ${engine.description}`);
  const prep = await prepareData(config, paths, log);

  const { state, hasLast } = loadSavedState(config, paths, resuming);
  if (state.done) {
    log.line(`run already finished after ${state.epochsDone} epoch(s); nothing to do`);
    return { runDir: paths.dir, state, engine, badImages: [], alreadyDone: true };
  }

  const ctx = await setUpRun(config, paths, opts, log, engine, prep);
  let valBad: BadImage[] = [];
  try {
    restoreOrStart(ctx, state, hasLast);
    ctx.features = await setUpFeatureCache({
      config,
      model: ctx.model,
      train: prep.train,
      val: prep.val,
      preprocessing: prep.preprocessing,
      datasetBase: prep.dataset.base,
      engine,
      log: (l) => log.line(l),
      quiet: !!opts.quiet,
    });
    if (config.loss === 'region-weighted' && config.regionWeights !== 'validation') state.regionWeights = { ...config.regionWeights };

    for (let epoch = state.epochsDone; epoch < config.epochs; epoch++) {
      const t = await trainEpoch(ctx, state, epoch);
      const val = await validate(ctx.model, prep, config, ctx.cache, ctx.features);
      valBad = val.bad;
      const m = epochMetrics(ctx, epoch, t, val);
      const improved = updateAfterEpoch(ctx, state, m, val);
      const stopEarly = commitEpoch(ctx, state, epoch, m, improved);
      if (stopEarly) {
        log.line(`early stop: validation ${config.selectBy} has not improved for ${config.earlyStopPatience} epoch(s)`);
        break;
      }
    }
    const bad = [...ctx.loader.badImages, ...trainBadFromCache(ctx), ...valBad];
    writeRunSummary(ctx, state, bad);
    return { runDir: paths.dir, state, engine, badImages: bad, alreadyDone: false };
  } finally {
    if (ctx.features.kind === 'cached') ctx.features.session.close();
    await ctx.loader.close();
    ctx.adam.dispose();
    ctx.model.dispose();
  }
}

/** A fresh state, or (resuming with a last checkpoint) the state saved in it. */
function loadSavedState(config: TrainConfig, paths: RunPaths, resuming: boolean): { state: TrainState; hasLast: boolean } {
  const hasLast = resuming && existsSync(paths.last);
  if (!hasLast) return { state: initialState(config), hasLast };
  const meta = loadCheckpoint(paths.last, { skipOptimizer: true }).metadata;
  const saved = (meta.training as { state?: TrainState } | undefined)?.state;
  if (!saved) throw new TrainError(`${paths.last}: checkpoint has no training state; it was not written by nextray train`);
  return { state: saved, hasLast };
}

/** The model, its optimiser, the class weights, the image cache and the training loader. */
async function setUpRun(config: TrainConfig, paths: RunPaths, opts: TrainOptions, log: RunLog, engine: EngineInfo, prep: Prepared): Promise<RunContext> {
  const model = await createRunModel(config, log);
  if (model.frozenPrefixLayers() > 0) log.line(`frozen prefix: ${model.frozenPrefixLayers()} of ${model.layerCount()} layers run outside the gradient tape`);
  const params = namedTrainables(model);
  const adam = new Adam(params, { lr: config.lr, beta1: config.beta1, beta2: config.beta2, epsilon: config.epsilon });
  const classWeights: RegionClassWeights = config.loss === 'mura-weighted' ? muraClassWeights(prep.train) : {};
  // One cache for the training images and every epoch's validation pass: after the first epoch nothing is decoded
  // again while the images fit (src/data/loader.ts).
  const cache = new ImageCache((config.cacheMb ?? 0) * 2 ** 20);
  const loader = new BatchLoader(prep.train, {
    cache,
    batchSize: config.batchSize,
    seed: config.seed,
    shuffle: true,
    augment: config.hflip || config.rotation > 0 ? { hflipProbability: config.hflip ? 0.5 : 0, maxRotationDeg: config.rotation } : false,
    preprocessing: prep.preprocessing,
    workers: config.workers,
    onBadImage: (b) => log.line(`bad image skipped: ${b.path}: ${b.problem}`),
  });
  return { config, paths, opts, log, engine, prep, model, params, adam, classWeights, cache, loader, features: { kind: 'off', fixedPrefix: false } };
}

/** Training images the feature cache found unusable (the loader keeps its own). */
function trainBadFromCache(ctx: RunContext): BadImage[] {
  return ctx.features.kind === 'cached' ? [...ctx.features.session.trainBad.values()] : [];
}

/** Resuming: weights and Adam state from the last checkpoint, bit for bit. Starting: an empty metrics file. */
function restoreOrStart(ctx: RunContext, state: TrainState, hasLast: boolean): void {
  const { config, paths, log, model, adam, prep } = ctx;
  if (hasLast) {
    const ckpt = loadCheckpoint(paths.last);
    model.loadStateDict(ckpt.tensors, { strict: true, layout: 'torch', source: paths.last });
    if (!ckpt.optimizer) throw new TrainError(`${paths.last}: checkpoint has no optimizer state; cannot resume exactly`);
    adam.loadState(ckpt.optimizer, state.step, state.lr, paths.last);
    writeMetricsFile(paths.metrics, state.history);
    log.line(`resumed after epoch ${state.epochsDone} (step ${state.step}, lr ${state.lr})`);
  } else {
    writeMetricsFile(paths.metrics, []);
    const pc = model.parameterCount();
    log.line(
      `model ${config.arch}: ${pc.total} parameters, ${pc.trainable} trainable (${config.frozenLayers} of ${model.layerCount()} layers frozen); ` +
        `${prep.train.length} training and ${prep.val.length} validation images at ${config.inputSize}px`,
    );
    if (config.loss === 'mura-weighted') log.line(`mura-weighted class weights: ${JSON.stringify(ctx.classWeights)}`);
  }
}

/** One pass over the training images (with a progress bar); throws when the loss stops being finite. */
async function trainEpoch(ctx: RunContext, state: TrainState, epoch: number): Promise<EpochTraining> {
  const { config, model, adam, loader } = ctx;
  reseedDropout(model, config.seed, epoch, config.dropout);
  const progress = createProgress({ label: `epoch ${epoch + 1}/${config.epochs}`, total: loader.batchesPerEpoch, quiet: !!ctx.opts.quiet, fields: ['loss', 'ips'] });
  const started = Date.now();
  let lossSum = 0;
  let correct = 0;
  let seen = 0;
  const lrThisEpoch = adam.lr;
  const fm = ctx.features;
  let featuresCached = 0;
  let featuresComputed = 0;
  // Pixels from the loader, or the frozen prefix's output from the feature cache: the same batches either way.
  const batches: AsyncIterable<Batch | FeatureBatch> = fm.kind === 'cached' ? fm.session.trainEpoch(epoch) : loader.epoch(epoch);
  // Only the training steps in config.precision (bf16 where the CPU has it); validation stays float32.
  const precision = await withPrecision(config.precision, async (inEffect) => {
    try {
      for await (const batch of batches) {
        const w = batchWeights(config.loss, batch.records, ctx.classWeights, state.regionWeights);
        if ('features' in batch) {
          featuresCached += batch.cached;
          featuresComputed += batch.computed;
        } else featuresComputed += batch.n;
        const { loss: batchLoss, correct: batchCorrect } = trainStep(ctx, batch, w);
        if (!Number.isFinite(batchLoss)) throw new TrainError(`epoch ${epoch + 1}: the training loss became ${batchLoss} (try a lower --lr)`);
        lossSum += batchLoss * batch.n;
        correct += batchCorrect;
        seen += batch.n;
        const secs = (Date.now() - started) / 1000;
        progress.tick(1, { loss: (lossSum / seen).toFixed(4), ips: (seen / Math.max(secs, 1e-3)).toFixed(1) });
      }
    } finally {
      progress.stop();
      if (fm.kind === 'cached') fm.session.commit();
    }
    return inEffect;
  }, 'training');
  if (!seen) throw new TrainError(`epoch ${epoch + 1}: no training image could be loaded`);
  const counted = fm.kind !== 'off';
  return {
    lossSum,
    correct,
    seen,
    started,
    trainSeconds: (Date.now() - started) / 1000,
    lrThisEpoch,
    precision,
    featuresCached: counted ? featuresCached : null,
    featuresComputed: counted ? featuresComputed : null,
  };
}

/** One optimiser step on a batch: its mean data loss and how many it classified right (before the step). */
function trainStep(ctx: RunContext, batch: Batch | FeatureBatch, w: Float32Array | number[] | undefined | null): { loss: number; correct: number } {
  const { config, model, params, adam } = ctx;
  const size = config.inputSize;
  let batchLoss = 0;
  let batchCorrect = 0;
  tf.tidy(() => {
    // The frozen prefix needs no gradients: computed here, outside the tape, only its output stays alive
    // (under variableGrads every activation of ResNet-152's 148 frozen layers was kept for backward:
    // 10.8 GB at batch 16, 320 px). forwardTrainable(features) is the same computation as forward(x).
    // With the feature cache the prefix's output arrives ready (read, or computed and rounded by the session).
    const features = 'features' in batch ? tf.tensor4d(batch.features, [batch.n, ...batch.shape]) : frozenFeatures(ctx.features, model, tf.tensor4d(batch.x, [batch.n, size, size, 3]));
    const y = tf.tensor1d(batch.y);
    const wt = w ? tf.tensor1d(w) : undefined;
    let logits: tf.Tensor | null = null;
    let dataLoss: tf.Scalar | null = null;
    // leanVariableGrads: tf.variableGrads' results, freeing activations and their gradients as backward goes.
    const { grads } = leanVariableGrads(() => {
      const z = model.forwardTrainable(features, true);
      logits = tf.keep(tf.reshape(z, [-1]));
      dataLoss = tf.keep(weightedBceMean(z, y, wt));
      return tf.add(dataLoss, l2Penalty(model.regularizedWeights(), config.l2)) as tf.Scalar;
    }, params.map((p) => p.variable));
    adam.apply(grads);
    batchLoss = (dataLoss as unknown as tf.Scalar).dataSync()[0]!;
    const z = (logits as unknown as tf.Tensor).dataSync();
    for (let i = 0; i < batch.n; i++) if ((z[i]! > 0 ? 1 : 0) === batch.y[i]) batchCorrect++;
    // tf.keep'd inside the gradient scope, so tidy would not free them.
    (logits as unknown as tf.Tensor).dispose();
    (dataLoss as unknown as tf.Scalar).dispose();
  });
  return { loss: batchLoss, correct: batchCorrect };
}

function epochMetrics(ctx: RunContext, epoch: number, t: EpochTraining, val: Validation & { bad: BadImage[] }): EpochMetrics {
  const seconds = (Date.now() - t.started) / 1000;
  const features =
    t.featuresCached === null
      ? {}
      : { features_cached: t.featuresCached, features_computed: t.featuresComputed!, val_features_cached: val.featuresCached ?? 0, val_features_computed: val.featuresComputed ?? 0 };
  return {
    epoch: epoch + 1,
    train_loss: t.lossSum / t.seen,
    train_accuracy: t.correct / t.seen,
    val_loss: val.loss,
    val_accuracy: val.accuracy,
    val_recall: val.recall,
    val_auc: val.auc,
    val_kappa: val.kappa,
    val_threshold: val.threshold,
    val_nll_t: val.nllT,
    lr: t.lrThisEpoch,
    seconds,
    images_per_second: t.seen / Math.max(t.trainSeconds, 1e-3),
    train_images: t.seen,
    val_images: val.images,
    bad_images: ctx.loader.badImageCount + trainBadFromCache(ctx).length + val.bad.length,
    best: false,
    precision: t.precision,
    ...features,
  };
}

/**
 * After validation: the best epoch by the selection metric (marks m.best), the plateau learning-rate schedule,
 * validation-derived region weights. Returns whether this epoch is the new best.
 */
function updateAfterEpoch(ctx: RunContext, state: TrainState, m: EpochMetrics, val: Validation): boolean {
  const { config, adam, log, prep } = ctx;
  // Best checkpoint by the selection metric (higher is better; loss is negated).
  const v = selectValue(config.selectBy, m);
  const improved = v !== null && (state.bestValue === null || v > state.bestValue);
  if (improved) {
    state.bestValue = v;
    state.bestEpoch = m.epoch;
    state.epochsWithoutImprovement = 0;
    m.best = true;
  } else state.epochsWithoutImprovement++;

  // Keras ReduceLROnPlateau(monitor='val_loss', factor=0.1, patience): lr / 10 after `patience` epochs without a lower loss.
  if (state.plateauBestLoss === null || val.loss < state.plateauBestLoss) {
    state.plateauBestLoss = val.loss;
    state.plateauWait = 0;
  } else if (config.plateauPatience > 0 && ++state.plateauWait >= config.plateauPatience) {
    // Rounded to 15 significant digits, so logs and metrics.jsonl say 0.0003, not 0.00030000000000000003.
    adam.lr = Number((adam.lr / 10).toPrecision(15));
    state.plateauWait = 0;
    log.line(`validation loss has not improved for ${config.plateauPatience} epoch(s): learning rate -> ${adam.lr}`);
  }
  if (config.loss === 'region-weighted' && config.regionWeights === 'validation') {
    state.regionWeights = regionWeightsFromValidation(val.lossByRegion, prep.train);
  }
  return improved;
}

/**
 * The epoch's commit: state, best then last checkpoint (the commit point: a kill in between replays this epoch
 * identically), metrics file, log line, onEpoch. Returns whether training stops early here.
 */
function commitEpoch(ctx: RunContext, state: TrainState, epoch: number, m: EpochMetrics, improved: boolean): boolean {
  const { config, paths, log, model, adam, prep, engine } = ctx;
  state.epochsDone = epoch + 1;
  state.step = adam.step;
  state.lr = adam.lr;
  state.history = [...state.history, m];
  const stopEarly = config.earlyStopPatience > 0 && state.epochsWithoutImprovement >= config.earlyStopPatience && epoch + 1 < config.epochs;
  state.done = stopEarly || epoch + 1 >= config.epochs;
  state.stoppedEarly = stopEarly;

  const tensors = model.exportStateDict('torch');
  if (improved) saveCheckpoint(paths.best, { tensors, metadata: { ...checkpointInfo(config, prep, state, engine), extra: { epoch: epoch + 1, metrics: m } } });
  saveCheckpoint(paths.last, { tensors, metadata: { ...checkpointInfo(config, prep, state, engine), extra: { epoch: epoch + 1, metrics: m } } }, { optimizer: adam.stateDict() });
  writeMetricsFile(paths.metrics, state.history);
  log.line(
    `epoch ${m.epoch}/${config.epochs}: train loss ${m.train_loss.toFixed(4)} acc ${m.train_accuracy.toFixed(3)} | ` +
      `val loss ${m.val_loss.toFixed(4)} acc ${m.val_accuracy.toFixed(3)} recall ${m.val_recall?.toFixed(3) ?? '-'} AUC ${m.val_auc?.toFixed(3) ?? '-'} ` +
      `study kappa ${m.val_kappa?.toFixed(3) ?? '-'} @${m.val_threshold?.toFixed(3) ?? '-'} | ` +
      `lr ${m.lr} | ${m.seconds.toFixed(1)} s, ${m.images_per_second.toFixed(1)} img/s${m.precision === 'bf16' ? ' (bf16)' : ''}` +
      `${m.features_cached !== undefined ? ` | features: ${m.features_cached} cached, ${m.features_computed} computed` : ''}${m.best ? ' | best' : ''}`,
  );
  ctx.opts.onEpoch?.(m);
  return stopEarly;
}

function writeRunSummary(ctx: RunContext, state: TrainState, bad: BadImage[]): void {
  const { config, paths, log, engine } = ctx;
  writeJson(paths.summary, {
    epochs: state.epochsDone,
    stopped_early: state.stoppedEarly,
    best_epoch: state.bestEpoch,
    select_by: config.selectBy,
    best: state.bestEpoch ? state.history[state.bestEpoch - 1] : null,
    last: state.history[state.history.length - 1] ?? null,
    bad_images: bad.length,
    bad_image_list: bad.slice(0, 100),
    engine: engine.description,
    precision: state.history[state.history.length - 1]?.precision ?? 'fp32',
    feature_cache: ctx.features.kind === 'cached' ? ctx.features.session.summary() : ctx.features.kind,
  });
  log.line(`done: ${state.epochsDone} epoch(s); best ${config.selectBy} at epoch ${state.bestEpoch ?? '-'}; ${bad.length} bad image(s)`);
}
