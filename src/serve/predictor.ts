/**
 * What the server needs from the inference module: one loaded model that turns the bytes of an uploaded file into
 * a prediction. A thin adapter over the library's facade (src/inference/node/load.ts: decoding, preprocessing, the
 * ONNX session, the decision rule, heatmaps and the OOD gate); this file only sorts a failure into the kind of bad
 * input it was, so the server can answer with the right status, and draws the heatmap the API returns.
 */
import { load, type NodeModel } from '../inference/node/load.js';
import type { LoadedCard } from '../inference/core/model.js';
import { heatmapPng } from '../inference/node/heatmap.js';
import { oodWarning } from '../inference/core/ood.js';
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
export type ModelDescription = Omit<LoadedCard, 'source'> & { inputSize: number };

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

/**
 * Opens a model for serving, as `nextray predict` opens it (openModel): an .onnx file from `nextray export`, or a
 * checkpoint folder or run directory exported to ONNX in memory with its trust information; the page downloads the
 * same ONNX bytes. Always ONNX Runtime (the page runs ONNX too).
 */
export async function openPredictor(modelPath: string, opts: { threads?: number; onnxCache?: boolean } = {}): Promise<Predictor> {
  let exported: Uint8Array | undefined;
  const model: NodeModel = await load(modelPath, {
    engine: 'onnx',
    maxBatch: 1,
    ...(opts.threads ? { threads: opts.threads } : {}),
    ...(opts.onnxCache ? { onnxCache: true } : {}),
    onExport: (bytes) => void (exported = bytes),
  });
  const card = model.cards[0]!;
  const { source: _source, ...rest } = card;
  const description: ModelDescription = { ...rest, inputSize: card.preprocessing.size };
  return {
    model: description,
    onnx: exported ? { bytes: exported } : { path: modelPath },
    async predict(file, popts = {}) {
      let img;
      try {
        img = await model.decode({ name: 'upload', bytes: file }, popts.maxPixels !== undefined ? { maxPixels: popts.maxPixels } : {});
      } catch (err) {
        const problem = (err as { problem?: unknown }).problem;
        if (typeof problem === 'string') throw new InputError(classifyImageProblem(problem), problem);
        throw err;
      }
      const res = await model.predict([img], { ...(model.hasHeatmaps ? { heatmaps: true } : {}) });
      const v = res.views[0]!;
      let heatmap: string | null = null;
      const cam = v.heatmap?.coarse;
      if (cam) {
        const png = await heatmapPng(
          { grey: img.grey, width: img.width, height: img.height, cam: cam.data, camH: cam.height, camW: cam.width, preprocessing: card.preprocessing },
          { alpha: 0.5, legend: false, maxSide: HEATMAP_MAX_SIDE },
        );
        heatmap = png.toString('base64');
      }
      return {
        probability: v.probability,
        // The gate's verdict replaces the decision: the probability of an image the model does not know means little.
        decision: v.decision,
        threshold: v.threshold,
        ood: v.ood ? { ...v.ood, ...(v.ood.flagged ? { warning: oodWarning(v.ood.score, v.ood.threshold) } : {}) } : null,
        heatmap,
        warnings: v.warnings,
        width: img.width,
        height: img.height,
        format: img.format,
        seconds: res.engineSeconds,
      };
    },
    release: () => model.release(),
  };
}
