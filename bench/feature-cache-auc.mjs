#!/usr/bin/env node
/**
 * What fp16 feature storage costs in accuracy: the demo-sized task with a frozen prefix, stage 2 trained once with
 * fp32 and once with fp16 cached features per seed, compared by held-out test study AUC. The recipe
 * (docs/feature-cache.md, "Exactness"), every step a `nextray` child process (the CLI a user runs):
 *
 *   1. data     nextray synth --studies 3000 --size 128 --seed 7 (the demo's data)
 *               nextray data split --val-fraction 0.5 --seed 7 (the demo's validation/test split; one file for all)
 *   2. stage 1  resnet-slim from scratch, nothing frozen, the demo's hyperparameters, --stage1-epochs (8) epochs:
 *               the prefix's "pretrained" weights
 *   3. stage 2  per seed and per --feature-precision fp32 / fp16: --weights stage1/checkpoints/best/model.safetensors
 *               (the stage-1 network with its classifier replaced by a new head), --frozen 7 of 10 layers (stem and
 *               the first three blocks, cached), --stage2-epochs (6) epochs, one --feature-cache folder for all runs
 *               (fp32 and fp16 are separate key-sets inside it; the seeds share each, since the seed is not part of
 *               the key when the weights come from a file)
 *   4. score    nextray evaluate --model RUN --split test --bootstrap 0 --json: study-level AUC of the best checkpoint
 *
 * Prints one JSON report on stdout: per seed the fp32 and fp16 test study AUC, |diff| and whether it is <= 0.005,
 * plus the load average and seconds of each step. Progress goes to stderr. AUC does not depend on machine load.
 *
 *   npm run build && node bench/feature-cache-auc.mjs [--work DIR] [--seeds 1,2] [--studies 3000] [--size 128]
 *       [--stage1-epochs 8] [--stage2-epochs 6] [--engine auto]
 * --work keeps the data, runs and cache (default: a temporary folder, removed at the end); with an existing --work
 * the data, stage 1 and every stage-2 run already scored are reused, so an interrupted bench continues.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values: a } = parseArgs({
  options: {
    work: { type: 'string' },
    seeds: { type: 'string', default: '1,2' },
    studies: { type: 'string', default: '3000' },
    size: { type: 'string', default: '128' },
    'stage1-epochs': { type: 'string', default: '8' },
    'stage2-epochs': { type: 'string', default: '6' },
    engine: { type: 'string', default: 'auto' },
    tolerance: { type: 'string', default: '0.005' },
  },
});

const cli = fileURLToPath(new URL('../bin/nextray.js', import.meta.url));
const keep = a.work !== undefined;
const work = resolve(a.work ?? mkdtempSync(join(tmpdir(), 'nextray-fc-auc-')));
mkdirSync(work, { recursive: true });
const data = join(work, 'data');
const split = join(work, 'split.json');
const cache = join(work, 'features');
const seeds = a.seeds.split(',').map(Number);
const tolerance = Number(a.tolerance);
const steps = [];

/** Runs `nextray ...args`; a failure stops the bench with the child's last output. */
function nextray(label, args) {
  const t0 = Date.now();
  process.stderr.write(`feature-cache-auc: ${label}: nextray ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = (Date.now() - t0) / 1000;
  steps.push({ step: label, seconds: Math.round(seconds * 10) / 10, load: loadavg().map((x) => Math.round(x * 100) / 100) });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}\n`);
    throw new Error(`${label}: nextray ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  }
  process.stderr.write(`feature-cache-auc: ${label}: ${seconds.toFixed(1)} s\n`);
  return r.stdout;
}

// The demo's hyperparameters (src/workflows/demo.ts DEMO_DEFAULTS.train), shared by both stages.
const common = (seed) => [
  '--data', data, '--split', split, '--arch', 'resnet-slim', '--input-size', a.size, '--lr', '3e-3', '--l2', '1e-4',
  '--dropout', '0.2', '--batch-size', '32', '--hflip', '--rotation', '0', '--loss', 'bce', '--plateau-patience', '2',
  '--early-stop', '0', '--select-by', 'auc', '--seed', String(seed), '--engine', a.engine, '--no-trust', '--quiet',
];

/** Test study-level AUC of a run's best checkpoint. */
function testAuc(label, run) {
  const out = join(run, 'eval-test.json');
  nextray(label, ['evaluate', '--model', run, '--data', data, '--split', 'test', '--bootstrap', '0', '--json', out, '--quiet']);
  const m = JSON.parse(readFileSync(out, 'utf8'));
  const auc = m?.study?.overall?.auc;
  if (typeof auc !== 'number') throw new Error(`${out}: no study-level AUC found (keys: ${Object.keys(m).join(', ')})`);
  return auc;
}

try {
  if (!existsSync(join(data, 'MURA-v1.1'))) {
    nextray('synth', ['synth', '--out', data, '--studies', a.studies, '--size', a.size, '--seed', '7', '--quiet']);
  }
  if (!existsSync(split)) nextray('split', ['data', 'split', data, '--val-fraction', '0.5', '--seed', '7', '--out', split, '--quiet']);
  const stage1 = join(work, 'stage1');
  const weights = join(stage1, 'checkpoints', 'best', 'model.safetensors');
  if (!existsSync(weights)) {
    rmSync(stage1, { recursive: true, force: true });
    nextray('stage 1', ['train', ...common(7), '--frozen', '0', '--epochs', a['stage1-epochs'], '--no-feature-cache', '--out', stage1]);
  }
  const stage1Auc = testAuc('stage 1 evaluate', stage1);
  const rows = [];
  for (const seed of seeds) {
    const auc = {};
    for (const precision of ['fp32', 'fp16']) {
      const run = join(work, `stage2-seed${seed}-${precision}`);
      // A run finished and scored by an earlier call with the same --work is reused (an interrupted one is redone).
      const scored = join(run, 'eval-test.json');
      if (existsSync(scored) && existsSync(join(run, 'summary.json'))) {
        auc[precision] = JSON.parse(readFileSync(scored, 'utf8')).study.overall.auc;
        continue;
      }
      rmSync(run, { recursive: true, force: true });
      nextray(`stage 2 seed ${seed} ${precision}`, [
        'train', ...common(seed), '--weights', weights, '--frozen', '7', '--epochs', a['stage2-epochs'],
        '--feature-cache', cache, '--feature-precision', precision, '--out', run,
      ]);
      auc[precision] = testAuc(`stage 2 seed ${seed} ${precision} evaluate`, run);
    }
    const diff = Math.abs(auc.fp32 - auc.fp16);
    rows.push({ seed, fp32_auc: auc.fp32, fp16_auc: auc.fp16, abs_diff: diff, within_tolerance: diff <= tolerance });
  }
  const report = {
    bench: 'feature-cache-auc',
    recipe: {
      studies: Number(a.studies), size: Number(a.size), arch: 'resnet-slim', stage1_epochs: Number(a['stage1-epochs']),
      stage2_epochs: Number(a['stage2-epochs']), frozen: 7, layers: 10, engine: a.engine, split_seed: 7, val_fraction: 0.5,
    },
    tolerance,
    stage1_test_study_auc: stage1Auc,
    seeds: rows,
    all_within_tolerance: rows.every((r) => r.within_tolerance),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model },
    steps,
    work: keep ? work : null,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}
