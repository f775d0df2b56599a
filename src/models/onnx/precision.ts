/**
 * Host of the precision passes (quantize.ts): turns a float32 export into an fp16 or int8 one. For int8 the caller
 * injects the calibration images (`calibration`: e.g. a seeded sample of a dataset's training images,
 * src/data/calibration-sample.ts) and the ONNX Runtime module that runs the float32 graph over them (`runtime`:
 * onnxruntime-node through src/inference's seam), so this module loads neither a dataset nor a runtime itself.
 * What `nextray export --precision` calls.
 */
import { availableParallelism } from 'node:os';
import type { Preprocessing } from '../../data/preprocess.js';
import type { Model } from '../registry.js';
import type { NetworkModel } from '../head.js';
import { currentVersions } from '../weights/checkpoint.js';
import { exportOnnx, type OnnxExport, type OnnxExportOptions } from './export.js';
import { concatChunks, encodeModel, type OnnxGraph } from './graph.js';
import {
  activationRanges,
  collectActivationStats,
  describeMethod,
  planInt8,
  QuantizeError,
  quantizeGraphInt8,
  toFloat16Graph,
  type CalibrationBatch,
  type CalibrationMethod,
  type CalibrationRuntime,
  type ExportPrecision,
} from './quantize.js';
import { saveOnnx } from './files.js';

/** Calibration defaults (chosen by measured AUC on the demo's validation split; see README "Smaller models"). */
export const DEFAULT_CALIBRATION_IMAGES = 256;
export const DEFAULT_CALIBRATION_METHOD: CalibrationMethod = { kind: 'percentile', percentile: 99.99 };
export const DEFAULT_CALIBRATION_SEED = 0;

/** Images that calibrate int8 activation ranges, as the caller supplies them. */
export interface CalibrationImages {
  /** What the images are (e.g. the dataset folder): recorded in the export's metadata and report. */
  source: string;
  /** A seeded sample of `images` images, preprocessed per `preprocessing`, in batches in the model's input layout. */
  batches(preprocessing: Preprocessing, layout: 'nhwc' | 'nchw', opts: { images: number; seed: number; batch?: number }): AsyncIterable<CalibrationBatch>;
  /** Images found unusable (skipped) so far; calibration goes on without them. */
  readonly badImages: number;
}

