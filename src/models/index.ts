/**
 * Public surface of the model zoo: builders, the Model interface, metadata, state_dict import. Browser-safe: the
 * `weights` namespace here is the format readers/writers over Uint8Arrays (./weights/browser.ts); the file-path
 * readers and checkpoint folders (node:fs) are in ./weights/index.ts, exported by the Node entry (src/index.ts).
 */
export {
  ARCHS,
  ALL_ARCHS,
  PROJECT_ARCHS,
  isTorchvisionArch,
  type TorchvisionArch,
  IMAGENET_PREPROCESSING,
  archForWeightFile,
  archInfo,
  buildSpec,
  createCustomModel,
  createModel,
  isArch,
  listArchs,
  type Arch,
  type ArchInfo,
  type CreateModelOptions,
  type Model,
} from './registry.js';
export { NetworkModel, BinaryHead, LinearHead, headFactory, type HeadSpec } from './head.js';
export { loadIntoNetwork, canonicalKey, detectLayout, exportStateDict, StateDictMismatchError, type LoadOptions, type LoadReport, type ShapeMismatch } from './import.js';
export { buildResNet, BasicBlock, Bottleneck, Downsample, ResNet, RESNET_CONFIGS, type ResNetConfig, type BlockKind } from './resnet.js';
export { SlimResNet, buildSlimResNet } from './slim.js';
export { buildDenseNet, DenseNet, DenseLayer, DenseBlock, Transition, DENSENET_CONFIGS, type DenseNetConfig } from './densenet.js';
export {
  Module,
  Param,
  Conv2d,
  BatchNorm2d,
  convBn,
  Linear,
  Dropout,
  countParams,
  type HeadFactory,
  type HeadModule,
  type LayerUnit,
  type Network,
  type TrunkChain,
  type TrunkStep,
  runSteps,
} from './nn.js';
export * as weights from './weights/browser.js';
/** The model card: one typed description of a trained model and its serialisations (model.json, ONNX metadata, JSON). */
export {
  cardFromCheckpoint,
  cardFromJson,
  cardFromOnnxMetadata,
  cardToCheckpoint,
  cardToJson,
  cardToOnnxMetadata,
  ModelCardError,
  ONNX_CARD_KEY,
  type AdaptationCard,
  type DatasetCard,
  type ModelCard,
  type OodGateCard,
  type OperatingPoint,
  type TemperatureCard,
  type TrainingSummary,
} from './card.js';
