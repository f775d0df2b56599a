/**
 * The evaluation itself: predictions in, every number out — per region and overall, at image and study level,
 * point estimates, study-clustered bootstrap intervals and ROC curves. Faces (CLI, reports) only format this.
 */
import { REGIONS, type Region } from '../data/types.js';
import type { Seed } from '../util/rng.js';
import {
  bootstrapIntervals,
  DEFAULT_BOOTSTRAP_REPLICATES,
  DEFAULT_BOOTSTRAP_SEED,
  type BootstrapOptions,
  type ClusteredScores,
  type MetricIntervals,
} from './bootstrap.js';
import { computeMetrics, METRIC_NAMES, prepareScores, rocCurve, type PointMetrics, type RocCurve } from './metrics.js';
import { aggregateStudies, type ResolvedPrediction, type StudyPrediction } from './predictions.js';
import type { ThresholdChoice } from './threshold.js';
import { calibration, type CalibrationSummary } from './calibration.js';

export const DEFAULT_THRESHOLD = 0.5;

export interface EvaluateOptions extends BootstrapOptions {
  /** Abnormal when probability > threshold (default 0.5). */
  threshold?: number;
  /** How the threshold was chosen, when chosen on validation predictions (recorded in the result). */
  thresholdChoice?: ThresholdChoice;
}

export interface MetricReport extends PointMetrics {
  intervals: MetricIntervals;
  roc: RocCurve | null;
  /** ECE (15 equal-width bins), MCE, Brier and the reliability bins of the probabilities (src/evaluate/calibration.ts). */
  calibration: CalibrationSummary;
}

export type Level = 'image' | 'study';
export const LEVELS: readonly Level[] = ['image', 'study'];

export interface LevelReport {
  overall: MetricReport;
  /** Regions present in the predictions, in REGIONS order. */
  regions: Partial<Record<Region, MetricReport>>;
}

export interface RegionSummary {
  images: number;
  studies: number;
  abnormalStudies: number;
  normalStudies: number;
  patients: number;
}

export interface DatasetSummary {
  images: number;
  studies: number;
  patients: number;
  /** Root folder names seen in the paths (`MURA-v1.1` for the real dataset). */
  roots: string[];
  /** MURA splits seen in the paths. */
  splits: string[];
  regions: Partial<Record<Region, RegionSummary>>;
}

export interface EvaluationResult {
  threshold: number;
  thresholdChoice: ThresholdChoice | null;
  bootstrap: { replicates: number; seed: Seed; alpha: number; method: 'percentile'; unit: 'study' };
  summary: DatasetSummary;
  image: LevelReport;
  study: LevelReport;
  predictions: ResolvedPrediction[];
  studies: StudyPrediction[];
}

function summarise(preds: readonly ResolvedPrediction[], studies: readonly StudyPrediction[]): DatasetSummary {
  const regions: Partial<Record<Region, RegionSummary>> = {};
  const patientsByRegion = new Map<Region, Set<string>>();
  for (const r of REGIONS) patientsByRegion.set(r, new Set());
  for (const s of studies) {
    const e = (regions[s.region] ??= { images: 0, studies: 0, abnormalStudies: 0, normalStudies: 0, patients: 0 });
    e.studies++;
    e.images += s.images.length;
    if (s.label === 1) e.abnormalStudies++;
    else e.normalStudies++;
    patientsByRegion.get(s.region)!.add(s.patient);
  }
  for (const r of REGIONS) if (regions[r]) regions[r].patients = patientsByRegion.get(r)!.size;
  return {
    images: preds.length,
    studies: studies.length,
    patients: new Set(preds.map((p) => p.patient)).size,
    roots: [...new Set(preds.map((p) => p.root))].sort(),
    splits: [...new Set(preds.map((p) => p.split))].sort(),
    regions,
  };
}

/** Evaluates one group of studies (all, or one region) at both levels, sharing the bootstrap draws. */
function evaluateGroup(
  group: string,
  studies: readonly StudyPrediction[],
  imagesByStudy: ReadonlyMap<string, ResolvedPrediction[]>,
  threshold: number,
  options: BootstrapOptions,
): Record<Level, MetricReport> {
  const imageLabels: number[] = [];
  const imageScores: number[] = [];
  const imageCluster: number[] = [];
  studies.forEach((s, j) => {
    for (const p of imagesByStudy.get(s.study)!) {
      imageLabels.push(p.label);
      imageScores.push(p.probability);
      imageCluster.push(j);
    }
  });
  const sets: Record<Level, ClusteredScores> = {
    image: {
      prepared: prepareScores(imageLabels, imageScores),
      cluster: Uint32Array.from(imageCluster),
      nClusters: studies.length,
    },
    study: {
      prepared: prepareScores(
        studies.map((s) => s.label),
        studies.map((s) => s.probability),
      ),
      cluster: Uint32Array.from(studies, (_, j) => j),
      nClusters: studies.length,
    },
  };
  const [imageCI, studyCI] = bootstrapIntervals([sets.image, sets.study], threshold, group, options);
  const report = (set: ClusteredScores, intervals: MetricIntervals, labels: number[], scores: number[]): MetricReport => ({
    ...computeMetrics(set.prepared, threshold),
    intervals,
    roc: rocCurve(set.prepared),
    calibration: calibration(scores, labels),
  });
  return {
    image: report(sets.image, imageCI!, imageLabels, imageScores),
    study: report(sets.study, studyCI!, studies.map((s) => s.label), studies.map((s) => s.probability)),
  };
}

