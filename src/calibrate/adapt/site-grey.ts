/**
 * The site's grey-level normalisation, fitted for an adaptation (browser-safe; `nextray adapt` and the page): the
 * quantiles of the local images' grey levels, measured on the FITTING part only (the held-out part is never read
 * here), matched onto the training site's reference quantiles (src/data/grey-map.ts). The adapted model then applies
 * the map in its preprocessing (`Preprocessing.greyMap`) before every prediction, and its head is refitted on the
 * features of the mapped images.
 */
import { fitGreyMap, GREY_LEVELS, type GreyHistogram, type GreyMap } from '../../data/grey-map.js';
import { splitImages, type AdaptImage, type AdaptOptions } from './adapt.js';
import { AdaptError } from './head-file.js';
import { EXIT_FAILURE } from '../../util/errors.js';

/** The training site's grey levels: quantiles at `levels` of its images in the model grid. */
export interface GreyReference {
  levels: number[];
  quantiles: number[];
  /** How many images they were measured on, and where from (a folder name; never image content). */
  images: number;
  source: string;
}

/** The site's map and what it was fitted on. */
export interface SiteGreyFit {
  map: GreyMap;
  /** The local quantiles (at reference.levels) the map sends onto the reference. */
  local: number[];
  /** Images of the fitting part the histogram counted (indices into the images). */
  fitImages: number[];
  /** Images whose grey levels were counted (fitting part, decodable). */
  images: number;
}

export function checkGreyReference(value: unknown, where = 'grey reference'): GreyReference {
  const r = value as Partial<GreyReference> | null;
  const ok =
    !!r &&
    Array.isArray(r.levels) &&
    Array.isArray(r.quantiles) &&
    r.levels.length === r.quantiles.length &&
    r.levels.length > 0 &&
    r.levels.every((v, i) => typeof v === 'number' && v > 0 && v < 1 && (i === 0 || v > r.levels![i - 1]!)) &&
    r.quantiles.every((v, i) => typeof v === 'number' && v >= 0 && v <= 1 && (i === 0 || v >= r.quantiles![i - 1]!));
  if (!ok) throw new AdaptError(`${where}: expected { levels, quantiles } (increasing levels in (0, 1), non-decreasing quantiles in [0, 1])`);
  return { levels: [...r!.levels!], quantiles: [...r!.quantiles!], images: Number(r!.images ?? 0), source: String(r!.source ?? '') };
}

/** The reference of a histogram of training-site images. */
export function greyReferenceOf(histogram: GreyHistogram, source: string): GreyReference {
  return { levels: [...GREY_LEVELS], quantiles: histogram.quantiles(GREY_LEVELS), images: histogram.images, source };
}

/**
 * Fits the site's grey map on the fitting part of `images` (the split adaptHead makes with the same fraction and
 * seed). `histogramOf` measures the grey levels of the images it is given (indices into `images`): the host decodes
 * them as the model would see them.
 */
export async function fitSiteGreyMap(
  images: readonly AdaptImage[],
  reference: GreyReference,
  histogramOf: (indices: readonly number[]) => Promise<GreyHistogram>,
  opts: Pick<AdaptOptions, 'heldOutFraction' | 'seed'> = {},
): Promise<SiteGreyFit> {
  const { fit } = splitImages(images, opts);
  const h = await histogramOf(fit);
  if (!(h.pixels > 0)) throw new AdaptError('none of the fitting part\'s images could be read for the grey levels', { exitStatus: EXIT_FAILURE });
  const local = h.quantiles(reference.levels);
  return { map: fitGreyMap(local, reference.quantiles), local, fitImages: fit, images: h.images };
}
