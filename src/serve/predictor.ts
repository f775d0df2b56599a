/**
 * What the server needs from the inference module: one loaded model that turns the bytes of an uploaded file into
 * a prediction. A thin adapter: decoding (sharp, the DICOM reader), preprocessing, the ONNX session, the decision
 * rule, heatmaps and the OOD gate are the library's (src/inference, src/data); this file only takes bytes instead
 * of paths and sorts a failure into the kind of bad input it was, so the server can answer with the right status.
 */
import { decodeGrey, ImageError } from '../data/images.js';
import { DicomError, isDicom, readDicom } from '../data/dicom/index.js';
import { greyWarnings, resizeGrey } from '../data/preprocess.js';
import {
  Ensemble,
  openModel,
  predictBatch,
  preprocessAll,
  studyKeyOf,
  type EnsembleRunResult,
  type ModelCard,
} from '../inference/node/index.js';
import { heatmapPng } from '../inference/node/heatmap.js';
import { nodeFrameDecoders } from '../data/dicom/node-codecs.js';
import { isOutOfDistribution, oodWarning } from '../inference/core/ood.js';
import { ONNX_CAM, ONNX_OOD_SCORE } from '../models/onnx/extras.js';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/** Why an input was refused, in HTTP terms. */
export type InputProblem = 'empty' | 'not-an-image' | 'unsupported' | 'too-large' | 'corrupt';

/** The HTTP status the server answers each kind of bad input with. */
export const INPUT_STATUS: Readonly<Record<InputProblem, number>> = { empty: 400, 'not-an-image': 415, unsupported: 415, 'too-large': 413, corrupt: 422 };

/** A file the model cannot take; `kind` picks the HTTP status (statusCode). */
export class InputError extends NextrayError {
  readonly statusCode: number;
  constructor(
    readonly kind: InputProblem,
    message: string,
  ) {
    super(message, { code: 'ERR_INPUT', exitStatus: EXIT_USAGE });
    this.name = 'InputError';
    this.statusCode = INPUT_STATUS[kind];
  }
}

export interface OodVerdict {
  flagged: boolean;
  score: number;
  threshold: number;
  /** Set when flagged: what to tell the user instead of trusting the decision. */
  warning?: string;
}

export interface Prediction {
  probability: number;
  /** Abnormal when probability > threshold (the rule src/evaluate uses); null when the OOD gate rejects the image. */
  decision: 'abnormal' | 'normal' | null;
  threshold: number;
  /** The out-of-distribution gate's verdict when the model carries one (`ood_score` output); null when it does not. */
  ood: OodVerdict | null;
  /** Class-activation heatmap over the picture (longest side <= 512 px), PNG as base64; null when the model has none. */
  heatmap: string | null;
  /** Decodes fine but probably not what the user meant (e.g. one flat value). */
  warnings: string[];
  width: number;
  height: number;
  format: string;
  /** Seconds inside ONNX Runtime. */
  seconds: number;
}

/** What GET /v1/model says: the model card (the file's path left out) and its size. */
export type ModelDescription = Omit<ModelCard, 'source'> & { inputSize: number };

export interface Predictor {
  readonly model: ModelDescription;
  /** The ONNX model the page downloads (/model.onnx): the .onnx file given, or a checkpoint's in-memory export. */
  readonly onnx: { path: string } | { bytes: Uint8Array };
  predict(file: Uint8Array, opts?: { maxPixels?: number }): Promise<Prediction>;
  release(): Promise<void>;
}

/** Longest side of the heatmap picture the API returns (the map itself is far coarser). */
export const HEATMAP_MAX_SIDE = 512;

/** Sorts a decoder's complaint into the HTTP classes the server answers with. */
export function classifyImageProblem(problem: string): InputProblem {
  if (/^empty/.test(problem)) return 'empty';
  if (/too large/.test(problem)) return 'too-large';
  if (/^unsupported|not supported|^DICOM file, not/.test(problem)) return 'unsupported';
  if (/^not an image|^not a DICOM/.test(problem)) return 'not-an-image';
  return 'corrupt';
}

interface Decoded {
  grey: Float32Array;
  width: number;
  height: number;
  format: string;
  studyUid?: string;
  warnings: string[];
}

