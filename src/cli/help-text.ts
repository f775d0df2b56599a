/**
 * Help texts rendered at build time, so that `nextray --help` (and `nextray help`, `nextray <command> --help` / `-h`,
 * `nextray help <command>`) is answered by bin/nextray.js from one JSON file without loading commander, the
 * registry or any command's module: Node's own start-up and nothing more.
 *
 * `scripts/render-help.mjs` (run by `npm run build` / `prepare` after tsc) writes HELP_FILE beside this module with
 * the exact text this program prints for each form in `helpForms()`, captured from the program itself (`programFor`,
 * the same path a run takes). The bin uses the file only for exactly these argument lists and only where the help
 * would be wrapped at HELP_WIDTH (output not a terminal, or a terminal at least that wide); anything else, or no
 * file, goes to the full CLI. test/cli/help-text.test.ts checks the file against a fresh rendering of every form.
 */
import { CommanderError } from 'commander';
import { COMMANDS } from './commands.js';
import { HELP_WIDTH, programFor } from './index.js';
import { reportError } from './common.js';
import { packageVersion } from '../util/package.js';

/** The file's name, beside the compiled help-text.js (dist/src/cli/help.json). */
export const HELP_FILE = 'help.json';
export const HELP_FORMAT = 'nextray-help';
export const HELP_FORMAT_VERSION = 1;

export interface HelpFile {
  format: typeof HELP_FORMAT;
  format_version: number;
  /** The package version it was rendered for (the bin ignores a file of another version). */
  version: string;
  /** Columns the texts are wrapped at. */
  width: number;
  /** stdout of `nextray <args>` keyed by the arguments joined with one space, for the forms that exit 0. */
  texts: Record<string, string>;
}

/** The argument lists the bin answers from the file: top-level help, and each command's help in its three spellings. */
export function helpForms(): string[][] {
  const forms = [['--help'], ['-h'], ['help']];
  for (const c of COMMANDS) forms.push([c.name, '--help'], [c.name, '-h'], ['help', c.name]);
  return forms;
}

/** What `nextray <args>` prints and its exit status, captured from the program (nothing reaches the terminal). */
export async function renderHelp(args: readonly string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  let stdout = '';
  let stderr = '';
  const argv = ['node', 'nextray', ...args];
  let exitCode = 0;
  try {
    const program = await programFor(argv, { writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
    await program.parseAsync(argv);
  } catch (err) {
    exitCode = err instanceof CommanderError && err.exitCode === 0 ? 0 : reportError(err, (s) => (stderr += s));
  }
  return { stdout, stderr, exitCode };
}

/** Every form's text, as the file holds them. Loads every command's module (build time only). */
export async function renderHelpFile(): Promise<HelpFile> {
  const texts: Record<string, string> = {};
  for (const args of helpForms()) {
    const r = await renderHelp(args);
    if (r.exitCode !== 0 || r.stderr !== '' || r.stdout === '') {
      throw new Error(`nextray ${args.join(' ')}: exit ${r.exitCode}, stderr ${JSON.stringify(r.stderr.slice(0, 200))}: not a help text`);
    }
    texts[args.join(' ')] = r.stdout;
  }
  return { format: HELP_FORMAT, format_version: HELP_FORMAT_VERSION, version: packageVersion(), width: HELP_WIDTH, texts };
}
