/**
 * `nextray predict`: a trained model (or an ensemble) on X-ray files — PNG, JPEG, DICOM, folders, a MURA-layout
 * dataset — giving each image a probability of abnormal and a decision, and each study the mean of its views.
 * A thin face over src/inference (Node host).
 *
 * Exit codes: 0 all files predicted; 1 some inputs unreadable (each named on stderr, the rest predicted);
 * 2 usage error, unusable model, or no image file found at all.
 */
import { CommanderError, Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import { writeFileAtomic } from '../util/atomic.js';
import { createProgress } from '../util/progress.js';
import { CliError, parseFloatOption, parseIntOption, printJson } from './common.js';
// Module by module (not the inference index): an .onnx model then starts without TF.js or sharp in this thread.
import { Ensemble } from '../inference/core/ensemble.js';
import type { InferenceModel } from '../inference/core/model.js';
import type { ImagePrediction } from '../inference/core/predict.js';
import type { StudyResult } from '../inference/core/study.js';
import { expandInputs } from '../inference/node/inputs.js';
import { openModel, PREDICT_ENGINES, type PredictEngine } from '../inference/node/models.js';
import { predictFiles } from '../inference/node/predict.js';
import { applyTrust, trustOutputs } from '../inference/core/trust.js';
import { oodWarning } from '../inference/core/ood.js';
import { decodeOriginalGrey, heatmapStems, writeHeatmap } from '../inference/node/heatmap.js';
import { writeStudyReports } from '../pacs/files.js';
import { packageVersion } from '../util/package.js';

interface PredictFlags {
  model: string[];
  out?: string;
  studiesOut?: string;
  json?: boolean;
  threshold?: number;
  batchSize: number;
  workers?: number;
  threads?: number;
  engine: PredictEngine;
  quiet?: boolean;
  heatmaps?: string;
  dicomOut?: string;
  onnxCache: boolean;
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Probabilities are float32 numbers: 7 significant digits say all they hold. */
function prob(p: number): string {
  return String(Number(p.toPrecision(7)));
}

/**
 * One column name per ensemble member, `probability_<name>`; members of the same name (two run directories both
 * called `run`) get `_2`, `_3`, ... in ensemble order, so every column is named once.
 */
export function memberColumns(members: readonly string[]): string[] {
  const taken = new Set<string>();
  return members.map((m) => {
    let col = `probability_${m}`;
    for (let k = 2; taken.has(col); k++) col = `probability_${m}_${k}`;
    taken.add(col);
    return col;
  });
}

/** Columns a DICOM input adds: View Position (0018,5101), Laterality (0020,0060), Image Laterality (0020,0062), Body Part Examined, SOP Instance UID. */
export const DICOM_COLUMNS = ['view_position', 'laterality', 'image_laterality', 'body_part', 'sop_instance_uid'];

/** The image CSV: header includes image,label,probability (what `nextray evaluate --predictions` reads) and decision. */
export function imagesCsv(images: readonly ImagePrediction[], members: readonly string[]): string {
  const perModel = members.length > 1 ? memberColumns(members) : [];
  // The OOD gate's columns appear when the model has a gate; a flagged image gets 'out-of-distribution' as decision.
  const gated = images.some((im) => im.ood !== undefined);
  // DICOM inputs add what their headers say of the view (empty for PNG/JPEG rows).
  const dicom = images.some((im) => im.dicom !== undefined);
  const lines = [['image', 'label', 'probability', 'decision', 'threshold', 'study', 'model', 'model_sha256', ...perModel, ...(gated ? ['ood', 'ood_score'] : []), ...(dicom ? DICOM_COLUMNS : [])].join(',')];
  for (const im of images) {
    lines.push(
      [
        csvField(im.image),
        im.label ?? '',
        prob(im.probability),
        im.ood ? 'out-of-distribution' : im.decision,
        im.threshold,
        csvField(im.study),
        csvField(im.model),
        im.modelSha256,
        ...(members.length > 1 ? im.perModel.map(prob) : []),
        ...(gated ? [im.ood ? 'true' : 'false', im.oodScore === undefined ? '' : prob(im.oodScore)] : []),
        ...(dicom ? [im.dicom?.viewPosition, im.dicom?.laterality, im.dicom?.imageLaterality, im.dicom?.bodyPartExamined, im.dicom?.sopInstanceUid].map((v) => csvField(v ?? '')) : []),
      ].join(','),
    );
  }
  return lines.join('\n') + '\n';
}

export function studiesCsv(studies: readonly StudyResult[], model: string, sha256: string): string {
  const lines = ['study,study_source,label,probability,decision,threshold,views,region,model,model_sha256'];
  for (const s of studies) {
    lines.push([csvField(s.study), s.source, s.label ?? '', prob(s.probability), s.decision, s.threshold, s.views, s.region ?? '', csvField(model), sha256].join(','));
  }
  return lines.join('\n') + '\n';
}

async function run(inputs: string[], flags: PredictFlags): Promise<void> {
  if (!flags.model?.length) throw new CliError('give a model: --model M (an .onnx file from `nextray export`, a checkpoint folder or a run directory)');
  if (!inputs.length) throw new CliError('give at least one INPUT: image files (PNG, JPEG, DICOM), folders or a MURA-layout dataset');
  const t0 = performance.now();
  const threads = flags.threads ?? availableParallelism();
  const models: InferenceModel[] = [];
  let ensemble: Ensemble;
  try {
    // --quiet: no notes either (a rebuilt cache, the TF.js fallback); errors still reach stderr.
    const quietLog = flags.quiet ? { onLog: (): void => {} } : {};
    for (const m of flags.model) models.push(await openModel(m, { engine: flags.engine, threads, maxBatch: flags.batchSize, onnxCache: flags.onnxCache, ...quietLog }));
    ensemble = new Ensemble(models, flags.threshold !== undefined ? { threshold: flags.threshold } : {});
  } catch (err) {
    for (const m of models) await m.release();
    throw err;
  }
  const setupSeconds = (performance.now() - t0) / 1000;
  try {
    const { files, problems } = expandInputs(inputs);
    for (const p of problems) process.stderr.write(`nextray: ${p.input}: ${p.problem}\n`);
    if (!files.length) throw new CliError(`no image files to predict in ${inputs.join(', ')}`);
    const progress = createProgress({ label: 'predict', total: files.length, quiet: !!flags.quiet || !!flags.json });
    let last = 0;
    let res;
    // Trust outputs: the gate's score always when the model has one, the CAM when --heatmaps is given.
    const outputs = trustOutputs(ensemble, { heatmaps: !!flags.heatmaps, ood: true });
    if (flags.heatmaps && !outputs.includes('cam')) {
      throw new CliError(`--heatmaps: the model has no 'cam' output; re-export it with this version (nextray export --checkpoint RUN) or predict from the checkpoint folder`);
    }
    const stems = heatmapStems(files);
    let heatmapFailures = 0;
    try {
      res = await predictFiles(ensemble, files, {
        batchSize: flags.batchSize,
        ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
        onProgress: (done) => {
          progress.tick(done - last);
          last = done;
        },
        onBadFile: (b) => process.stderr.write(`nextray: ${b.file}: ${b.problem}\n`),
        ...(outputs.length ? { outputs } : {}),
        onBatch: async (results, raw) => {
          applyTrust(results, raw, ensemble);
          for (const r of results) {
            if (r.ood && !flags.quiet) process.stderr.write(`nextray: warning: ${r.image}: ${oodWarning(r.oodScore ?? NaN, ensemble.models[0]!.card.metadata.ood ? (JSON.parse(ensemble.models[0]!.card.metadata.ood) as { threshold: number }).threshold : NaN)}\n`);
            if (!flags.heatmaps || !r.heatmap) continue;
            try {
              const img = await decodeOriginalGrey(r.image);
              const pre = ensemble.models[0]!.card.preprocessing;
              await writeHeatmap(flags.heatmaps, stems.get(r.image) ?? r.image, {
                ...img,
                cam: r.heatmap.data,
                camH: r.heatmap.height,
                camW: r.heatmap.width,
                preprocessing: pre,
                caption: r.ood ? 'OOD' : `p ${r.probability.toFixed(2)}`,
              });
            } catch (err) {
              heatmapFailures++;
              process.stderr.write(`nextray: ${r.image}: heatmap not written: ${(err as Error).message}\n`);
            }
          }
        },
        onWarning: (f, w) => {
          if (!flags.quiet) process.stderr.write(`nextray: warning: ${f}: ${w}\n`);
        },
      });
    } finally {
      progress.stop();
    }
    const members = models.map((m) => m.card.name);
    const csv = imagesCsv(res.images, members);
    const write = (path: string, text: string, what: string): void => {
      try {
        writeFileAtomic(path, text);
      } catch (err) {
        throw new CliError(`${what} ${path}: cannot write: ${(err as Error).message}`);
      }
    };
    if (flags.out) write(flags.out, csv, '--out');
    if (flags.studiesOut) write(flags.studiesOut, studiesCsv(res.studies, ensemble.name, ensemble.sha256), '--studies-out');
    let reports: Awaited<ReturnType<typeof writeStudyReports>> | null = null;
    if (flags.dicomOut) {
      const operatingPoint = `threshold ${ensemble.threshold} (${ensemble.thresholdGiven ? 'given with --threshold' : 'stored with the model'}); abnormal when probability > threshold`;
      try {
        reports = await writeStudyReports(flags.dicomOut, res.images, res.bad, { name: ensemble.name, sha256: ensemble.sha256, operatingPoint }, packageVersion());
      } catch (err) {
        throw new CliError(`--dicom-out ${flags.dicomOut}: cannot write the results SR: ${(err as Error).message}`);
      }
      if (!flags.quiet && !flags.json) for (const n of reports.notes) process.stderr.write(`nextray: note: ${n}\n`);
    }
    const abnormal = res.images.filter((i) => i.decision === 'abnormal' && !i.ood).length;
    const outOfDistribution = res.images.filter((i) => i.ood).length;
    const unreadable = [...problems.map((p) => ({ file: p.input, problem: p.problem })), ...res.bad];
    if (flags.json) {
      printJson({
        model: ensemble.name,
        model_sha256: ensemble.sha256,
        models: models.map((m) => ({ name: m.card.name, source: m.card.source, sha256: m.card.sha256, arch: m.card.arch, input_size: m.card.preprocessing.size, stored_threshold: m.card.threshold, engine: m.card.engine })),
        threshold: ensemble.threshold,
        threshold_source: ensemble.thresholdGiven ? 'option' : 'model',
        images: res.images.length,
        studies: res.studies.length,
        abnormal,
        normal: res.images.length - abnormal - outOfDistribution,
        out_of_distribution: outOfDistribution,
        unreadable,
        ...(flags.out ? { out: flags.out } : {}),
        ...(flags.studiesOut ? { studies_out: flags.studiesOut } : {}),
        ...(reports ? { dicom_out: reports.written, dicom_out_notes: reports.notes } : {}),
        setup_seconds: Number(setupSeconds.toFixed(3)),
        seconds: Number(((performance.now() - t0) / 1000).toFixed(3)),
        inference_seconds: Number(res.inferenceSeconds.toFixed(3)),
        predictions: res.images.map((i) => ({
          image: i.image,
          probability: i.probability,
          decision: i.ood ? 'out-of-distribution' : i.decision,
          ...(i.ood !== undefined ? { ood: i.ood, ood_score: i.oodScore } : {}),
          study: i.study,
          study_source: i.studySource,
          ...(i.label !== undefined ? { label: i.label } : {}),
          ...(models.length > 1 ? { per_model: i.perModel } : {}),
          ...(i.warnings.length ? { warnings: i.warnings } : {}),
        })),
        study_predictions: res.studies.map((s) => ({ study: s.study, source: s.source, probability: s.probability, decision: s.decision, views: s.views, ...(s.label !== undefined ? { label: s.label } : {}) })),
      });
    } else {
      if (!flags.out) process.stdout.write(csv);
      const summary =
        `${res.images.length} image(s), ${res.studies.length} stud${res.studies.length === 1 ? 'y' : 'ies'}: ${abnormal} abnormal, ${res.images.length - abnormal - outOfDistribution} normal${outOfDistribution ? `, ${outOfDistribution} out of distribution (no decision)` : ''} ` +
        `(threshold ${ensemble.threshold}${ensemble.thresholdGiven ? ', --threshold' : ', stored with the model'}); ` +
        `model ${ensemble.name} sha256 ${ensemble.sha256}; ${((performance.now() - t0) / 1000).toFixed(2)} s` +
        (unreadable.length ? `; ${unreadable.length} input(s) unreadable (named above)` : '');
      (flags.out ? process.stdout : process.stderr).write(
        (flags.out ? `wrote ${flags.out}${flags.studiesOut ? ` and ${flags.studiesOut}` : ''}\n` : '') +
          (reports ? `wrote ${reports.written.length} DICOM SR(s) to ${flags.dicomOut}\n` : '') +
          summary +
          '\n',
      );
    }
    if (unreadable.length || heatmapFailures) process.exitCode = 1;
  } finally {
    await ensemble.release();
  }
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('Predict normal/abnormal for X-ray images (PNG, JPEG, DICOM), folders or a MURA-layout dataset with a trained model or an ensemble.')
    .argument('[inputs...]', 'image files, folders (walked recursively) or a MURA-layout dataset')
    .option('--model <m>', 'an .onnx file from `nextray export`, a checkpoint folder or a run directory; repeat for an ensemble (mean of probabilities)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--out <preds.csv>', 'write the per-image CSV here (default: stdout, unless --json)')
    .option('--studies-out <studies.csv>', 'write per-study results (mean of views) here')
    .option('--json', 'print a JSON summary with every prediction on stdout')
    .option('--threshold <t>', 'decision threshold: abnormal when probability > t (default: the one stored with the model)', parseFloatOption('--threshold', 0, 1))
    .option('--batch-size <n>', 'images per inference call', parseIntOption('--batch-size', 1, 1024), 8)
    .option('--workers <n>', 'decoding threads (default: min(2, cores); 0 = main thread)', parseIntOption('--workers', 0, 64))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntOption('--threads', 1, 1024))
    .addOption(new Option('--engine <name>', 'auto = ONNX Runtime, else TF.js for checkpoints; onnx; tfjs (checkpoints only)').choices([...PREDICT_ENGINES]).default('auto'))
    .option('--quiet', 'no progress bar, warnings or notes (a rebuilt ONNX cache, the TF.js fallback)')
    .option('--no-onnx-cache', "an .onnx model: don't keep or load ONNX Runtime's optimised graph (default: kept in MODEL.onnx.ort-cache/, else ~/.cache/nextray/onnx, and loaded next time)")
    .option('--dicom-out <dir>', 'write one DICOM Comprehensive SR per DICOM study (DIR/<SR UID>.dcm; same study and model: same UID, so a re-run replaces it); see docs/dicom.md')
    .option('--heatmaps <dir>', 'write DIR/<stem>.png (class activation map over the image, original size, legend) and DIR/<stem>.cam.npy (float32, model input size, ReLU\'d, / max)')
    .addHelpText(
      'after',
      `
Examples:
  nextray predict --model model.onnx xray.png
  nextray predict --model runs/r152 --model runs/d169 scans/ --out preds.csv --studies-out studies.csv
  nextray predict --model model.onnx MURA-v1.1/valid --out valid.csv && nextray evaluate --predictions valid.csv
  nextray predict --model model.onnx study-dicoms/ --dicom-out results/

Output CSV columns: image (the path as given), label (1/0 from a MURA study folder, else empty), probability,
decision (abnormal when probability > threshold), threshold, study, model, model_sha256 (per-member probabilities
for ensembles); DICOM inputs add view_position, laterality, image_laterality, body_part, sop_instance_uid.
Studies: MURA study folder, else DICOM StudyInstanceUID, else the folder. DICOM inputs pass a header gate first
(CR, DX, RG accepted; CT, MR, US, ... refused with the reason).
Exit codes: 0 all predicted; 1 some inputs unreadable (named on stderr; the rest predicted); 2 usage error,
unusable model, or no image files.`,
    )
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
      throw err;
    })
    .action(async (inputs: string[], flags: PredictFlags) => run(inputs, flags));
}
