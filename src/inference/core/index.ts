/**
 * The browser-safe inference core: everything that runs a trained model on decoded pixels, with no `node:`
 * modules, sharp, onnxruntime-node or the native addon — so the web app (onnxruntime-web) and the Node host
 * (onnxruntime-node, src/inference/node) run the same code.
 *
 *   model.ts     InferenceModel / ModelCard (name, SHA-256, arch, preprocessing, threshold), createOnnxModel(ort, bytes)
 *   ensemble.ts  Ensemble: mean of the members' probabilities, one input per distinct preprocessing
 *   predict.ts   preprocess(grey, w, h, p), preprocessAll, predictBatch -> ImagePrediction (heatmap/ood slots)
 *   study.ts     studyKeyOf (MURA study folder, else DICOM StudyInstanceUID, else folder), aggregateStudies
 *   dicom        the DICOM reader and PS3.3 C.11 display pipeline (src/data/dicom/, also browser-safe; wasm codecs through injected loaders)
 *
 * Browser use:
 *   import * as ort from 'onnxruntime-web';
 *   const model = await createOnnxModel(ort, new Uint8Array(await (await fetch('model.onnx')).arrayBuffer()), { source: 'model.onnx' });
 *   const ens = new Ensemble([model]);
 *   const x = preprocessAll(grey, w, h, ens.preprocessings);
 *   const [r] = await predictBatch(ens, [{ image: 'xray.png', inputs: x, study: studyKeyOf('xray.png'), width: w, height: h, format: 'png', warnings: [] }]);
 */
export {
  InferenceError,
  OnnxInferenceModel,
  cardFromInfo,
  createOnnxModel,
  modelNameFrom,
  sha256Hex,
  type InferenceModel,
  type ModelCard,
  type ModelRunOptions,
  type ModelRunResult,
  type OnnxModelOptions,
} from './model.js';
export { Ensemble, meanProbabilities, preprocessingKey, type EnsembleOptions, type EnsembleRunResult } from './ensemble.js';
export {
  predictBatch,
  preprocess,
  preprocessAll,
  type Heatmap,
  type ImagePrediction,
  type PredictBatchOptions,
  type PreparedImage,
} from './predict.js';
export { aggregateStudies, muraStudyOf, studyKeyOf, type StudyKey, type StudyMember, type StudyResult, type StudySource } from './study.js';
export { OnnxClassifierCore, type OnnxClassifierCoreOptions, type OnnxRunOptions, type OnnxRunResult, type OrtModule } from './onnx-session.js';
export { DEFAULT_PREPROCESSING, greyWarnings, type Preprocessing } from '../../data/preprocess.js';
export {
  applyGate,
  applyLut,
  applyRange,
  applyWindow,
  COMPRESSED_TRANSFER_SYNTAXES,
  createFrameDecoders,
  decodeStoredFrame,
  DicomError,
  DicomRefusedError,
  displayGrey,
  gateHeader,
  invertInPlace,
  isDicom,
  loadEmscriptenCodec,
  parseDicom,
  RADIOGRAPH_MODALITIES,
  readDicom,
  readDicomHeader,
  rescale,
  storedValues,
  UNCOMPRESSED_TRANSFER_SYNTAXES,
  UPPER_EXTREMITY_BODY_PARTS,
  type CodecModuleLoaders,
  type DicomFrameDecoder,
  type DicomFrameInfo,
  type DicomHeader,
  type DicomImage,
  type DisplayParams,
  type GateVerdict,
  type Lut,
  type ParsedDicom,
  type ReadDicomOptions,
  type StoredFrame,
  type StoredLayout,
  type VoiApplied,
  type VoiFunction,
} from '../../data/dicom/index.js';
// Trust layer (issue 13): CAM post-processing, colour map, OOD gate, and the glue into ImagePrediction.
export { argmax2d, camAtInput, camOnImage, normaliseMap, resizeMap } from './cam.js';
export { colourAt, overlayHeatmap, VIRIDIS, type OverlayOptions } from './colormap.js';
export { base64ToFloats, floatsToBase64, isOutOfDistribution, loadGate, mahalanobisScores, oodWarning, storeGate, type OodGate, type StoredOodGate } from './ood.js';
export { applyTrust, trustExportOptions, trustOf, trustOutputs, type TrustInfo } from './trust.js';
