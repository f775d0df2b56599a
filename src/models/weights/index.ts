/**
 * Weight files: safetensors, PyTorch .pth (zip and legacy), NumPy .npy/.npz, and the project's checkpoint folders.
 * Everything in browser.ts (pure, Uint8Array in and out) plus the node:fs path-based wrappers.
 *
 * Typical use (Node):
 *   const sd = await readStateDict('resnet152.pth');          // or .safetensors, by magic bytes
 *   const w = sd.get('conv1.weight')!;                         // { dtype: 'F32', shape: [64, 3, 7, 7], data }
 *   const values = toFloat32(w);                               // F16/BF16/F64/I64 -> Float32Array
 */
export * from './browser.js';
export {
  readStateDict,
  readSafetensorsFile,
  writeSafetensorsFile,
  readNpyFile,
  writeNpyFile,
  CHECKPOINT_TENSORS_FILE,
} from './files.js';
