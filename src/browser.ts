/**
 * neXt-Ray's browser entry (`import ... from 'nextray/browser'`, or plain 'nextray' where a bundler picks the
 * `browser` condition): everything that runs without Node — no `node:` module, sharp, onnxruntime-node or the
 * native addon is reachable from here (test/browser/entry.test.ts bundles this file for the browser and type-checks
 * it without Node's types to keep it so).
 *
 *   import { load } from 'nextray/browser';
 *   import * as ort from 'onnxruntime-web';
 *   const model = await load({ onnx: bytes, ort });                           // bytes: a .onnx from `nextray export`
 *   const { views, studies } = await model.predict([{ name: 'wrist.dcm', bytes: dicomBytes }], { heatmaps: true });
 *
 *   import { models, onnx } from 'nextray/browser';
 *   const bytes = onnx.exportOnnx(model, { inputSize: 320 }).toBytes();        // a TF.js model -> .onnx bytes
 *
 * Models need a TF.js backend registered by the page (e.g. @tensorflow/tfjs-backend-cpu or -webgl).
 * The Node entry (src/index.ts) has all of this plus file I/O, datasets, training, reports and the native engine.
 */

/** Input preprocessing (resize/crop/normalisation spec, shared by training, export and every runtime) + MURA paths. */
export * as preprocessing from './data/preprocess.js';
/** Grey-level histograms and the monotone quantile map a site adaptation fits (the adapted model applies it). */
export * as greyLevels from './data/grey-map.js';
/** Site filters a site adaptation may put in front of the model (burned-in overlay suppression, smoothing, unsharp mask). */
export * as siteFilters from './data/site-filter.js';
export * as dataTypes from './data/types.js';
export * as muraPaths from './data/paths.js';
export * as csv from './util/csv.js';
export * as augment from './data/augment.js';

/** The model zoo (builders, state_dict import, weight-format parsers over Uint8Arrays). */
export * as models from './models/index.js';

/** ONNX: the writer (TF.js model -> .onnx), the reader (metadata, graph) and the runtime-agnostic classifier. */
export * as onnx from './models/onnx/index.js';

/** Metrics, bootstrap intervals, thresholds, prediction parsing, the report's tables and SVG figures. */
export * as metrics from './evaluate/metrics.js';
export * as bootstrap from './evaluate/bootstrap.js';
export * as threshold from './evaluate/threshold.js';
export * as predictions from './evaluate/predictions.js';
export * as evaluation from './evaluate/evaluate.js';
export * as calibration from './evaluate/calibration.js';
export * as tables from './evaluate/tables.js';
export * as plots from './evaluate/plots.js';

/**
 * Site adaptation (the fitting of `nextray adapt`, for the page's "Adapt to this site"): refit the head on the
 * model's `features` output of a clinic's labelled studies, temperature and threshold by cross-fitting, a
 * patient-disjoint held-out check, the small head file (SHA-256-bound to its model) and applying it.
 */
export * as adaptation from './calibrate/adapt/index.js';

/** Typed errors (NextrayError and its code / exit status / hint). */
export * as errors from './util/errors.js';
export { Rng, type Seed } from './util/rng.js';

/**
 * The inference core (src/inference/core/): InferenceModel over an injected ONNX Runtime module (onnxruntime-web
 * here), model cards (name, SHA-256, preprocessing, threshold), preprocessing, CAM heatmaps, OOD score, ensembles,
 * study grouping, the DICOM reader.
 *   const model = await inference.createOnnxModel(ort, bytes, { source: 'model.onnx' });
 */
export * as inference from './inference/core/index.js';

/** The facade: `load(spec)` -> `model.predict(views, { heatmaps })` (src/inference/README.md). */
export { load } from './inference/core/load.js';
export type {
  DecodedFile,
  DecodedImage,
  ImageDecoder,
  LoadOptions,
  ModelSpec,
  NextrayModel,
  OodVerdict,
  PredictionResult,
  PredictOptions,
  StudyPrediction,
  ViewInput,
  ViewPrediction,
} from './inference/core/load.js';
export type { LoadedCard } from './inference/core/model.js';
export type { DicomIdentity, DicomStudyIdentity } from './inference/core/identity.js';

/**
 * The model card (src/models/card.ts): the one typed description of a trained model. `load()` parses it from an
 * export's ONNX metadata into each member's card (`model.cards[i]`); these read and write its serialisations.
 */
export { cardFromJson, cardFromOnnxMetadata, cardToJson, ModelCardError } from './models/card.js';
export type { DatasetCard, ModelCard, OodGateCard, OperatingPoint, TemperatureCard, TrainingSummary } from './models/card.js';

/** DICOM: the reader, the PS3.3 C.11 display pipeline, the header gate and the browser-safe codecs. */
export * as dicom from './data/dicom/index.js';
