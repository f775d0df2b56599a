/**
 * `nextray train`: train a model into a run directory (config, split, metrics.jsonl, best/last checkpoints, log),
 * or continue one with `--resume RUN`. Options come from flags and/or a JSON config file (--config); every
 * config field has a flag. A thin face over src/train/trainer.ts.
 */
import { Command, Option } from 'commander';
import { CONFIG_FLAGS, DEFAULT_CONFIG, LOSS_KINDS_FOR_CLI, SELECT_METRICS, readConfigFile, resolveConfig, type TrainConfig } from '../train/config.js';
import { resume, train, type TrainResult } from '../train/trainer.js';
import { trainableArchs } from '../train/archs.js';
import { CliError, parseFloatOption, parseIntOption } from './common.js';
import { existsSync, readFileSync } from 'node:fs';
import { EXIT_FAILURE, FileWriteError, NextrayError } from '../util/errors.js';
import { join, resolve } from 'node:path';
import { fitTrust } from '../calibrate/trust.js';
import { runCheckpoint } from '../runs/run-dir.js';

interface TrainFlags {
  config?: string;
  out?: string;
  resume?: string;
  quiet?: boolean;
  json?: boolean;
  [k: string]: unknown;
}

/** Flag values that map one-to-one onto config fields (commander camelCases the flag names). */
const FLAG_TO_FIELD: Record<string, keyof TrainConfig> = {
  data: 'data',
  split: 'split',
  valFraction: 'valFraction',
  arch: 'arch',
  weights: 'weights',
  inputSize: 'inputSize',
  resize: 'resize',
  dropout: 'dropout',
  l2: 'l2',
  frozen: 'frozenLayers',
  batchSize: 'batchSize',
  lr: 'lr',
  beta1: 'beta1',
  beta2: 'beta2',
  epsilon: 'epsilon',
  epochs: 'epochs',
  hflip: 'hflip',
  rotation: 'rotation',
  loss: 'loss',
  regionWeights: 'regionWeights',
  plateauPatience: 'plateauPatience',
  earlyStop: 'earlyStopPatience',
  selectBy: 'selectBy',
  seed: 'seed',
  engine: 'engine',
  precision: 'precision',
  workers: 'workers',
  cacheMb: 'cacheMb',
  maxTrainImages: 'maxTrainImages',
  maxValImages: 'maxValImages',
  featureCache: 'featureCache',
  featurePrecision: 'featurePrecision',
};

/** Adds every config flag to a command (shared with `nextray sweep`, which takes base values the same way). */
export function addConfigOptions(cmd: Command): Command {
  const d = DEFAULT_CONFIG;
  return cmd
    .option('--data <dir>', 'dataset folder in the MURA-v1.1 layout (real or synthetic)')
    .option('--split <file>', 'split file from `nextray data split` (default: created from --seed and saved in the run)')
    .option('--val-fraction <f>', `validation share of MURA valid when the split is created (default ${d.valFraction})`, parseFloatOption('--val-fraction', 0, 1))
    .option('--arch <name>', `architecture: ${trainableArchs().join(', ')} (default ${d.arch})`)
    .option('--weights <file>', 'starting weights: torchvision ImageNet .pth or .safetensors (default: from scratch)')
    .option('--input-size <px>', `input size in pixels (default ${d.inputSize})`, parseIntOption('--input-size', 32, 4096))
    .addOption(new Option('--resize <mode>', `keep aspect by padding, or stretch (default ${d.resize})`).choices(['pad', 'stretch']))
    .option('--dropout <p>', `dropout before the dense layer (default ${d.dropout})`, parseFloatOption('--dropout', 0, 0.999))
    .option('--l2 <factor>', `Keras-style L2 on the head's kernel: loss += factor * sum(w^2) (default ${d.l2})`, parseFloatOption('--l2', 0))
    .option('--frozen <n>', `freeze the first n layers (default ${d.frozenLayers})`, parseIntOption('--frozen', 0))
    .option('--batch-size <n>', `images per batch (default ${d.batchSize})`, parseIntOption('--batch-size', 1, 4096))
    .option('--lr <rate>', `Adam learning rate (default ${d.lr})`, parseFloatOption('--lr', 0))
    .option('--beta1 <b>', `Adam beta1 (default ${d.beta1})`, parseFloatOption('--beta1', 0, 0.999999))
    .option('--beta2 <b>', `Adam beta2 (default ${d.beta2})`, parseFloatOption('--beta2', 0, 0.999999))
    .option('--epsilon <e>', `Adam epsilon (default ${d.epsilon})`, parseFloatOption('--epsilon', 0))
    .option('--epochs <n>', `epochs (default ${d.epochs})`, parseIntOption('--epochs', 1))
    .option('--hflip', 'random horizontal flips (default on)')
    .option('--no-hflip', 'no horizontal flips')
    .option('--rotation <deg>', `random rotation up to +/- deg (default ${d.rotation})`, parseFloatOption('--rotation', 0, 180))
    .addOption(new Option('--loss <kind>', `loss (default ${d.loss}); mura-weighted: MURA paper's per-region class weights`).choices([...LOSS_KINDS_FOR_CLI]))
    .option('--region-weights <w>', "for --loss region-weighted: 'validation' (derived each epoch) or XR_WRIST=2,XR_HAND=1.5")
    .option('--plateau-patience <n>', `divide lr by 10 after n epochs without lower validation loss; 0 = never (default ${d.plateauPatience})`, parseIntOption('--plateau-patience', 0))
    .option('--early-stop <n>', `stop after n epochs without improving --select-by; 0 = never (default ${d.earlyStopPatience})`, parseIntOption('--early-stop', 0))
    .addOption(new Option('--select-by <metric>', `validation metric for the best checkpoint (default ${d.selectBy})`).choices([...SELECT_METRICS]))
    .option('--seed <n>', `seed for init, split, order, augmentation, dropout (default ${d.seed})`, parseIntOption('--seed', 0, 2 ** 32 - 1))
    .addOption(new Option('--engine <name>', `compute engine (default ${d.engine})`).choices(['auto', 'cpu', 'native', 'tfjs-node']))
    .addOption(new Option('--precision <p>', `convolutions in training steps: bf16 on CPUs with avx512_core_bf16/AMX (weights and Adam stay float32), else float32 (default ${d.precision})`).choices(['fp32', 'bf16']))
    .option('--workers <n>', `image-decoding threads (default ${d.workers})`, parseIntOption('--workers', 0, 64))
    .option('--cache-mb <n>', `memory for decoded images kept across epochs, MiB; 0 = decode every epoch (default ${d.cacheMb})`, parseIntOption('--cache-mb', 0))
    .option('--max-train-images <n>', 'use a seeded random subset of at most n training images (0 = all)', parseIntOption('--max-train-images', 0))
    .option('--max-val-images <n>', 'use a seeded random subset of at most n validation images (0 = all)', parseIntOption('--max-val-images', 0))
    .option(
      '--feature-cache <dir>',
      'cache the frozen prefix\'s output in this folder and read it back in later epochs, runs and sweep configs (default: ' +
        'nextray-features beside the dataset\'s MURA-v1.1 folder, else ~/.cache/nextray/features; see docs/feature-cache.md)',
    )
    .option('--no-feature-cache', 'never cache the frozen prefix\'s output (compute it in every step)')
    .addOption(new Option('--feature-precision <p>', `how cached features are stored: fp16 (half the disk) or fp32 (exact) (default ${d.featurePrecision})`).choices(['fp16', 'fp32']));
}

