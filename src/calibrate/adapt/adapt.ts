/**
 * Site adaptation, the fitting (browser-safe: the same code runs in `nextray adapt` and in the page). Given a
 * clinic's labelled studies, the deployed model's features (its `features` output, the head's input) and its own
 * logits, it refits the head, then the temperature, then the decision threshold, and measures the result against
 * the deployed model on studies it never fitted on:
 *
 *   1. split    patients (never studies) into a fitting part and a held-out part (about 40%), each class in
 *               proportion (split.ts);
 *   2. head     logistic regression with L2 towards the deployed head (logistic.ts): z' = z_base + x . dw + db, so a
 *               strong penalty keeps the deployed head and only shifts its logit, and a weak one refits every weight.
 *               The penalty is chosen among `lambdas` by 5-fold patient-grouped cross-fitting inside the fitting
 *               part, repeated over `repeats` fold splits (3 by default: the mean out-of-fold image log loss of the
 *               splits, less noisy than one split's on ~120 studies); Infinity (logit shift only) is always a candidate;
 *   3. temperature  fitted at study level (the mean of the views' probabilities, MURA's rule) on the out-of-fold
 *               logits (each image's averaged over the splits) — never on logits of images the head was fitted on;
 *   4. threshold    on the same out-of-fold study probabilities: maximum Cohen's kappa, or the largest threshold
 *               reaching a target sensitivity (src/evaluate/threshold.ts);
 *   5. head     the mean of the fold heads at the chosen penalty ('bagged', default: still one linear head, and the
 *               one whose out-of-fold logits steps 3-4 were fitted on), or a refit on the whole fitting part ('refit');
 *   6. held-out before/after: the deployed model (its temperature, its threshold) against the adapted one, at
 *               study level: AUC, sensitivity, specificity, Cohen's kappa, ECE, log loss, with percentile bootstrap
 *               intervals over held-out studies (the same draws for both, so differences are paired);
 *   7. decision the adapted head is adopted only when the held-out part is large enough to judge it ("too small"
 *               rule: at least `minStudiesPerClass` abnormal AND normal studies in the held-out part and in the
 *               fitting part) and its held-out study log loss (a proper score: discrimination and calibration) is
 *               lower than the deployed model's; otherwise the deployed model is kept, and the report says why. An
 *               improvement is claimed only when the whole 95% interval of the log-loss difference is below 0.
 *
 * Nothing of the held-out part enters steps 2-5: its features, labels and logits are read only in step 6.
 */
import { calibration, logLoss, studyProbabilities, DEFAULT_ECE_BINS } from '../../evaluate/calibration.js';
import { fitStudyTemperature } from '../temperature.js';
import { computeMetrics, prepareScores } from '../../evaluate/metrics.js';
import { percentileSorted } from '../../evaluate/bootstrap.js';
import { chooseOperatingPoint, type OperatingPointRule } from '../../evaluate/threshold.js';
import { Rng, type Seed } from '../../util/rng.js';
import type { GreyMap } from '../../data/grey-map.js';
import type { SiteFilter } from '../../data/site-filter.js';
import { fitLogisticL2, logisticScores, standardizer, type LogisticFit } from './logistic.js';
import { heldOutPatients, patientFolds, type StudyUnit } from './split.js';
import { AdaptError } from './head-file.js';

export interface AdaptImage {
  /** Study key (views of one study share it). */
  study: string;
  /** Patient id: the split keeps a patient's studies together. */
  patient: string;
  /** The study's label (1 = abnormal); every view of a study carries it. */
  label: 0 | 1;
}

export interface AdaptData {
  images: readonly AdaptImage[];
  /** The deployed model's `features` output, row-major [images, dim]. */
  features: Float32Array;
  dim: number;
  /** The deployed model's logits before its temperature (its `logits` output times its temperature), [images]. */
  baseLogits: ArrayLike<number>;
  /**
   * The deployed model's logits as it runs today, when `features` and `baseLogits` come from other inputs (the site's
   * grey levels normalised, src/data/grey-map.ts): the "before" of the held-out check. Default: `baseLogits`.
   */
  deployedLogits?: ArrayLike<number>;
}

/** What the deployed model decides with. */
export interface BaseModel {
  /** The temperature its probabilities use (metadata `temperature`; 1 when none). */
  temperature: number;
  /** Its decision threshold (abnormal when the study probability > threshold). */
  threshold: number;
}

