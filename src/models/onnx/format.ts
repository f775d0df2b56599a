/**
 * The interface of an exported .onnx file, shared by the exporter and the runtimes: value names, input layouts,
 * metadata keys and the format version. Kept apart from export.ts so inference code (Node or browser) does not pull
 * in TF.js and the model zoo.
 */
/** Identifies files written by this exporter (metadata `format`); readers refuse other ONNX files. */
export const ONNX_EXPORT_FORMAT = 'nextray-onnx';
/** Bumped when the graph's interface (names, layout, metadata keys) changes incompatibly. */
export const ONNX_EXPORT_FORMAT_VERSION = 1;

export type InputLayout = 'nhwc' | 'nchw';

/** Names of the graph's values, fixed by the format. */
export const ONNX_INPUT = 'input';
export const ONNX_LOGITS = 'logits';
export const ONNX_PROBABILITY = 'probability';
/** The head's input features (pooled per image), an optional output (`export --features`). */
export const ONNX_FEATURES = 'features';

/** Metadata `features` (JSON): what the `features` output holds. */
export interface FeaturesMetadata {
  output: typeof ONNX_FEATURES;
  /** Number of features per image (the head's input width). */
  dim: number;
  /** How the last feature map became one vector per image. */
  pooling: 'global-average';
  /** The layer (state_dict name) that reads them: logit = features . weight + bias. */
  head: string;
}

export function featuresMetadata(dim: number, head: string): FeaturesMetadata {
  return { output: ONNX_FEATURES, dim, pooling: 'global-average', head };
}

/** The metadata_props every exported model carries (all strings, as ONNX stores them). */
export interface OnnxExportMetadata {
  format: typeof ONNX_EXPORT_FORMAT;
  format_version: string;
  arch: string;
  /** Decimal integer. */
  input_size: string;
  input_layout: 'NHWC' | 'NCHW';
  input_name: string;
  /** 'true' when H and W are symbolic. */
  dynamic_size: 'true' | 'false';
  /** JSON of the Preprocessing. */
  preprocessing: string;
  /** JSON: { kind: 'binary' | 'imagenet', outputs, dropout? }. */
  head: string;
  /** Decimal number for the binary head; '' for a multi-class head (argmax decides). */
  decision_threshold: string;
  /** Comma-separated output names. */
  outputs: string;
  batchnorm: 'folded' | 'kept';
  nextray_version: string;
  [extra: string]: string;
}
