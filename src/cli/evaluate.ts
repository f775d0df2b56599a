/**
 * `nextray evaluate`: metrics, bootstrap intervals, tables, figures and the HTML/Markdown report for a set of
 * predictions. A thin face over src/evaluate: it reads the predictions, picks the threshold, calls the library,
 * prints Table 2/3 and writes the files. `runEvaluation` is the seam a model-run face reuses: anything that can
 * produce a PredictionsInput (a CSV here; a trained model over a data split elsewhere) goes through it.
 */
import { Command, CommanderError, Option } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Subset } from '../data/splits.js';
import { predictSplit, type PredictEngineInfo } from '../inference/node/records.js';
import type { InferenceRuntime } from '../inference/node/models.js';
import {
  DEFAULT_BOOTSTRAP_REPLICATES,
  DEFAULT_BOOTSTRAP_SEED,
  DEFAULT_THRESHOLD,
  evaluatePredictions,
  evaluationJson,
  PredictionsError,
  loadReferenceResults,
  readPredictionsCsv,
  resolvePredictions,
  aggregateStudies,
  table2,
  table2Text,
  table3,
  table3Caveat,
  table3Text,
  thresholdForSensitivity,
  OperatingPointError,
  thresholdComparison,
  thresholdComparisonHtml,
  thresholdComparisonMarkdown,
  thresholdComparisonText,
  escapeHtml,
  writeEvaluationOutputs,
  type DataKind,
  type EvaluationResult,
  type PredictionsInput,
  type ReportContext,
  type ThresholdChoice,
} from '../evaluate/index.js';
import type { Seed } from '../util/rng.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { uncalibrate } from '../evaluate/calibration.js';
import { packageVersion } from '../util/package.js';
import { CliError, parseFloatOption, parseIntOption, parseSeed, resolveRuntime, runtimeOptions } from './common.js';
import { cardFromCheckpoint } from '../models/card.js';
import { operatingPointOrigin } from '../inference/core/trust.js';


export interface EvaluateCliOptions {
  threshold?: number;
  targetSensitivity?: number;
  /** Validation predictions, already read, for --target-sensitivity. */
  validation?: PredictionsInput;
  bootstrap: number;
  seed: Seed;
  out?: string;
  /** File for the JSON result, or '-' for stdout. */
  json?: string;
  quiet?: boolean;
  split?: string;
  dataKind?: DataKind;
  title?: string;
  /** Recorded in the report. */
  config?: Record<string, unknown>;
  /** Merged into the JSON result and metrics.json (e.g. which engine predicted). */
  extra?: Record<string, unknown>;
  /** The model's temperature (with --model): the report shows ECE / Brier before (T = 1) and after. */
  temperature?: number;
  /** Where `threshold` came from, in words, for the headline line (e.g. the model's stored operating point). */
  thresholdSource?: string;
}

/** The headline threshold in words. */
function headlineText(result: EvaluationResult, opts: EvaluateCliOptions): string {
  const src = result.thresholdChoice
    ? `chosen on the validation predictions for study sensitivity >= ${result.thresholdChoice.targetSensitivity}`
    : (opts.thresholdSource ?? (opts.threshold === undefined ? 'the default' : 'given with --threshold'));
  return `Headline: study-level Cohen's kappa at threshold ${+result.threshold.toFixed(4)} (${src}).`;
}

const MAX_LISTED_PROBLEMS = 20;

function reportProblems(input: PredictionsInput): void {
  if (!input.problems.length) return;
  const shown = input.problems.slice(0, MAX_LISTED_PROBLEMS);
  for (const p of shown) process.stderr.write(`${input.source}:${p.line}: ${p.message}\n`);
  if (input.problems.length > shown.length) {
    process.stderr.write(`${input.source}: ... and ${input.problems.length - shown.length} more bad rows\n`);
  }
}

function versions(): Record<string, string> {
  return { nextray: packageVersion(), node: process.version, platform: `${process.platform}-${process.arch}` };
}

function calibrationText(result: EvaluationResult): string {
  const rows: string[] = [`${'Region'.padEnd(10)} ${'Study ECE'.padStart(9)} ${'Brier'.padStart(6)} ${'Image ECE'.padStart(9)} ${'Brier'.padStart(6)}`];
  const line = (label: string, s: EvaluationResult['study']['overall'], i: EvaluationResult['image']['overall']): string =>
    `${label.padEnd(10)} ${s.calibration.ece.toFixed(3).padStart(9)} ${s.calibration.brier.toFixed(3).padStart(6)} ${i.calibration.ece.toFixed(3).padStart(9)} ${i.calibration.brier.toFixed(3).padStart(6)}`;
  for (const [r, s] of Object.entries(result.study.regions)) rows.push(line(r.replace('XR_', '').toLowerCase(), s, result.image.regions[r as keyof typeof result.image.regions]!));
  rows.push(line('overall', result.study.overall, result.image.overall));
  return rows.join('\n');
}

