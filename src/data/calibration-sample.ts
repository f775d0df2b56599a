/**
 * Images that calibrate int8 quantisation (src/models/onnx/precision.ts): a seeded sample of a dataset's training
 * images (MURA layout), decoded and preprocessed, in batches in a model's input layout. The export command builds
 * it and hands it to the precision pass, which knows nothing of datasets.
 */
import { DatasetError, loadMuraDataset } from './mura.js';
import { preprocessImage } from './images.js';
import type { Preprocessing } from './preprocess.js';
import { Rng } from '../util/rng.js';

/** A seeded sample of the dataset's training images, preprocessed, in batches in the model's input layout. */
export async function* calibrationBatches(
  data: string,
  preprocessing: Preprocessing,
  layout: 'nhwc' | 'nchw',
  opts: { images: number; seed: number; batch?: number; onBadImage?: (m: string) => void; stats: { bad: number; used: number } },
): AsyncGenerator<{ x: Float32Array; n: number }> {
  const ds = await loadMuraDataset(data);
  const train = ds.images.filter((i) => i.split === 'train');
  if (!train.length) throw new DatasetError(`${data}: no training images to calibrate with`, { hint: 'give a dataset in the MURA layout with a train/ folder' });
  const order = new Rng(opts.seed).fork('calibration').shuffle([...train]);
  const size = preprocessing.size;
  const per = size * size * 3;
  const batch = opts.batch ?? 8;
  let buf = new Float32Array(batch * per);
  let n = 0;
  for (const rec of order) {
    if (opts.stats.used >= opts.images) break;
    let hwc: Float32Array;
    try {
      hwc = await preprocessImage(rec.absPath, preprocessing);
    } catch (err) {
      opts.stats.bad++;
      opts.onBadImage?.(`${rec.absPath}: ${(err as Error).message}`);
      continue;
    }
    if (layout === 'nhwc') buf.set(hwc, n * per);
    else for (let p = 0; p < size * size; p++) for (let c = 0; c < 3; c++) buf[n * per + c * size * size + p] = hwc[p * 3 + c]!;
    n++;
    opts.stats.used++;
    if (n === batch) {
      yield { x: buf, n };
      buf = new Float32Array(batch * per);
      n = 0;
    }
  }
  if (n > 0) yield { x: buf.subarray(0, n * per), n };
}

/**
 * The training images of the dataset at `data` as calibration images (the shape precision.ts's CalibrationImages
 * asks for); `onBadImage` hears of each unusable image (named with its problem).
 */
export function datasetCalibrationImages(
  data: string,
  opts: { onBadImage?: (message: string) => void } = {},
): {
  source: string;
  batches(preprocessing: Preprocessing, layout: 'nhwc' | 'nchw', o: { images: number; seed: number; batch?: number }): AsyncIterable<{ x: Float32Array; n: number }>;
  readonly badImages: number;
} {
  const stats = { bad: 0, used: 0 };
  return {
    source: data,
    batches: (preprocessing, layout, o) =>
      calibrationBatches(data, preprocessing, layout, { ...o, ...(opts.onBadImage ? { onBadImage: opts.onBadImage } : {}), stats }),
    get badImages() {
      return stats.bad;
    },
  };
}
