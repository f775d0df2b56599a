/**
 * The browser-safe inference core: everything that runs a trained model on decoded pixels, with no `node:`
 * modules, sharp, onnxruntime-node or the native addon — so the web app (onnxruntime-web) and the Node host
 * (onnxruntime-node, src/inference/node) run the same code.
 *
 *   load.ts      the facade: load(spec) -> model.predict(views, { heatmaps }) -> views and studies (README.md)
 *   model.ts     InferenceModel / LoadedCard (name, SHA-256, arch, preprocessing, threshold), createOnnxModel(ort, bytes)
 *   ensemble.ts  Ensemble: mean of the members' probabilities, one input per distinct preprocessing
 *   predict.ts   preprocess(grey, w, h, p), preprocessAll, predictBatch -> ImagePrediction (heatmap/ood slots)
 *   study.ts     studyKeyOf (MURA study folder, else DICOM StudyInstanceUID, else folder), aggregateStudies
 *   (DICOM bytes are read with src/data/dicom/, also browser-safe; wasm codecs through injected loaders)
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
  digestSha256Hex,
  modelNameFrom,
  type InferenceModel,
  type LoadedCard,
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
// Trust layer: CAM post-processing, colour map, OOD gate, and the glue into ImagePrediction.
export { argmax2d, camAtInput, camOnImage, normaliseMap, resizeMap } from './cam.js';
export { colourAt, overlayHeatmap, VIRIDIS, type OverlayOptions } from './colormap.js';
export { base64ToFloats, floatsToBase64, isOutOfDistribution, loadGate, mahalanobisScores, oodWarning, storeGate, type OodGate, type StoredOodGate } from './ood.js';
export { applyTrust, oodThreshold, trustExportOptions, trustOf, trustOutputs, type TrustInfo } from './trust.js';
export {
  decodeView,
  groupStudies,
  load,
  studyGroupKey,
  noHeatmaps,
  problemOf,
  viewPrediction,
  ViewCollector,
  ViewInputError,
  type DecodedFile,
  type DecodedImage,
  type DecodedView,
  type EncodedView,
  type ExcludedView,
  type ImageDecoder,
  type LoadOptions,
  type ModelSpec,
  type NextrayModel,
  type OnnxModelSpec,
  type OodVerdict,
  type PredictionResult,
  type PredictOptions,
  type StudyPrediction,
  type UnreadableInput,
  type ViewIdentity,
  type ViewInput,
  type ViewPrediction,
} from './load.js';
export { dicomIdentityOf, type DicomIdentity, type DicomStudyIdentity } from './identity.js';
