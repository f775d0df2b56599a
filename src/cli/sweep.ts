/**
 * `nextray sweep --grid grid.json --out DIR`: trains every config of a grid (sub-run directories, resumable) and
 * writes the seed report's Table 1 as DIR/table1.md and DIR/table1.csv. A thin face over src/train/sweep.ts.
 */
import { Command } from 'commander';
import { readGridFile, runSweep } from '../train/sweep.js';
import { addConfigOptions, flagValues } from './train.js';

export function registerSweep(program: Command): void {
  const cmd = program
    .command('sweep')
    .description(
      "Run a grid of training configs and write the seed report's Table 1 (model, L2, dropout, frozen layers, augmentation, " +
        'batch size, train/validation accuracy, variance, validation recall) as Markdown and CSV. Re-running the same command ' +
        'skips finished runs and resumes a half-done one.',
    )
    .requiredOption('--grid <file>', 'JSON object: a field with a list is a grid axis, other fields are fixed')
    .requiredOption('--out <dir>', 'sweep folder (one sub-run directory per config, table1.md, table1.csv, sweep.json)')
    .option('-q, --quiet', 'print nothing but the table')
    .option('--json', 'print one JSON line per finished run on stdout, then no table');
  addConfigOptions(cmd);
  cmd.addHelpText(
    'after',
    `\nExamples:\n  echo '{"l2": [0, 0.1], "dropout": [0.2, 0.5], "frozenLayers": 148}' > grid.json\n` +
      `  nextray sweep --grid grid.json --data ./MURA --epochs 10 --out sweeps/table1\n` +
      `  nextray sweep --grid grid.json --data ./MURA --feature-cache /scratch/features --out sweeps/t1  # prefix extracted once\n\n` +
      'The feature cache is on by default: configs with the same frozen prefix share its entries (docs/feature-cache.md).\n' +
      'Exit codes: 0 every run finished; 1 some run(s) failed (named in the table; the rest done); 2 usage error or\n' +
      'unusable input (grid file, dataset).\n\n' +
      'Grid fields are config fields (as in a run\'s config.json: l2, dropout, frozenLayers, batchSize, hflip, arch, lr, ...);\n' +
      'flags give base values that the grid overrides.\n',
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const json = !!opts.json;
    const grid = readGridFile(opts.grid as string);
    const res = await runSweep(grid, opts.grid as string, {
      outDir: opts.out as string,
      base: flagValues(opts, cmd),
      quiet: !!opts.quiet || json,
      ...(json ? { onRunDone: (row) => process.stdout.write(JSON.stringify(row) + '\n') } : {}),
    });
    if (!json) process.stdout.write(res.markdown);
    if (!opts.quiet && !json) process.stderr.write(`wrote ${opts.out as string}/table1.md and table1.csv (${res.rows.length} runs)\n`);
    if (res.failed) {
      process.stderr.write(`nextray: ${res.failed} of ${res.rows.length} run(s) failed (see the table and each run's train.log)\n`);
      process.exitCode = 1;
    }
  });
}
