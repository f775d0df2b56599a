/**
 * Thin node:fs wrappers over the pure format readers: read a weight file from a path (format decided by its magic
 * bytes), write safetensors/.npy atomically. Browser code imports the pure modules instead (see browser.ts).
 */
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { parseNpy, serializeNpy, type NpyArray } from './npy.js';
import {
  parseSafetensors,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  serializeSafetensorsChunks,
  type SafetensorsFile,
  type SafetensorsHeader,
} from './safetensors.js';
import { parseStateDict, type ParseStateDictOptions } from './state-dict.js';
import { WeightFormatError, type DType, type StateDict, type TensorData } from './types.js';

/** File name of the tensors inside a checkpoint folder. */
export const CHECKPOINT_TENSORS_FILE = 'model.safetensors';

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new WeightFormatError(path, 'file not found');
    if (e.code === 'EISDIR') throw new WeightFormatError(path, 'is a directory, expected a file');
    throw new WeightFormatError(path, `cannot read: ${e.message}`);
  }
}

/**
 * Read a state_dict from a safetensors, torch.save (.pth/.pt, zip or legacy) or .npz file, or from a checkpoint
 * folder (its model.safetensors). The format comes from the file's magic bytes, not its extension.
 * Tensors are views into the file's bytes where possible.
 */
export async function readStateDict(path: string, opts: Omit<ParseStateDictOptions, 'source'> = {}): Promise<StateDict> {
  let file = path;
  try {
    if ((await stat(path)).isDirectory()) file = join(path, CHECKPOINT_TENSORS_FILE);
  } catch {
    // reported by readBytes below
  }
  return parseStateDict(await readBytes(file), { ...opts, source: file });
}

/** Read a safetensors file with its metadata. */
export async function readSafetensorsFile(path: string, opts: { copy?: boolean } = {}): Promise<SafetensorsFile> {
  return parseSafetensors(await readBytes(path), { ...opts, source: path });
}

/**
 * Read and validate only a safetensors file's header (names, dtypes, shapes, offsets, metadata): a few KB read
 * however large the file, for listing or checking weights before loading them.
 */
export async function readSafetensorsHeaderFile(path: string): Promise<SafetensorsHeader> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new WeightFormatError(path, e.code === 'ENOENT' ? 'file not found' : `cannot read: ${e.message}`);
  }
  try {
    const size = (await fh.stat()).size;
    const first8 = new Uint8Array(8);
    await fh.read(first8, 0, Math.min(8, size), 0);
    const n = safetensorsHeaderLength(first8);
    const want = n >= 0 && n <= size - 8 ? 8 + n : Math.min(size, 8);
    const head = new Uint8Array(want);
    await fh.read(head, 0, want, 0);
    return parseSafetensorsHeader(head, size, { source: path });
  } finally {
    await fh.close();
  }
}

/**
 * Write tensors as safetensors, atomically (temp file + fsync + rename), streaming each tensor's bytes from
 * its own memory so no second copy of the model is made.
 */
export function writeSafetensorsFile(path: string, tensors: StateDict, metadata?: Record<string, string>): void {
  const chunks = serializeSafetensorsChunks(tensors, metadata); // validates before touching the disk
  writeFileAtomic(path, chunks);
}

/** Read one .npy array. */
export async function readNpyFile(path: string): Promise<NpyArray> {
  return parseNpy(await readBytes(path), { source: path });
}

/** Write one array as .npy, atomically. */
export function writeNpyFile(path: string, shape: number[], data: TensorData, dtype?: DType): void {
  writeFileAtomic(path, serializeNpy(shape, data, dtype));
}
