/**
 * What the server needs from the inference module: one loaded model that turns the bytes of an uploaded file into
 * a probability. A thin adapter only — decoding, preprocessing and the ONNX session live in the library; this file
 * names the model (file name + SHA-256) and says which kind of bad input a failure was, so the server can answer
 * with the right HTTP status.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { decodeGrey, ImageError } from '../data/images.js';
import { greyWarnings, preprocessGrey, resizeGrey } from '../data/preprocess.js';
import { camOnImage } from '../inference/core/cam.js';
import { overlayHeatmap } from '../inference/core/colormap.js';
import sharp from 'sharp';
import { OnnxClassifier } from '../models/onnx/runtime.js';
import type { OnnxClassifierInfo } from '../models/onnx/classifier.js';

/** Why an input was refused, in HTTP terms. */
export type InputProblem = 'empty' | 'not-an-image' | 'unsupported' | 'too-large' | 'corrupt';

/** A file the model cannot take; `kind` picks the HTTP status. */
export class InputError extends Error {
  constructor(
    readonly kind: InputProblem,
    message: string,
  ) {
    super(message);
    this.name = 'InputError';
  }
}

export interface Prediction {
  probability: number;
  decision: 'abnormal' | 'normal';
  threshold: number;
  /** Out-of-distribution verdict when the model carries an OOD gate; null when it does not. */
  ood: { flagged: boolean; score: number; threshold: number } | null;
  /** Class-activation heatmap as a PNG (base64) when the model exports one; null otherwise. */
  heatmap: string | null;
  /** Decodes fine but probably not what the user meant (e.g. one flat value). */
  warnings: string[];
  /** Seconds inside ONNX Runtime. */
  seconds: number;
}

export interface ModelDescription {
  name: string;
  sha256: string;
  bytes: number;
  arch: string;
  inputSize: number;
  threshold: number;
  preprocessing: OnnxClassifierInfo['preprocessing'];
  /** The exporter's metadata as stored in the file (validation metrics, dataset, versions...). */
  metadata: Record<string, string>;
}

export interface Predictor {
  readonly model: ModelDescription;
  predict(file: Uint8Array, opts?: { maxPixels?: number }): Promise<Prediction>;
  release(): Promise<void>;
}

export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { sha256: h.digest('hex'), bytes };
}

/** Sorts a decoder's complaint into the HTTP classes the server answers with. */
export function classifyImageProblem(problem: string): InputProblem {
  if (/^empty/.test(problem)) return 'empty';
  if (/too large/.test(problem)) return 'too-large';
  if (/^(unsupported|DICOM)/.test(problem) || /transfer syntax/i.test(problem)) return 'unsupported';
  if (/^not an image/.test(problem)) return 'not-an-image';
  return 'corrupt';
}

/** Longest side of the heatmap picture the API returns (the map itself is far coarser). */
export const HEATMAP_MAX_SIDE = 512;

/** The model's CAM over the image (letterbox undone), blended over the grey picture, as PNG bytes. */
async function heatmapPng(grey: { data: Float32Array; width: number; height: number }, cam: Float32Array, camSize: [number, number], pre: OnnxClassifierInfo['preprocessing']): Promise<Buffer> {
  const scale = Math.min(1, HEATMAP_MAX_SIDE / Math.max(grey.width, grey.height));
  const w = Math.max(1, Math.round(grey.width * scale));
  const h = Math.max(1, Math.round(grey.height * scale));
  const picture = resizeGrey(grey.data, grey.width, grey.height, w, h);
  const map = camOnImage(cam, camSize[0], camSize[1], w, h, pre);
  const rgba = overlayHeatmap(picture, map, w, h, { alpha: 0.5 });
  return sharp(Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength), { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
}

/** Opens an exported .onnx model for serving. */
export async function openPredictor(modelPath: string, opts: { threads?: number } = {}): Promise<Predictor> {
  const clf = await OnnxClassifier.create(modelPath, { ...(opts.threads ? { threads: opts.threads } : {}), maxBatch: 1 });
  const info = clf.info;
  if (info.head.kind !== 'binary' || info.decisionThreshold === null) {
    await clf.release();
    throw new InputError('unsupported', `${modelPath}: not a normal/abnormal classifier (head ${info.head.kind}); export one with --head binary`);
  }
  const threshold = info.decisionThreshold;
  const { sha256, bytes } = await sha256File(modelPath);
  const model: ModelDescription = {
    name: basename(modelPath),
    sha256,
    bytes,
    arch: info.arch,
    inputSize: info.inputSize,
    threshold,
    preprocessing: info.preprocessing,
    metadata: info.metadata,
  };
  return {
    model,
    async predict(file, popts = {}) {
      let grey;
      try {
        grey = await decodeGrey(file, popts.maxPixels !== undefined ? { maxPixels: popts.maxPixels } : {});
      } catch (err) {
        if (err instanceof ImageError) throw new InputError(classifyImageProblem(err.problem), err.problem);
        throw err;
      }
      const x = preprocessGrey(grey.data, grey.width, grey.height, info.preprocessing);
      const r = await clf.run(x, 1);
      const probability = r.probabilities[0]!;
      const score = r.oodScores?.[0];
      return {
        probability,
        decision: probability >= threshold ? 'abnormal' : 'normal',
        threshold,
        ood: info.ood && score !== undefined ? { flagged: score > info.ood.threshold, score, threshold: info.ood.threshold } : null,
        heatmap: r.cam && r.camSize ? (await heatmapPng(grey, r.cam, r.camSize, info.preprocessing)).toString('base64') : null,
        warnings: greyWarnings(grey.data, grey.bitDepth),
        seconds: r.seconds,
      };
    },
    release: () => clf.release(),
  };
}