function printTables(result: EvaluationResult, opts: EvaluateCliOptions, at05: EvaluationResult | null): void {
  const out: string[] = [];
  out.push(`Threshold: ${result.threshold}${result.thresholdChoice ? ` (chosen on validation for sensitivity >= ${result.thresholdChoice.targetSensitivity})` : ''}`);
  out.push(headlineText(result, opts));
  out.push(
    `Intervals: ${Math.round((1 - result.bootstrap.alpha) * 100)}% percentile bootstrap over studies, B = ${result.bootstrap.replicates}, seed ${String(result.bootstrap.seed)}`,
    '',
  );
  out.push('Study level', table2Text(table2(result.study), 'Studies'), '');
  out.push('Image level', table2Text(table2(result.image), 'Images'), '');
  const ref = loadReferenceResults();
  out.push("Cohen's kappa beside the MURA paper (study level)", table3Text(table3(result.study, ref), ref), table3Caveat(ref), '');
  out.push('Calibration (ECE: 15 equal-width bins; Brier)', calibrationText(result), '');
  if (at05) {
    out.push(
      `Study level at the headline threshold ${+result.threshold.toFixed(4)} and at 0.5 (same studies, same bootstrap draws)`,
      thresholdComparisonText(thresholdComparison(result.study, at05.study), result.threshold, 0.5),
      '',
    );
  }
  process.stdout.write(out.join('\n') + '\n');
}

/**
 * Evaluates `input` and writes / prints everything the options ask for. Returns the result; sets
 * process.exitCode = 1 when rows were skipped (the outputs are still written from the valid rows).
 */
