/**
 * `nextray adapt`: fits a deployed model's head to a clinic's own labelled studies (its X-ray machines), on this
 * machine, and says with held-out numbers whether that helped. A thin face over src/calibrate/adapt-host.ts (Node)
 * and src/calibrate/adapt/ (the fitting, shared with the page).
 */
import { CommanderError, Option, type Command } from 'commander';
import { runAdapt } from '../calibrate/adapt-host.js';
import { ADAPT_DEFAULTS, type StudyMetrics } from '../calibrate/adapt/adapt.js';
import { createProgress } from '../util/progress.js';
import { CliError, parseFloatOption, parseIntOption, parseSeed, printJson } from './common.js';
import type { Seed } from '../util/rng.js';

interface Flags {
  model: string;
  data: string;
  out?: string;
  headOut?: string;
  referenceData?: string;
  greyMap: 'auto' | 'on' | 'off';
  siteFilter: 'auto' | 'off';
  targetSensitivity?: number;
  heldOut: number;
  minStudies: number;
  folds: number;
  cvRepeats: number;
  bootstrap: number;
  seed: Seed;
  threads?: number;
  workers?: number;
  json?: boolean;
  quiet?: boolean;
}

function cell(v: number | null, ci: [number, number] | null | undefined): string {
  if (v === null) return '–';
  return ci ? `${v.toFixed(3)} (${ci[0].toFixed(3)}–${ci[1].toFixed(3)})` : v.toFixed(3);
}

