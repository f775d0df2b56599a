/**
 * The end-to-end demo behind `npm run demo` / `nextray demo`: generate a synthetic MURA-format dataset, split
 * MURA valid into patient-disjoint validation and test sets, train a small ResNet on the CPU, predict the held-out
 * test split, evaluate it at image and study level (src/evaluate) and write the HTML report.
 *
 * The configuration is sized for a 2-core CPU and a 10-minute budget: 3,000 studies (~8,000 images of 128 px),
 * a narrow ResNet (`resnet-slim`, src/models/slim.ts) at 128 px — fractures and hairline findings are a few pixels wide:
 * a PyTorch copy of it reached 0.88 study AUC at 96 px against 0.94 at 128 px on 3,000 studies, and 0.77 at 64 px
 * on 1,500 — trained from scratch with Adam (lr 3e-3, lr / 10 after 2 flat epochs, no layer frozen: there are no
 * ImageNet weights offline). 1,500 studies at 128 px gave 0.85: the task needs the images more than the epochs
 * (see README.md here). Each stage is resumable: re-running the demo on the same folder reuses the dataset and continues the
 * training run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateSyntheticMura, SYNTH_GENERATOR_VERSION } from '../data/synth/index.js';
import { evaluatePredictions, resolvePredictions, writeEvaluationOutputs, type EvaluationResult } from '../evaluate/index.js';
import type { EngineName } from '../engine/index.js';
import { resolveConfig, type TrainConfig } from '../train/config.js';
import { predictSplit } from '../inference/node/records.js';
import { fitTrust } from '../calibrate/trust.js';
import { trustOf } from '../inference/core/trust.js';
import { trustSections } from '../calibrate/trust-report.js';
import { uncalibrate } from '../evaluate/calibration.js';
import { escapeHtml, thresholdComparison, thresholdComparisonHtml, thresholdComparisonMarkdown } from '../evaluate/tables.js';
import type { TrustInfo } from '../inference/core/trust.js';
import { loadCheckpoint } from '../models/weights/index.js';
import { loadSplit, selectSubset } from '../data/splits.js';
import { loadMuraDataset } from '../data/mura.js';
import { runPaths } from '../runs/run-dir.js';
import { resume, train, type TrainResult } from '../train/trainer.js';

export interface DemoOptions {
  outDir: string;
  /** Studies generated over both MURA splits. */
  studies: number;
  /** Side of the generated PNGs. */
  imageSize: number;
  /** Overrides of the demo's training config (input size, epochs, arch, ...). */
  train: Partial<TrainConfig>;
  seed: number;
  engine: EngineName;
  /** Bootstrap replicates for the report's intervals. */
  bootstrap: number;
  quiet?: boolean;
  log?: (line: string) => void;
}

export const DEMO_DEFAULTS = {
  studies: 3000,
  imageSize: 128,
  seed: 7,
  bootstrap: 500,
  train: {
    arch: 'resnet-slim',
    inputSize: 128,
    frozenLayers: 0,
    lr: 3e-3,
    l2: 1e-4,
    dropout: 0.2,
    batchSize: 32,
    epochs: 18,
    hflip: true,
    rotation: 0,
    loss: 'bce',
    plateauPatience: 2,
    earlyStopPatience: 0,
    selectBy: 'auc',
    valFraction: 0.5,
  } satisfies Partial<TrainConfig>,
};

export interface DemoResult {
  dataDir: string;
  runDir: string;
  reportDir: string;
  reportHtml: string;
  evaluation: EvaluationResult;
  train: TrainResult;
  seconds: { generate: number; train: number; evaluate: number; total: number };
  testImages: number;
  badImages: number;
}

