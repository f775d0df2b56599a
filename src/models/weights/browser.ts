/**
 * The browser-safe part of the weights API: format readers and writers over Uint8Arrays, no node:fs.
 * Node code can import everything from './index.js' instead.
 */
export * from './types.js';
export {
  toFloat32,
  fromFloat32,
  rawTensor,
  f16BitsToNumber,
  numberToF16Bits,
  bf16BitsToNumber,
  numberToBF16Bits,
} from './dtype.js';
export {
  parseSafetensors,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  serializeSafetensors,
  serializeSafetensorsChunks,
  looksLikeSafetensors,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsEntry,
  type ParseOptions,
} from './safetensors.js';
export {
  parseTorchPth,
  loadTorchFile,
  extractStateDict,
  stateDictMetadata,
  isLegacyTorch,
  TorchTensor,
  type TorchFile,
  type TorchLoadOptions,
  type StateDictOptions,
} from './torch-pth.js';
export { PyDict, PyOpaque, PickleError } from './pickle.js';
export { parseNpy, serializeNpy, serializeNpyTensor, parseNpz, isNpy, type NpyArray, type NpyParseOptions } from './npy.js';
export { parseStateDict, detectWeightFormat, compareStateDicts, type WeightFormat, type ParseStateDictOptions } from './state-dict.js';