/** The config fields given as flags (commander option values renamed to config fields). */
export function flagValues(opts: Record<string, unknown>, cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(FLAG_TO_FIELD)) {
    const v = opts[flag];
    if (v === undefined) continue;
    // commander gives --no-hflip's default (true) even when neither flag was used; only explicit values count.
    if ((flag === 'hflip' || flag === 'featureCache') && cmd.getOptionValueSource(flag) !== 'cli') continue;
    // A cache folder is stored absolute in config.json, so `--resume` from another folder finds the same cache.
    out[field] = flag === 'featureCache' ? (v === false ? 'off' : v === 'auto' || v === 'off' ? v : resolve(String(v))) : v;
  }
  return out;
}

export function printEpochJson(m: unknown): void {
  process.stdout.write(JSON.stringify(m) + '\n');
}

function finish(result: TrainResult, json: boolean, quiet: boolean): void {
  const s = result.state;
  if (!json && !quiet) {
    const best = s.bestEpoch ? s.history[s.bestEpoch - 1] : undefined;
    process.stdout.write(
      `run ${result.runDir}: ${s.epochsDone} epoch(s)${s.stoppedEarly ? ' (stopped early)' : ''}` +
        (best ? `; best epoch ${best.epoch}: val recall ${best.val_recall?.toFixed(3) ?? '-'}, AUC ${best.val_auc?.toFixed(3) ?? '-'}, accuracy ${best.val_accuracy.toFixed(3)}` : '') +
        `\ncheckpoints: ${result.runDir}/checkpoints/{best,last}\n`,
    );
  }
  if (result.badImages.length) {
    process.stderr.write(`nextray: ${result.badImages.length} image(s) could not be used and were skipped (see ${result.runDir}/train.log)\n`);
    process.exitCode = 1;
  }
}

