/**
 * The metadata of an exported model (what `exportOnnx` writes into metadata_props: arch, input size and layout,
 * preprocessing, head, decision threshold, temperature, OOD gate), read back and checked. The reader half of the
 * export format: ONNX files not written by `exportOnnx` are refused, because the input layout and normalisation of
 * a foreign file are unknown and a silent mismatch gives plausible-looking, wrong probabilities.
 * Browser-safe (pure parsing over bytes); running a model is src/inference's job.
 */
import { validatePreprocessing, type Preprocessing } from '../../data/preprocess.js';
import { readModelInfo, type OnnxModelInfo } from './graph.js';
import { ONNX_EXPORT_FORMAT, ONNX_EXPORT_FORMAT_VERSION, type InputLayout } from './format.js';
import { ProtoDecodeError } from './proto.js';
import { parseOodMetadata, type OodMetadata } from './extras.js';
import { cardFromOnnxMetadata, ModelCardError, type ModelCard } from '../card.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';

/** What the exported file says about the model. */
export interface OnnxClassifierInfo {
  arch: string;
  /** Height = width the model was exported for. */
  inputSize: number;
  inputLayout: InputLayout;
  /** H and W are symbolic: other sizes may be passed to `run` with `size`. */
  dynamicSize: boolean;
  preprocessing: Preprocessing;
  head: { kind: 'binary' | 'imagenet'; outputs: number; dropout?: number };
  /** Binary head: probability at or above which an image is abnormal; null for a multi-class head. */
  decisionThreshold: number | null;
  nextrayVersion: string;
  batchnorm: string;
  /** Everything in metadata_props, raw. */
  metadata: Record<string, string>;
  /** Temperature the graph divides the logit by (metadata `temperature`; 1 when absent). */
  temperature: number;
  /** The OOD gate the graph carries (metadata `ood`), or null. */
  ood: OodMetadata | null;
  /** Header facts (IR, opsets, producer, graph inputs/outputs). */
  model: OnnxModelInfo;
  /** The model card the metadata is a serialisation of (src/models/card.ts); named after the file. */
  card: ModelCard;
}

/** Thrown for files that are not usable exported models and for bad `run` inputs; the message says what to fix. */
export class OnnxModelError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_ONNX_MODEL', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'OnnxModelError';
  }
}

/** Decode and check the exporter's metadata. */
export function parseClassifierInfo(bytes: Uint8Array, source = '<bytes>'): OnnxClassifierInfo {
  let model: OnnxModelInfo;
  try {
    model = readModelInfo(bytes);
  } catch (err) {
    if (err instanceof ProtoDecodeError) throw new OnnxModelError(`${source}: not a readable ONNX model: ${err.message}`);
    throw err;
  }
  const m = model.metadata;
  if (m.format !== ONNX_EXPORT_FORMAT) {
    throw new OnnxModelError(
      `${source}: ONNX model without nextray metadata (format ${JSON.stringify(m.format ?? null)}); its input layout and ` +
        `normalisation are unknown — export it with 'nextray export'`,
    );
  }
  const fv = Number(m.format_version);
  if (!Number.isInteger(fv) || fv < 1 || fv > ONNX_EXPORT_FORMAT_VERSION) {
    throw new OnnxModelError(`${source}: export format version ${m.format_version} is not supported (this nextray reads up to ${ONNX_EXPORT_FORMAT_VERSION}); upgrade nextray`);
  }
  const bad = (key: string, why: string): never => {
    throw new OnnxModelError(`${source}: metadata '${key}' ${why} (value ${JSON.stringify(m[key] ?? null)})`);
  };
  const inputSize = Number(m.input_size);
  if (!Number.isInteger(inputSize) || inputSize < 1) bad('input_size', 'is not a positive integer');
  const layout = m.input_layout === 'NHWC' ? 'nhwc' : m.input_layout === 'NCHW' ? 'nchw' : bad('input_layout', "must be 'NHWC' or 'NCHW'");
  let preprocessing: Preprocessing;
  let head: OnnxClassifierInfo['head'];
  try {
    preprocessing = validatePreprocessing(JSON.parse(m.preprocessing ?? 'null'), `${source}: metadata 'preprocessing'`);
  } catch (err) {
    throw new OnnxModelError((err as Error).message);
  }
  try {
    head = JSON.parse(m.head ?? 'null') as OnnxClassifierInfo['head'];
  } catch {
    return bad('head', 'is not JSON');
  }
  if (!head || (head.kind !== 'binary' && head.kind !== 'imagenet') || !Number.isInteger(head.outputs) || head.outputs < 1) {
    bad('head', "must be { kind: 'binary' | 'imagenet', outputs }");
  }
  let threshold: number | null = null;
  if (head.kind === 'binary') {
    threshold = Number(m.decision_threshold);
    if (m.decision_threshold === '' || !(threshold >= 0 && threshold <= 1)) bad('decision_threshold', 'must be a number in [0, 1]');
  }
  const temperature = m.temperature === undefined ? 1 : Number(m.temperature);
  if (!(temperature > 0)) bad('temperature', 'must be a positive number');
  const gate = parseOodMetadata(m.ood);
  if (gate.problem !== undefined) bad('ood', gate.problem);
  const ood: OodMetadata | null = gate.ood;
  let card: ModelCard;
  try {
    card = cardFromOnnxMetadata(m, source.replace(/[\\/]+$/, '').split(/[\\/]/).pop()!.replace(/\.onnx$/i, '') || m.arch || 'model', source);
  } catch (err) {
    if (err instanceof ModelCardError) throw new OnnxModelError(err.message);
    throw err;
  }
  return {
    card,
    temperature,
    ood,
    arch: m.arch ?? 'unknown',
    inputSize,
    inputLayout: layout,
    dynamicSize: m.dynamic_size === 'true',
    preprocessing,
    head,
    decisionThreshold: threshold,
    nextrayVersion: m.nextray_version ?? 'unknown',
    batchnorm: m.batchnorm ?? 'unknown',
    metadata: { ...m },
    model,
  };
}