export type ThresholdRule = OperatingPointRule;

export interface AdaptOptions {
  /** Share of patients held out for the before/after check (default 0.4). */
  heldOutFraction?: number;
  /** Cross-fitting folds inside the fitting part (default 5). */
  folds?: number;
  /** Candidate penalties on the standardised coefficients (Infinity: logit shift only; always added). */
  lambdas?: readonly number[];
  rule?: ThresholdRule;
  /** Bootstrap replicates of the held-out intervals (default 1000). */
  bootstrap?: number;
  seed?: Seed;
  /** The "too small" rule's minimum number of abnormal and of normal studies per part (default 20). */
  minStudiesPerClass?: number;
  /**
   * The deployed head: 'bagged' (default), the mean of the cross-fitting folds' heads at the chosen penalty (each
   * fitted on the fitting part less one fold; the head is linear, so their mean is one head of the same form); or
   * 'refit', one fit on the whole fitting part.
   */
  head?: 'bagged' | 'refit';
  /** Cross-fitting repeated over this many fold splits (other seeds); the losses, logits and heads averaged (default 3). */
  repeats?: number;
  /** Called as work progresses (fits done / fits planned). */
  onProgress?: (done: number, total: number, what: string) => void;
}

export const ADAPT_DEFAULTS = {
  heldOutFraction: 0.4,
  folds: 5,
  lambdas: [1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001] as readonly number[],
  bootstrap: 1000,
  seed: 20240611,
  minStudiesPerClass: 20,
  head: 'bagged' as 'bagged' | 'refit',
  repeats: 3,
};

/** The seed of the r-th fold split (r = 0: the seed itself, so one split is the split of earlier versions). */
export function foldSeed(seed: Seed, r: number): Seed {
  return r === 0 ? seed : `${String(seed)}/folds-${r}`;
}

/** The adapted head in the offset form: z' = z_base + features . deltaWeight + deltaBias; p = sigmoid(z' / T). */
export interface FittedHead {
  deltaWeight: Float32Array;
  deltaBias: number;
  temperature: number;
  threshold: number;
  /** The penalty chosen by cross-fitting (Infinity: the deployed weights, logit shifted). */
  lambda: number;
  /** How the head was made: the mean of `folds` fold heads ('bagged') or one fit on the fitting part ('refit'). */
  fit?: { head: 'bagged' | 'refit'; folds: number; repeats: number };
  rule: ThresholdRule;
  /** The site's grey map the features were computed after (set by the host that fitted it; none: the plain images). */
  greyMap?: GreyMap;
  /** The site filter (src/data/site-filter.ts) applied before the grey map (set by site-prep.ts; none: no filter). */
  siteFilter?: SiteFilter;
  /** Out-of-fold study-level figures the temperature and threshold were chosen on. */
  outOfFold: { studies: number; kappa: number | null; sensitivity: number | null; specificity: number | null; temperatureNllBefore: number; temperatureNllAfter: number };
}

export interface StudyMetrics {
  auc: number | null;
  sensitivity: number | null;
  specificity: number | null;
  kappa: number | null;
  ece: number;
  logLoss: number;
  threshold: number;
}

export type Interval = [number, number] | null;

export interface HeldOutComparison {
  studies: number;
  abnormal: number;
  before: StudyMetrics;
  after: StudyMetrics;
  /** 95% percentile bootstrap intervals over held-out studies (paired draws). */
  intervals: {
    before: Record<keyof Omit<StudyMetrics, 'threshold'>, Interval>;
    after: Record<keyof Omit<StudyMetrics, 'threshold'>, Interval>;
    /** after - before. */
    difference: { auc: Interval; kappa: Interval; ece: Interval; logLoss: Interval };
  };
  replicates: number;
}

export interface PartCounts {
  patients: number;
  studies: number;
  images: number;
  abnormalStudies: number;
  normalStudies: number;
}