export function registerAdapt(program: Command): void {
  program
    .command('adapt')
    .description(
      "Adapt a deployed model to this site's X-ray machines: refit its head (logistic regression with L2 towards the deployed head) " +
        "on the model's own features of your labelled studies, then the temperature and the decision threshold, on part of the patients; " +
        'report before/after study AUC, sensitivity, specificity, kappa and ECE on the other patients, and write the adapted model. ' +
        'Everything stays on this machine.',
    )
    .requiredOption('--model <file.onnx>', "the deployed model (exported with 'nextray export --features')")
    .requiredOption('--data <dir|file.csv>', 'labelled local studies: a folder in the MURA layout, or a CSV with header image,label[,study[,patient]]')
    .option('--out <adapted.onnx>', 'write the adapted model (the deployed one plus an `adaptation` record when it is kept)')
    .option('--head-out <head.json>', 'also write the adapted head as a small file (the page imports it; only when the head is adopted)')
    .option('--reference-data <dir|file.csv>', "images of the model's training site, for its reference grey levels (needed once: the adapted model carries them)")
    .addOption(new Option('--grey-map <when>', "the site's grey-level normalisation: auto (used when it lowers the cross-fitted log loss inside the fitting part), on (always, given reference grey levels), off (the head alone)").choices(['auto', 'on', 'off']).default('auto'))
    .addOption(new Option('--site-filter <when>', 'site filters in front of the model (burned-in overlay suppression, smoothing, unsharp mask): auto (each tried, the one with the lowest cross-fitted log loss inside the fitting part kept), off (none)').choices(['auto', 'off']).default('auto'))
    .option('--target-sensitivity <s>', 'choose the threshold reaching this study sensitivity (default: maximise study-level Cohen\'s kappa)', parseFloatOption('--target-sensitivity', 0.01, 1))
    .option('--held-out <f>', 'share of patients held out for the before/after check', parseFloatOption('--held-out', 0.1, 0.9), ADAPT_DEFAULTS.heldOutFraction)
    .option('--min-studies <n>', 'the "too small" rule: fewer abnormal or normal studies than this in either part -> keep the deployed model, claim nothing', parseIntOption('--min-studies', 1, 100000), ADAPT_DEFAULTS.minStudiesPerClass)
    .option('--folds <k>', 'cross-fitting folds inside the fitting part', parseIntOption('--folds', 2, 20), ADAPT_DEFAULTS.folds)
    .option('--cv-repeats <n>', 'fold splits the cross-fitting is repeated over (losses averaged; the head is the mean of all fold heads)', parseIntOption('--cv-repeats', 1, 20), ADAPT_DEFAULTS.repeats)
    .option('--bootstrap <B>', 'bootstrap replicates of the held-out intervals (0 = none)', parseIntOption('--bootstrap', 0, 100000), ADAPT_DEFAULTS.bootstrap)
    .option('--seed <s>', 'seed of the split, folds and bootstrap', parseSeed, ADAPT_DEFAULTS.seed as Seed)
    .option('--threads <n>', 'ONNX Runtime threads', parseIntOption('--threads', 1, 256))
    .option('--workers <n>', 'image-decoding threads (0 = decode on the main thread)', parseIntOption('--workers', 0, 64))
    .option('--json', 'print the adaptation record (and the run facts) as JSON on stdout')
    .option('--quiet', 'no progress bar')
    .addHelpText(
      'after',
      `
How it decides (docs/adaptation.md): patients, never studies, are split into a fitting part and a held-out part.
With the training site's reference grey levels (--reference-data once, or carried by an adapted model), a monotone
grey-level map is fitted on the fitting part's images (their quantiles onto the reference's) and the head is refitted
on the features of the mapped images; the map is used when it lowers the cross-fitted log loss inside the fitting
part, and the adapted model applies it before every prediction. Site filters (burned-in text and bright collimator
borders filled in, smoothing against a low-dose unit's noise, an unsharp mask for a soft plate) are tried the same
way, with and without the map.
Each candidate runs the model once more over the local images.
The head's penalty, the study-level temperature and the threshold are chosen by cross-fitting inside the fitting
part, repeated over --cv-repeats fold splits; the head deployed is the mean of the fold heads (one linear head).
The held-out part only measures. The adapted head is adopted when the held-out part has at least --min-studies
abnormal and normal studies (and so has the fitting part) and its held-out study log loss is lower than the deployed
model's; otherwise the deployed model is kept and the report says why. An improvement is claimed only when the
95% bootstrap interval of the log-loss difference lies below 0.

Examples:
  nextray export --checkpoint runs/r1 --out model.onnx --features
  nextray adapt --model model.onnx --data ~/clinic-studies --out model-adapted.onnx --head-out head.json
  nextray adapt --model model.onnx --data ~/clinic-studies --reference-data ~/training-data --out model-adapted.onnx
  nextray adapt --model model.onnx --data labels.csv --target-sensitivity 0.9 --json > adaptation.json

Exit codes: 0 done (adapted, or the deployed model kept with the reason); 1 some images could not be read (the
rest were used); 2 bad options, a model without the features output, or unusable data.`,
    )
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
      throw err;
    })
    .action(async (f: Flags) => {
      if (!f.out && !f.headOut && !f.json) process.stderr.write('nextray adapt: note: neither --out nor --head-out given: nothing is written, only reported\n');
      const progress = createProgress({ label: 'features', total: 1, quiet: !!f.quiet || !!f.json });
      let bad = 0;
      let r;
      try {
        r = await runAdapt({
          model: f.model,
          data: f.data,
          ...(f.out ? { out: f.out } : {}),
          ...(f.headOut ? { headOut: f.headOut } : {}),
          ...(f.referenceData ? { referenceData: f.referenceData } : {}),
          greyMap: f.greyMap,
          siteFilter: f.siteFilter,
          onCandidate: (k, total, what) => {
            if (!f.quiet && !f.json) process.stderr.write(`nextray adapt: site preprocessing ${k + 1}/${total}: ${what}\n`);
          },
          ...(f.targetSensitivity !== undefined ? { targetSensitivity: f.targetSensitivity } : {}),
          heldOutFraction: f.heldOut,
          minStudiesPerClass: f.minStudies,
          folds: f.folds,
          repeats: f.cvRepeats,
          bootstrap: f.bootstrap,
          seed: f.seed,
          ...(f.threads ? { threads: f.threads } : {}),
          ...(f.workers !== undefined ? { workers: f.workers } : {}),
          onImages: (done, total) => {
            if (done === 1) progress.setTotal(total);
            progress.tick(1);
          },
          onBadFile: (b) => {
            bad++;
            if (bad <= 10) process.stderr.write(`nextray adapt: skipped ${b.file}: ${b.problem}\n`);
          },
        });
      } catch (err) {
        progress.stop();
        if ((err as NodeJS.ErrnoException).syscall) throw new CliError(`cannot write: ${(err as Error).message}`);
        throw err;
      }
      progress.stop();
      const { result, record } = r;
      for (const p of r.images.problems.slice(0, 10)) process.stderr.write(`nextray adapt: ${p}\n`);
      if (f.json) {
        printJson({ ...record, grey_note: r.greyNote, site_filter_note: r.filterNote, images: { listed: r.images.listed, used: r.images.used, unreadable: r.images.bad.length }, cross_fitting: result.cv.map((c) => ({ lambda: c.lambda === Infinity ? 'infinity' : c.lambda, log_loss: c.logLoss })), written: r.written, seconds: r.seconds });
      } else {
        const h = result.heldOut;
        const iv = h.intervals;
        const row = (name: string, key: keyof Omit<StudyMetrics, 'threshold'>) => `  ${name.padEnd(14)} ${cell(h.before[key], iv.before[key]).padEnd(24)} ${cell(h.after[key], iv.after[key])}`;
        const lines = [
          `${r.images.used} images of ${record.data.studies} studies (${record.data.abnormal_studies} abnormal) from ${record.data.patients} patients; ` +
            `fitted on ${result.split.fit.studies} studies, held out ${h.studies} (${h.abnormal} abnormal)`,
          `site grey levels: ${r.greyNote}`,
          `site filter: ${r.filterNote}`,
          `head: L2 towards the deployed head, lambda ${result.candidate.lambda === Infinity ? 'infinity (logit shift only)' : result.candidate.lambda} (cross-fitted); study temperature ${result.candidate.temperature.toFixed(3)}; threshold ${result.candidate.threshold.toFixed(4)} (${record.method.threshold_rule})`,
          `held-out studies, deployed vs adapted (95% bootstrap intervals, B = ${h.replicates}):`,
          `  ${''.padEnd(14)} ${'deployed'.padEnd(24)} adapted`,
          row('AUC', 'auc'),
          row('sensitivity', 'sensitivity'),
          row('specificity', 'specificity'),
          row("Cohen's kappa", 'kappa'),
          row('ECE', 'ece'),
          row('log loss', 'logLoss'),
          `  ${'threshold'.padEnd(14)} ${h.before.threshold.toFixed(4).padEnd(24)} ${h.after.threshold.toFixed(4)}`,
          `${result.decision === 'adapted' ? 'ADAPTED' : 'KEPT THE DEPLOYED MODEL'}: ${result.decisionReason}` +
            (result.decision === 'adapted' ? (result.improvementClaimed ? ' (the improvement holds across the bootstrap interval)' : '; the interval of the difference includes 0: no improvement is claimed') : ''),
          ...(r.written.model ? [`wrote ${r.written.model}`] : []),
          ...(r.written.head ? [`wrote ${r.written.head}`] : f.headOut ? [`${f.headOut} not written: no adapted head was adopted`] : []),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (r.images.bad.length || r.images.problems.length) {
        process.stderr.write(`nextray adapt: ${r.images.bad.length} unreadable image(s) and ${r.images.problems.length} data problem(s) skipped\n`);
        process.exitCode = 1;
      }
    });
}
