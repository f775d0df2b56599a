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
import { CliError, parseFloatOption, parseIntOption, printJson, resolveRuntime, runtimeOptions } from './common.js';
import { FileWriteError } from '../util/errors.js';
// Module by module (not the inference index): an .onnx model then starts without TF.js or sharp in this thread.
import type { StudyPrediction, ViewPrediction } from '../inference/core/load.js';
import type { ImagePrediction } from '../inference/core/predict.js';
import { load, type NodeModel } from '../inference/node/load.js';
import { expandInputs } from '../inference/node/inputs.js';
import type { InferenceRuntime } from '../inference/node/models.js';
import { oodWarning } from '../inference/core/ood.js';
import { decodeOriginalGrey, heatmapStems, writeHeatmap } from '../inference/node/heatmap.js';
import { writeStudyReports } from '../pacs/files.js';
import { packageVersion } from '../util/package.js';
import { operatingPointText } from '../inference/core/trust.js';
import { csvField } from '../util/csv.js';

interface PredictFlags {
  model: string[];
  out?: string;
  studiesOut?: string;
  json?: boolean;
  threshold?: number;
  batchSize: number;
  workers?: number;
  threads?: number;
  runtime: InferenceRuntime;
  /** Old name of --runtime. */
  engine?: InferenceRuntime;
  quiet?: boolean;
  heatmaps?: string;
  dicomOut?: string;
  onnxCache: boolean;
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

/** A view's decision in outputs: an image the OOD gate rejects gets 'out-of-distribution' instead of one. */
function decisionOf(v: { decision: 'abnormal' | 'normal' | null }): string {
  return v.decision ?? 'out-of-distribution';
}

/** Columns a DICOM input adds: View Position (0018,5101), Laterality (0020,0060), Image Laterality (0020,0062), Body Part Examined, SOP Instance UID. */
export const DICOM_COLUMNS = ['view_position', 'laterality', 'image_laterality', 'body_part', 'sop_instance_uid'];

/** The image CSV: header includes image,label,probability (what `nextray evaluate --predictions` reads) and decision. */
export function imagesCsv(views: readonly ViewPrediction[], members: readonly string[], model: string, sha256: string): string {
  const perModel = members.length > 1 ? memberColumns(members) : [];
  // The OOD gate's columns appear when the model has a gate; a flagged image gets 'out-of-distribution' as decision.
  const gated = views.some((v) => v.ood !== null);
  // DICOM inputs add what their headers say of the view (empty for PNG/JPEG rows).
  const dicom = views.some((v) => v.dicom !== undefined);
  const lines = [['image', 'label', 'probability', 'decision', 'threshold', 'study', 'model', 'model_sha256', ...perModel, ...(gated ? ['ood', 'ood_score'] : []), ...(dicom ? DICOM_COLUMNS : [])].join(',')];
  for (const v of views) {
    lines.push(
      [
        csvField(v.view.name),
        v.label ?? '',
        prob(v.probability),
        decisionOf(v),
        v.threshold,
        csvField(v.studyKey),
        csvField(model),
        sha256,
        ...(members.length > 1 ? v.perModel.map(prob) : []),
        ...(gated ? [v.ood?.flagged ? 'true' : 'false', v.ood && Number.isFinite(v.ood.score) ? prob(v.ood.score) : ''] : []),
        ...(dicom ? [v.dicom?.viewPosition, v.dicom?.laterality, v.dicom?.imageLaterality, v.dicom?.bodyPartExamined, v.dicom?.sopInstanceUid].map((x) => csvField(x ?? '')) : []),
      ].join(','),
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * The studies CSV. `probability` is the mean of the views the OOD gate accepted; with a gate, the column
 * `views_out_of_distribution` counts the views left out, and a study whose views were all left out has no
 * probability and 'out-of-distribution' as decision.
 */
export function studiesCsv(studies: readonly StudyPrediction[], model: string, sha256: string, gated = studies.some((s) => s.excluded.length > 0)): string {
  const lines = ['study,study_source,label,probability,decision,threshold,views,region,model,model_sha256' + (gated ? ',views_out_of_distribution' : '')];
  for (const s of studies) {
    lines.push(
      [
        csvField(s.studyKey),
        s.source,
        s.label ?? '',
        s.probability === null ? '' : prob(s.probability),
        decisionOf(s),
        s.threshold,
        s.views.length,
        s.region ?? '',
        csvField(model),
        sha256,
        ...(gated ? [s.excluded.length] : []),
      ].join(','),
    );
  }
  return lines.join('\n') + '\n';
}

async function run(inputs: string[], flags: PredictFlags): Promise<void> {
  if (!flags.model?.length) throw new CliError('give a model: --model M (an .onnx file from `nextray export`, a checkpoint folder or a run directory)');
  if (!inputs.length) throw new CliError('give at least one INPUT: image files (PNG, JPEG, DICOM), folders or a MURA-layout dataset');
  const t0 = performance.now();
  const threads = flags.threads ?? availableParallelism();
  // --quiet: no notes either (a rebuilt cache, the TF.js fallback); errors still reach stderr.
  const quietLog = flags.quiet ? { onLog: (): void => {} } : {};
  const { runtime } = resolveRuntime(flags);
  const model: NodeModel = await load(flags.model, {
    engine: runtime,
    threads,
    maxBatch: flags.batchSize,
    onnxCache: flags.onnxCache,
    ...quietLog,
    ...(flags.threshold !== undefined ? { threshold: flags.threshold } : {}),
  });
  const setupSeconds = (performance.now() - t0) / 1000;
  try {
    const { files, problems, openPaths } = expandInputs(inputs);
    for (const p of problems) process.stderr.write(`nextray: ${p.input}: ${p.problem}\n`);
    if (!files.length) throw new CliError(`no image files to predict in ${inputs.join(', ')}`);
    if (flags.heatmaps && !model.hasHeatmaps) {
      throw new CliError(`--heatmaps: the model has no 'cam' output; re-export it with this version (nextray export --checkpoint RUN) or predict from the checkpoint folder`);
    }
    const progress = createProgress({ label: 'predict', total: files.length, quiet: !!flags.quiet || !!flags.json });
    let last = 0;
    let res;
    const stems = heatmapStems(files);
    const pre = model.cards[0]!.preprocessing;
    let heatmapFailures = 0;
    try {
      res = await model.predict(files, {
        batchSize: flags.batchSize,
        ...(flags.heatmaps ? { heatmaps: true } : {}),
        ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
        openPaths,
        onProgress: (done) => {
          progress.tick(done - last);
          last = done;
        },
        onUnreadable: (u) => process.stderr.write(`nextray: ${u.input}: ${u.problem}\n`),
        onView: async (v) => {
          if (v.ood?.flagged && !flags.quiet) process.stderr.write(`nextray: warning: ${v.view.name}: ${oodWarning(v.ood.score, v.ood.threshold)}\n`);
          if (!flags.heatmaps || !v.heatmap) return;
          try {
            const img = await decodeOriginalGrey(v.view.name, openPaths.get(v.view.name) ?? v.view.name);
            await writeHeatmap(flags.heatmaps, stems.get(v.view.name) ?? v.view.name, {
              ...img,
              cam: v.heatmap.data,
              camH: v.heatmap.height,
              camW: v.heatmap.width,
              preprocessing: pre,
              caption: v.ood?.flagged ? 'OOD' : `p ${v.probability.toFixed(2)}`,
            });
          } catch (err) {
            heatmapFailures++;
            process.stderr.write(`nextray: ${v.view.name}: heatmap not written: ${(err as Error).message}\n`);
          }
        },
        onWarning: (f, w) => {
          if (!flags.quiet) process.stderr.write(`nextray: warning: ${f}: ${w}\n`);
        },
      });
    } finally {
      progress.stop();
    }
    const members = model.cards.map((c) => c.name);
    const csv = imagesCsv(res.views, members, model.name, model.sha256);
    const write = (path: string, text: string, what: string): void => {
      try {
        writeFileAtomic(path, text);
      } catch (err) {
        if (err instanceof FileWriteError) throw err; // names the file and the reason; exit 1 when the disk is full
        throw new CliError(`${what} ${path}: cannot write: ${(err as Error).message}`);
      }
    };
    if (flags.out) write(flags.out, csv, '--out');
    if (flags.studiesOut) write(flags.studiesOut, studiesCsv(res.studies, model.name, model.sha256, model.hasOodGate), '--studies-out');
    let reports: Awaited<ReturnType<typeof writeStudyReports>> | null = null;
    if (flags.dicomOut) {
      const operatingPoint = operatingPointText(model.cards, model.threshold, model.thresholdSource === 'option');
      try {
        reports = await writeStudyReports(
          flags.dicomOut,
          res.views.map((v) => srView(v, model)),
          res.unreadable.map((u) => ({ file: u.input, problem: u.problem })),
          { name: model.name, sha256: model.sha256, operatingPoint },
          packageVersion(),
        );
      } catch (err) {
        throw new CliError(`--dicom-out ${flags.dicomOut}: cannot write the results SR: ${(err as Error).message}`);
      }
      if (!flags.quiet && !flags.json) for (const n of reports.notes) process.stderr.write(`nextray: note: ${n}\n`);
    }
    const abnormal = res.views.filter((v) => v.decision === 'abnormal').length;
    const outOfDistribution = res.views.filter((v) => v.ood?.flagged).length;
    const unreadable = [...problems.map((p) => ({ file: p.input, problem: p.problem })), ...res.unreadable.map((u) => ({ file: u.input, problem: u.problem }))];
    if (flags.json) {
      printJson({
        model: model.name,
        model_sha256: model.sha256,
        models: model.cards.map((c) => ({ name: c.name, source: c.source, sha256: c.sha256, arch: c.arch, input_size: c.preprocessing.size, stored_threshold: c.threshold, engine: c.engine })),
        threshold: model.threshold,
        threshold_source: model.thresholdSource,
        images: res.views.length,
        studies: res.studies.length,
        abnormal,
        normal: res.views.length - abnormal - outOfDistribution,
        out_of_distribution: outOfDistribution,
        unreadable,
        ...(flags.out ? { out: flags.out } : {}),
        ...(flags.studiesOut ? { studies_out: flags.studiesOut } : {}),
        ...(reports ? { dicom_out: reports.written, dicom_out_notes: reports.notes } : {}),
        setup_seconds: Number(setupSeconds.toFixed(3)),
        seconds: Number(((performance.now() - t0) / 1000).toFixed(3)),
        inference_seconds: Number(res.inferenceSeconds.toFixed(3)),
        predictions: res.views.map((v) => ({
          image: v.view.name,
          probability: v.probability,
          decision: decisionOf(v),
          ...(v.ood !== null ? { ood: v.ood.flagged, ood_score: v.ood.score } : {}),
          study: v.studyKey,
          study_source: v.studySource,
          ...(v.label !== undefined ? { label: v.label } : {}),
          ...(members.length > 1 ? { per_model: v.perModel } : {}),
          ...(v.warnings.length ? { warnings: v.warnings } : {}),
          ...(viewDicom(v) ? { dicom: viewDicom(v) } : {}),
        })),
        study_predictions: res.studies.map((s) => ({
          study: s.studyKey,
          source: s.source,
          probability: s.probability,
          decision: s.decision ?? 'out-of-distribution',
          views: s.views.length,
          ...(s.excluded.length ? { excluded: s.excluded } : {}),
          ...(s.label !== undefined ? { label: s.label } : {}),
          ...(s.patient !== 'unidentified study' ? { patient: s.patient } : {}),
        })),
      });
    } else {
      if (!flags.out) process.stdout.write(csv);
      const summary =
        `${res.views.length} image(s), ${res.studies.length} stud${res.studies.length === 1 ? 'y' : 'ies'}: ${abnormal} abnormal, ${res.views.length - abnormal - outOfDistribution} normal${outOfDistribution ? `, ${outOfDistribution} out of distribution (no decision)` : ''} ` +
        `(threshold ${model.threshold}${model.thresholdSource === 'option' ? ', --threshold' : ', stored with the model'}); ` +
        `model ${model.name} sha256 ${model.sha256}; ${((performance.now() - t0) / 1000).toFixed(2)} s` +
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
    await model.release();
  }
}

/**
 * A view's result in the shape the SR writer (src/pacs/files.ts) reads: the decision as the threshold gives it,
 * with the OOD gate's verdict beside it.
 */
function srView(v: ViewPrediction, model: NodeModel): ImagePrediction {
  return {
    image: v.view.name,
    probability: v.probability,
    decision: v.probability > v.threshold ? 'abnormal' : 'normal',
    threshold: v.threshold,
    perModel: v.perModel,
    model: model.name,
    modelSha256: model.sha256,
    study: v.studyKey,
    studySource: v.studySource,
    ...(v.label !== undefined ? { label: v.label } : {}),
    ...(v.region !== undefined ? { region: v.region } : {}),
    width: v.width,
    height: v.height,
    format: v.format,
    warnings: v.warnings,
    ...(v.dicom ? { dicom: v.dicom } : {}),
    ...(v.ood ? { ood: v.ood.flagged, oodScore: v.ood.score } : {}),
  };
}

/** The DICOM view identifiers of a view (SOPInstanceUID, ViewPosition, Laterality, BodyPartExamined), when any. */
function viewDicom(v: ViewPrediction): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const k of ['sopInstanceUid', 'viewPosition', 'laterality', 'bodyPartExamined'] as const) if (v.view[k]) out[k] = v.view[k]!;
  return Object.keys(out).length ? out : null;
}

const RUNTIME = runtimeOptions('what runs the model: auto = ONNX Runtime, else TF.js for checkpoints; onnx; tfjs (checkpoints only)');

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
    .addOption(RUNTIME[0])
    .addOption(RUNTIME[1])
    .option('--quiet', 'no progress bar, warnings or notes (a rebuilt ONNX cache, the TF.js fallback)')
    .option('--no-onnx-cache', "an .onnx model: don't keep or load ONNX Runtime's optimised graph (default: kept in MODEL.onnx.ort-cache/, else ~/.cache/nextray/onnx, and loaded next time)")
    .option('--dicom-out <dir>', 'write one DICOM Comprehensive SR per DICOM study (DIR/<SR UID>.dcm; same study and model: same UID, so a re-run replaces it); see docs/dicom.md')
    .option('--heatmaps <dir>', 'write DIR/<stem>.png (class activation map over the image, original size, legend) and DIR/<stem>.cam.npy (float32, model input size, ReLU\'d, / max)')
    .addHelpText(
      'after',
      `
Examples:
  nextray predict --model model.onnx xray.png
  nextray predict --model runs/r152 --model runs/r2 scans/ --out preds.csv --studies-out studies.csv
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
