/**
 * Hyper-parameter sweeps: a grid file (JSON object; a field whose value is a list is a grid axis, any other value
 * is fixed) -> the cartesian product of configs -> one sub-run directory each under the sweep folder -> the seed
 * report's Table 1 (model, L2, dropout, frozen layers, augmentation, batch size, train accuracy, validation
 * accuracy, variance = train - validation accuracy, validation recall) as Markdown and CSV, one row per run.
 *
 * Resumable: a finished sub-run is skipped, a half-done one resumes from its last checkpoint (trainer.ts), so
 * re-running the same command after a kill finishes the sweep with the results an uninterrupted sweep gives.
 * A failing sub-run is recorded and the sweep goes on with the others.
 *
 * Configurations that share a frozen prefix (architecture, starting weights, frozen layers, input size and resize,
 * engine and precision: everything the feature cache keys on, src/train/feature-cache/key.ts) share one feature
 * cache: the first of them extracts the prefix's output, the others read it (L2, dropout, learning rate, batch size
 * and epochs do not touch the prefix). An interrupted extraction resumes with the sweep.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { ConfigError, experimentKey, resolveConfig, type TrainConfig } from './config.js';
import { resume, train, type TrainResult } from './trainer.js';
import { readMetricsFile, runPaths, writeJson, type EpochMetrics } from '../runs/run-dir.js';
import { checkFeatureCacheConfig, sharedPrefixes } from './feature-cache/session.js';
import { csvField } from '../util/csv.js';

export interface Grid {
  /** Axes in file order: field -> values. */
  axes: [string, unknown[]][];
  /** Fields fixed for every run. */
  fixed: Record<string, unknown>;
}

