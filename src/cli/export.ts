/**
 * `nextray export`: writes a model (architecture + weights + head) as one ONNX file for ONNX Runtime — the fast
 * inference engine in Node (onnxruntime-node) and, with the same file, in the browser (onnxruntime-web).
 *
 * Weights come from a torchvision .pth/.safetensors (`--weights`) or a project checkpoint folder (`--checkpoint`,
 * which also supplies arch, input size, preprocessing and decision threshold). `--verify` runs the exported file
 * and the TF.js model on the same random batch and fails unless they agree to 1e-4 relative.
 * `--precision fp16|int8` writes a smaller file (src/models/onnx/quantize.ts, precision.ts); int8 is calibrated on
 * `--calibration DIR`'s training images, and --verify then uses two of them and a 0.1 relative bound (fp16: 1e-2).
 */
import { CommanderError, Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, parseFloatOption, parseIntOption, printJson } from './common.js';
import { FileWriteError } from '../util/errors.js';
import { classifierFromWeights } from './classifier-head.js';
import { initEngine, tf, type EngineName } from '../engine/index.js';
import { ALL_ARCHS as ARCHS, archInfo, buildSpec, createModel, isArch, type Arch, type Model } from '../models/registry.js';
import { readStateDict } from '../models/weights/files.js';
import { loadCheckpoint, type CheckpointMetadata } from '../models/weights/checkpoint.js';
import type { StateDict } from '../models/weights/types.js';
import { DEFAULT_PREPROCESSING, makePreprocessing, type Preprocessing } from '../data/preprocess.js';
import { exportOnnxFile } from '../models/onnx/files.js';
import { OnnxClassifier, ort } from '../inference/node/onnx-session.js';
import { OnnxModelError } from '../models/onnx/info.js';
import { Rng } from '../util/rng.js';
import { trustExportOptions } from '../inference/core/trust.js';
import { exportOnnxFileWithPrecision, type PrecisionReport } from '../models/onnx/precision.js';
import { datasetCalibrationImages } from '../data/calibration-sample.js';
import { runCheckpoint } from '../runs/run-dir.js';
import { cardFromCheckpoint, type ModelCard } from '../models/card.js';
import { PRECISIONS, parseCalibrationMethod, type CalibrationMethod, type ExportPrecision } from '../models/onnx/quantize.js';
import { createProgress } from '../util/progress.js';

interface ExportFlags {
  arch?: string;
  weights?: string;
  checkpoint?: string;
  out: string;
  inputSize?: number;
  head?: 'imagenet' | 'binary';
  layout: 'nhwc' | 'nchw';
  dynamicSize?: boolean;
  foldBn: boolean;
  threshold?: number;
  verify?: boolean;
  threads?: number;
  engine?: EngineName;
  json?: boolean;
  precision: ExportPrecision;
  calibration?: string;
  calibrationImages?: number;
  calibrationMethod?: string;
  floatLayers?: string;
  features?: boolean;
}

interface Loaded {
  model: Model;
  arch: Arch;
  head: 'imagenet' | 'binary';
  numClasses: number;
  untrainedHead: boolean;
  checkpoint?: CheckpointMetadata;
  source: string;
}

