/**
 * `nextray predict` on its own: bin/nextray.js starts here for `predict`, so a prediction loads only what it uses
 * (commander, the inference core, onnxruntime-node; TF.js only for a checkpoint folder, sharp in the decode
 * workers) instead of every command's modules — the cold start measured in bench/predict.mjs.
 */
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { reportError } from './common.js';
import { registerPredict } from './predict.js';

export async function main(argv: string[]): Promise<void> {
  const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };
  const program = new Command().name('nextray').version(pkg.version).showHelpAfterError('(run with --help for usage)');
  registerPredict(program);
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}
