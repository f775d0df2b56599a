/**
 * `nextray data summary` and `nextray data split`: the command-line face of src/data/mura.ts, summary.ts and
 * splits.ts. Results go to stdout (a table, or JSON with --json); problems go to stderr, one line each naming the
 * file, then a count by kind.
 *
 * Exit codes (both subcommands): 0 everything was fine; 1 the dataset has problems (all listed on stderr; the
 * summary is still printed / the split still written, from the usable part); 2 nothing could be done (no dataset
 * at DIR, invalid options, the output cannot be written).
 */
import { Command, CommanderError, Option } from 'commander';
import { CliError, parseFloatOption, parseIntOption, parseSeed, printJson } from './common.js';
import { FileWriteError } from '../util/errors.js';
import { countIssues, formatIssue, loadMuraDataset, type MuraDataset } from '../data/mura.js';
import { formatSummaryTable, summarizeStudies } from '../data/summary.js';
import { createSplit, splitFormatFor, writeSplit, type MuraSplitFile, type SplitFormat } from '../data/splits.js';
import { createProgress, type Progress } from '../util/progress.js';
import { REGIONS } from '../data/types.js';
import type { Seed } from '../util/rng.js';

const EXIT_CODES = `
Exit codes:
  0  the dataset is as MURA describes it
  1  problems were found (each listed on stderr with its file; the output still covers the usable part)
  2  nothing could be done (no dataset at DIR, invalid options, output not writable)`;

interface LoadFlags {
  checkImages?: boolean;
  concurrency: number;
  quiet?: boolean;
  json?: boolean;
}

/** Usage errors exit 2 like other "could not run" cases (commander's default would be 1, our "problems found"). */
function usageExit2(cmd: Command): Command {
  return cmd.exitOverride((err) => {
    if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
    throw err;
  });
}

async function loadForCli(dir: string, flags: LoadFlags): Promise<MuraDataset> {
  // Created on the first checked image: only then is the number of images to decode known.
  let bar: Progress | null = null;
  try {
    return await loadMuraDataset(dir, {
      checkImages: Boolean(flags.checkImages),
      concurrency: flags.concurrency,
      onImageChecked: (_done, total) => {
        bar ??= createProgress({ label: 'checking images', total, quiet: Boolean(flags.quiet || flags.json) });
        bar.tick();
      },
    });
  } finally {
    (bar as Progress | null)?.stop();
  }
}

/** Prints every problem and warning to stderr, then a count by kind; returns whether there were problems. */
function reportIssues(dataset: MuraDataset): boolean {
  const out: string[] = [];
  for (const i of dataset.issues) out.push(`problem: ${formatIssue(i)}`);
  for (const w of dataset.warnings) out.push(`warning: ${formatIssue(w)}`);
  if (dataset.issues.length) {
    const byKind = Object.entries(countIssues(dataset.issues))
      .map(([k, n]) => `${n} ${k}`)
      .join(', ');
    out.push(`${dataset.issues.length} problem(s) in ${dataset.root}: ${byKind}`);
  }
  if (out.length) process.stderr.write(out.join('\n') + '\n');
  return dataset.issues.length > 0;
}

function splitTable(split: MuraSplitFile): string {
  const v = split.subsets.validation;
  const t = split.subsets.test;
  const widths = [12, 16, 16, 9];
  const row = (c: string[]) => c.map((s, i) => (i ? s.padStart(widths[i]!) : s.padEnd(widths[i]!))).join('  ');
  const cell = (n: number, a: number) => `${n} (${a} abn)`;
  const lines = [
    row(['Region', 'validation', 'test', 'val frac']),
    widths.map((w) => '-'.repeat(w)).join('  '),
  ];
  for (const region of REGIONS) {
    const a = v.counts[region];
    const b = t.counts[region];
    if (!a && !b) continue;
    const ns = (a?.studies ?? 0) + (b?.studies ?? 0);
    lines.push(
      row([
        region,
        cell(a?.studies ?? 0, a?.abnormal_studies ?? 0),
        cell(b?.studies ?? 0, b?.abnormal_studies ?? 0),
        ((a?.studies ?? 0) / ns).toFixed(3),
      ]),
    );
  }
  const all = v.totals.studies + t.totals.studies;
  lines.push(row(['Studies', cell(v.totals.studies, v.totals.abnormal_studies), cell(t.totals.studies, t.totals.abnormal_studies), (v.totals.studies / all).toFixed(3)]));
  const imgs = v.totals.images + t.totals.images;
  lines.push(row(['Images', String(v.totals.images), String(t.totals.images), (v.totals.images / imgs).toFixed(3)]));
  lines.push(row(['Patients', String(v.totals.patients), String(t.totals.patients), (v.totals.patients / (v.totals.patients + t.totals.patients)).toFixed(3)]));
  return lines.join('\n');
}