/** Parses a grid file's JSON. Empty lists and non-object files are errors naming the file. */
export function parseGrid(value: unknown, source: string): Grid {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${source}: a grid file is a JSON object like {"l2": [0, 0.1], "dropout": [0.2, 0.5]}`);
  const axes: [string, unknown[]][] = [];
  const fixed: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (Array.isArray(v)) {
      if (!v.length) throw new ConfigError(`${source}: grid axis '${k}' is an empty list`);
      axes.push([k, v]);
    } else fixed[k] = v;
  }
  return { axes, fixed };
}

export function readGridFile(path: string): Grid {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the grid file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return parseGrid(JSON.parse(text), path);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/** The cartesian product of the axes, first axis varying slowest; each point as field -> value. */
export function expandGrid(grid: Grid): Record<string, unknown>[] {
  let points: Record<string, unknown>[] = [{}];
  for (const [k, values] of grid.axes) points = points.flatMap((p) => values.map((v) => ({ ...p, [k]: v })));
  return points;
}

function slug(point: Record<string, unknown>): string {
  const s = Object.entries(point)
    .map(([k, v]) => `${k}-${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join('_')
    .replace(/[^A-Za-z0-9._-]+/g, '');
  return s.slice(0, 80);
}

/** One row of Table 1. Accuracies and recall are those of the run's best epoch (the checkpoint it keeps). */
export interface SweepRow {
  run: string;
  model: string;
  l2: number;
  dropout: number;
  frozen: number;
  augmentation: string;
  batch_size: number;
  train_accuracy: number | null;
  val_accuracy: number | null;
  variance: number | null;
  val_recall: number | null;
  best_epoch: number | null;
  epochs: number;
  status: 'done' | 'failed';
  error?: string;
}

function augmentationLabel(c: TrainConfig): string {
  const parts: string[] = [];
  if (c.hflip) parts.push('hflip');
  if (c.rotation > 0) parts.push(`rotate ±${c.rotation}°`);
  return parts.length ? parts.join(' + ') : 'none';
}

function rowFor(name: string, config: TrainConfig, history: EpochMetrics[], bestEpoch: number | null): SweepRow {
  const best = bestEpoch ? history.find((m) => m.epoch === bestEpoch) : undefined;
  return {
    run: name,
    model: config.arch,
    l2: config.l2,
    dropout: config.dropout,
    frozen: config.frozenLayers,
    augmentation: augmentationLabel(config),
    batch_size: config.batchSize,
    train_accuracy: best?.train_accuracy ?? null,
    val_accuracy: best?.val_accuracy ?? null,
    variance: best ? best.train_accuracy - best.val_accuracy : null,
    val_recall: best?.val_recall ?? null,
    best_epoch: bestEpoch,
    epochs: history.length,
    status: 'done',
  };
}

const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)}%`);

export function table1Markdown(rows: readonly SweepRow[]): string {
  const head =
    '| Run | Model | L2 | Dropout | Frozen layers | Augmentation | Batch size | Train accuracy | Validation accuracy | Variance (train − val) | Validation recall |\n' +
    '|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n';
  return (
    head +
    rows
      .map((r) =>
        r.status === 'failed'
          ? `| ${r.run} | ${r.model} | ${r.l2} | ${r.dropout} | ${r.frozen} | ${r.augmentation} | ${r.batch_size} | failed: ${(r.error ?? '').replace(/\|/g, '/').slice(0, 80)} | | | |`
          : `| ${r.run} | ${r.model} | ${r.l2} | ${r.dropout} | ${r.frozen} | ${r.augmentation} | ${r.batch_size} | ${pct(r.train_accuracy)} | ${pct(r.val_accuracy)} | ${r.variance === null ? '–' : `${(r.variance * 100).toFixed(1)} pp`} | ${pct(r.val_recall)} |`,
      )
      .join('\n') +
    '\n\nAccuracies and recall are image-level, at the best epoch by the run\'s selection metric; train accuracy is measured during the epoch (dropout and augmentation on, as Keras reports it).\n'
  );
}

export function table1Csv(rows: readonly SweepRow[]): string {
  const cols: (keyof SweepRow)[] = ['run', 'model', 'l2', 'dropout', 'frozen', 'augmentation', 'batch_size', 'train_accuracy', 'val_accuracy', 'variance', 'val_recall', 'best_epoch', 'epochs', 'status', 'error'];
  return [cols.join(','), ...rows.map((r) => cols.map((c) => csvField(r[c])).join(','))].join('\n') + '\n';
}

export interface SweepOptions {
  outDir: string;
  /** Base values (flags of `nextray sweep`), under the grid's fixed fields and axes. */
  base: Record<string, unknown>;
  quiet?: boolean;
  onRunDone?: (row: SweepRow) => void;
  echo?: ((line: string) => void) | null;
}

export interface SweepResult {
  rows: SweepRow[];
  markdown: string;
  csv: string;
  failed: number;
}

/** Runs (or resumes) every config of the grid and writes table1.md / table1.csv / sweep.json to outDir. */
export async function runSweep(grid: Grid, gridSource: string, opts: SweepOptions): Promise<SweepResult> {
  const out = resolve(opts.outDir);
  const points = expandGrid(grid);
  // Resolve every config up front: a typo in the grid fails before hours of training.
  const configs = points.map((p) =>
    resolveConfig([
      { values: opts.base, source: 'command line' },
      { values: grid.fixed, source: gridSource },
      { values: p, source: gridSource },
    ]),
  );
  // A configuration naming a cache folder it cannot use exactly is a usage error before anything runs.
  configs.forEach(checkFeatureCacheConfig);
  const rows: SweepRow[] = [];
  const echo = opts.echo !== undefined ? opts.echo : opts.quiet ? null : (l: string) => process.stderr.write(l + '\n');
  const shared = sharedPrefixes(configs);
  if (shared) echo?.(`sweep: ${shared}`);
  for (let i = 0; i < configs.length; i++) {
    const config = configs[i]!;
    const name = `run-${String(i + 1).padStart(3, '0')}${Object.keys(points[i]!).length ? '_' + slug(points[i]!) : ''}`;
    const dir = join(out, name);
    const paths = runPaths(dir);
    echo?.(`sweep: ${name} (${i + 1}/${configs.length})`);
    try {
      let result: TrainResult;
      if (existsSync(paths.config)) {
        const existing = JSON.parse(readFileSync(paths.config, 'utf8')) as TrainConfig;
        if (JSON.stringify(experimentKey(resolveConfig([{ values: existing as unknown as Record<string, unknown>, source: paths.config }]))) !== JSON.stringify(experimentKey(config))) {
          throw new ConfigError(`${dir} holds a run with a different config than the grid now asks for; move it away or use another --out`);
        }
        result = await resume(dir, { quiet: !!opts.quiet, echo: null });
      } else {
        result = await train(config, { runDir: dir, quiet: !!opts.quiet, echo: null });
      }
      const history = result.state.history.length ? result.state.history : readMetricsFile(paths.metrics);
      const row = rowFor(name, config, history, result.state.bestEpoch);
      rows.push(row);
      opts.onRunDone?.(row);
    } catch (err) {
      const row: SweepRow = { ...rowFor(name, config, [], null), status: 'failed', error: (err as Error).message };
      rows.push(row);
      echo?.(`sweep: ${name} failed: ${(err as Error).message}`);
      opts.onRunDone?.(row);
    }
    // Tables after every run, so a long sweep shows partial results.
    writeFileAtomic(join(out, 'table1.md'), table1Markdown(rows));
    writeFileAtomic(join(out, 'table1.csv'), table1Csv(rows));
  }
  writeJson(join(out, 'sweep.json'), { grid: gridSource, runs: rows });
  return { rows, markdown: table1Markdown(rows), csv: table1Csv(rows), failed: rows.filter((r) => r.status === 'failed').length };
}
