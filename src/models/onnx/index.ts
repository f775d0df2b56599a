/**
 * The ONNX format, browser-safe part: export (model -> .onnx bytes), the reader (header, graph, the exporter's
 * metadata) and the fp16 / int8 passes over a graph. Node code imports './files.js' to write exports and
 * './precision.js' for the int8 calibration host. Running a model is src/inference's job (the ONNX Runtime seam).
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
export { OnnxModelError, parseClassifierInfo, type OnnxClassifierInfo } from './info.js';
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
  type ExportPrecision,
  type CalibrationMethod,
} from './quantize.js';
