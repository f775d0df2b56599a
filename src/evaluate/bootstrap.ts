/**
 * Cluster bootstrap confidence intervals for every metric.
 *
 * The resampling unit is the STUDY: views of one study are not independent (same patient, same visit, same label),
 * so resampling images would understate the uncertainty. A replicate draws as many studies as the group has,
 * uniformly with replacement; at image level each drawn study brings all its images. The same draws serve the image
 * and the study level, so both levels' intervals describe the same resampled test sets.
 *
 * Interval: percentile method — the alpha/2 and 1 - alpha/2 quantiles (linear interpolation between order
 * statistics, numpy.percentile's default) of the replicate values. A replicate where a metric is undefined (e.g.
 * no abnormal study drawn, for sensitivity) is left out of that metric's interval; the number of usable replicates
 * is reported, and when fewer than half are usable the interval is null with a reason.
 *
 * Reproducible: draws come from the seeded Rng (src/util/rng.ts), one forked stream per group name, so a group's
 * interval does not depend on which other groups were evaluated.
 */
import { Rng, type Seed } from '../util/rng.js';
import { computeMetrics, METRIC_NAMES, type MetricName, type PreparedScores } from './metrics.js';

export interface BootstrapOptions {
  /** Number of replicates B (default 1000). 0 turns intervals off. */
  replicates?: number;
  seed?: Seed;
  /** 1 - confidence level (default 0.05 for 95% intervals). */
  alpha?: number;
  /** Fewer usable replicates than this fraction of B gives a null interval (default 0.5). */
  minUsableFraction?: number;
}

export const DEFAULT_BOOTSTRAP_REPLICATES = 1000;
export const DEFAULT_BOOTSTRAP_SEED = 20171220; // any fixed number; the MURA paper's arXiv date, for memorability

/** Cases (images or studies) with the study (cluster) each belongs to: cluster[i] in [0, nClusters). */
export interface ClusteredScores {
  prepared: PreparedScores;
  cluster: Uint32Array;
  nClusters: number;
}

export interface MetricIntervals {
  ci: Record<MetricName, [number, number] | null>;
  /** Replicates in which the metric was defined. */
  usable: Record<MetricName, number>;
  /** Why an interval is null. */
  reasons: Partial<Record<MetricName, string>>;
}

/** Quantile q of ascending `sorted` (length m >= 1), numpy.percentile 'linear'. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const m = sorted.length;
  if (m === 0) throw new RangeError('percentile of an empty sample');
  const pos = q * (m - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, m - 1);
  const frac = pos - lo;
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * frac;
}

/**
 * Bootstrap intervals for several case sets that share one set of clusters (e.g. the images and the studies of
 * one region). Returns one MetricIntervals per set, in order.
 */
export function bootstrapIntervals(
  sets: readonly ClusteredScores[],
  threshold: number,
  group: string,
  options: BootstrapOptions = {},
): MetricIntervals[] {
  const B = options.replicates ?? DEFAULT_BOOTSTRAP_REPLICATES;
  const alpha = options.alpha ?? 0.05;
  const minFraction = options.minUsableFraction ?? 0.5;
  if (!Number.isInteger(B) || B < 0) throw new RangeError(`bootstrap replicates must be a non-negative integer, got ${B}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  if (sets.length === 0) return [];
  const nClusters = sets[0]!.nClusters;
  for (const s of sets) {
    if (s.nClusters !== nClusters) throw new RangeError('bootstrapIntervals: sets must share their clusters');
  }
  const values = sets.map(() => METRIC_NAMES.map(() => new Float64Array(B)));
  const usable = sets.map(() => METRIC_NAMES.map(() => 0));
  const rng = new Rng(options.seed ?? DEFAULT_BOOTSTRAP_SEED).fork(group);
  const counts = new Uint32Array(nClusters);
  const weights = sets.map((s) => new Float64Array(s.cluster.length));
  for (let b = 0; b < B && nClusters > 0; b++) {
    counts.fill(0);
    for (let j = 0; j < nClusters; j++) counts[rng.int(nClusters)]!++;
    sets.forEach((set, si) => {
      const w = weights[si]!;
      for (let i = 0; i < w.length; i++) w[i] = counts[set.cluster[i]!]!;
      const m = computeMetrics(set.prepared, threshold, w);
      METRIC_NAMES.forEach((name, mi) => {
        const v = m.values[name];
        if (v !== null) values[si]![mi]![usable[si]![mi]!++] = v;
      });
    });
  }
  return sets.map((_, si) => {
    const ci = {} as Record<MetricName, [number, number] | null>;
    const used = {} as Record<MetricName, number>;
    const reasons: Partial<Record<MetricName, string>> = {};
    METRIC_NAMES.forEach((name, mi) => {
      const k = usable[si]![mi]!;
      used[name] = k;
      if (B === 0) {
        ci[name] = null;
        reasons[name] = 'bootstrap turned off (B = 0)';
      } else if (nClusters === 0 || k === 0 || k < minFraction * B) {
        ci[name] = null;
        reasons[name] = `defined in only ${k} of ${B} bootstrap replicates`;
      } else {
        const sorted = values[si]![mi]!.subarray(0, k).sort();
        ci[name] = [percentileSorted(sorted, alpha / 2), percentileSorted(sorted, 1 - alpha / 2)];
      }
    });
    return { ci, usable: used, reasons };
  });
}
