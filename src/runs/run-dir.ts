/**
 * The run directory of one training run, and the only place that knows its layout:
 *
 *   RUN/config.json            the resolved configuration (repeat the run with `nextray train --config RUN/config.json`)
 *   RUN/split.json             the validation/test split used (created from the seed when none was given)
 *   RUN/metrics.jsonl          one JSON object per completed epoch (rewritten from the checkpoint's history)
 *   RUN/train.log              human-readable log, appended
 *   RUN/checkpoints/last/      the state after the last completed epoch: weights, Adam moments, schedule state
 *   RUN/checkpoints/best/      the weights of the epoch with the best validation `selectBy` metric
 *   RUN/summary.json           written when the run ends (finished or stopped early)
 *
 * Every file except the log is written atomically; `checkpoints/last` is the commit point of an epoch.
 * Training writes it (src/train), calibration rewrites the best checkpoint's model.json (src/calibrate), and
 * inference and export read a checkpoint from it (`resolveCheckpointDir`): all through this module.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { EXIT_USAGE, FileWriteError, NextrayError, type NextrayErrorOptions } from '../util/errors.js';

/** A run directory that cannot be used (no checkpoint yet); the message names it. */
export class RunDirError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_RUN_DIR', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'RunDirError';
  }
}

/** The checkpoint folder `which` of run directory `dir` (as given: relative stays relative). */
export function runCheckpoint(dir: string, which: 'best' | 'last'): string {
  return join(dir, 'checkpoints', which);
}

export interface RunPaths {
  dir: string;
  config: string;
  split: string;
  metrics: string;
  log: string;
  last: string;
  best: string;
  summary: string;
}

export function runPaths(dir: string): RunPaths {
  const d = resolve(dir);
  return {
    dir: d,
    config: join(d, 'config.json'),
    split: join(d, 'split.json'),
    metrics: join(d, 'metrics.jsonl'),
    log: join(d, 'train.log'),
    last: runCheckpoint(d, 'last'),
    best: runCheckpoint(d, 'best'),
    summary: join(d, 'summary.json'),
  };
}

/**
 * The checkpoint folder a path means: itself when it holds a model.json, else a run directory's `which` checkpoint
 * (default best), else its other one. A run without any checkpoint is an error; anything else is returned as it is
 * (the checkpoint reader then names what is missing).
 */
export function resolveCheckpointDir(path: string, which: 'best' | 'last' = 'best'): string {
  const dir = resolve(path);
  if (existsSync(join(dir, 'model.json'))) return dir;
  if (existsSync(join(dir, 'checkpoints'))) {
    const [first, second] = which === 'best' ? [runCheckpoint(dir, 'best'), runCheckpoint(dir, 'last')] : [runCheckpoint(dir, 'last'), runCheckpoint(dir, 'best')];
    if (existsSync(join(first, 'model.json'))) return first;
    if (existsSync(join(second, 'model.json'))) return second;
    throw new RunDirError(`${path}: the run has no checkpoint yet (no completed epoch)`);
  }
  return dir; // loadCheckpoint names what is missing
}

/** One line of metrics.jsonl. Validation metrics are image-level at threshold 0.5. */
export interface EpochMetrics {
  /** 1-based epoch number. */
  epoch: number;
  /** Mean training loss over the epoch's images (the configured loss, without the L2 term). */
  train_loss: number;
  /** Accuracy of the training-mode outputs (dropout on) during the epoch, as Keras reports it. */
  train_accuracy: number;
  val_loss: number;
  val_accuracy: number;
  val_recall: number | null;
  val_auc: number | null;
  /**
   * Validation study-level Cohen's kappa at the threshold that maximises it (the operating point `calibrate` would
   * choose on these probabilities), and that threshold; null when the validation studies hold one class.
   */
  val_kappa?: number | null;
  val_threshold?: number | null;
  /** Validation image NLL after temperature scaling fitted on the validation logits (calibration-aware loss). */
  val_nll_t?: number;
  /** Learning rate used during this epoch. */
  lr: number;
  seconds: number;
  images_per_second: number;
  train_images: number;
  val_images: number;
  /** Images found unusable so far (skipped). */
  bad_images: number;
  /** Whether this epoch became the best checkpoint. */
  best: boolean;
  /** What the training steps' convolutions computed in ('bf16' only where asked for and the CPU has it). */
  precision?: 'fp32' | 'bf16';
  /**
   * With the frozen-feature cache in play (src/train/feature-cache/): training samples of this epoch whose frozen
   * prefix output was read from the cache, and those computed in the step; the same for the validation pass.
   */
  features_cached?: number;
  features_computed?: number;
  val_features_cached?: number;
  val_features_computed?: number;
}

export function writeMetricsFile(path: string, history: readonly EpochMetrics[]): void {
  writeFileAtomic(path, history.map((m) => JSON.stringify(m)).join('\n') + (history.length ? '\n' : ''));
}

export function readMetricsFile(path: string): EpochMetrics[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as EpochMetrics;
      } catch (err) {
        throw new RunDirError(`${path}:${i + 1}: not a JSON line (${(err as Error).message})`);
      }
    });
}

export class RunLog {
  constructor(
    private readonly path: string,
    private readonly echo: ((line: string) => void) | null,
  ) {
    mkdirSync(resolve(path, '..'), { recursive: true });
  }
  line(msg: string): void {
    try {
      appendFileSync(this.path, `${new Date().toISOString()} ${msg}\n`);
    } catch (err) {
      throw new FileWriteError(this.path, err);
    }
    this.echo?.(msg);
  }
}

export function writeJson(path: string, value: unknown): void {
  writeJsonAtomic(path, value);
}
