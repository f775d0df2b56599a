/**
 * Atomic file writes: write to a temporary file in the same folder, fsync, then rename over the target, so a
 * reader (or a resumed job after a kill) never sees a half-written checkpoint, report, split, model or .onnx file.
 * The one copy of this logic: weights files, ONNX exports and reports all call writeFileAtomic (checkpoint folders
 * build their folder-level swap on writeChunksSynced).
 */
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

let counter = 0;

/**
 * Write byte chunks to `path` and fsync it; returns the bytes written. No atomicity by itself: callers write to a
 * temporary name (writeFileAtomic) or folder. Chunks are written from their own memory (no concatenated copy).
 */
export function writeChunksSynced(path: string, chunks: readonly Uint8Array[], onChunk?: (chunk: Uint8Array) => void): number {
  const fd = openSync(path, 'w');
  let total = 0;
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
      total += c.byteLength;
      onChunk?.(c);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return total;
}

/** Write `data` (text as UTF-8, bytes, or a list of byte chunks) to `path` atomically; creates the folder. */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  try {
    writeChunksSynced(tmp, chunks);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
