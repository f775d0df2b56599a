/**
 * Site adaptation, the fitting side (browser-safe: typed arrays only; the page's "Adapt to this site" and
 * `nextray adapt` run this same code). See adapt.ts for the procedure and docs/adaptation.md for its use.
 *
 *   const r = adaptHead({ images, features, dim, baseLogits }, { temperature, threshold });   // fit + held-out check
 *   const file = makeHeadFile(r.adopted!, base, adaptationRecord(r, ctx));                     // the small head file
 *   const head = parseHeadFile(text); checkHeadBase(head, modelSha256);                        // import, refuse others
 *   const { probabilities } = applyAdaptedHead(head, features, n, logits, temperature);        // use it
 *   const bytes = onnx.replaceHead(modelBytes, { ... });                                       // or an adapted .onnx
 */
export { adaptWithSitePreprocessing, sitePrepLabel, SITE_FILTER_CANDIDATES, type SitePrepHost, type SitePrepOptions, type SitePrepOutcome, type SitePrepTrial } from './site-prep.js';
export { fitSiteGreyMap, greyReferenceOf, checkGreyReference, type GreyReference, type SiteGreyFit } from './site-grey.js';
export { adaptHead, splitImages, compareHeldOut, studyMetrics, ADAPT_DEFAULTS, type AdaptData, type AdaptImage, type AdaptOptions, type AdaptResult, type BaseModel, type FittedHead, type HeldOutComparison, type PartCounts, type StudyMetrics, type ThresholdRule } from './adapt.js';
export { fitLogisticL2, logisticScores, standardizer, type LogisticFit, type LogisticOptions, type Standardizer } from './logistic.js';
export { heldOutPatients, patientFolds, type StudyUnit } from './split.js';
export {
  ADAPTED_HEAD_FORMAT,
  ADAPTED_HEAD_FORMAT_VERSION,
  AdaptError,
  adaptationRecord,
  applyAdaptedHead,
  checkHeadBase,
  makeHeadFile,
  parseHeadFile,
  ruleText,
  serializeHeadFile,
  type AdaptationRecord,
  type AdaptedHeadFile,
  type BaseModelInfo,
  type GreyNormalisationRecord,
  type LoadedHead,
} from './head-file.js';
