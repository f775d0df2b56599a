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
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';

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
    last: join(d, 'checkpoints', 'last'),
    best: join(d, 'checkpoints', 'best'),
    summary: join(d, 'summary.json'),
  };
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
        throw new Error(`${path}:${i + 1}: not a JSON line (${(err as Error).message})`);
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
    appendFileSync(this.path, `${new Date().toISOString()} ${msg}\n`);
    this.echo?.(msg);
  }
}

export function writeJson(path: string, value: unknown): void {
  writeJsonAtomic(path, value);
}
