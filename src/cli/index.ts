/**
 * The `nextray` command line: a thin face over the library. Each subcommand lives in its own file and only
 * parses options, calls the library and prints; exit code 0 only when everything went well.
 *
 * Start-up: the program registers only the command named on the command line (its module imports what it runs);
 * `nextray --help`, `--version` and an unknown command see the registry's one-line entries and load nothing heavy.
 */
import { Command, Help, type OutputConfiguration } from 'commander';
import { reportError } from './common.js';
import { packageVersion } from '../util/package.js';
import { COMMANDS, type CommandEntry } from './commands.js';

/**
 * Help is wrapped at 80 columns, or at a narrower terminal's width: the same text whatever the terminal, so that the
 * texts prerendered at build time (help-text.ts) are what this program prints wherever bin/nextray.js uses them.
 */
export const HELP_WIDTH = 80;

function helpWidth(stream: NodeJS.WriteStream): number {
  return stream.isTTY && stream.columns > 0 ? Math.min(stream.columns, HELP_WIDTH) : HELP_WIDTH;
}

/** Where the program writes (tests and the help prerenderer capture it); default stdout / stderr. */
export type ProgramOutput = Pick<OutputConfiguration, 'writeOut' | 'writeErr'>;

function baseProgram(output?: ProgramOutput): Command {
  return new Command()
    .name('nextray')
    // Set before the commands are added, so that they inherit it (commander copies the output settings then).
    .configureOutput({ getOutHelpWidth: () => helpWidth(process.stdout), getErrHelpWidth: () => helpWidth(process.stderr), ...output })
    .description('neXt-Ray: abnormality detection in upper-extremity X-rays (MURA) — data, models, training, evaluation.')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    // Set before the commands are added, so that they inherit it: commander throws instead of exiting, and
    // reportError gives its usage errors exit status 2.
    .exitOverride()
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  nextray demo --out demo-output',
        '  nextray predict --model model.onnx xray.png',
        '  nextray help predict',
        '',
        'Exit codes: 0 ok; 1 something failed or was skipped (the rest done); 2 usage error or unusable input.',
      ].join('\n'),
    );
}

/** The command an argv runs (`nextray help CMD` included), or undefined for top-level help/version/unknown. */
export function commandFor(argv: readonly string[]): CommandEntry | undefined {
  const [first, second] = argv.slice(2);
  const name = first === 'help' ? second : first;
  return COMMANDS.find((c) => c.name === name);
}

/** The whole program, every command registered (loads every command's modules). */
export async function buildProgram(): Promise<Command> {
  const program = baseProgram();
  for (const c of COMMANDS) (await c.register())(program);
  return program;
}

/** The program for one argv: the named command registered for real, the others as help-only entries. */
export async function programFor(argv: readonly string[], output?: ProgramOutput): Promise<Command> {
  const program = baseProgram(output);
  const wanted = commandFor(argv);
  const terms = new Map<string, string>();
  for (const c of COMMANDS) {
    if (c === wanted) {
      (await c.register())(program);
    } else {
      program.command(c.name).summary(c.summary).description(c.summary);
      terms.set(c.name, c.term);
    }
  }
  const help = new Help();
  program.configureHelp({ subcommandTerm: (cmd) => terms.get(cmd.name()) ?? help.subcommandTerm(cmd) });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    const program = await programFor(argv);
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}
