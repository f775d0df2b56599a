/**
 * The trust layer of prediction (browser-safe): turns a model's optional `cam` and `ood_score` graph outputs into
 * each ImagePrediction's `heatmap` (normalised CAM at the model's input resolution) and `ood` / `oodScore` (the
 * gate stored in the model's metadata `ood`), and reads a checkpoint's trust information (model.json
 * `extra.trust`, written by src/calibrate/trust.ts) into export options. Hosts call `trustOutputs` to know what to ask
 * the ensemble for and `applyTrust` from predictBatch's onBatch.
 */
import type { OperatingPoint } from '../../models/card.js';
import type { OnnxExportOptions } from '../../models/onnx/export.js';
import { ONNX_CAM, ONNX_OOD_SCORE, parseOodMetadata } from '../../models/onnx/extras.js';
import { mapToGrid, normaliseMap } from './cam.js';
import type { Ensemble } from './ensemble.js';
import { isOutOfDistribution, loadGate, type StoredOodGate } from './ood.js';
import type { ImagePrediction } from './predict.js';

/** What `extra.trust` holds in a checkpoint's model.json (src/calibrate/trust.ts writes it). */
export interface TrustInfo {
  temperature?: {
    value: number;
    fittedOn: 'validation';
    /** Fitted on image logits, or on study probabilities (mean of the views); absent in older checkpoints: image. */
    level?: 'image' | 'study';
    images: number;
    studies?: number;
    nllBefore: number;
    nllAfter: number;
    /** Image-level ECE at T = 1 and at the chosen T. */
    eceBefore: number;
    eceAfter: number;
    /** Study-level ECE at T = 1 and at the chosen T. */
    studyEceBefore?: number;
    studyEceAfter?: number;
    /** Both fits, for the record: the image-level and the study-level temperature. */
    candidates?: { image: number; study: number };
  };
  ood?: StoredOodGate & {
    /** Mean and covariance: the training images. */
    fittedOn: 'train';
    /** Where the threshold's quantile was taken (absent in older checkpoints: the training scores). */
    thresholdFrom?: 'validation' | 'train';
    /** Share of images flagged at the threshold, per split (test only when the split has one). */
    flagRates?: { train: number; validation: number; test?: number };
  };
  operatingPoint?: {
    /** How the threshold was chosen (absent in older checkpoints: sensitivity-target). */
    rule?: 'max-kappa' | 'sensitivity-target';
    threshold: number;
    targetSensitivity?: number;
    validationSensitivity: number;
    validationSpecificity: number | null;
    validationKappa?: number | null;
    validationCases: number;
    validationPositives: number;
    level: 'study';
    fittedOn: 'validation';
  };
}

/** The trust information of a checkpoint's metadata (empty when none was fitted). */
export function trustOf(meta: { extra?: Record<string, unknown> }): TrustInfo {
  return ((meta.extra as { trust?: TrustInfo } | undefined)?.trust ?? {}) as TrustInfo;
}

/**
 * Export options that carry a checkpoint's trust information into the ONNX file (the CAM output always). `file` is
 * the checkpoint's model.json as the user named it: a damaged gate is reported there (OodGateError).
 */
export function trustExportOptions(meta: { extra?: Record<string, unknown>; decisionThreshold: number }, file: string): Pick<OnnxExportOptions, 'cam' | 'temperature' | 'ood' | 'decisionThreshold'> {
  const t = trustOf(meta);
  return {
    cam: true,
    decisionThreshold: meta.decisionThreshold,
    ...(t.temperature ? { temperature: t.temperature.value } : {}),
    ...(t.ood ? { ood: loadGate(t.ood, `${file}: extra.trust.ood`) } : {}),
  };
}

/** The gate threshold a model's ONNX metadata (`ood`) states, or null when it has no gate. */
export function oodThreshold(metadata: Readonly<Record<string, string>>): number | null {
  return parseOodMetadata(metadata.ood).ood?.threshold ?? null;
}

/** Which trust outputs every member of the ensemble has (only those can be asked for). */
export function trustOutputs(ensemble: Ensemble, want: { heatmaps: boolean; ood: boolean }): string[] {
  const all = (name: string): boolean => ensemble.models.every((m) => m.card.outputs.includes(name));
  return [...(want.heatmaps && all(ONNX_CAM) ? [ONNX_CAM] : []), ...(want.ood && all(ONNX_OOD_SCORE) ? [ONNX_OOD_SCORE] : [])];
}

