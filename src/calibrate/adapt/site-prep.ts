/**
 * The site's preprocessing, chosen for an adaptation (browser-safe; `nextray adapt`, the page and the site-adaptation
 * bench run this same code). A refit of the head cannot undo what the trunk lost to another machine's films: the
 * features are computed from the shifted images. So candidate preprocessings are put in front of the deployed model
 * (src/data/site-filter.ts: burned-in overlay suppression, smoothing; src/data/grey-map.ts: the grey-level map fitted
 * on the fitting part), the model is run again on the local images after each, the head is refitted on each
 * (adaptHead), and the candidate with the lowest cross-fitted log loss inside the FITTING part is kept. The held-out
 * part is never read by the choice: its images are run like the others (the host computes every local image), but
 * adaptHead reads their features only in its held-out check, and the grey map is fitted on the fitting part alone.
 * That check compares the kept candidate against the deployed model as it runs today, and keeps the deployed model
 * when the candidate is not better.
 */
import type { GreyHistogram, GreyMap } from '../../data/grey-map.js';
import type { SiteFilter } from '../../data/site-filter.js';
import { adaptHead, type AdaptImage, type AdaptOptions, type AdaptResult, type BaseModel } from './adapt.js';
import { fitSiteGreyMap, type GreyReference, type SiteGreyFit } from './site-grey.js';

/**
 * The site filters tried (besides none): overlay suppression at two thresholds (0.98: only the reader's white
 * strokes; 0.9: also bright unexposed borders outside the collimator), smoothing at three strengths (model-grid
 * pixels), each suppression followed by the middle smoothing (a site can have both text and a soft, noisy plate),
 * and the middle smoothing followed by a broad unsharp mask (sigma 3, amount 1: a local-contrast boost of the band a
 * low-contrast or low-resolution plate damped), alone and after the suppression at 0.9. The last two were chosen on
 * the site-adaptation bench's adaptation pools only (docs/adaptation.md), never its test part.
 */
export const SITE_FILTER_CANDIDATES: readonly SiteFilter[] = Object.freeze([
  { overlay: { threshold: 0.98 } },
  { overlay: { threshold: 0.9 } },
  { smooth: { sigma: 0.5 } },
  { smooth: { sigma: 0.7 } },
  { smooth: { sigma: 1 } },
  { overlay: { threshold: 0.98 }, smooth: { sigma: 0.7 } },
  { overlay: { threshold: 0.9 }, smooth: { sigma: 0.7 } },
  { smooth: { sigma: 0.7 }, sharpen: { sigma: 3, amount: 1 } },
  { overlay: { threshold: 0.9 }, smooth: { sigma: 0.7 }, sharpen: { sigma: 3, amount: 1 } },
]);

/** What the host computes (it decodes the images; the core never sees a file). */
export interface SitePrepHost {
  /**
   * The deployed model's `features` [images, dim] and logits before its temperature (`logits` output times the
   * temperature) of every local image, preprocessed with the model's own preprocessing plus `prep`.
   */
  outputs(prep: { siteFilter?: SiteFilter; greyMap?: GreyMap }, what: string): Promise<{ features: Float32Array; baseLogits: ArrayLike<number> }>;
  /** The grey-level histogram (src/data/grey-map.ts) of the images `indices`, after `siteFilter` (when given). */
  histogramOf(indices: readonly number[], siteFilter: SiteFilter | undefined): Promise<GreyHistogram>;
}

export interface SitePrepOptions extends AdaptOptions {
  /** The training site's reference grey levels; none: no grey map is tried. */
  reference?: GreyReference | null;
  /** 'auto' (default): tried, kept when better; 'on': every candidate has the map; 'off': never. */
  greyMap?: 'auto' | 'on' | 'off';
  /** 'auto' (default): the SITE_FILTER_CANDIDATES tried; 'off': none. */
  siteFilter?: 'auto' | 'off';
  /** Called before each candidate is computed (k of total, a label). */
  onCandidate?: (k: number, total: number, what: string) => void;
}

/** One candidate tried, with its cross-fitted image log loss inside the fitting part (the lowest was kept). */
export interface SitePrepTrial {
  site_filter: SiteFilter | null;
  grey_map: boolean;
  cv_log_loss: number;
}