/** Bytes -> grey image, as the Node host decodes files (PNG/JPEG by sharp, DICOM by the PS3.3 C.11 reader). */
async function decodeUpload(bytes: Uint8Array, maxPixels: number | undefined): Promise<Decoded> {
  try {
    if (isDicom(bytes.subarray(0, 132))) {
      const d = await readDicom(bytes, { source: 'upload', decoders: nodeFrameDecoders, ...(maxPixels !== undefined ? { maxPixels } : {}) });
      return {
        grey: d.grey,
        width: d.width,
        height: d.height,
        format: 'dicom',
        ...(d.studyInstanceUid ? { studyUid: d.studyInstanceUid } : {}),
        warnings: [...d.warnings, ...greyWarnings(d.grey, 8)],
      };
    }
    const img = await decodeGrey(bytes, maxPixels !== undefined ? { maxPixels } : {});
    const format = bytes[0] === 0x89 ? 'png' : 'jpeg';
    return { grey: img.data, width: img.width, height: img.height, format, warnings: greyWarnings(img.data, img.bitDepth) };
  } catch (err) {
    if (err instanceof ImageError || err instanceof DicomError) throw new InputError(classifyImageProblem(err.problem), err.problem);
    throw err;
  }
}

/**
 * Opens a model for serving, as `nextray predict` opens it (openModel): an .onnx file from `nextray export`, or a
 * checkpoint folder or run directory exported to ONNX in memory with its trust information; the page downloads the
 * same ONNX bytes. Always ONNX Runtime (the page runs ONNX too).
 */
export async function openPredictor(modelPath: string, opts: { threads?: number; onnxCache?: boolean } = {}): Promise<Predictor> {
  let exported: Uint8Array | undefined;
  const model = await openModel(modelPath, {
    engine: 'onnx',
    maxBatch: 1,
    ...(opts.threads ? { threads: opts.threads } : {}),
    ...(opts.onnxCache ? { onnxCache: true } : {}),
    onExport: (bytes) => void (exported = bytes),
  });
  const ensemble = new Ensemble([model]);
  const card = model.card;
  const outputs = [ONNX_CAM, ONNX_OOD_SCORE].filter((o) => card.outputs.includes(o));
  let oodThreshold: number | null = null;
  if (card.outputs.includes(ONNX_OOD_SCORE) && card.metadata.ood) oodThreshold = (JSON.parse(card.metadata.ood) as { threshold: number }).threshold;
  const { source: _source, ...rest } = card;
  const description: ModelDescription = { ...rest, inputSize: card.preprocessing.size };
  return {
    model: description,
    onnx: exported ? { bytes: exported } : { path: modelPath },
    async predict(file, popts = {}) {
      const img = await decodeUpload(file, popts.maxPixels);
      const inputs = preprocessAll(img.grey, img.width, img.height, ensemble.preprocessings, 'upload');
      let raw: EnsembleRunResult | undefined;
      const [p] = await predictBatch(
        ensemble,
        [{ image: 'upload', inputs, study: studyKeyOf('upload', img.studyUid), width: img.width, height: img.height, format: img.format, warnings: img.warnings }],
        { outputs, onBatch: (_r, r) => void (raw = r) },
      );
      const extra = raw!.extra[0]!;
      const score = extra[ONNX_OOD_SCORE]?.data[0];
      let ood: OodVerdict | null = null;
      if (oodThreshold !== null && score !== undefined) {
        const flagged = isOutOfDistribution(score, oodThreshold);
        ood = { flagged, score, threshold: oodThreshold, ...(flagged ? { warning: oodWarning(score, oodThreshold) } : {}) };
      }
      let heatmap: string | null = null;
      const cam = extra[ONNX_CAM];
      if (cam) {
        const scale = Math.min(1, HEATMAP_MAX_SIDE / Math.max(img.width, img.height));
        const w = Math.max(1, Math.round(img.width * scale));
        const h = Math.max(1, Math.round(img.height * scale));
        const png = await heatmapPng(
          { grey: resizeGrey(img.grey, img.width, img.height, w, h), width: w, height: h, cam: cam.data, camH: cam.dims[1]!, camW: cam.dims[2]!, preprocessing: card.preprocessing },
          { alpha: 0.5, legend: false },
        );
        heatmap = png.toString('base64');
      }
      return {
        probability: p!.probability,
        // The gate's verdict replaces the decision: the probability of an image the model does not know means little.
        decision: ood?.flagged ? null : p!.decision,
        threshold: p!.threshold,
        ood,
        heatmap,
        warnings: p!.warnings,
        width: img.width,
        height: img.height,
        format: img.format,
        seconds: raw!.seconds,
      };
    },
    release: () => ensemble.release(),
  };
}
