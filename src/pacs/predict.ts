/**
 * The PACS worker's one call into inference (Node): a model (or an ensemble) opened once, then a study's DICOM
 * instances, as bytes fetched from the archive, to per-view results — the probability, the decision and threshold,
 * the OOD gate's verdict, the heatmap when asked — and the instances that could not be read, with the reason.
 *
 * Everything the worker needs of inference goes through `openPredictor`/`Predictor.predict`, so moving to another
 * inference entry point changes this file only.
 */
import { availableParallelism } from 'node:os';
import { DicomError, readDicom, type DicomHeader } from '../data/dicom/index.js';
import { nodeFrameDecoders } from '../data/dicom/node-codecs.js';
import type { Preprocessing } from '../data/preprocess.js';
import { Ensemble } from '../inference/core/ensemble.js';
import type { InferenceModel } from '../inference/core/model.js';
import { predictBatch, preprocessAll, type Heatmap, type PreparedImage } from '../inference/core/predict.js';
import { applyTrust, operatingPointText, trustOutputs } from '../inference/core/trust.js';
import { openModel, type PredictEngine } from '../inference/node/models.js';
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
  engine?: PredictEngine;
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

const BATCH = 8;

export async function openPredictor(models: readonly string[], opts: PredictorOptions = {}): Promise<Predictor> {
  if (!models.length) throw new PredictorError('give a model: --model M (an .onnx file from `nextray export`, a checkpoint folder or a run directory)');
  const opened: InferenceModel[] = [];
  let ensemble: Ensemble;
  try {
    for (const m of models) {
      opened.push(await openModel(m, { engine: opts.engine ?? 'auto', threads: opts.threads ?? availableParallelism(), maxBatch: BATCH, onnxCache: true, ...(opts.onLog ? { onLog: opts.onLog } : {}) }));
    }
    ensemble = new Ensemble(opened, opts.threshold !== undefined ? { threshold: opts.threshold } : {});
  } catch (err) {
    for (const m of opened) await m.release();
    throw err;
  }
  const withCam = trustOutputs(ensemble, { heatmaps: true, ood: true });
  const withoutCam = trustOutputs(ensemble, { heatmaps: false, ood: true });
  return {
    name: ensemble.name,
    sha256: ensemble.sha256,
    operatingPoint: operatingPointText(ensemble.models.map((m) => m.card), ensemble.threshold, ensemble.thresholdGiven),
    hasHeatmaps: withCam.length > withoutCam.length,
    heatmapPreprocessing: ensemble.models[0]!.card.preprocessing,
    async predict(instances, o = {}) {
      const heatmaps = !!o.heatmaps && withCam.length > withoutCam.length;
      const outputs = heatmaps ? withCam : withoutCam;
      const views: ViewResult[] = [];
      const unreadable: Array<{ name: string; problem: string }> = [];
      let batch: Array<{ prepared: PreparedImage; input: InstanceInput; image: { grey: Float32Array; width: number; height: number } }> = [];
      const flush = async (): Promise<void> => {
        if (!batch.length) return;
        const b = batch;
        batch = [];
        const results = await predictBatch(ensemble, b.map((x) => x.prepared), {
          ...(outputs.length ? { outputs } : {}),
          onBatch: (rs, raw) => applyTrust(rs, raw, ensemble),
        });
        results.forEach((r, k) => {
          const { input, image } = b[k]!;
          views.push({
            name: input.name,
            header: input.header,
            probability: r.probability,
            decision: r.decision,
            threshold: r.threshold,
            ...(r.ood !== undefined ? { ood: r.ood } : {}),
            ...(r.oodScore !== undefined ? { oodScore: r.oodScore } : {}),
            ...(r.heatmap ? { heatmap: r.heatmap, image } : {}),
            warnings: r.warnings,
          });
        });
      };
      for (const input of instances) {
        try {
          const dcm = await readDicom(input.bytes, { source: input.name, decoders: nodeFrameDecoders });
          const inputs = preprocessAll(dcm.grey, dcm.width, dcm.height, ensemble.preprocessings, input.name);
          batch.push({
            input,
            image: { grey: dcm.grey, width: dcm.width, height: dcm.height },
            prepared: { image: input.name, inputs, study: { key: input.header.studyInstanceUid ?? '', source: 'dicom' }, width: dcm.width, height: dcm.height, format: 'dicom', warnings: dcm.warnings },
          });
        } catch (err) {
          unreadable.push({ name: input.name, problem: err instanceof DicomError ? err.problem : (err as Error).message });
          continue;
        }
        if (batch.length >= BATCH) await flush();
      }
      await flush();
      return { views, unreadable };
    },
    release: () => ensemble.release(),
  };
}
