/**
 * One base for every error neXt-Ray throws on purpose: `NextrayError` carries a stable `code` (for programs), the
 * `exitStatus` a command line should end with, and an optional `hint` (what to try next). Each module keeps its own
 * subclass (WeightFormatError, DatasetError, ...) so `instanceof` and `err.name` work as before; the CLI turns any
 * NextrayError into `nextray: message` (+ `hint: ...`) and its exit status in one place (cli/common.ts
 * `reportError`), and anything else into a stack trace with exit status 1 (a bug, not a user error).
 *
 * Browser-safe: no `node:` imports (the browser entry re-exports it).
 */

/** Exit statuses of the CLI (the project's rule: 1 = something failed or was skipped, 2 = usage or unusable input). */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface NextrayErrorOptions {
  /** Stable machine-readable code, e.g. 'ERR_WEIGHT_FORMAT'. */
  code?: string;
  /** Exit status for a command line that ends on this error (default 1). */
  exitStatus?: number;
  /** One line on what to do about it; printed after the message by the CLI. */
  hint?: string;
  cause?: unknown;
}

export class NextrayError extends Error {
  readonly code: string;
  readonly exitStatus: number;
  readonly hint: string | undefined;

  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'NextrayError';
    this.code = opts.code ?? 'ERR_NEXTRAY';
    this.exitStatus = opts.exitStatus ?? EXIT_FAILURE;
    this.hint = opts.hint;
  }
}

export function isNextrayError(err: unknown): err is NextrayError {
  return err instanceof NextrayError;
}

/**
 * Puts `prefix` before a NextrayError's message (e.g. the CLI flag that named the file: `--input `) and rethrows
 * it; other errors are rethrown unchanged. Use as `.catch(rethrowWithPrefix('--input '))` or in a catch block.
 */
export function rethrowWithPrefix(prefix: string): (err: unknown) => never {
  return (err: unknown): never => {
    if (err instanceof NextrayError) err.message = `${prefix}${err.message}`;
    throw err;
  };
}

/** System error codes a user can act on (a full or read-only disk, permissions...), in words. */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'input/output error (a failing disk or network share)',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files on the system',
  ENAMETOOLONG: 'file name too long',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder',
  EEXIST: 'already exists',
  ENOENT: 'no such file or folder',
  EFBIG: 'file too large for the file system',
  EXDEV: 'crosses file systems',
  EADDRINUSE: 'address already in use (another program listens on that port)',
  EADDRNOTAVAIL: 'no such address on this machine',
};

/** Words for a system error code, or undefined when it is not one a user can act on. */
export function errnoWords(code: string | undefined): string | undefined {
  return code === undefined ? undefined : ERRNO_WORDS[code];
}

/** Codes that say the disk is out of room (the job may continue once space is freed): exit 1, not 2. */
const OUT_OF_ROOM = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO']);

/**
 * A file or folder that could not be written (full disk, read-only file system, no permission): names the path the
 * user asked for (not a temporary name) and says what to do. Files written before are left as they were.
 */
export class FileWriteError extends NextrayError {
  readonly path: string;
  readonly errno: string | undefined;
  constructor(path: string, cause: unknown) {
    const code = (cause as { code?: string } | null)?.code;
    const words = errnoWords(code) ?? (cause instanceof Error ? cause.message : String(cause));
    const full = code !== undefined && OUT_OF_ROOM.has(code);
    super(`cannot write ${path}: ${words}${code && errnoWords(code) ? ` (${code})` : ''}`, {
      code: 'ERR_WRITE',
      exitStatus: full ? EXIT_FAILURE : EXIT_USAGE,
      hint: full
        ? 'free some space (or write somewhere else) and run the command again; what was written before is intact'
        : 'choose a folder you can write to',
      cause,
    });
    this.name = 'FileWriteError';
    this.path = path;
    this.errno = code;
  }
}

/**
 * neXt-Ray or one of its dependencies is not installed as it should be (the package's own files, tsx when run from
 * source, an optional native module such as onnxruntime-node or @tensorflow/tfjs-node, the oneDNN addon): says
 * what is missing and how to get it. Exit 2: the command cannot run on this install.
 */
export class InstallError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_INSTALL', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'InstallError';
  }
}
