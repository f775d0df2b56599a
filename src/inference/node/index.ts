/**
 * The Node host of inference: the facade `load(path | paths | spec)` -> `model.predict(files, folders or bytes)`
 * (load.ts), opening models (.onnx, checkpoint folders, run directories; onnxruntime-node with a TF.js fallback),
 * finding image files, decoding PNG/JPEG (sharp) and DICOM on worker threads, predicting over files and over a
 * dataset split. Re-exports the browser-safe core (src/inference/core); its `load` is the Node one here.
 */
export * from '../core/index.js';
export { load, type NodeLoadOptions, type NodeModel, type NodeModelSpec, type NodePredictOptions, type NodeViewInput } from './load.js';
export { loadOnnxRuntime, openModel, sha256File, INFERENCE_RUNTIMES, PREDICT_ENGINES, type InferenceRuntime, type OnnxRuntimeFace, type OpenModelOptions, type PredictEngine } from './models.js';
export {
  checkpointSha256,
  loadTrainedModel,
  onnxRunner,
  openCheckpointModel,
  sigmoid,
  tfjsRunner,
  TfjsInferenceModel,
  type BatchRunner,
  type LoadedModel,
} from './checkpoint.js';
export { expandInputs, type ExpandedInputs, type InputProblem } from './inputs.js';
export { decodeForPrediction, type DecodeReply, type DecodeRequest } from './decode.js';
export { predictFiles, type BadFile, type PredictFilesOptions, type PredictFilesResult } from './predict.js';
export { OnnxClassifier, type OnnxClassifierOptions } from './onnx-session.js';
export { predictSplit, toPredictions, type PredictEngineInfo, type PredictSplitOptions, type RecordPrediction, type SplitPredictions } from './records.js';