/** Runs the whole demo; see the module comment. */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const out = resolve(opts.outDir);
  const dataDir = join(out, 'data');
  const runDir = join(out, 'run');
  const reportDir = join(out, 'report');

  // 1. Data (reused when a finished dataset with the same options is already there).
  const manifestPath = join(dataDir, 'synth.json');
  let reuse = false;
  if (existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version?: string; options?: { studies?: number; seed?: unknown; size?: number } };
    // A dataset from another generator version differs in content even with the same options.
    reuse = m.version === SYNTH_GENERATOR_VERSION && m.options?.studies === opts.studies && m.options?.seed === opts.seed && m.options?.size === opts.imageSize;
  }
  if (reuse) log(`1/4 dataset: reusing ${dataDir}`);
  else {
    log(`1/4 generating a synthetic MURA-format dataset: ${opts.studies} studies, ${opts.imageSize} px -> ${dataDir}`);
    const synth = await generateSyntheticMura({ outDir: dataDir, studies: opts.studies, seed: opts.seed, size: opts.imageSize, force: true });
    log(`    ${synth.totals.images} images of ${synth.totals.studies} studies (${synth.totals.patients} patients) in ${synth.seconds} s`);
  }
  const t1 = Date.now();

  // 2. Train (resumes a half-done run in the same folder).
  const config = resolveConfig([
    { values: { ...DEMO_DEFAULTS.train, data: dataDir, seed: opts.seed, engine: opts.engine }, source: 'demo defaults' },
    { values: opts.train as Record<string, unknown>, source: 'command line' },
  ]);
  log(`2/4 training ${config.arch} at ${config.inputSize} px for ${config.epochs} epochs (lr ${config.lr}, batch ${config.batchSize}) -> ${runDir}`);
  const echo = opts.quiet ? null : (l: string) => log(`    ${l}`);
  const trained = existsSync(runPaths(runDir).config)
    ? await resume(runDir, { quiet: !!opts.quiet, echo })
    : await train(config, { runDir, quiet: !!opts.quiet, echo });
  // OOD gate, temperature scaling, unless this run already has them.
  if (!trustOf(loadCheckpoint(runPaths(runDir).best, { skipOptimizer: true, verifyHashes: false }).metadata).temperature) {
    log('    fitting the OOD gate (training images) and temperature scaling (validation)');
    await fitTrust(runDir, { data: dataDir, workers: config.workers, onLog: (l) => log(`    ${l}`) });
  }
  const t2 = Date.now();

  // 3. Predict the held-out, patient-disjoint test split with the best checkpoint.
  log('3/4 predicting the held-out test split (patient-disjoint from validation, never seen in training)');
  const preds = await predictSplit(runDir, { data: dataDir, subset: 'test', batchSize: 32, workers: config.workers });
  const input = resolvePredictions(preds.predictions, `${runDir} on the test split`);

  // 4. Evaluate at image and study level and write the report.
  log('4/4 evaluating (study probability = mean of its views) and writing the report');
  // At the run's stored operating point (chosen on validation when training ended), with 0.5 beside it.
  const threshold = preds.metadata.decisionThreshold;
  const evaluation = evaluatePredictions(input.predictions, { threshold, replicates: opts.bootstrap, seed: opts.seed });
  const at05 = threshold !== 0.5 ? evaluatePredictions(input.predictions, { threshold: 0.5, replicates: opts.bootstrap, seed: opts.seed }) : null;
  const t = preds.temperature;
  const before = evaluatePredictions(input.predictions.map((p) => ({ ...p, probability: uncalibrate(p.probability, t) })), { threshold, replicates: 0, seed: opts.seed });
  const calibration = {
    temperature: t,
    rows: (['image', 'study'] as const).map((level) => ({
      level,
      eceBefore: before[level].overall.calibration.ece,
      eceAfter: evaluation[level].overall.calibration.ece,
      brierBefore: before[level].overall.calibration.brier,
      brierAfter: evaluation[level].overall.calibration.brier,
    })),
  };
  const ds = await loadMuraDataset(dataDir);
  const testRecords = selectSubset(ds, loadSplit(runPaths(runDir).split, ds), 'test').images;
  const trustInfo = trustOf(preds.metadata);
  const sections = [
    fittedSection(trustInfo, threshold, evaluation, at05),
    ...(await trustSections(runDir, dataDir, preds.predictions, testRecords, reportDir, threshold)),
  ];
  const written = await writeEvaluationOutputs(
    evaluation,
    reportDir,
    {
      title: 'neXt-Ray demo: synthetic MURA, held-out test split',
      dataKind: 'synthetic',
      source: preds.checkpoint,
      split: 'test (patient-disjoint part of MURA valid)',
      config: { ...config, 'best epoch': trained.state.bestEpoch, 'engine': trained.engine.description, 'training precision': trained.state.history[trained.state.history.length - 1]?.precision ?? 'fp32' },
      dataset: { folder: dataDir, studies: opts.studies, 'image size': opts.imageSize, seed: opts.seed },
      calibration,
      sections,
    },
    { demo: { run: runDir, data: dataDir } },
  );
  const t3 = Date.now();
  return {
    dataDir,
    runDir,
    reportDir,
    reportHtml: join(reportDir, written.files.includes('report.html') ? 'report.html' : ''),
    evaluation,
    train: trained,
    seconds: { generate: (t1 - t0) / 1000, train: (t2 - t1) / 1000, evaluate: (t3 - t2) / 1000, total: (t3 - t0) / 1000 },
    testImages: preds.images,
    badImages: trained.badImages.length + preds.badImages.length,
  };
}