export function registerData(program: Command): void {
  const data = program
    .command('data')
    .description('Inspect and split MURA-format datasets (MURA-v1.1/{train,valid}_image_paths.csv, *_labeled_studies.csv)');

  const concurrency = () =>
    new Option('--concurrency <n>', 'images decoded at once with --check-images').argParser(parseIntOption('--concurrency', 1, 256)).default(8);

  usageExit2(
    data
      .command('summary')
      .description(
        "Count studies (normal/abnormal), images and patients per split and region, like the MURA paper's Table 1, " +
          'and check the dataset: CSV lines, paths, labels vs folders, missing and unlisted files.',
      )
      .argument('<dir>', 'folder holding MURA-v1.1/, or MURA-v1.1 itself')
      .option('--json', 'print {"splits": {"train": {"XR_ELBOW": {"images", "studies", "patients", "abnormal_studies", "normal_studies"}, ...}, "valid": {...}}} on stdout (problems still go to stderr)')
      .option('--check-images', 'also decode every listed image (catches truncated, corrupt, empty, non-image and oversized files; minutes on the full 40k-image dataset)')
      .addOption(concurrency())
      .option('--quiet', 'no progress bar')
      .addHelpText(
        'after',
        `
Examples:
  $ nextray data summary ~/datasets            # the folder that holds MURA-v1.1/
  $ nextray data summary ~/datasets/MURA-v1.1 --json > counts.json
  $ nextray data summary ./synth --check-images

Without --check-images, images are only checked to exist (seconds on the full dataset).
Regions with no study in a split are left out of that split's counts.
${EXIT_CODES}`,
      )
      .action(async (dir: string, opts: LoadFlags) => {
        const dataset = await loadForCli(dir, opts);
        const summary = summarizeStudies(dataset.studies);
        if (opts.json) printJson(summary);
        else process.stdout.write(`${dataset.root}\n\n${formatSummaryTable(dataset.studies)}`);
        if (reportIssues(dataset)) process.exitCode = 1;
      }),
  );

  usageExit2(
    data
      .command('split')
      .description(
        "Re-split MURA's valid set into validation and test: patient-disjoint (no patient on both sides), " +
          'stratified by region and label, reproducible from the seed. Writes a JSON (or CSV) split file.',
      )
      .argument('<dir>', 'folder holding MURA-v1.1/, or MURA-v1.1 itself')
      .requiredOption('--seed <seed>', 'seed of the assignment (an integer or any string); the same seed gives the same split', parseSeed)
      .requiredOption('--out <file>', 'split file to write (replaced atomically)')
      .addOption(
        new Option('--val-fraction <f>', 'fraction of valid studies (per region and label) for validation; the rest is test')
          .argParser(parseFloatOption('--val-fraction', 0, 1))
          .default(0.8),
      )
      .addOption(new Option('--format <format>', 'file format (default: csv for a .csv file name, else json)').choices(['json', 'csv']))
      .option('--json', 'print the per-region counts of both subsets as JSON on stdout')
      .option('--check-images', 'decode every image first; undecodable images are left out of the split')
      .addOption(concurrency())
      .option('--quiet', 'no progress bar')
      .addHelpText(
        'after',
        `
Examples:
  $ nextray data split ~/datasets --val-fraction 0.8 --seed 42 --out splits/mura-valid-80-20.json
  $ nextray data split ~/datasets/MURA-v1.1 --seed 7 --out split.csv --format csv

Train on MURA train, tune on "validation", report on "test" (library: loadSplit, selectSubset in src/data/splits.ts).
${EXIT_CODES}`,
      )
      .action(
        async (
          dir: string,
          opts: LoadFlags & { seed: Seed; out: string; valFraction: number; format?: SplitFormat },
        ) => {
          if (!(opts.valFraction > 0 && opts.valFraction < 1))
            throw new CliError(`--val-fraction must be strictly between 0 and 1, got ${opts.valFraction}`, 2);
          const seed = opts.seed;
          const dataset = await loadForCli(dir, opts);
          const hadProblems = reportIssues(dataset);
          let split: MuraSplitFile;
          try {
            split = createSplit(dataset, { valFraction: opts.valFraction, seed });
          } catch (err) {
            throw new CliError((err as Error).message, 2);
          }
          const format = opts.format ?? splitFormatFor(opts.out);
          try {
            writeSplit(opts.out, split, dataset, format);
          } catch (err) {
            if (err instanceof FileWriteError) throw err;
            throw new CliError(`${opts.out}: cannot write the split: ${(err as Error).message}`, 2);
          }
          if (opts.json) {
            printJson({
              out: opts.out,
              format,
              seed: split.seed,
              val_fraction: split.val_fraction,
              fingerprint: split.source.fingerprint,
              subsets: {
                validation: { counts: split.subsets.validation.counts, totals: split.subsets.validation.totals },
                test: { counts: split.subsets.test.counts, totals: split.subsets.test.totals },
              },
            });
          } else {
            process.stdout.write(`${splitTable(split)}\n\nwrote ${opts.out} (${format})\n`);
          }
          if (hadProblems) {
            process.stderr.write('the split was written from the usable part of a dataset with problems (see above)\n');
            process.exitCode = 1;
          }
        },
      ),
  );
}
