/**
 * From decoded grey images to per-image results: `preprocess` (the model's stored preprocessing), `prepareImage`
 * (one input per distinct preprocessing of an ensemble) and `predictBatch` (one ensemble run over a batch of
 * prepared images -> `ImagePrediction`s). Hosts decode pixels their own way (Node: sharp and DICOM on worker
 * threads; browser: canvas or the DICOM reader) and meet here.
 *
 * Browser-safe.
 */
import { normaliseToChannels, preprocessGrey, resizeToInput, type Preprocessing } from '../../data/preprocess.js';
import type { Label, Region } from '../../data/types.js';
import type { Ensemble } from './ensemble.js';
import { InferenceError, type ModelRunOptions } from './model.js';
import type { StudyKey, StudySource } from './study.js';
import type { DicomIdentity } from './identity.js';

/**
 * Model input from a decoded grey image (row-major, values in [0, 1]): resize per `p` (letterbox or stretch,
 * antialiased bilinear), replicate to 3 channels, normalise. size * size * 3 floats, HWC.
 */
export function preprocess(grey: Float32Array, width: number, height: number, p: Preprocessing): Float32Array {
  return preprocessGrey(grey, width, height, p);
}

/**
 * The inputs an ensemble needs for one image, one per distinct preprocessing, resizing once per distinct
 * (size, resize, background) and normalising per mean/std.
 */
export function preprocessAll(grey: Float32Array, width: number, height: number, ps: readonly Preprocessing[], what = 'image'): Float32Array[] {
  const resized = new Map<string, Float32Array>();
  return ps.map((p) => {
    const k = `${p.size}|${p.resize}|${p.background}|${p.greyMap ? JSON.stringify(p.greyMap) : ''}|${p.siteFilter ? JSON.stringify(p.siteFilter) : ''}`;
    let g = resized.get(k);
    if (!g) {
      g = resizeToInput(grey, width, height, p, what);
      resized.set(k, g);
    }
    return normaliseToChannels(g, p);
  });
}

/** One image ready for the ensemble. */
export interface PreparedImage {
  /** The image's name in outputs: the path as given (Node), the file name (browser). */
  image: string;
  /** inputs[j]: made with ensemble.preprocessings[j]. */
  inputs: Float32Array[];
  study: StudyKey;
  /** Decoded size, before preprocessing. */
  width: number;
  height: number;
  /** 'png' | 'jpeg' | 'dicom'. */
  format: string;
  /** Things that decoded fine but look wrong (all one value, 12 bits in a 16-bit PNG ...). */
  warnings: string[];
  /** What the DICOM header says about the view and its patient and study (DICOM files only). */
  dicom?: DicomIdentity;
}

/** A heatmap over the model input grid (filled by the explanation code, when asked for). */
export interface Heatmap {
  width: number;
  height: number;
  /** Row-major, width * height values in [0, 1]. */
  data: Float32Array;
  /** How it was made: 'cam' (one model), 'cam-mean' (an ensemble: the mean of its members' maps, see applyTrust). */
  method: string;
  /**
   * One model only: its raw map as the graph gave it (h x w over the input grid, not normalised), for drawing it on
   * the original image without resampling twice (camOnImage).
   */
  coarse?: { data: Float32Array; height: number; width: number };
}

/** The result for one image. */
export interface ImagePrediction {
  image: string;
  /** P(abnormal): the mean of the ensemble members' probabilities. */
  probability: number;
  decision: 'abnormal' | 'normal';
  /** The threshold the decision used (abnormal when probability > threshold). */
  threshold: number;
  /** Each member's probability, in ensemble order (one entry for a single model). */
  perModel: number[];
  /** The model (ensemble: names joined with '+') and its SHA-256 (ensemble: joined with '+'). */
  model: string;
  modelSha256: string;
  study: string;
  studySource: StudySource;
  /** From a MURA study folder name (1 = abnormal); absent elsewhere. */
  label?: Label;
  region?: Region;
  width: number;
  height: number;
  format: string;
  warnings: string[];
  /** DICOM inputs: identifiers and view from the header (View Position, Laterality ... go into the CSV). */
  dicom?: DicomIdentity;
  /** Optional, filled by the trust layer when asked: class activation heatmap (an ensemble's: the members' mean). */
  heatmap?: Heatmap;
  /** Optional, filled by the trust layer: whether the image looks out of distribution, and the score behind it. */
  ood?: boolean;
  oodScore?: number;
}

export interface PredictBatchOptions extends ModelRunOptions {
  /**
   * Called with the batch's raw ensemble outputs before results are returned (e.g. to turn a feature map into
   * heatmaps); may add fields to the results.
   */
  onBatch?: (results: ImagePrediction[], raw: Awaited<ReturnType<Ensemble['run']>>, images: readonly PreparedImage[]) => void | Promise<void>;
}

/** Runs the ensemble on a batch of prepared images; results in the same order. */
export async function predictBatch(ensemble: Ensemble, images: readonly PreparedImage[], opts: PredictBatchOptions = {}): Promise<ImagePrediction[]> {
  const n = images.length;
  if (n === 0) return [];
  const inputs = ensemble.preprocessings.map((p, j) => {
    const per = p.size * p.size * 3;
    const x = new Float32Array(n * per);
    images.forEach((im, k) => {
      const v = im.inputs[j];
      if (!v || v.length !== per) throw new RangeError(`${im.image}: input ${j} has ${v?.length ?? 0} values, expected ${per}`);
      x.set(v, k * per);
    });
    return x;
  });
  const raw = await ensemble.run(inputs, n, opts.outputs ? { outputs: opts.outputs } : {});
  // A probability that is not a number in [0, 1] (NaN from a damaged file or overflowing weights) would otherwise
  // read as 'normal' (NaN > threshold is false): refuse it, naming the member and the view.
  raw.perModel.forEach((probs, m) => {
    const k = probs.findIndex((p) => !(p >= 0 && p <= 1));
    if (k >= 0) {
      const card = ensemble.cards[m]!;
      throw new InferenceError(
        `${card.source}: gave the probability ${probs[k]} for ${images[k]!.image}, not a number in [0, 1]; the model file is damaged or its weights overflow`,
        { hint: "export the model again with 'nextray export'" },
      );
    }
  });
  const model = ensemble.name;
  const modelSha256 = ensemble.sha256;
  const results = images.map((im, k): ImagePrediction => {
    const probability = raw.probabilities[k]!;
    return {
      image: im.image,
      probability,
      decision: ensemble.isAbnormal(probability) ? 'abnormal' : 'normal',
      threshold: ensemble.threshold,
      perModel: raw.perModel.map((p) => p[k]!),
      model,
      modelSha256,
      study: im.study.key,
      studySource: im.study.source,
      ...(im.study.label !== undefined ? { label: im.study.label } : {}),
      ...(im.study.region !== undefined ? { region: im.study.region } : {}),
      width: im.width,
      height: im.height,
      format: im.format,
      warnings: im.warnings,
      ...(im.dicom ? { dicom: im.dicom } : {}),
    };
  });
  if (opts.onBatch) await opts.onBatch(results, raw, images);
  return results;
}
