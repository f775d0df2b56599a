/**
 * The PACS worker's one call into inference: the facade (src/inference/node/load.ts) opened once on a model (or an
 * ensemble), then a study's DICOM instances, as bytes fetched from the archive, to per-view results — the
 * probability, the decision and threshold, the OOD gate's verdict, the heatmap when asked — and the instances that
 * could not be read, with the reason. The CLI's predict, the server and the page go through the same facade, so a
 * view gets the same numbers wherever it is predicted.
 */
import type { DicomHeader } from '../data/dicom/index.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { Heatmap } from '../inference/core/predict.js';
import { load } from '../inference/node/load.js';
import type { InferenceRuntime } from '../inference/node/models.js';
import { operatingPointText } from '../inference/core/trust.js';
import { NextrayError } from '../util/errors.js';

/** One instance to predict: its name in logs and the SR (its SOP Instance UID), its file, its parsed header. */
export interface InstanceInput {
  name: string;
  bytes: Uint8Array;
  header: DicomHeader;
}

export interface ViewResult {
  name: string;
  header: DicomHeader;
  probability: number;
  /** The model's reading at the threshold (also for a view the gate rejected: the SR keeps it apart by `ood`). */
  decision: 'abnormal' | 'normal';
  threshold: number;
  ood?: boolean;
  oodScore?: number;
  heatmap?: Heatmap;
  /** The decoded image (grey in [0, 1]) when a heatmap was asked for: the Secondary Capture draws over it. */
  image?: { grey: Float32Array; width: number; height: number };
  warnings: string[];
}

export interface PredictorOptions {
  engine?: InferenceRuntime;
  threads?: number;
  threshold?: number;
  onLog?: (line: string) => void;
}

export interface Predictor {
  readonly name: string;
  readonly sha256: string;
  /** The operating point in words, for the SR. */
  readonly operatingPoint: string;
  /** Whether the model(s) can give heatmaps (a `cam` output). */
  readonly hasHeatmaps: boolean;
  /** The preprocessing that the heatmap grid is made in (the first member's). */
  readonly heatmapPreprocessing: Pick<Preprocessing, 'size' | 'resize'>;
  predict(instances: readonly InstanceInput[], opts?: { heatmaps?: boolean }): Promise<{ views: ViewResult[]; unreadable: Array<{ name: string; problem: string }> }>;
  release(): Promise<void>;
}

export class PredictorError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_PACS_MODEL', exitStatus: 2 });
    this.name = 'PredictorError';
  }
}

/** Instances decoded and predicted together: a study's images are held decoded at most this many at a time. */
const BATCH = 8;

export async function openPredictor(models: readonly string[], opts: PredictorOptions = {}): Promise<Predictor> {
  if (!models.length) throw new PredictorError('give a model: --model M (an .onnx file from `nextray export`, a checkpoint folder or a run directory)');
  const model = await load([...models], {
    engine: opts.engine ?? 'auto',
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    maxBatch: BATCH,
    onnxCache: true,
    ...(opts.onLog ? { onLog: opts.onLog } : {}),
    ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
  });
  return {
    name: model.name,
    sha256: model.sha256,
    operatingPoint: operatingPointText(model.cards, model.threshold, model.thresholdSource === 'option'),
    hasHeatmaps: model.hasHeatmaps,
    heatmapPreprocessing: model.cards[0]!.preprocessing,
    async predict(instances, o = {}) {
      const heatmaps = !!o.heatmaps && model.hasHeatmaps;
      const views: ViewResult[] = [];
      const unreadable: Array<{ name: string; problem: string }> = [];
      for (let i = 0; i < instances.length; i += BATCH) {
        const chunk = instances.slice(i, i + BATCH);
        const decoded = [];
        for (const input of chunk) {
          try {
            decoded.push({ input, view: await model.decode({ name: input.name, bytes: input.bytes }) });
          } catch (err) {
            const problem = (err as { problem?: unknown }).problem;
            unreadable.push({ name: input.name, problem: typeof problem === 'string' ? problem : (err as Error).message });
          }
        }
        if (!decoded.length) continue;
        const byName = new Map(decoded.map((d) => [d.input.name, d]));
        const res = await model.predict(
          decoded.map((d) => d.view),
          { batchSize: BATCH, ...(heatmaps ? { heatmaps: true } : {}) },
        );
        for (const u of res.unreadable) unreadable.push({ name: u.input, problem: u.problem });
        for (const v of res.views) {
          const d = byName.get(v.view.name)!;
          views.push({
            name: d.input.name,
            header: d.input.header,
            probability: v.probability,
            decision: v.probability > v.threshold ? 'abnormal' : 'normal',
            threshold: v.threshold,
            ...(v.ood ? { ood: v.ood.flagged, oodScore: v.ood.score } : {}),
            ...(v.heatmap ? { heatmap: v.heatmap, image: { grey: d.view.grey, width: d.view.width, height: d.view.height } } : {}),
            warnings: v.warnings,
          });
        }
      }
      return { views, unreadable };
    },
    release: () => model.release(),
  };
}
