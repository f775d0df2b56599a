/**
 * `nextray calibrate`: fits, on an existing run, what training now fits when it ends — the OOD gate (statistics of
 * the training images, threshold from the validation images' scores), temperature scaling on validation (image or
 * study level) and the study-level operating point (maximum Cohen's kappa, or a target sensitivity) — and stores
 * them in the run's best checkpoint (model.json `extra.trust`); exports and predictions then carry them.
 * `--ood-eval FILE` also measures the gate on generated non-radiographs vs the held-out test radiographs.
 */
import type { Command } from 'commander';
import { CliError, parseFloatOption, parseIntOption, printJson } from './common.js';
import { fitTrust } from '../calibrate/trust.js';
import { evaluateOodGate, oodTable } from '../calibrate/ood-eval.js';
import { loadTrainedModel } from '../inference/node/checkpoint.js';
import { loadMuraDataset } from '../data/mura.js';
import { loadSplit, selectSubset } from '../data/splits.js';
import { runPaths } from '../runs/run-dir.js';
import { writeJsonAtomic, writeFileAtomic } from '../util/atomic.js';

interface Flags {
  model: string;
  data: string;
  split?: string;
  which: 'best' | 'last';
  targetSensitivity?: number;
  oodQuantile: number;
  maxTrainImages?: number;
  oodEval?: string;
  oodPerSet: number;
  json?: boolean;
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description(
      'Fit, on held-out data, what decisions rest on and store it in the run: the decision threshold (study level, maximum Cohen\'s kappa on validation, or --target-sensitivity), ' +
        'the temperature (validation; image or study level, whichever gives the lower study ECE) and the OOD gate (mean/covariance of the training images, threshold at a quantile of the validation images\' scores).',
    )
    .requiredOption('--model <run>', 'run directory or checkpoint folder')
    .requiredOption('--data <dir>', 'dataset folder (MURA layout) the run was trained on')
    .option('--split <file>', "split file (default: the run's split.json)")
    .option('--which <best|last>', 'checkpoint of the run', 'best')
    .option('--target-sensitivity <s>', 'choose the study-level threshold reaching this validation sensitivity (default: the maximum-kappa threshold)', parseFloatOption('--target-sensitivity', 0, 1))
    .option('--ood-quantile <q>', 'quantile of the validation images\' OOD scores the threshold sits at (0.99: about 1% of held-out radiographs flagged)', parseFloatOption('--ood-quantile', 0.5, 1), 0.99)
    .option('--max-train-images <n>', 'fit the OOD gate on at most n training images (seeded sample)', parseIntOption('--max-train-images', 10))
    .option('--ood-eval <file.json>', 'measure the gate on generated non-radiographs vs held-out test radiographs; write JSON (+ .md)')
    .option('--ood-per-set <n>', 'images per generated set', parseIntOption('--ood-per-set', 5, 10000), 100)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  nextray calibrate --model runs/r1 --data ~/datasets --ood-eval runs/r1/ood.json\n' +
        '  nextray calibrate --model runs/r1 --data ~/datasets --target-sensitivity 0.9 --json\n' +
        '\nThe OOD flag rates on train, validation and test are printed (and in --json). See docs/trust.md.\n' +
        'Exit codes: 0 stored; 1 fitting failed; 2 bad options or an unusable run/dataset.\n',
    )
    .action(async (flags: Flags) => {
      if (flags.which !== 'best' && flags.which !== 'last') throw new CliError(`--which must be best or last, got ${flags.which}`);
      const res = await fitTrust(flags.model, {
        data: flags.data,
        ...(flags.split ? { splitFile: flags.split } : {}),
        which: flags.which,
        oodQuantile: flags.oodQuantile,
        ...(flags.targetSensitivity !== undefined ? { targetSensitivity: flags.targetSensitivity } : {}),
        ...(flags.maxTrainImages ? { maxTrainImages: flags.maxTrainImages } : {}),
        onLog: (l) => process.stderr.write(l + '\n'),
      });
      let ood = null;
      if (flags.oodEval) {
        const loaded = loadTrainedModel(flags.model, flags.which);
        try {
          const ds = await loadMuraDataset(flags.data);
          const split = loadSplit(flags.split ?? runPaths(flags.model).split, ds);
          const test = selectSubset(ds, split, 'test').images;
          ood = await evaluateOodGate(loaded.model, res.gate, loaded.preprocessing, test, { perSet: flags.oodPerSet });
        } finally {
          loaded.model.dispose();
        }
        writeJsonAtomic(flags.oodEval, ood);
        writeFileAtomic(flags.oodEval.replace(/\.json$/, '') + '.md', oodTable(ood) + '\n');
        if (!flags.json) process.stdout.write(oodTable(ood) + '\n');
      }
      const out = { checkpoint: res.checkpoint, decisionThreshold: res.decisionThreshold, temperature: res.trust.temperature, operatingPoint: res.trust.operatingPoint ?? null, ood: { threshold: res.gate.threshold, quantile: res.gate.quantile, shrinkage: res.gate.shrinkage, dim: res.gate.mean.length, flagRate: res.oodFlagRate }, oodEvaluation: ood };
      if (flags.json) printJson(out);
      else {
        const r = res.oodFlagRate;
        const pct = (v: number | undefined): string => (v === undefined ? '-' : `${(100 * v).toFixed(1)}%`);
        process.stdout.write(
          `stored in ${res.checkpoint}: decision threshold ${res.decisionThreshold} (${res.trust.operatingPoint?.rule ?? 'unchanged'}), temperature ${res.trust.temperature!.value.toFixed(3)} (${res.trust.temperature!.level} level), ` +
            `OOD threshold ${res.gate.threshold.toFixed(1)} (validation q${res.gate.quantile}); OOD flags: train ${pct(r.train)}, validation ${pct(r.validation)}, test ${pct(r.test)}\n`,
        );
      }
    });
}