/**
 * Fills heatmap / ood / oodScore from the raw ensemble outputs. Heatmap: the mean of the members' CAMs, each
 * brought onto the first member's input grid (mapToGrid: members may differ in input size and letterbox/stretch)
 * and divided by its own maximum (members' maps are in their own logit units), the mean divided by its maximum
 * again; for one model that is its map at its input resolution (camAtInput). OOD: `ood` is true when any member's
 * gate flags the image; `oodScore` is the first member's score.
 */
export function applyTrust(results: ImagePrediction[], raw: Awaited<ReturnType<Ensemble['run']>>, ensemble: Ensemble): void {
  const cams = raw.extra.map((e) => e[ONNX_CAM]);
  if (cams.length && cams.every((c) => c !== undefined)) {
    const to = ensemble.models[0]!.card.preprocessing;
    const size = to.size;
    results.forEach((r, k) => {
      const sum = new Float32Array(size * size);
      cams.forEach((cam, i) => {
        const [, h, w] = cam!.dims as [number, number, number];
        const map = cam!.data.subarray(k * h * w, (k + 1) * h * w);
        const m = normaliseMap(mapToGrid(map, h, w, r.width, r.height, ensemble.models[i]!.card.preprocessing, to));
        for (let j = 0; j < m.length; j++) sum[j]! += m[j]!;
      });
      for (let j = 0; j < sum.length; j++) sum[j]! /= cams.length;
      r.heatmap = { width: size, height: size, data: normaliseMap(sum), method: cams.length > 1 ? 'cam-mean' : 'cam' };
      if (cams.length === 1) {
        const [, h, w] = cams[0]!.dims as [number, number, number];
        r.heatmap.coarse = { data: cams[0]!.data.slice(k * h * w, (k + 1) * h * w), height: h, width: w };
      }
    });
  }
  if (raw.extra.every((e) => e[ONNX_OOD_SCORE])) {
    results.forEach((r, k) => {
      let flagged = false;
      raw.extra.forEach((e, i) => {
        const t = oodThreshold(ensemble.models[i]!.card.metadata);
        if (t !== null && isOutOfDistribution(e[ONNX_OOD_SCORE]!.data[k]!, t)) flagged = true;
      });
      r.ood = flagged;
      r.oodScore = raw.extra[0]![ONNX_OOD_SCORE]!.data[k]!;
    });
  }
}

/** How the stored operating point was chosen, in words (for the SR and the console); null when unknown. */
export function operatingPointOrigin(op: OperatingPoint | undefined, threshold: number): string | null {
  if (!op || Math.abs(op.threshold - threshold) > 1e-12) return null;
  const rule =
    op.rule === 'max-kappa'
      ? `maximum ${op.level} kappa on ${op.fittedOn}`
      : op.rule === 'sensitivity-target' && op.targetSensitivity !== undefined
        ? `${op.level} sensitivity >= ${op.targetSensitivity} on ${op.fittedOn}`
        : `${op.rule} on ${op.fittedOn}`;
  const f = (v: number | null | undefined): string | null => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : null);
  const facts = [
    f(op.kappa) !== null ? `kappa ${f(op.kappa)}` : null,
    f(op.sensitivity) !== null ? `sensitivity ${f(op.sensitivity)}` : null,
    f(op.specificity) !== null ? `specificity ${f(op.specificity)}` : null,
    op.cases !== undefined ? `${op.cases} ${op.level === 'study' ? 'studies' : 'images'}` : null,
  ].filter((s): s is string => s !== null);
  return facts.length ? `${rule}: ${facts.join(', ')}` : rule;
}

/**
 * The operating point a prediction was made at, in words: the threshold and where it came from (given by the user,
 * or stored with the model and, for one model with a fitted operating point, how it was chosen).
 */
export function operatingPointText(cards: readonly { operatingPoint?: OperatingPoint }[], threshold: number, given: boolean): string {
  const origin = !given && cards.length === 1 ? operatingPointOrigin(cards[0]!.operatingPoint, threshold) : null;
  const source = given ? 'given with --threshold' : origin ? `stored with the model: ${origin}` : 'stored with the model';
  return `threshold ${threshold} (${source}); abnormal when probability > threshold`;
}