export interface PrecisionOptions {
  precision: ExportPrecision;
  /** int8: the images whose activations set the ranges. */
  calibration?: CalibrationImages;
  /** int8: the ONNX Runtime module the calibration runs use (onnxruntime-node or -web). */
  runtime?: CalibrationRuntime;
  calibrationImages?: number;
  calibrationMethod?: CalibrationMethod;
  calibrationSeed?: number;
  /** Images per calibration run (default 8; every intermediate tensor of the batch is held at once). */
  calibrationBatch?: number;
  /** int8: Conv/Gemm layers kept in float (e.g. ['conv1', 'fc']). */
  floatLayers?: string[];
  /** ONNX Runtime threads for the calibration runs (default: all cores). */
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PrecisionReport {
  precision: ExportPrecision;
  /** fp16: initializers stored as half. */
  fp16Initializers?: number;
  calibration?: { data: string; images: number; requested: number; bad_images: number; method: string; seed: number };
  floatLayers?: string[];
  quantizedLayers?: number;
  quantizedTensors?: number;
  /** The first calibration images (NHWC, up to 2), for a verification run on real input. */
  sampleImages?: { x: Float32Array; n: number };
}

function reencode(exported: OnnxExport, graph: OnnxGraph, extra: Record<string, string>): OnnxExport {
  const metadata = { ...exported.metadata, ...extra };
  const modelMeta = { ...exported.modelMeta, metadata };
  const chunks = encodeModel(graph, modelMeta);
  let byteLength = 0;
  for (const c of chunks) byteLength += c.byteLength;
  let storedValues = 0;
  for (const t of graph.initializers) storedValues += t.data.length;
  return {
    chunks,
    byteLength,
    metadata,
    nodeCount: graph.nodes.length,
    initializerCount: graph.initializers.length,
    storedValues,
    toBytes: () => concatChunks(chunks),
    graph,
    modelMeta,
  };
}

/** Apply `opts.precision` to a float32 export (fp32: returned as is, with `precision` in its metadata). */
export async function applyPrecision(exported: OnnxExport, opts: PrecisionOptions): Promise<{ exported: OnnxExport; report: PrecisionReport }> {
  if (exported.metadata.precision !== undefined && exported.metadata.precision !== 'fp32') {
    throw new Error(`the export is already ${exported.metadata.precision}; precision passes start from fp32`);
  }
  if (opts.precision === 'fp32') {
    return { exported: reencode(exported, exported.graph, { precision: 'fp32' }), report: { precision: 'fp32' } };
  }
  if (opts.precision === 'fp16') {
    if (opts.calibration || opts.floatLayers?.length) throw new QuantizeError('calibration and float layers apply to int8 only');
    const r = toFloat16Graph(exported.graph);
    const out = reencode(exported, r.graph, {
      precision: 'fp16',
      quantization: JSON.stringify({ weights: 'float16 (Cast to float32)', fp16_initializers: r.converted, float32_initializers: r.keptFloat32 }),
    });
    return { exported: out, report: { precision: 'fp16', fp16Initializers: r.converted } };
  }
  if (opts.precision !== 'int8') throw new QuantizeError(`precision must be fp32, fp16 or int8, got '${String(opts.precision)}'`);
  if (!opts.calibration) throw new QuantizeError('int8 needs calibration images: give a dataset folder (MURA layout) to calibrate on');
  if (!opts.runtime) throw new Error('int8 needs an ONNX Runtime module to run the calibration images through');
  if (exported.metadata.batchnorm !== 'folded') throw new QuantizeError('int8 needs BatchNorm folded into the convolutions (export without --no-fold-bn)');
  const requested = opts.calibrationImages ?? DEFAULT_CALIBRATION_IMAGES;
  if (!Number.isInteger(requested) || requested < 1) throw new QuantizeError(`calibration images must be a positive integer, got ${requested}`);
  const method = opts.calibrationMethod ?? DEFAULT_CALIBRATION_METHOD;
  const seed = opts.calibrationSeed ?? DEFAULT_CALIBRATION_SEED;
  const plan = planInt8(exported.graph, { floatLayers: opts.floatLayers ?? [] });
  const preprocessing = JSON.parse(exported.metadata.preprocessing) as Preprocessing;
  const layout = exported.metadata.input_layout === 'NCHW' ? 'nchw' : 'nhwc';
  const size = preprocessing.size;
  let sample: { x: Float32Array; n: number } | undefined;
  const calibrationImages = opts.calibration;
  const batches = calibrationImages.batches(preprocessing, layout, { images: requested, seed, ...(opts.calibrationBatch ? { batch: opts.calibrationBatch } : {}) });
  async function* tap(): AsyncGenerator<CalibrationBatch> {
    for await (const b of batches) {
      if (!sample && layout === 'nhwc') sample = { x: Float32Array.from(b.x.subarray(0, Math.min(2, b.n) * size * size * 3)), n: Math.min(2, b.n) };
      yield b;
    }
  }
  const { stats, images } = await collectActivationStats(opts.runtime, exported.graph, exported.modelMeta, plan.calibrate, tap(), {
    inputDims: (n) => (layout === 'nhwc' ? [n, size, size, 3] : [n, 3, size, size]),
    sessionOptions: {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'basic',
      intraOpNumThreads: opts.threads ?? availableParallelism(),
      interOpNumThreads: 1,
    },
    onBatch: (done) => opts.onProgress?.(done, requested),
  });
  const q = quantizeGraphInt8(exported.graph, activationRanges(stats, method), { floatLayers: opts.floatLayers ?? [] });
  const calibration = { data: calibrationImages.source, images, requested, bad_images: calibrationImages.badImages, method: describeMethod(method), seed };
  const out = reencode(exported, q.graph, {
    precision: 'int8',
    quantization: JSON.stringify({
      format: 'QDQ',
      weights: 'int8 symmetric per output channel',
      activations: 'uint8 asymmetric per tensor',
      bias: 'int32',
      calibration,
      quantized_layers: q.quantizedLayers.length,
      float_layers: q.plan.floatLayers,
      quantized_tensors: q.plan.quantized.size,
    }),
  });
  return {
    exported: out,
    report: {
      precision: 'int8',
      calibration,
      floatLayers: q.plan.floatLayers,
      quantizedLayers: q.quantizedLayers.length,
      quantizedTensors: q.plan.quantized.size,
      ...(sample ? { sampleImages: sample } : {}),
    },
  };
}

/** exportOnnx + applyPrecision + saveOnnx (atomic), recording the running nextray version. */
export async function exportOnnxFileWithPrecision(
  model: Model | NetworkModel,
  path: string,
  exportOpts: OnnxExportOptions,
  opts: PrecisionOptions,
): Promise<{ exported: OnnxExport; report: PrecisionReport }> {
  const fp32 = exportOnnx(model, { nextrayVersion: currentVersions().package, ...exportOpts });
  const r = await applyPrecision(fp32, opts);
  saveOnnx(path, r.exported);
  return r;
}