/** The report section on what was fitted on held-out data: operating point, temperature, OOD flag rates; 0.5 beside. */
function fittedSection(t: TrustInfo, threshold: number, evaluation: EvaluationResult, at05: EvaluationResult | null): { title: string; html: string; markdown: string } {
  const pct = (v: number | undefined): string => (v === undefined ? '—' : `${(100 * v).toFixed(1)}%`);
  const op = t.operatingPoint;
  const lines: string[] = [];
  lines.push(
    op
      ? `Decision threshold ${threshold.toFixed(4)}: chosen on the validation studies by ${op.rule === 'max-kappa' ? "maximum Cohen's kappa" : `study sensitivity >= ${op.targetSensitivity}`} (validation kappa ${op.validationKappa?.toFixed(3) ?? '—'}, sensitivity ${op.validationSensitivity.toFixed(3)}, specificity ${op.validationSpecificity?.toFixed(3) ?? '—'}); the headline kappa below is at this threshold.`
      : `Decision threshold ${threshold}.`,
  );
  if (t.temperature) {
    const tt = t.temperature;
    lines.push(
      `Temperature ${tt.value.toFixed(3)} (${tt.level ?? 'image'} level, fitted on validation${tt.candidates ? `; image-level fit ${tt.candidates.image.toFixed(3)}, study-level fit ${tt.candidates.study.toFixed(3)}` : ''}): validation ECE image ${tt.eceBefore.toFixed(3)} -> ${tt.eceAfter.toFixed(3)}` +
        (tt.studyEceBefore !== undefined ? `, study ${tt.studyEceBefore.toFixed(3)} -> ${tt.studyEceAfter!.toFixed(3)}` : '') +
        `; test ECE image ${evaluation.image.overall.calibration.ece.toFixed(3)}, study ${evaluation.study.overall.calibration.ece.toFixed(3)}.`,
    );
  }
  if (t.ood?.flagRates) {
    const r = t.ood.flagRates;
    lines.push(`OOD gate: threshold ${t.ood.threshold.toFixed(1)} at the ${t.ood.quantile} quantile of the ${t.ood.thresholdFrom ?? 'training'} images' scores; radiographs flagged: train ${pct(r.train)}, validation ${pct(r.validation)}, test ${pct(r.test)}.`);
  }
  const rows = at05 ? thresholdComparison(evaluation.study, at05.study) : null;
  return {
    title: 'Fitted on held-out data: threshold, temperature, OOD gate',
    html: lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('') + (rows ? `<p>Study level at ${+threshold.toFixed(4)} and at 0.5:</p>${thresholdComparisonHtml(rows, threshold, 0.5)}` : ''),
    markdown: lines.join('\n\n') + (rows ? `\n\nStudy level at ${+threshold.toFixed(4)} and at 0.5:\n\n${thresholdComparisonMarkdown(rows, threshold, 0.5)}` : ''),
  };
}
