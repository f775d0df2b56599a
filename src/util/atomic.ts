/**
 * Atomic file writes: write to a temporary file in the same folder, fsync, then rename over the target, so a
 * reader (or a resumed job after a kill) never sees a half-written checkpoint, report, split, model or .onnx file.
 * The one copy of this logic: weights files, ONNX exports and reports all call writeFileAtomic (checkpoint folders
 * build their folder-level swap on writeChunksSynced).
 *
 * A write that fails (full disk, read-only file system, no permission) removes its temporary file, leaves the old
 * target as it was, and throws a FileWriteError naming the target. A writer killed mid-write (kill -9) cannot clean
 * up: its `.NAME.PID.N.tmp` is removed by the next write to the same target, once that PID is no longer running.
 */
import { existsSync, mkdirSync, openSync, writeSync, fsyncSync, closeSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { FileWriteError } from './errors.js';

let counter = 0;

/**
 * Write byte chunks to `path` and fsync it; returns the bytes written. No atomicity by itself: callers write to a
 * temporary name (writeFileAtomic) or folder. Chunks are written from their own memory (no concatenated copy).
 */
export function writeChunksSynced(path: string, chunks: readonly Uint8Array[], onChunk?: (chunk: Uint8Array) => void): number {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (err) {
    throw asWriteError(path, err);
  }
  let total = 0;
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
      total += c.byteLength;
      onChunk?.(c);
    }
    fsyncSync(fd);
  } catch (err) {
    throw asWriteError(path, err);
  } finally {
    closeSync(fd);
  }
  return total;
}

/** A system error while writing `path` as a FileWriteError naming it; other errors unchanged. */
function asWriteError(path: string, err: unknown): unknown {
  if (err instanceof FileWriteError) return new FileWriteError(path, err.cause);
  return typeof (err as { code?: unknown } | null)?.code === 'string' && (err as { syscall?: unknown }).syscall !== undefined ? new FileWriteError(path, err) : err;
}

/**
 * mkdir -p `dir`, or a FileWriteError for `path` with the real reason: a recursive mkdir under a read-only folder
 * reports ENOENT (Node retries the parent and hides the EROFS/EACCES), so on failure the first missing folder is
 * made alone to learn why.
 */
export function makeFolder(dir: string, path: string = dir): void {
  try {
    mkdirSync(dir, { recursive: true });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw asWriteError(path, err);
    let missing = dir;
    while (dirname(missing) !== missing && !existsSync(dirname(missing))) missing = dirname(missing);
    try {
      mkdirSync(missing);
    } catch (inner) {
      throw asWriteError(path, inner);
    }
    throw asWriteError(path, err);
  }
}

/**
 * Whether process `pid` still runs on this machine (signal 0 checks without sending anything): temporary files and
 * folders named after a dead writer's pid are what an interrupted write left, and may be removed.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary files of earlier writes to `path` whose writer is gone (`.NAME.PID.N.tmp` with a PID that is not
 * running): what a kill -9 in the middle of a write leaves. Best effort: a folder that cannot be listed is left be.
 */
export function removeStaleTemps(path: string): string[] {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.\d+\.tmp$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      rmSync(join(dir, name), { force: true });
      removed.push(join(dir, name));
    } catch {
      // Someone else removed it, or the folder is read-only: the write below reports what matters.
    }
  }
  return removed;
}

/** Write `data` (text as UTF-8, bytes, or a list of byte chunks) to `path` atomically; creates the folder. */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const dir = dirname(path);
  makeFolder(dir, path);
  removeStaleTemps(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  try {
    writeChunksSynced(tmp, chunks);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw asWriteError(path, err);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