/**
 * Evaluates resolved predictions (from parsePredictionsCsv / resolvePredictions). Throws PredictionsError when the
 * views of a study disagree on the label, RangeError on empty input or a bad option.
 */
export function evaluatePredictions(
  predictions: readonly ResolvedPrediction[],
  options: EvaluateOptions = {},
): EvaluationResult {
  const threshold = options.thresholdChoice?.threshold ?? options.threshold ?? DEFAULT_THRESHOLD;
  if (!Number.isFinite(threshold)) throw new RangeError(`threshold must be a finite number, got ${threshold}`);
  if (predictions.length === 0) throw new RangeError('no predictions to evaluate');
  const studies = aggregateStudies(predictions);
  const imagesByStudy = new Map<string, ResolvedPrediction[]>();
  for (const p of predictions) {
    const list = imagesByStudy.get(p.study);
    if (list) list.push(p);
    else imagesByStudy.set(p.study, [p]);
  }
  const bootstrapOptions: BootstrapOptions = {
    replicates: options.replicates ?? DEFAULT_BOOTSTRAP_REPLICATES,
    seed: options.seed ?? DEFAULT_BOOTSTRAP_SEED,
    alpha: options.alpha ?? 0.05,
  };
  if (options.minUsableFraction !== undefined) bootstrapOptions.minUsableFraction = options.minUsableFraction;
  const overall = evaluateGroup('overall', studies, imagesByStudy, threshold, bootstrapOptions);
  const image: LevelReport = { overall: overall.image, regions: {} };
  const study: LevelReport = { overall: overall.study, regions: {} };
  for (const region of REGIONS) {
    const inRegion = studies.filter((s) => s.region === region);
    if (inRegion.length === 0) continue;
    const r = evaluateGroup(region, inRegion, imagesByStudy, threshold, bootstrapOptions);
    image.regions[region] = r.image;
    study.regions[region] = r.study;
  }
  return {
    threshold,
    thresholdChoice: options.thresholdChoice ?? null,
    bootstrap: {
      replicates: bootstrapOptions.replicates!,
      seed: bootstrapOptions.seed!,
      alpha: bootstrapOptions.alpha!,
      method: 'percentile',
      unit: 'study',
    },
    summary: summarise(predictions, studies),
    image,
    study,
    predictions: [...predictions],
    studies,
  };
}

/** One metric object of the JSON output; the shape is documented in src/evaluate/README.md. */
export function metricReportJson(m: MetricReport): Record<string, unknown> {
  const out: Record<string, unknown> = {
    count: m.count,
    positives: m.positives,
    negatives: m.negatives,
    confusion: { ...m.confusion },
  };
  for (const name of METRIC_NAMES) {
    out[name] = m.values[name];
    out[`${name}_ci`] = m.intervals.ci[name];
  }
  out.kappa_se = m.kappaSE;
  out.null_reasons = { ...m.nullReasons };
  out.ci_usable_replicates = { ...m.intervals.usable };
  out.ci_null_reasons = { ...m.intervals.reasons };
  out.roc = m.roc;
  out.ece = m.calibration.ece;
  out.mce = m.calibration.mce;
  out.brier = m.calibration.brier;
  out.reliability = { bins: m.calibration.bins.length, strategy: 'uniform', rows: m.calibration.bins };
  return out;
}

function levelJson(level: LevelReport): Record<string, unknown> {
  const regions: Record<string, unknown> = {};
  for (const r of REGIONS) {
    const m = level.regions[r];
    if (m) regions[r] = metricReportJson(m);
  }
  return { overall: metricReportJson(level.overall), regions };
}

/** The whole result as plain JSON (every number; no NaN or Infinity). */
export function evaluationJson(result: EvaluationResult, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schema: 'nextray.evaluation/1',
    decision_rule: 'abnormal when probability > threshold',
    threshold: result.threshold,
    threshold_selection: result.thresholdChoice
      ? {
          method: 'largest validation study probability t with study-level sensitivity(prob > t) >= target',
          target_sensitivity: result.thresholdChoice.targetSensitivity,
          threshold: result.thresholdChoice.threshold,
          validation_sensitivity: result.thresholdChoice.validationSensitivity,
          validation_specificity: result.thresholdChoice.validationSpecificity,
          validation_studies: result.thresholdChoice.validationCases,
          validation_abnormal_studies: result.thresholdChoice.validationPositives,
        }
      : null,
    bootstrap: { ...result.bootstrap, confidence: 1 - result.bootstrap.alpha },
    dataset: result.summary,
    ...extra,
    image: levelJson(result.image),
    study: levelJson(result.study),
  };
}