/** Whether the run's best checkpoint holds a fitted OOD gate / temperature (model.json extra.trust). */
function hasTrust(runDir: string): boolean {
  try {
    const meta = JSON.parse(readFileSync(join(runCheckpoint(runDir, 'best'), 'model.json'), 'utf8')) as { extra?: { trust?: unknown } };
    return meta.extra?.trust !== undefined;
  } catch {
    return false;
  }
}

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'Train a model: Adam on BCE (or the MURA paper\'s weighted BCE) + L2 on the head, validation every epoch, lr / 10 on plateau, ' +
        'early stopping, best/last checkpoints. Defaults are the seed report\'s chosen model (ResNet-152, lr 1e-5, L2 0.1, dropout 0.5, ' +
        '148 frozen, batch 16, hflip). Ctrl-C or a kill at any moment: `--resume RUN` continues with the same result.',
    )
    .option('--config <file>', 'JSON config file (fields as in RUN/config.json; flags override it)')
    .option('--out <dir>', 'run directory to create')
    .option('--resume <run>', 'continue the run in this directory from its last completed epoch')
    .option('-q, --quiet', 'no progress bar or log on stderr')
    .option('--json', 'print one JSON line of metrics per epoch on stdout')
    .option('--target-sensitivity <s>', 'when training ends, store the study-level threshold reaching this validation sensitivity (default: the maximum-kappa threshold)', parseFloatOption('--target-sensitivity', 0, 1))
    .option('--no-trust', 'skip fitting the decision threshold, temperature and OOD gate on validation when training ends (nextray calibrate does it later)');
  addConfigOptions(cmd);
  cmd.addHelpText(
    'after',
    `\nExamples:\n  nextray train --data ./synth --arch resnet-slim --input-size 64 --frozen 0 --lr 1e-3 --l2 0 --epochs 5 --out runs/slim\n` +
      `  nextray train --config my.json --out runs/r152        # the seed's recipe with overrides from my.json\n` +
      `  nextray train --resume runs/r152                      # after a crash or kill\n` +
      `  nextray train --config my.json --precision bf16 --out runs/bf16  # bf16 convolutions (avx512_core_bf16/AMX CPUs)\n` +
      `  nextray train --config my.json --feature-cache /scratch/features --out runs/r152b  # frozen-prefix outputs cached there\n` +
      `  nextray train --config my.json --feature-precision fp32 --out runs/r152c  # cached features exact (twice the disk)\n\n` +
      `Exit codes: 0 trained; 1 images skipped as unusable, or fitting the OOD gate/temperature failed (the run is\n` +
      `complete), or a feature-cache folder failed (disk full); 2 usage error or unusable input (config, dataset,\n` +
      `a --feature-cache folder that cannot serve this run, e.g. features beyond the float16 range: use fp32).\n\n` +
      `Config fields and their flags: ${Object.entries(CONFIG_FLAGS).map(([k, f]) => `${k} (${f})`).join(', ')}.\n`,
  );
  cmd.action(async (opts: TrainFlags) => {
    const json = !!opts.json;
    const quiet = !!opts.quiet || json;
    let result: TrainResult;
    try {
      if (opts.resume) {
        const given = Object.keys(flagValues(opts, cmd));
        if (given.length || opts.config || opts.out) {
          throw new CliError(`--resume continues a run with its own config.json; do not combine it with --config, --out or config flags (${given.join(', ')})`);
        }
        result = await resume(opts.resume, { quiet, ...(json ? { onEpoch: printEpochJson } : {}) });
        if (result.alreadyDone && !quiet) process.stdout.write(`run ${result.runDir} had already finished (${result.state.epochsDone} epochs)\n`);
      } else {
        if (!opts.out) throw new CliError('give --out DIR for the new run directory (or --resume RUN to continue one)');
        const layers: { values: Record<string, unknown>; source: string }[] = [];
        if (opts.config) layers.push({ values: readConfigFile(opts.config), source: opts.config });
        layers.push({ values: flagValues(opts, cmd), source: 'command line' });
        const config = resolveConfig(layers);
        result = await train(config, { runDir: opts.out, quiet, ...(json ? { onEpoch: printEpochJson } : {}) });
      }
    } catch (err) {
      // A full disk mid-run: what was committed stands, and --resume continues from it (a plain rerun would refuse
      // the run folder as taken).
      const runDir = opts.resume ?? opts.out;
      if (err instanceof FileWriteError && err.exitStatus === EXIT_FAILURE && runDir && existsSync(join(runDir, 'config.json'))) {
        throw new NextrayError(err.message, { code: err.code, exitStatus: err.exitStatus, hint: `free some space, then continue with nextray train --resume ${runDir}`, cause: err });
      }
      throw err;
    }
    finish(result, json, quiet);
    // When training ends: OOD gate (train), temperature (validation), operating point (src/calibrate/trust.ts). Also on
    // --resume of a finished run whose fit never completed (killed during it): resume ends where a whole run ends.
    if (opts.trust !== false && result.state.bestEpoch && (!result.alreadyDone || !hasTrust(result.runDir))) {
      const cfg = JSON.parse(readFileSync(join(result.runDir, 'config.json'), 'utf8')) as { data: string };
      try {
        await fitTrust(result.runDir, {
          data: cfg.data,
          // A seeded 5,000-image sample bounds the extra pass on big datasets/models (ResNet-152 on all of MURA's
          // 36,808 training images would add hours on a CPU); `nextray calibrate` uses every image by default.
          maxTrainImages: 5000,
          ...(opts.targetSensitivity !== undefined ? { targetSensitivity: opts.targetSensitivity as number } : {}),
          ...(quiet ? {} : { onLog: (l: string) => process.stderr.write(l + '\n') }),
        });
      } catch (err) {
        // The trained model stands; only its calibration / OOD gate / operating point is missing.
        process.stderr.write(`nextray: fitting the OOD gate and temperature failed: ${(err as Error).message} (the run is complete; retry with nextray calibrate)\n`);
        process.exitCode = 1;
      }
    }
  });
}