export async function runEvaluation(input: PredictionsInput, opts: EvaluateCliOptions): Promise<EvaluationResult> {
  reportProblems(input);
  if (opts.validation) reportProblems(opts.validation);
  if (input.predictions.length === 0) {
    throw new CliError(`${input.source}: no valid prediction rows (${input.rows} rows, all invalid)`, 1);
  }
  let thresholdChoice: ThresholdChoice | undefined;
  if (opts.targetSensitivity !== undefined) {
    if (!opts.validation) throw new CliError('--target-sensitivity needs --val-predictions VAL.csv (the threshold is chosen on validation, never on the test set)');
    if (opts.validation.predictions.length === 0) throw new CliError(`${opts.validation.source}: no valid prediction rows`, 1);
    try {
      thresholdChoice = thresholdForSensitivity(aggregateStudies(opts.validation.predictions), opts.targetSensitivity);
    } catch (err) {
      if (!(err instanceof OperatingPointError)) throw err;
      throw new CliError(`${opts.validation.source}: ${err.message}`, 1);
    }
  }
  let result: EvaluationResult;
  try {
    result = evaluatePredictions(input.predictions, {
      threshold: opts.threshold ?? DEFAULT_THRESHOLD,
      ...(thresholdChoice ? { thresholdChoice } : {}),
      replicates: opts.bootstrap,
      seed: opts.seed,
    });
  } catch (err) {
    if (err instanceof PredictionsError) throw new CliError(`${input.source}: ${err.message}`, 1);
    throw err;
  }
  // Beside a threshold other than 0.5, the same predictions at 0.5: what a reader of other reports compares with.
  const at05 =
    result.threshold !== DEFAULT_THRESHOLD
      ? evaluatePredictions(input.predictions, { threshold: DEFAULT_THRESHOLD, replicates: opts.bootstrap, seed: opts.seed })
      : null;
  const badRows = input.problems.length + (opts.validation?.problems.length ?? 0);
  const extra = {
    input: {
      predictions: input.source,
      rows: input.rows,
      bad_rows: input.problems.length,
      ...(opts.validation
        ? { validation_predictions: opts.validation.source, validation_rows: opts.validation.rows, validation_bad_rows: opts.validation.problems.length }
        : {}),
    },
    headline: { metric: 'study kappa', threshold: result.threshold, source: headlineText(result, opts) },
    ...(at05
      ? {
          at_threshold_0_5: Object.fromEntries(
            (['study', 'image'] as const).map((level) => [
              level,
              Object.fromEntries(
                [['overall', at05[level].overall] as const, ...Object.entries(at05[level].regions)].map(([g, m]) => [
                  g,
                  { kappa: m!.values.kappa, sensitivity: m!.values.sensitivity, specificity: m!.values.specificity, accuracy: m!.values.accuracy, kappa_ci: m!.intervals.ci.kappa },
                ]),
              ),
            ]),
          ),
        }
      : {}),
    ...opts.extra,
  };
  const ctx: ReportContext = {
    source: input.source,
    badRows: input.problems.length,
    versions: versions(),
    config: {
      threshold: result.threshold,
      ...(opts.targetSensitivity !== undefined ? { 'target sensitivity': opts.targetSensitivity, 'validation predictions': opts.validation?.source } : {}),
      'bootstrap replicates': opts.bootstrap,
      'bootstrap seed': opts.seed,
      ...opts.config,
    },
  };
  if (opts.temperature !== undefined && opts.temperature !== 1) {
    const t = opts.temperature;
    // Uncalibrated probabilities: sigmoid(T * calibrated logit); a study's is the mean of its views'.
    const raw = (p: number): number => uncalibrate(p, t);
    const before = evaluatePredictions(input.predictions.map((p) => ({ ...p, probability: raw(p.probability) })), { threshold: result.threshold, replicates: 0, seed: opts.seed });
    const rows = (['image', 'study'] as const).map((level) => ({
      level,
      eceBefore: before[level].overall.calibration.ece,
      eceAfter: result[level].overall.calibration.ece,
      brierBefore: before[level].overall.calibration.brier,
      brierAfter: result[level].overall.calibration.brier,
    }));
    ctx.calibration = { temperature: t, rows };
    (extra as Record<string, unknown>).temperature_scaling = {
      temperature: t,
      fitted_on: 'validation',
      ...Object.fromEntries(rows.map((r) => [r.level, { ece_before: r.eceBefore, ece_after: r.eceAfter, brier_before: r.brierBefore, brier_after: r.brierAfter }])),
    };
  }
  if (at05) {
    const rows = thresholdComparison(result.study, at05.study);
    const intro = `${headlineText(result, opts)} The same studies at 0.5, for comparison with reports that decide there:`;
    ctx.sections = [
      ...(ctx.sections ?? []),
      {
        title: `Study level at ${+result.threshold.toFixed(4)} and at 0.5`,
        html: `<p>${escapeHtml(intro)}</p>${thresholdComparisonHtml(rows, result.threshold, 0.5)}`,
        markdown: `${intro}\n\n${thresholdComparisonMarkdown(rows, result.threshold, 0.5)}`,
      },
    ];
  }
  if (opts.split) ctx.split = opts.split;
  if (opts.dataKind) ctx.dataKind = opts.dataKind;
  if (opts.title) ctx.title = opts.title;
  if (opts.out) {
    const written = await writeEvaluationOutputs(result, opts.out, ctx, extra);
    if (!opts.quiet) process.stderr.write(`wrote ${written.files.length} files to ${resolve(opts.out)} (report.html, report.md, metrics.json, predictions CSVs, plots/)\n`);
  }
  if (opts.json === '-') {
    process.stdout.write(JSON.stringify(evaluationJson(result, extra), null, 2) + '\n');
  } else {
    if (opts.json) writeJsonAtomic(opts.json, evaluationJson(result, extra));
    if (!opts.quiet) printTables(result, opts, at05);
  }
  if (badRows > 0) {
    process.stderr.write(`nextray: ${badRows} bad row(s) skipped; results use the ${input.predictions.length} valid rows\n`);
    process.exitCode = 1;
  }
  return result;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

const RUNTIME = runtimeOptions('with --model: what runs it; auto = ONNX Runtime when it loads and the architecture exports, else TF.js; onnx; tfjs');

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description(
      'Evaluate predictions: accuracy, sensitivity, specificity, precision, F1, Cohen\'s kappa and AUC per region and overall, ' +
        'at image and study level (study probability = mean of its views), with study-bootstrap 95% intervals; ' +
        'tables, ROC and confusion-matrix figures, HTML and Markdown report.',
    )
    .option('--predictions <file>', 'predictions CSV with header image,label,probability (image = MURA-layout path)')
    .option('--model <run>', 'a training run directory (uses checkpoints/best) or a checkpoint folder; predicts --split of --data')
    .option('--data <dir>', 'with --model: the dataset folder in the MURA-v1.1 layout')
    .option('--onnx <file>', "with --model: run this exported .onnx (e.g. an fp16/int8 export of the run) instead of exporting the checkpoint in memory")
    .option('--split-file <file>', "with --model: split file (default: the run's split.json)")
    .addOption(new Option('--checkpoint <which>', 'with --model: which checkpoint of the run').choices(['best', 'last']).default('best'))
    .addOption(RUNTIME[0])
    .addOption(RUNTIME[1])
    .option('--threshold <t>', 'abnormal when probability > t', parseFloatOption('--threshold', 0, 1))
    .option(
      '--target-sensitivity <s>',
      'choose the threshold on --val-predictions: the largest reaching study-level sensitivity >= s',
      parseFloatOption('--target-sensitivity', 0, 1),
    )
    .option('--val-predictions <file>', 'validation predictions CSV for --target-sensitivity')
    .option('--bootstrap <B>', 'bootstrap replicates (0 = no intervals)', parseIntOption('--bootstrap', 0, 100000), DEFAULT_BOOTSTRAP_REPLICATES)
    .option('--seed <seed>', 'bootstrap seed (integer or text)', parseSeed, DEFAULT_BOOTSTRAP_SEED as Seed)
    .option('--out <dir>', 'write report.html, report.md, metrics.json, predictions CSVs and plots/ here')
    .option('--json <file>', "write every number as JSON to <file> ('-' = stdout instead of the tables)")
    .option('--split <name>', 'with --model: the subset to predict (train, validation or test; default test); otherwise the name shown in the report')
    .addOption(new Option('--data-kind <kind>', 'mura adds the research-use notice; default: from the dataset root name').choices(['mura', 'synthetic']))
    .option('--title <text>', 'report title')
    .option('-q, --quiet', 'print no tables')
    .addHelpText(
      'after',
      `
Examples:
  nextray evaluate --predictions preds.csv --out eval/ --json eval/metrics.json
  nextray evaluate --predictions test.csv --target-sensitivity 0.9 --val-predictions valid.csv --bootstrap 2000 --seed 7
  nextray evaluate --model runs/r152 --data ~/datasets --split test --target-sensitivity 0.95 --out runs/r152/eval
  nextray evaluate --model demo-output/run --data demo-output/data --split test --runtime tfjs --json -
  nextray evaluate --model runs/r152 --onnx r152-int8.onnx --data ~/datasets --split test   # an int8/fp16 export of the run

CSV rows: MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png,1,0.83
Bad rows are listed on stderr (file:line: problem) and skipped; the exit code is then 1.
Exit codes: 0 all rows valid and evaluated; 1 bad rows skipped or nothing to evaluate; 2 usage or unreadable file.`,
    )
    // Usage errors (unknown option, bad choice) exit 2 as the help says (commander's default is 1).
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
      throw err;
    })
    .action(async (raw: Record<string, unknown>) => {
      if (raw.targetSensitivity !== undefined && raw.threshold !== undefined) {
        throw new CliError('give either --threshold or --target-sensitivity, not both');
      }
      if (raw.valPredictions !== undefined && raw.targetSensitivity === undefined) {
        throw new CliError('--val-predictions is only used with --target-sensitivity');
      }
      if (raw.targetSensitivity !== undefined && !((raw.targetSensitivity as number) > 0)) {
        throw new CliError('--target-sensitivity must be greater than 0');
      }
      const read = (file: string): PredictionsInput => readPredictionsCsv(file);
      const fromModel = raw.model !== undefined;
      if (fromModel === (raw.predictions !== undefined)) {
        throw new CliError('give either --predictions FILE.csv or --model RUN --data DIR (one of them)');
      }
      if (fromModel && raw.data === undefined) throw new CliError('--model needs --data DIR (the dataset in the MURA-v1.1 layout)');
      if (!fromModel && (raw.data !== undefined || raw.splitFile !== undefined)) {
        throw new CliError('--data and --split-file are only used with --model');
      }
      if (fromModel && raw.valPredictions !== undefined) {
        throw new CliError('with --model the validation predictions come from the model itself; drop --val-predictions');
      }
      let input: PredictionsInput;
      let validation: PredictionsInput | undefined;
      let badImages = 0;
      let temperature: number | undefined;
      let storedThreshold: number | undefined;
      let storedRule: string | undefined;
      const engines: Record<string, PredictEngineInfo> = {};
      const { runtime, flag: runtimeFlag } = resolveRuntime(raw as { runtime?: string; engine?: string });
      if (!fromModel && runtime !== 'auto') throw new CliError(`${runtimeFlag} is only used with --model`);
      if (raw.onnx !== undefined && (!fromModel || runtime === 'tfjs')) throw new CliError('--onnx needs --model (and the onnx runtime)');
      if (fromModel) {
        const subset = (raw.split as string | undefined) ?? 'test';
        if (!['train', 'validation', 'test'].includes(subset)) {
          throw new CliError(`--split must be train, validation or test with --model, got "${subset}"`);
        }
        const predictFor = async (which: Subset): Promise<PredictionsInput> => {
          const p = await predictSplit(raw.model as string, {
            data: raw.data as string,
            subset: which,
            which: raw.checkpoint as 'best' | 'last',
            engine: runtime as InferenceRuntime,
            ...(raw.splitFile !== undefined ? { splitFile: raw.splitFile as string } : {}),
            ...(raw.onnx !== undefined ? { onnxFile: raw.onnx as string } : {}),
          });
          for (const b of p.badImages) process.stderr.write(`problem: ${b.path}: ${b.problem}\n`);
          badImages += p.badImages.length;
          engines[which] = p.engine;
          temperature = p.temperature;
          storedThreshold = p.metadata.decisionThreshold;
          // How the stored threshold was chosen, as the model card (one description of the model) says it.
          storedRule = operatingPointOrigin(cardFromCheckpoint(p.metadata, raw.model as string).operatingPoint, storedThreshold) ?? undefined;
          return resolvePredictions(p.predictions, `${raw.model as string} (${which})`);
        };
        try {
          input = await predictFor(subset as Subset);
          if (raw.targetSensitivity !== undefined) validation = await predictFor('validation');
        } catch (err) {
          if (err instanceof CliError) throw err;
          throw new CliError(err instanceof Error ? err.message : String(err));
        }
        if (raw.dataKind === undefined) {
          raw.dataKind = existsSync(join(raw.data as string, 'synth.json')) || existsSync(join(raw.data as string, '..', 'synth.json')) ? 'synthetic' : 'mura';
        }
        if (raw.split === undefined) raw.split = subset;
      } else {
        input = read(raw.predictions as string);
        if (raw.valPredictions !== undefined) validation = read(raw.valPredictions as string);
      }
      const opts: EvaluateCliOptions = { bootstrap: raw.bootstrap as number, seed: raw.seed as Seed };
      if (raw.threshold !== undefined) opts.threshold = raw.threshold as number;
      // A model's stored operating point (chosen on validation by train/calibrate) is the default threshold.
      else if (storedThreshold !== undefined && raw.targetSensitivity === undefined) {
        opts.threshold = storedThreshold;
        opts.thresholdSource = `the model's stored operating point${storedRule ? `, ${storedRule}` : ''}`;
      }
      if (temperature !== undefined) opts.temperature = temperature;
      if (raw.targetSensitivity !== undefined) opts.targetSensitivity = raw.targetSensitivity as number;
      if (validation) opts.validation = validation;
      if (raw.out !== undefined) opts.out = raw.out as string;
      if (raw.json !== undefined) opts.json = raw.json as string;
      if (raw.quiet) opts.quiet = true;
      if (raw.split !== undefined) opts.split = raw.split as string;
      if (raw.dataKind !== undefined) opts.dataKind = raw.dataKind as DataKind;
      if (raw.title !== undefined) opts.title = raw.title as string;
      const ran = Object.values(engines);
      if (ran.length) {
        const e = ran[0]!;
        opts.config = { 'inference engine': e.description, ...(e.fallbackReason ? { 'engine fallback': e.fallbackReason } : {}) };
        opts.extra = {
          inference: {
            engine: e.name,
            description: e.description,
            requested: runtime,
            ...(e.fallbackReason ? { fallback_reason: e.fallbackReason } : {}),
            subsets: Object.fromEntries(
              Object.entries(engines).map(([k, v]) => [k, { engine: v.name, setup_seconds: round3(v.setupSeconds), inference_seconds: round3(v.inferenceSeconds) }]),
            ),
          },
        };
        if (!opts.quiet && opts.json !== '-') process.stderr.write(`predicted with ${e.description}\n`);
      }
      await runEvaluation(input, opts);
      if (badImages > 0) {
        process.stderr.write(`nextray: ${badImages} image(s) could not be read and were left out (listed above)\n`);
        process.exitCode = Math.max(Number(process.exitCode ?? 0), 1);
      }
    });
}
