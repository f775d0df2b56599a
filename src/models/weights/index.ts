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
  readSafetensorsHeaderFile,
  writeSafetensorsFile,
  readNpyFile,
  writeNpyFile,
  CHECKPOINT_TENSORS_FILE,
} from './files.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  readCheckpointMetadata,
  currentVersions,
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CHECKPOINT_METADATA_FILE,
  CHECKPOINT_OPTIMIZER_FILE,
  type Checkpoint,
  type CheckpointInfo,
  type CheckpointMetadata,
  type CheckpointVersions,
  type CheckpointFileRecord,
  type SaveCheckpointOptions,
  type LoadCheckpointOptions,
} from './checkpoint.js';
