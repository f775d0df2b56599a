/**
 * The `nextray` command line: a thin face over the library. Each subcommand lives in its own file and only
 * parses options, calls the library and prints; exit code 0 only when everything went well.
 */
import { Command } from 'commander';
import { reportError } from './common.js';
import { packageVersion } from '../util/package.js';
import { registerSynth } from './synth.js';
import { registerData } from './data.js';
import { registerModels } from './models.js';
import { registerForward } from './forward.js';
import { registerEvaluate } from './evaluate.js';
import { registerTrain } from './train.js';
import { registerSweep } from './sweep.js';
import { registerDemo } from './demo.js';
import { registerExport } from './export.js';
import { registerPredict } from './predict.js';
import { registerServe } from './serve.js';
import { registerApp } from './app.js';
import { registerCalibrate } from './calibrate.js';
import { registerAdapt } from './adapt.js';
import { registerPacs } from './pacs.js';


export function buildProgram(): Command {
  const program = new Command();
  program
    .name('nextray')
    .description('neXt-Ray: abnormality detection in upper-extremity X-rays (MURA) — data, models, training, evaluation.')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)');
  registerSynth(program);
  registerData(program);
  registerModels(program);
  registerForward(program);
  registerTrain(program);
  registerSweep(program);
  registerEvaluate(program);
  registerDemo(program);
  registerExport(program);
  registerPredict(program);
  registerServe(program);
  registerApp(program);
  registerCalibrate(program);
  registerAdapt(program);
  registerPacs(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}
