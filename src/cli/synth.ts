/** `nextray synth`: writes a synthetic dataset in the MURA-v1.1 layout (a thin face over src/data/synth). */
import { resolve } from 'node:path';
import { CommanderError, Option, type Command } from 'commander';
import { generateSyntheticMura, SITE_NAMES, SITE_PROFILES, SYNTH_DEFAULTS } from '../data/synth/index.js';
import { createProgress } from '../util/progress.js';
import { CliError, parseFloatOption, parseIntOption, parseSeed, printJson } from './common.js';
import type { Seed } from '../util/rng.js';

interface SynthCliOptions {
  out: string;
  studies: number;
  seed: Seed;
  size: number;
  validFraction: number;
  site: string;
  workers?: number;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description(
      'Write a synthetic dataset in the MURA-v1.1 layout: 8-bit greyscale radiographs of the seven regions with planted ' +
        'abnormalities (fractures, hardware, lesions, degenerative change), the four MURA CSVs, a findings sidecar per ' +
        'image (imageM.findings.json: kind, pixel box, subtle) and DIR/synth.json.',
    )
    .requiredOption('--out <dir>', 'folder that receives MURA-v1.1/ and synth.json')
    .option('--studies <n>', 'number of studies over both splits', parseIntOption('--studies', 1, 90000), SYNTH_DEFAULTS.studies)
    .option('--seed <s>', 'seed (same seed and options give identical files)', parseSeed, SYNTH_DEFAULTS.seed as Seed)
    .option('--size <px>', 'side of the square images in pixels (MURA images are up to 512)', parseIntOption('--size', 32, 2048), SYNTH_DEFAULTS.size)
    .option(
      '--valid-fraction <f>',
      'fraction of PATIENTS in the valid split (MURA has ~8% of studies; 0.2 keeps small validation sets usable)',
      parseFloatOption('--valid-fraction', 0, 0.9),
      SYNTH_DEFAULTS.validFraction,
    )
    .addOption(
      new Option('--site <name>', 'the X-ray machine that takes the films (see "Sites" below); same seed = same studies on every site')
        .choices([...SITE_NAMES])
        .default('default'),
    )
    .option('--workers <n>', 'worker threads (default: min(2, CPU cores); 0 = render on the main thread)', parseIntOption('--workers', 0, 64))
    .option('--force', 'replace an existing DIR/MURA-v1.1')
    .option('--json', 'print the summary as JSON on stdout (counts per split and region, as `nextray data summary --json`)')
    .option('--quiet', 'no progress bar')
    .addHelpText(
      'after',
      '\nSites (--site): the same studies as another machine would image them (docs/adaptation.md):\n' +
        SITE_NAMES.map((n) => `  ${n.padEnd(10)} ${SITE_PROFILES[n].summary}\n`).join('') +
        '\nExample:\n  nextray synth --out data/synth --studies 400 --size 256 --seed 7\n' +
        '  -> data/synth/MURA-v1.1/{train,valid}/XR_*/patientNNNNN/studyK_{positive,negative}/imageM.png (+ .findings.json)\n' +
        '  nextray synth --out data/portable --studies 400 --size 256 --seed 8 --site portable\n' +
        '\nExit codes: 0 written; 1 some images failed (the rest written); 2 bad options or an existing folder without --force.\n',
    )
    // Usage errors exit 2 like every other "could not run" case (commander's default is 1).
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
      throw err;
    })
    .action(async (opts: SynthCliOptions) => {
      const seed = opts.seed;
      const progress = createProgress({ label: 'synth', total: 1, quiet: opts.quiet || opts.json, fields: ['ips'] });
      const t0 = performance.now();
      let summary;
      try {
        summary = await generateSyntheticMura({
          outDir: resolve(opts.out),
          studies: opts.studies,
          seed,
          size: opts.size,
          validFraction: opts.validFraction,
          site: opts.site,
          ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
          force: opts.force ?? false,
          onProgress: (done, total) => {
            if (done === 1) progress.setTotal(total);
            progress.tick(1, { ips: (done / ((performance.now() - t0) / 1000)).toFixed(1) });
          },
        });
      } catch (err) {
        progress.stop();
        if (err instanceof RangeError) throw new CliError(err.message); // a folder already there is a DatasetError
        throw err;
      }
      progress.stop();
      if (opts.json) printJson(summary);
      else {
        const t = summary.totals;
        process.stdout.write(
          `wrote ${t.images} images of ${t.studies} studies (${t.abnormal_studies} abnormal) from ${t.patients} patients to ${summary.root}\n` +
            `${summary.images_per_second} images/s in ${summary.seconds} s; findings: ` +
            Object.entries(summary.findings)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') +
            ` (${summary.subtle_findings} subtle)\n`,
        );
      }
      if (summary.failed.length) {
        for (const f of summary.failed.slice(0, 10)) process.stderr.write(`nextray: could not generate ${f.path}: ${f.error}\n`);
        process.stderr.write(`nextray: ${summary.failed.length} images failed and were left out of the CSVs\n`);
        process.exitCode = 1;
      }
    });
}