async function loadModel(flags: ExportFlags): Promise<Loaded> {
  if (!!flags.weights === !!flags.checkpoint) throw new CliError('give exactly one of --weights FILE or --checkpoint DIR');
  let sd: StateDict;
  let checkpoint: CheckpointMetadata | undefined;
  let source: string;
  let arch: string | undefined = flags.arch;
  if (flags.checkpoint) {
    source = flags.checkpoint;
    const best = runCheckpoint(source, 'best');
    if (!existsSync(join(source, 'model.json')) && existsSync(join(best, 'model.json'))) {
      source = best; // a training run directory: its best checkpoint
    }
    const ckpt = loadCheckpoint(source, { skipOptimizer: true });
    sd = ckpt.tensors;
    checkpoint = ckpt.metadata;
    if (arch && arch !== checkpoint.arch) {
      throw new CliError(`--arch ${arch} disagrees with ${source}/model.json, which says '${checkpoint.arch}' (leave --arch out)`);
    }
    arch = checkpoint.arch;
  } else {
    source = flags.weights!;
    if (!arch) throw new CliError('--arch is required with --weights (e.g. --arch resnet152)');
    sd = await readStateDict(source);
  }
  if (!isArch(arch)) {
    throw new CliError(`architecture '${arch}' cannot be exported; supported: ${ARCHS.join(', ')}`);
  }
  const { numClasses, layout } = classifierFromWeights(arch, sd, source, 'an export needs the whole network with its head');
  const fromWeights = numClasses === 1 ? 'binary' : 'imagenet';
  const head = flags.head ?? fromWeights;
  if (head === 'imagenet' && fromWeights === 'binary') {
    throw new CliError(`--head imagenet: ${source} holds a one-output (binary) classifier; use --head binary or leave --head out`);
  }
  // ImageNet weights with --head binary: the backbone is exported with a fresh, seeded (untrained) binary head —
  // useful for timing and for checking the export path, never for diagnosis (a warning says so).
  const untrainedHead = head === 'binary' && fromWeights === 'imagenet';
  const model = createModel(arch, { head, ...(head === 'imagenet' ? { numClasses } : {}), init: 'none' });
  try {
    model.loadStateDict(sd, { strict: true, layout, source, ignoreClassifier: untrainedHead });
    if (untrainedHead) {
      // init 'none' left the head at zero: draw it like torchvision's nn.Linear (U(-1/sqrt(in), 1/sqrt(in))),
      // seeded, so outputs vary with the input as a real head's would.
      const rng = new Rng(0).fork('export-untrained-head');
      const sdLive = model.stateDict();
      const cls = buildSpec(arch).classifierName;
      const w = sdLive.get(`${cls}.weight`)!;
      const b = sdLive.get(`${cls}.bias`)!;
      const bound = 1 / Math.sqrt(w.shape[0]!);
      const draw = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform(-bound, bound));
      tf.tidy(() => {
        w.assign(tf.tensor(draw(w.size), w.shape));
        b.assign(tf.tensor(draw(b.size), b.shape));
      });
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, arch, head, numClasses: head === 'binary' ? 1 : numClasses, untrainedHead, ...(checkpoint ? { checkpoint } : {}), source };
}

/** ONNX Runtime vs TF.js on a seeded random batch of two images: max |diff| / max |TF.js|. */
async function verify(model: Model, out: string, size: number, layout: 'nhwc' | 'nchw', threads: number, bound = 1e-4, images?: { x: Float32Array; n: number }) {
  const n = images?.n ?? 2;
  const rng = new Rng(1234).fork('export-verify');
  const nhwc = images?.x ?? new Float32Array(n * size * size * 3);
  if (!images) for (let i = 0; i < nhwc.length; i++) nhwc[i] = rng.normal(0, 1);
  const ref = tf.tidy(() => model.forward(tf.tensor4d(nhwc, [n, size, size, 3]), false).dataSync() as Float32Array);
  const x = layout === 'nhwc' ? nhwc : (tf.tidy(() => tf.transpose(tf.tensor4d(nhwc, [n, size, size, 3]), [0, 3, 1, 2]).dataSync()) as Float32Array);
  const clf = await OnnxClassifier.create(out, { threads });
  try {
    // A model with temperature scaling outputs logit / T: compare on the uncalibrated scale.
    const t = clf.info.temperature;
    const got = (await clf.run(x, n)).logits.map((z) => z * t);
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!));
      maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    }
    const rel = maxRef > 0 ? maxDiff / maxRef : maxDiff;
    return { images: n, input: images ? 'calibration images' : 'random normal', max_abs_diff: maxDiff, max_abs_logit: maxRef, relative_error: rel, bound, ok: rel < bound };
  } finally {
    await clf.release();
  }
}

