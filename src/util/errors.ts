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