export interface SitePrepOutcome {
  /** The adaptation with the kept preprocessing; result.candidate carries its siteFilter and greyMap. */
  result: AdaptResult;
  trials: SitePrepTrial[];
  /** The kept preprocessing. */
  siteFilter: SiteFilter | null;
  greyMap: GreyMap | null;
  /** The grey map fitted after the kept filter (also when not used), for the record. */
  greyFit: SiteGreyFit | null;
  /** Cross-fitted log loss of the kept filter without and with the map (the grey-normalisation record). */
  greyCv: { head_only: number; with_map: number } | null;
}

const bestLogLoss = (r: AdaptResult): number => Math.min(...r.cv.map((c) => c.logLoss));

/** A label of a candidate for progress lines. */
export function sitePrepLabel(f: SiteFilter | null, map: boolean): string {
  const parts: string[] = [];
  if (f?.overlay) parts.push(`overlay suppression >= ${f.overlay.threshold}`);
  if (f?.smooth) parts.push(`smoothing sigma ${f.smooth.sigma}`);
  if (f?.sharpen) parts.push(`sharpening sigma ${f.sharpen.sigma} amount ${f.sharpen.amount}`);
  if (map) parts.push('grey map');
  return parts.length ? parts.join(' + ') : 'as deployed';
}

/**
 * Every candidate preprocessing (none and each filter; each without and with the grey map when a reference is
 * given), the head refitted after each, the lowest cross-fitted log loss kept. `plain` is the model's output as it
 * runs today (also the held-out check's "before").
 */
export async function adaptWithSitePreprocessing(
  images: readonly AdaptImage[],
  dim: number,
  plain: { features: Float32Array; baseLogits: ArrayLike<number> },
  base: BaseModel,
  host: SitePrepHost,
  opts: SitePrepOptions = {},
): Promise<SitePrepOutcome> {
  const { reference = null, greyMap: mapMode = 'auto', siteFilter: filterMode = 'auto', onCandidate, ...fitOpts } = opts;
  const deployedLogits = Float64Array.from(plain.baseLogits);
  const fit = (features: Float32Array, baseLogits: ArrayLike<number>): AdaptResult =>
    adaptHead({ images, features, dim, baseLogits: Float64Array.from(baseLogits), deployedLogits }, base, fitOpts);
  const filters: (SiteFilter | null)[] = [null, ...(filterMode === 'off' ? [] : SITE_FILTER_CANDIDATES)];
  const maps: boolean[] = !reference || mapMode === 'off' ? [false] : mapMode === 'on' ? [true] : [false, true];
  const total = filters.length * maps.length;
  let k = 0;
  const trials: SitePrepTrial[] = [];
  let best: { result: AdaptResult; filter: SiteFilter | null; map: GreyMap | null; loss: number } | null = null;
  const perFilter = new Map<SiteFilter | null, { fit: SiteGreyFit | null; cv: { head_only: number; with_map: number } }>();
  for (const f of filters) {
    let headOnly = NaN;
    let withMap = NaN;
    let greyFit: SiteGreyFit | null = null;
    for (const useMap of maps) {
      onCandidate?.(k++, total, sitePrepLabel(f, useMap));
      let map: GreyMap | null = null;
      if (useMap) {
        greyFit = await fitSiteGreyMap(images, reference!, (idx) => host.histogramOf(idx, f ?? undefined), fitOpts);
        map = greyFit.map;
      }
      const out = !f && !map ? plain : await host.outputs({ ...(f ? { siteFilter: f } : {}), ...(map ? { greyMap: map } : {}) }, sitePrepLabel(f, useMap));
      const result = fit(out.features, out.baseLogits);
      const loss = bestLogLoss(result);
      trials.push({ site_filter: f, grey_map: useMap, cv_log_loss: loss });
      if (useMap) withMap = loss;
      else headOnly = loss;
      // Ties keep the earlier (simpler) candidate.
      if (!best || loss < best.loss) best = { result, filter: f, map, loss };
    }
    perFilter.set(f, { fit: greyFit, cv: { head_only: headOnly, with_map: withMap } });
  }
  const kept = best!;
  if (kept.filter) kept.result.candidate.siteFilter = kept.filter;
  if (kept.map) kept.result.candidate.greyMap = kept.map;
  const g = perFilter.get(kept.filter)!;
  return {
    result: kept.result,
    trials,
    siteFilter: kept.filter,
    greyMap: kept.map,
    greyFit: g.fit,
    greyCv: g.fit ? g.cv : null,
  };
}