async function run(flags: ExportFlags): Promise<void> {
  const t0 = performance.now();
  checkPrecisionFlags(flags);
  await initEngine(flags.engine);
  const loaded = await loadModel(flags);
  const { model, arch, head, checkpoint } = loaded;
  try {
    const size = flags.inputSize ?? checkpoint?.inputShape[0] ?? (head === 'binary' ? DEFAULT_PREPROCESSING.size : archInfo(arch).defaultInputSize);
    if (checkpoint && flags.inputSize !== undefined && flags.inputSize !== checkpoint.inputShape[0]) {
      process.stderr.write(
        `nextray export: warning: --input-size ${flags.inputSize} differs from the ${checkpoint.inputShape[0]} px the checkpoint was trained at\n`,
      );
    }
    const preprocessing: Preprocessing = checkpoint && checkpoint.preprocessing.size === size ? checkpoint.preprocessing : makePreprocessing({ ...(checkpoint?.preprocessing ?? {}), size });
    if (flags.threshold !== undefined && head !== 'binary') throw new CliError('--threshold only applies to the binary head');
    const threshold = flags.threshold ?? checkpoint?.decisionThreshold ?? 0.5;
    if (loaded.untrainedHead) {
      process.stderr.write(
        `nextray export: warning: ${loaded.source} has an ImageNet classifier; the binary head is UNTRAINED (seeded random) — for timing and plumbing only\n`,
      );
    }
    let exported;
    let precisionReport: PrecisionReport | undefined;
    const exportOpts = {
      inputSize: size,
      inputLayout: flags.layout,
      dynamicSize: !!flags.dynamicSize,
      foldBatchNorm: flags.foldBn,
      preprocessing,
      decisionThreshold: threshold,
      // The binary head also gets the CAM output, and a checkpoint's temperature and OOD gate (src/calibrate/trust.ts).
      ...(head === 'binary' ? { cam: true } : {}),
      ...(flags.features ? { features: true } : {}),
      ...(head === 'binary' && checkpoint ? (({ decisionThreshold: _t, ...rest }) => rest)(trustExportOptions(checkpoint, join(loaded.source, 'model.json'))) : {}),
      extraMetadata: { weights_source: loaded.source, untrained_head: String(loaded.untrainedHead), ...trainingFacts(loaded.checkpoint) },
      ...(checkpoint && head === 'binary' ? { card: exportCard(checkpoint, loaded.source, threshold) } : {}),
    };
    try {
      if (flags.precision === 'fp32' && !flags.calibration) exported = exportOnnxFile(model, flags.out, exportOpts);
      else ({ exported, report: precisionReport } = await exportWithPrecision(model, flags, exportOpts));
    } catch (err) {
      if (err instanceof FileWriteError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (e.code) throw new CliError(`--out ${flags.out}: cannot write: ${e.message}`);
      throw err;
    }
    const summary: Record<string, unknown> = {
      out: flags.out,
      arch,
      head,
      num_outputs: loaded.numClasses,
      weights: loaded.source,
      untrained_head: loaded.untrainedHead,
      input: {
        name: exported.metadata.input_name,
        layout: exported.metadata.input_layout,
        shape: flags.layout === 'nhwc' ? ['batch', flags.dynamicSize ? 'height' : size, flags.dynamicSize ? 'width' : size, 3] : ['batch', 3, flags.dynamicSize ? 'height' : size, flags.dynamicSize ? 'width' : size],
      },
      outputs: exported.metadata.outputs.split(','),
      input_size: size,
      decision_threshold: head === 'binary' ? threshold : null,
      batchnorm: exported.metadata.batchnorm,
      precision: flags.precision,
      ...(precisionReport?.calibration ? { calibration: precisionReport.calibration, float_layers: precisionReport.floatLayers, quantized_layers: precisionReport.quantizedLayers } : {}),
      bytes: exported.byteLength,
      nodes: exported.nodeCount,
      initializers: exported.initializerCount,
    };
    if (flags.verify) {
      try {
        // fp16 weights move logits by ~1e-3 relative; int8 is checked on real (calibration) images, where its
        // ranges apply, against a looser bound (random noise lies outside the calibrated ranges).
        const bound = flags.precision === 'fp32' ? 1e-4 : flags.precision === 'fp16' ? 1e-2 : 0.1;
        summary.verify = await verify(model, flags.out, size, flags.layout, flags.threads ?? 2, bound, precisionReport?.sampleImages);
      } catch (err) {
        if (err instanceof OnnxModelError) throw new CliError(err.message, 1);
        throw err;
      }
    }
    summary.seconds = Number(((performance.now() - t0) / 1000).toFixed(3));
    const v = summary.verify as { ok: boolean; relative_error: number } | undefined;
    if (flags.json) printJson(summary);
    else {
      process.stdout.write(
        `${arch} (${head} head, ${loaded.numClasses} output${loaded.numClasses === 1 ? '' : 's'}) -> ${flags.out}: ` +
          `${(exported.byteLength / 1e6).toFixed(1)} MB ${flags.precision}, ${exported.nodeCount} nodes, input ${exported.metadata.input_layout} ` +
          `${size}x${size}, outputs ${exported.metadata.outputs}` +
          (v ? `; verified against TF.js: relative error ${v.relative_error.toExponential(2)} (${v.ok ? 'ok' : 'FAILED'})` : '') +
          '\n',
      );
    }
    if (v && !v.ok) {
      process.stderr.write(`nextray export: ONNX Runtime and TF.js disagree (relative error ${v.relative_error} >= ${(v as { bound?: number }).bound ?? 1e-4})\n`);
      process.exitCode = 1;
    }
  } finally {
    model.dispose();
  }
}

/** Usage errors of the precision flags, found before any model is loaded; returns the calibration method. */
function checkPrecisionFlags(flags: ExportFlags): CalibrationMethod | undefined {
  if (flags.precision !== 'int8' && (flags.calibration || flags.calibrationImages !== undefined || flags.calibrationMethod || flags.floatLayers)) {
    throw new CliError('--calibration, --calibration-images, --calibration-method and --float-layers apply to --precision int8 only');
  }
  if (flags.precision === 'int8' && !flags.calibration) {
    throw new CliError('--precision int8 needs --calibration DATA_DIR (a dataset in the MURA layout; its training images set the activation ranges)');
  }
  if (flags.calibration && !existsSync(flags.calibration)) throw new CliError(`--calibration ${flags.calibration}: no such folder`);
  let method: CalibrationMethod | undefined;
  try {
    method = flags.calibrationMethod ? parseCalibrationMethod(flags.calibrationMethod) : undefined;
  } catch (err) {
    throw new CliError(`--calibration-method: ${(err as Error).message}`);
  }
  return method;
}

/** --precision fp16 / int8 (calibrated on --calibration's training images). */
async function exportWithPrecision(model: Model, flags: ExportFlags, exportOpts: Parameters<typeof exportOnnxFile>[2]) {
  const method = checkPrecisionFlags(flags);
  const floatLayers = flags.floatLayers ? flags.floatLayers.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  const progress = flags.precision === 'int8' ? createProgress({ label: 'calibrating', total: flags.calibrationImages ?? 256, quiet: !!flags.json }) : null;
  let last = 0;
  let bad = 0;
  try {
    return await exportOnnxFileWithPrecision(model, flags.out, exportOpts, {
      precision: flags.precision,
      ...(flags.calibration
        ? {
            calibration: datasetCalibrationImages(flags.calibration, {
              onBadImage: (m) => {
                bad++;
                if (bad <= 10) process.stderr.write(`nextray export: calibration: skipped ${m}\n`);
              },
            }),
            runtime: ort,
          }
        : {}),
      ...(flags.calibrationImages !== undefined ? { calibrationImages: flags.calibrationImages } : {}),
      ...(method ? { calibrationMethod: method } : {}),
      ...(floatLayers ? { floatLayers } : {}),
      ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
      onProgress: (done) => {
        progress?.tick(done - last);
        last = done;
      },
    });
  } catch (err) {
    // File-system errors go on to the writer's message; anything else (calibration data, layer names) is reported
    // as itself. Nothing was written: exit 2.
    if ((err as NodeJS.ErrnoException).syscall || err instanceof CliError) throw err;
    throw new CliError((err as Error).message);
  } finally {
    progress?.stop();
  }
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('Export a model (architecture + weights + head) to ONNX for onnxruntime-node / onnxruntime-web.')
    .option('--arch <arch>', `architecture: ${ARCHS.join(', ')} (read from model.json with --checkpoint)`)
    .option('--weights <file>', 'torchvision .pth / .safetensors state_dict (the head follows its classifier)')
    .option('--checkpoint <dir>', 'project checkpoint folder (or a training run directory: its best checkpoint)')
    .requiredOption('--out <model.onnx>', 'where to write the ONNX file (written atomically)')
    .option('--input-size <n>', 'image height = width (default: the checkpoint\'s; else 320 for the binary head, 224 for ImageNet)', parseIntOption('--input-size', 32, 4096))
    .addOption(new Option('--head <kind>', 'imagenet (the weights\' classifier) or binary (MURA: one logit + probability); default: from the weights').choices(['imagenet', 'binary']))
    .addOption(new Option('--layout <layout>', 'input layout: nhwc ([N, H, W, 3], our preprocessing) or nchw ([N, 3, H, W], torchvision)').choices(['nhwc', 'nchw']).default('nhwc'))
    .option('--dynamic-size', 'leave height and width symbolic (any image size; default fixed at --input-size)')
    .option('--no-fold-bn', 'keep BatchNormalization nodes instead of folding them into the convolutions')
    .option('--threshold <p>', 'decision threshold stored with a binary model (default: the checkpoint\'s, else 0.5)', parseFloatOption('--threshold', 0, 1))
    .option('--features', "also output 'features' [batch, C]: the head's input (pooled per image), for `nextray adapt` and the page's site adaptation")
    .option('--verify', 'run the ONNX file and the TF.js model on a random batch; exit 1 unless they agree to 1e-4')
    .option('--threads <n>', 'ONNX Runtime threads for --verify', parseIntOption('--threads', 1, 256))
    .addOption(new Option('--engine <name>', 'TF.js engine that holds the weights (default: NEXTRAY_ENGINE or auto)').choices(['auto', 'cpu', 'native', 'tfjs-node']))
    .addOption(new Option('--precision <p>', 'fp32, fp16 (weights stored as float16, about half the file) or int8 (static QDQ, about a quarter; needs --calibration)').choices([...PRECISIONS]).default('fp32'))
    .option('--calibration <dir>', 'int8: dataset folder (MURA layout) whose training images calibrate the activation ranges')
    .option('--calibration-images <n>', 'int8: how many training images to calibrate on (default 256, a seeded sample)', parseIntOption('--calibration-images', 1, 100000))
    .option('--calibration-method <m>', "int8: 'percentile[-P]' (default percentile-99.99: the [0.01%, 99.99%] range of each tensor's values) or 'minmax'")
    .option('--float-layers <names>', "int8: comma-separated Conv/Gemm layers to keep in float, e.g. 'conv1,fc'")
    .option('--json', 'print a JSON summary')
    .addHelpText(
      'after',
      `
Examples:
  $ nextray export --checkpoint runs/r152 --out r152.onnx --verify
  $ nextray export --arch resnet152 --weights resnet152-394f9c45.pth --out r152-imagenet.onnx --input-size 224 --json
  $ nextray export --checkpoint runs/r152 --out r152-int8.onnx --precision int8 --calibration ~/datasets --calibration-images 256
  $ nextray export --checkpoint runs/r152 --out r152-fp16.onnx --precision fp16
  $ nextray export --checkpoint runs/r152 --out r152.onnx --features
  $ nextray adapt --model r152.onnx --data clinic-studies/ --out r152-clinic.onnx

The file: input 'input' float32 [batch, H, W, 3] (NHWC, normalised per the 'preprocessing' metadata; batch is
dynamic), outputs 'logits' [batch, K] and, for the binary head, 'probability' = sigmoid(logits) [batch, 1];
with --features also 'features' [batch, C] (metadata 'features': dim, pooling, head layer).
metadata_props: format, arch, input_size, input_layout, preprocessing (JSON), head (JSON), decision_threshold,
nextray_version; with --precision also precision and quantization (JSON: method, calibration images, float layers).
int8 files are QDQ: ONNX Runtime runs them with integer kernels (QLinearConv) on x86 and wasm. Run it with OnnxClassifier (src/inference/node/onnx-session.ts) or any ONNX Runtime.
Exit codes: 0 written (and verified with --verify); 1 verification failed; 2 bad arguments or unusable weights.`,
    )
    // Usage errors exit 2 like every other "could not run" case (commander's default is 1, our "verify failed").
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
      throw err;
    })
    .action(async (flags: ExportFlags) => run(flags));
}

