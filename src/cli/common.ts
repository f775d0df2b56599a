/** Shared pieces of the CLI faces: errors with exit codes, number parsing for options, JSON output. */
import { CommanderError, InvalidArgumentError, Option } from 'commander';
import { EXIT_FAILURE, EXIT_USAGE, NextrayError, errnoWords } from '../util/errors.js';
import type { Seed } from '../util/rng.js';

/** A usage error or one the user can fix, raised by the CLI itself (exit status 2 unless given). */
export class CliError extends NextrayError {
  constructor(message: string, exitStatus: number = EXIT_USAGE, hint?: string) {
    super(message, { code: 'ERR_CLI', exitStatus, ...(hint !== undefined ? { hint } : {}) });
    this.name = 'CliError';
  }
}

/**
 * The one place that turns an error into what the user sees and the exit status: commander's own errors keep their
 * status (help/version 0; its usage messages are already printed); a NextrayError prints `nextray: message` (and
 * `hint: ...`) with its exitStatus; a system error a user can act on (ENOSPC, EROFS, EACCES, EADDRINUSE... with
 * the syscall that failed) prints its path and words, exit 1 when out of room, else 2; anything else is a bug: the
 * stack trace, exit status 1.
 */
export function reportError(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  // commander exits 1 on its usage errors (unknown option, invalid value, missing argument; already printed): 2 here.
  if (err instanceof CommanderError) return err.exitCode === 1 ? EXIT_USAGE : err.exitCode;
  if (err instanceof NextrayError) {
    write(`nextray: ${err.message}\n`);
    if (err.hint) write(`hint: ${err.hint}\n`);
    return err.exitStatus;
  }
  // A system error that reached here unnamed (a full disk or a read-only folder under some write no module wraps):
  // still the user's to fix, so words and the path, not a stack trace.
  const sys = err as NodeJS.ErrnoException | null;
  const words = typeof sys?.syscall === 'string' ? errnoWords(sys.code) : undefined;
  if (words !== undefined) {
    write(`nextray: ${sys!.path ? `${sys!.path}: ` : ''}${words} (${sys!.code}, during ${sys!.syscall})\n`);
    return sys!.code === 'ENOSPC' || sys!.code === 'EDQUOT' || sys!.code === 'EIO' ? EXIT_FAILURE : EXIT_USAGE;
  }
  write(`nextray: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  write('nextray: this is an internal error (a bug in neXt-Ray, not a problem with your files or options); please report it with the lines above\n');
  return EXIT_FAILURE;
}

export function parseIntOption(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got "${value}"`);
    }
    return n;
  };
}

export function parseFloatOption(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got "${value}"`);
    }
    return n;
  };
}

/**
 * The one `--seed` option parser (synth, data split, evaluate): a whole number in the safe-integer range becomes
 * a number, any other non-empty text stays a string seed (Rng hashes it); empty is refused.
 */
export function parseSeed(value: string): Seed {
  if (/^-?\d+$/.test(value)) {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
  }
  if (!value.trim()) throw new InvalidArgumentError('--seed must not be empty');
  return value;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** What runs an exported or trained model: ONNX Runtime, TF.js, or ONNX Runtime with TF.js as the fallback. */
export const RUNTIMES = ['auto', 'onnx', 'tfjs'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/**
 * `--runtime <auto|onnx|tfjs>` (default auto) and its old name `--engine`, hidden and still accepted with the same
 * values: `--engine` names the TF.js backend (train, demo, export, forward), so the inference runtime has its own flag.
 */
export function runtimeOptions(help: string): [Option, Option] {
  return [
    new Option('--runtime <name>', help).choices([...RUNTIMES]).default('auto'),
    new Option('--engine <name>', 'old name of --runtime').choices([...RUNTIMES]).hideHelp(),
  ];
}

/**
 * The runtime asked for, from `--runtime` or the old `--engine` (one line to stderr saying so); both with different
 * values is a usage error. `flag` is the one the user typed, for messages.
 */
export function resolveRuntime(
  flags: { runtime?: string; engine?: string },
  write: (s: string) => void = (s) => process.stderr.write(s),
): { runtime: Runtime; flag: '--runtime' | '--engine' } {
  const runtime = (flags.runtime ?? 'auto') as Runtime;
  if (flags.engine === undefined) return { runtime, flag: '--runtime' };
  if (runtime !== 'auto' && runtime !== flags.engine) {
    throw new CliError(`--runtime ${runtime} and --engine ${flags.engine} disagree; give --runtime only (--engine is its old name)`);
  }
  write(`nextray: --engine ${flags.engine} is now --runtime ${flags.engine} (--engine is kept for the TF.js backend of train, demo, export and forward)\n`);
  return { runtime: flags.engine as Runtime, flag: '--engine' };
}
