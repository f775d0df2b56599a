/**
 * ONNX export and ONNX Runtime inference, browser-safe part: export (model -> .onnx bytes), the ONNX reader, and the
 * runtime-agnostic classifier (pass it onnxruntime-web's module). Node code imports './runtime.js' for
 * `OnnxClassifier.create(path, { threads })` over onnxruntime-node and for writing files.
 */
export {
  exportOnnx,
  ONNX_EXPORT_FORMAT,
  ONNX_EXPORT_FORMAT_VERSION,
  ONNX_INPUT,
  ONNX_LOGITS,
  ONNX_PROBABILITY,
  ONNX_FEATURES,
  type InputLayout,
  type OnnxExport,
  type OnnxExportMetadata,
  type OnnxExportOptions,
} from './export.js';
export {
  OnnxClassifierCore,
  OnnxModelError,
  parseClassifierInfo,
  type OnnxClassifierCoreOptions,
  type OnnxClassifierInfo,
  type OnnxRunOptions,
  type OnnxRunResult,
  type OrtModule,
} from './classifier.js';
export { replaceHead, setMetadata, type HeadReplacement } from './adapt-graph.js';
export { readModelInfo, encodeModel, concatChunks, ONNX_IR_VERSION, ONNX_OPSET, type OnnxGraph, type OnnxModelInfo } from './graph.js';
export {
  toFloat16Graph,
  planInt8,
  quantizeGraphInt8,
  collectActivationStats,
  activationRanges,
  parseCalibrationMethod,
  PRECISIONS,
  type Precision,
  type CalibrationMethod,
} from './quantize.js';