/**
 * The model card an export of a checkpoint carries (metadata `model_card`, src/models/card.ts): the checkpoint's,
 * with the data kind and validation metrics trainingFacts finds, and without the operating point when --threshold
 * replaced the threshold it chose.
 */
function exportCard(meta: CheckpointMetadata, source: string, threshold: number): ModelCard {
  const card = cardFromCheckpoint(meta, source.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? source);
  const facts = trainingFacts(meta);
  if (card.dataset && facts.dataset) card.dataset.kind = (JSON.parse(facts.dataset) as { kind: 'mura' | 'synthetic' }).kind;
  if (facts.validation_metrics) {
    const { epoch: _epoch, ...metrics } = JSON.parse(facts.validation_metrics) as Record<string, number>;
    card.training = { ...card.training, validationMetrics: metrics };
  }
  if (card.operatingPoint && card.operatingPoint.threshold !== threshold) delete card.operatingPoint;
  return card;
}

/**
 * What a checkpoint says about its training data and validation scores, for the model card of the web app and the
 * server (metadata `dataset`, `validation_metrics`). `dataset.kind` is 'synthetic' when the data folder carries the
 * generator's synth.json (or 'synth' in its name), else 'mura' (the research-use notice errs on the safe side).
 */
export function trainingFacts(meta: CheckpointMetadata | undefined): Record<string, string> {
  if (!meta) return {};
  const out: Record<string, string> = {};
  const ds = meta.dataset;
  if (ds) {
    const root = typeof ds.root === 'string' ? ds.root : '';
    const synthetic = /synth/i.test(root) || (root !== '' && (existsSync(join(root, 'synth.json')) || existsSync(join(root, '..', 'synth.json'))));
    out.dataset = JSON.stringify({
      kind: synthetic ? 'synthetic' : 'mura',
      name: root.split(/[\\/]/).filter(Boolean).pop() ?? null,
      fingerprint: ds.fingerprint,
      ...(typeof ds.train_images === 'number' ? { train_images: ds.train_images } : {}),
      ...(typeof ds.val_images === 'number' ? { val_images: ds.val_images } : {}),
    });
  }
  const m = (meta.extra as { metrics?: Record<string, unknown> } | undefined)?.metrics;
  if (m) {
    const keep = Object.entries(m).filter(([k, v]) => /^val_/.test(k) && typeof v === 'number');
    if (keep.length) out.validation_metrics = JSON.stringify(Object.fromEntries([['epoch', m.epoch], ...keep]));
  }
  return out;
}