export interface AdaptResult {
  split: { fit: PartCounts; heldOut: PartCounts; heldOutPatients: string[]; fitPatients: string[] };
  cv: { lambda: number; logLoss: number }[];
  candidate: FittedHead;
  heldOut: HeldOutComparison;
  tooSmall: boolean;
  /** Why the set is too small (empty when it is not). */
  tooSmallReason: string;
  decision: 'adapted' | 'kept-base';
  decisionReason: string;
  /** An improvement is claimed: adopted, and the 95% interval of the held-out log-loss difference lies below 0. */
  improvementClaimed: boolean;
  /** The head to deploy: the candidate when adopted, null when the deployed model is kept. */
  adopted: FittedHead | null;
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

interface Indexed {
  studies: StudyUnit[];
  /** Study index of each image. */
  studyOf: Uint32Array;
  /** Image indices of each study. */
  imagesOf: number[][];
}

function indexStudies(images: readonly AdaptImage[]): Indexed {
  const byKey = new Map<string, number>();
  const studies: StudyUnit[] = [];
  const imagesOf: number[][] = [];
  const studyOf = new Uint32Array(images.length);
  images.forEach((im, i) => {
    let s = byKey.get(im.study);
    if (s === undefined) {
      s = studies.length;
      byKey.set(im.study, s);
      studies.push({ key: im.study, patient: im.patient, label: im.label });
      imagesOf.push([]);
    } else {
      const st = studies[s]!;
      if (st.label !== im.label) throw new AdaptError(`the views of study ${im.study} disagree on its label; give every view of a study the same label`);
      if (st.patient !== im.patient) throw new AdaptError(`the views of study ${im.study} name two patients (${st.patient}, ${im.patient}); a study belongs to one patient`);
    }
    studyOf[i] = s;
    imagesOf[s]!.push(i);
  });
  return { studies, studyOf, imagesOf };
}

function counts(idx: Indexed, studyIds: readonly number[]): PartCounts {
  const patients = new Set<string>();
  let images = 0;
  let abnormal = 0;
  for (const s of studyIds) {
    patients.add(idx.studies[s]!.patient);
    images += idx.imagesOf[s]!.length;
    abnormal += idx.studies[s]!.label;
  }
  return { patients: patients.size, studies: studyIds.length, images, abnormalStudies: abnormal, normalStudies: studyIds.length - abnormal };
}

/** Study-level metrics of study probabilities at a threshold, optionally weighted by bootstrap draw counts. */
export function studyMetrics(p: ArrayLike<number>, y: ArrayLike<number>, threshold: number, weights?: ArrayLike<number>): StudyMetrics {
  const m = computeMetrics(prepareScores(y, p), threshold, weights);
  return {
    auc: m.values.auc,
    sensitivity: m.values.sensitivity,
    specificity: m.values.specificity,
    kappa: m.values.kappa,
    ece: calibration(p, y, DEFAULT_ECE_BINS, weights).ece,
    logLoss: logLoss(p, y, weights),
    threshold,
  };
}

function chooseThreshold(p: Float64Array, y: ArrayLike<number>, rule: ThresholdRule): { threshold: number; kappa: number | null; sensitivity: number | null; specificity: number | null } {
  const op = chooseOperatingPoint(Array.from(p, (probability, i) => ({ label: y[i] as 0 | 1, probability })), rule);
  return { threshold: op.threshold, kappa: op.validationKappa, sensitivity: op.validationSensitivity, specificity: op.validationSpecificity };
}

/**
 * Step 1 alone: the images of the fitting part and of the held-out part (indices into `images`), exactly as adaptHead
 * splits them with the same fraction and seed. What is fitted before the head (the site's grey map) is fitted on the
 * fitting part only.
 */
export function splitImages(images: readonly AdaptImage[], opts: Pick<AdaptOptions, 'heldOutFraction' | 'seed'> = {}): { fit: number[]; heldOut: number[] } {
  const idx = indexStudies(images);
  const held = heldOutPatients(idx.studies, opts.heldOutFraction ?? ADAPT_DEFAULTS.heldOutFraction, opts.seed ?? ADAPT_DEFAULTS.seed);
  const fit: number[] = [];
  const heldOut: number[] = [];
  images.forEach((im, i) => (held.has(im.patient) ? heldOut : fit).push(i));
  return { fit, heldOut };
}

/** Runs steps 1-7 of the module comment. */
export function adaptHead(data: AdaptData, base: BaseModel, opts: AdaptOptions = {}): AdaptResult {
  const n = data.images.length;
  const d = data.dim;
  if (data.features.length !== n * d) throw new RangeError(`adapt: ${data.features.length} feature values for ${n} images x ${d}`);
  if (data.baseLogits.length !== n) throw new RangeError(`adapt: ${data.baseLogits.length} base logits for ${n} images`);
  if (data.deployedLogits && data.deployedLogits.length !== n) throw new RangeError(`adapt: ${data.deployedLogits.length} deployed logits for ${n} images`);
  if (!(base.temperature > 0)) throw new RangeError(`adapt: base temperature must be > 0, got ${base.temperature}`);
  const heldOutFraction = opts.heldOutFraction ?? ADAPT_DEFAULTS.heldOutFraction;
  const k = opts.folds ?? ADAPT_DEFAULTS.folds;
  const lambdas = [Infinity, ...[...(opts.lambdas ?? ADAPT_DEFAULTS.lambdas)].filter((l) => l !== Infinity).sort((a, b) => b - a)];
  const rule = opts.rule ?? { kind: 'max-kappa' };
  const seed = opts.seed ?? ADAPT_DEFAULTS.seed;
  const minPerClass = opts.minStudiesPerClass ?? ADAPT_DEFAULTS.minStudiesPerClass;
  const B = opts.bootstrap ?? ADAPT_DEFAULTS.bootstrap;

  const idx = indexStudies(data.images);
  const y = new Float64Array(n);
  data.images.forEach((im, i) => (y[i] = im.label));
  const offsets = Float64Array.from(data.baseLogits);

  // 1. Split.
  const held = heldOutPatients(idx.studies, heldOutFraction, seed);
  const fitStudies: number[] = [];
  const heldStudies: number[] = [];
  idx.studies.forEach((s, i) => (held.has(s.patient) ? heldStudies : fitStudies).push(i));
  const fitCounts = counts(idx, fitStudies);
  const heldCounts = counts(idx, heldStudies);
  const reasons: string[] = [];
  for (const [name, c] of [['fitting', fitCounts], ['held-out', heldCounts]] as const) {
    if (c.abnormalStudies < minPerClass || c.normalStudies < minPerClass) {
      reasons.push(`the ${name} part has ${c.abnormalStudies} abnormal and ${c.normalStudies} normal studies (needs at least ${minPerClass} of each)`);
    }
  }
  if (fitCounts.abnormalStudies < 2 || fitCounts.normalStudies < 2) {
    throw new AdaptError(`the fitting part needs abnormal and normal studies (has ${fitCounts.abnormalStudies} abnormal, ${fitCounts.normalStudies} normal); label more studies`);
  }
  if (heldCounts.abnormalStudies < 1 || heldCounts.normalStudies < 1) {
    throw new AdaptError(`the held-out part needs abnormal and normal studies (has ${heldCounts.abnormalStudies} abnormal, ${heldCounts.normalStudies} normal); label more studies`);
  }
  const fitImages = fitStudies.flatMap((s) => idx.imagesOf[s]!).sort((a, b) => a - b);
  const heldImages = heldStudies.flatMap((s) => idx.imagesOf[s]!).sort((a, b) => a - b);

  // 2. Penalty by cross-fitting (patient-grouped folds of the fitting part), over `repeats` fold splits: the
  // out-of-fold log loss of each penalty is the mean over the splits; every fold's head is kept for bagging.
  const fitUnits = fitStudies.map((s) => idx.studies[s]!);
  const headMode = opts.head ?? ADAPT_DEFAULTS.head;
  const repeats = opts.repeats ?? ADAPT_DEFAULTS.repeats;
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError(`adapt: repeats must be an integer >= 1, got ${repeats}`);
  const splits = Array.from({ length: repeats }, (_, r) => {
    const foldOf = patientFolds(fitUnits, k, foldSeed(seed, r));
    const foldImages: number[][] = Array.from({ length: k }, () => []);
    for (const i of fitImages) foldImages[foldOf.get(data.images[i]!.patient)!]!.push(i);
    return { foldOf, foldImages, usedFolds: foldImages.map((f, j) => j).filter((j) => foldImages[j]!.length > 0) };
  });
  const fitCount = splits.reduce((a, sp) => a + sp.usedFolds.length, 0);
  const total = lambdas.length * fitCount + (headMode === 'refit' ? 1 : 0);
  let done = 0;
  // oof[r][li][i]: the out-of-fold logit of image i under split r at penalty li; headSum[li]: sum of the fold heads.
  const oof = splits.map(() => lambdas.map(() => new Float64Array(n)));
  const headSum = lambdas.map(() => ({ weight: new Float64Array(d), bias: 0 }));
  splits.forEach((sp, r) => {
    for (const j of sp.usedFolds) {
      const train = fitImages.filter((i) => sp.foldOf.get(data.images[i]!.patient) !== j);
      const st = standardizer(data.features, n, d, train);
      let warm: LogisticFit | undefined;
      lambdas.forEach((lambda, li) => {
        // Along the path from the strongest penalty down, each fit starts where the previous one ended.
        warm = fitLogisticL2(data.features, n, d, y, { lambda, rows: train, offsets, standardize: st, ...(warm ? { init: { v: warm.v, c: warm.c } } : {}) });
        const hs = headSum[li]!;
        for (let q = 0; q < d; q++) hs.weight[q]! += warm.weight[q]!;
        hs.bias += warm.bias;
        for (const i of sp.foldImages[j]!) {
          let z = offsets[i]! + warm.bias;
          for (let q = 0; q < d; q++) z += data.features[i * d + q]! * warm.weight[q]!;
          oof[r]![li]![i] = z;
        }
        opts.onProgress?.(++done, total, `cross-fitting${repeats > 1 ? ` split ${r + 1}/${repeats}` : ''} fold ${j + 1}/${sp.usedFolds.length}, lambda ${lambda}`);
      });
    }
  });
  const fitY = fitImages.map((i) => y[i]!);
  const cv = lambdas.map((lambda, li) => ({
    lambda,
    logLoss: oof.reduce((a, o) => a + logLoss(fitImages.map((i) => sigmoid(o[li]![i]!)), fitY), 0) / repeats,
  }));
  let best = 0;
  cv.forEach((c, li) => {
    if (c.logLoss < cv[best]!.logLoss - 1e-12) best = li;
  });
  const lambda = lambdas[best]!;

  // 3-4. Study-level temperature and threshold on the out-of-fold logits of the chosen penalty (with several
  // splits, each image's out-of-fold logits averaged over the splits: still from heads that never saw it).
  const fitStudyIndex = new Map<number, number>();
  fitStudies.forEach((s, r) => fitStudyIndex.set(s, r));
  const oofLogits = fitImages.map((i) => oof.reduce((a, o) => a + o[best]![i]!, 0) / repeats);
  const oofStudy = fitImages.map((i) => fitStudyIndex.get(idx.studyOf[i]!)!);
  const fitStudyLabels = fitStudies.map((s) => idx.studies[s]!.label);
  const tfit = fitStudyTemperature(oofLogits, oofStudy, fitStudyLabels);
  const oofP = studyProbabilities(oofLogits, oofStudy, fitStudies.length, tfit.temperature);
  const op = chooseThreshold(oofP, fitStudyLabels, rule);

  // 5. The head: the mean of the fold heads (bagged), or one fit on the whole fitting part (refit).
  let final: { weight: Float64Array; bias: number };
  if (headMode === 'refit') {
    final = fitLogisticL2(data.features, n, d, y, { lambda, rows: fitImages, offsets });
    opts.onProgress?.(++done, total, 'final fit');
  } else {
    const hs = headSum[best]!;
    final = { weight: hs.weight.map((v) => v / fitCount), bias: hs.bias / fitCount };
  }
  const candidate: FittedHead = {
    deltaWeight: Float32Array.from(final.weight),
    deltaBias: final.bias,
    temperature: tfit.temperature,
    threshold: op.threshold,
    lambda,
    fit: { head: headMode, folds: fitCount, repeats },
    rule,
    outOfFold: { studies: fitStudies.length, kappa: op.kappa, sensitivity: op.sensitivity, specificity: op.specificity, temperatureNllBefore: tfit.nllBefore, temperatureNllAfter: tfit.nllAfter },
  };

  // 6. Held-out before / after (the only place the held-out part is read).
  const heldStudyIndex = new Map<number, number>();
  heldStudies.forEach((s, r) => heldStudyIndex.set(s, r));
  const hStudy = heldImages.map((i) => heldStudyIndex.get(idx.studyOf[i]!)!);
  const hY = heldStudies.map((s) => idx.studies[s]!.label);
  const deployed = data.deployedLogits ?? offsets;
  const beforeLogits = heldImages.map((i) => deployed[i]!);
  const afterScores = logisticScores(
    Float32Array.from(heldImages.flatMap((i) => Array.from(data.features.subarray(i * d, (i + 1) * d)))),
    heldImages.length,
    d,
    { weight: final.weight, bias: final.bias },
    heldImages.map((i) => offsets[i]!),
  );
  const pBefore = studyProbabilities(beforeLogits, hStudy, heldStudies.length, base.temperature);
  const pAfter = studyProbabilities(afterScores, hStudy, heldStudies.length, candidate.temperature);
  const heldOut = compareHeldOut(pBefore, pAfter, hY, base.threshold, candidate.threshold, B, seed);

  // 7. Decision.
  const tooSmall = reasons.length > 0;
  const better = heldOut.after.logLoss < heldOut.before.logLoss;
  let decision: AdaptResult['decision'] = 'kept-base';
  let decisionReason: string;
  if (tooSmall) decisionReason = `too small to trust: ${reasons.join('; ')}; the deployed model is kept and no improvement is claimed`;
  else if (!better) decisionReason = `the adapted head is not better on the held-out studies (study log loss ${heldOut.after.logLoss.toFixed(4)} vs ${heldOut.before.logLoss.toFixed(4)}); the deployed model is kept`;
  else {
    decision = 'adapted';
    decisionReason = `the adapted head lowers the held-out study log loss from ${heldOut.before.logLoss.toFixed(4)} to ${heldOut.after.logLoss.toFixed(4)}`;
  }
  const dl = heldOut.intervals.difference.logLoss;
  const improvementClaimed = decision === 'adapted' && dl !== null && dl[1] < 0;
  return {
    split: { fit: fitCounts, heldOut: heldCounts, heldOutPatients: [...held].sort(), fitPatients: [...new Set(fitUnits.map((s) => s.patient))].sort() },
    cv,
    candidate,
    heldOut,
    tooSmall,
    tooSmallReason: reasons.join('; '),
    decision,
    decisionReason,
    improvementClaimed,
    adopted: decision === 'adapted' ? candidate : null,
  };
}

const METRIC_KEYS = ['auc', 'sensitivity', 'specificity', 'kappa', 'ece', 'logLoss'] as const;

/** Study-level before/after on the held-out studies with paired percentile bootstrap intervals. */
export function compareHeldOut(pBefore: Float64Array, pAfter: Float64Array, y: readonly number[], thresholdBefore: number, thresholdAfter: number, replicates: number, seed: Seed): HeldOutComparison {
  const m = y.length;
  const before = studyMetrics(pBefore, y, thresholdBefore);
  const after = studyMetrics(pAfter, y, thresholdAfter);
  const draws = { before: METRIC_KEYS.map(() => [] as number[]), after: METRIC_KEYS.map(() => [] as number[]), diff: { auc: [] as number[], kappa: [] as number[], ece: [] as number[], logLoss: [] as number[] } };
  const rng = new Rng(seed).fork('adapt-bootstrap');
  const w = new Float64Array(m);
  for (let b = 0; b < replicates; b++) {
    w.fill(0);
    for (let j = 0; j < m; j++) w[rng.int(m)]!++;
    const mb = studyMetrics(pBefore, y, thresholdBefore, w);
    const ma = studyMetrics(pAfter, y, thresholdAfter, w);
    METRIC_KEYS.forEach((key, ki) => {
      if (mb[key] !== null) draws.before[ki]!.push(mb[key]!);
      if (ma[key] !== null) draws.after[ki]!.push(ma[key]!);
    });
    for (const key of ['auc', 'kappa', 'ece', 'logLoss'] as const) {
      if (mb[key] !== null && ma[key] !== null) draws.diff[key].push(ma[key]! - mb[key]!);
    }
  }
  const ci = (v: number[]): Interval => {
    if (replicates === 0 || v.length < 0.5 * replicates) return null;
    const s = Float64Array.from(v).sort();
    return [percentileSorted(s, 0.025), percentileSorted(s, 0.975)];
  };
  const pack = (arr: number[][]) => Object.fromEntries(METRIC_KEYS.map((key, ki) => [key, ci(arr[ki]!)])) as Record<(typeof METRIC_KEYS)[number], Interval>;
  return {
    studies: m,
    abnormal: y.reduce((a, v) => a + v, 0),
    before,
    after,
    intervals: {
      before: pack(draws.before),
      after: pack(draws.after),
      difference: { auc: ci(draws.diff.auc), kappa: ci(draws.diff.kappa), ece: ci(draws.diff.ece), logLoss: ci(draws.diff.logLoss) },
    },
    replicates,
  };
}
