/**
 * End to end through the real CLI on a tiny learnable MURA-layout dataset: train 2 epochs; kill a second run after
 * its first epoch and resume it -> bitwise the same final weights and optimiser state as the uninterrupted run; a
 * third one killed at seeded random moments (three kills) and resumed -> the same, with no temporary litter;
 * evaluate the trained model's test-split predictions; a two-config sweep (and its resume); config errors.
 * Needs `npm run build` first (runCli runs dist/).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { writeTinyDataset } from './fixture.js';
import { predictSplit } from '../../src/inference/node/records.js';
import { initEngine } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { writeSafetensorsFile } from '../../src/models/weights/files.js';
import { loadCheckpoint } from '../../src/models/weights/index.js';
import { Rng } from '../../src/util/rng.js';
import { killNine, tempLitter } from '../helpers/faults.js';

const tmp = tempDir('nextray-train-cli-');
const data = join(tmp.dir, 'data');
// Small and fast: 32 px, a 10-layer slim ResNet, in-process decoding.
const ENGINE: string[] = []; // the default engine (native where built); resume must be bitwise on whichever it is
const base = ['--data', data, '--arch', 'resnet-slim', '--input-size', '32', '--frozen', '0', '--lr', '0.003', '--l2', '0.01', '--dropout', '0.3', '--batch-size', '8', '--workers', '0', '--seed', '5', '--rotation', '10', '--select-by', 'auc', ...ENGINE];

before(async () => {
  await writeTinyDataset(data, { trainPatients: 16, validPatients: 28, size: 40 });
});
after(() => tmp.cleanup());

const lines = (s: string) => s.split('\n').filter((l) => l.trim());
const withoutTiming = (m: Record<string, unknown>) => {
  const { seconds: _s, images_per_second: _i, ...rest } = m;
  return rest;
};

test('train 2 epochs: run directory with config, split, metrics, best/last checkpoints, log; --json lines', () => {
  const run = join(tmp.dir, 'runA');
  const r = runCli(['train', ...base, '--epochs', '2', '--out', run, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(out.length, 2);
  assert.deepEqual(out.map((m) => m.epoch), [1, 2]);
  for (const m of out) for (const k of ['train_loss', 'val_loss', 'val_accuracy', 'val_recall', 'val_auc', 'lr', 'seconds', 'images_per_second']) assert.ok(k in m, k);
  for (const f of ['config.json', 'split.json', 'metrics.jsonl', 'train.log', 'summary.json', 'checkpoints/last/model.json', 'checkpoints/last/optimizer.safetensors', 'checkpoints/best/model.json']) {
    assert.ok(existsSync(join(run, f)), f);
  }
  const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.arch, 'resnet-slim');
  assert.equal(config.beta1, 0.9);
  assert.equal(lines(readFileSync(join(run, 'metrics.jsonl'), 'utf8')).length, 2);
  const split = JSON.parse(readFileSync(join(run, 'split.json'), 'utf8')) as { subsets: { validation: { patients: string[] }; test: { patients: string[] } } };
  const val = new Set(split.subsets.validation.patients);
  assert.ok(split.subsets.test.patients.length > 0);
  assert.ok(split.subsets.test.patients.every((p) => !val.has(p)), 'validation and test share no patient');
});

test('every epoch records the validation study kappa at its maximum-kappa threshold (recounted here), and the run stores that operating point', async () => {
  const run = join(tmp.dir, 'runA');
  const epochs = lines(readFileSync(join(run, 'metrics.jsonl'), 'utf8')).map((l) => JSON.parse(l) as Record<string, number | null>);
  for (const m of epochs) for (const k of ['val_kappa', 'val_threshold', 'val_nll_t']) assert.ok(k in m, k);
  // The last checkpoint is epoch 2's weights, untouched by the end-of-training fit (that rewrites the best one).
  await initEngine();
  const p = await predictSplit(run, { data, subset: 'validation', which: 'last', engine: 'tfjs', workers: 0 });
  const studies = new Map<string, { y: number; s: number; n: number }>();
  for (const q of p.predictions) {
    const k = q.image.replace(/image\d+\.png$/, '');
    const e = studies.get(k) ?? { y: q.label, s: 0, n: 0 };
    e.s += q.probability;
    e.n++;
    studies.set(k, e);
  }
  const cases = [...studies.values()].map((s) => ({ y: s.y, p: s.s / s.n }));
  const kappaAt = (thr: number): number => {
    let tp = 0, fp = 0, tn = 0, fn = 0;
    for (const c of cases) {
      const called = c.p > thr;
      if (c.y === 1) called ? tp++ : fn++;
      else called ? fp++ : tn++;
    }
    const n = cases.length;
    const pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n);
    return ((tp + tn) / n - pe) / (1 - pe);
  };
  const best = Math.max(...[0, ...cases.map((c) => c.p)].map(kappaAt));
  const m2 = epochs[1]!;
  assert.ok(Math.abs(m2.val_kappa! - best) < 1e-6, `epoch 2 val_kappa ${m2.val_kappa} vs recounted ${best}`);
  assert.ok(Math.abs(kappaAt(m2.val_threshold!) - best) < 1e-6);
  // When training ends the best checkpoint gets the operating point (max kappa on validation) as its threshold.
  const meta = JSON.parse(readFileSync(join(run, 'checkpoints', 'best', 'model.json'), 'utf8')) as { decisionThreshold: number; extra: { trust?: { operatingPoint?: { rule: string; threshold: number } } } };
  assert.equal(meta.extra.trust?.operatingPoint?.rule, 'max-kappa');
  assert.equal(meta.decisionThreshold, meta.extra.trust!.operatingPoint!.threshold);
});

test('kill after epoch 1 + --resume gives bitwise the weights and Adam state of the uninterrupted run', async () => {
  const runA = join(tmp.dir, 'runA');
  const runB = join(tmp.dir, 'runB');
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'nextray.js'), 'train', ...base, '--epochs', '2', '--out', runB, '--quiet'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const lastMeta = join(runB, 'checkpoints', 'last', 'model.json');
  const deadline = Date.now() + 5 * 60 * 1000;
  while (!existsSync(lastMeta) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGKILL');
  await exited;
  const killedAt = (JSON.parse(readFileSync(lastMeta, 'utf8')) as { extra: { epoch: number } }).extra.epoch;
  assert.equal(killedAt, 1, 'the kill must land after epoch 1 and before epoch 2 completed');

  const r = runCli(['train', '--resume', runB, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['checkpoints/last/model.safetensors', 'checkpoints/last/optimizer.safetensors', 'checkpoints/best/model.safetensors']) {
    assert.ok(Buffer.compare(readFileSync(join(runA, f)), readFileSync(join(runB, f))) === 0, `${f} differs between the uninterrupted and the resumed run`);
  }
  const ma = lines(readFileSync(join(runA, 'metrics.jsonl'), 'utf8')).map((l) => withoutTiming(JSON.parse(l)));
  const mb = lines(readFileSync(join(runB, 'metrics.jsonl'), 'utf8')).map((l) => withoutTiming(JSON.parse(l)));
  assert.deepEqual(mb, ma);

  const again = runCli(['train', '--resume', runB]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already finished/);
});

test('kill -9 at seeded random moments (three times), then --resume: the uninterrupted run bit for bit, no litter', async (t) => {
  const runA = join(tmp.dir, 'runA');
  const runC = join(tmp.dir, 'runC');
  const rng = new Rng('train-kill-points');
  const kills: string[] = [];
  for (let k = 0; k < 3; k++) {
    const fresh = !existsSync(join(runC, 'config.json'));
    const args = fresh ? ['train', ...base, '--epochs', '2', '--out', runC, '--quiet'] : ['train', '--resume', runC, '--quiet'];
    const afterMs = Math.round(rng.uniform(500, 15_000));
    const r = await killNine(args, { afterMs });
    kills.push(`${afterMs} ms: ${r.killed ? 'killed' : `ended by itself (${r.code})`}`);
    // Whatever the moment: a checkpoint that is there is whole (loadCheckpoint checks every file's sha256).
    for (const which of ['last', 'best']) {
      const dir = join(runC, 'checkpoints', which);
      if (existsSync(join(dir, 'model.json'))) assert.doesNotThrow(() => loadCheckpoint(dir), `${which} after a kill at ${afterMs} ms`);
    }
    if (existsSync(join(runC, 'config.json'))) JSON.parse(readFileSync(join(runC, 'config.json'), 'utf8'));
  }
  t.diagnostic(`kill points: ${kills.join('; ')}`);
  const fresh = !existsSync(join(runC, 'config.json'));
  const done = runCli(fresh ? ['train', ...base, '--epochs', '2', '--out', runC, '--quiet'] : ['train', '--resume', runC, '--quiet']);
  assert.equal(done.code, 0, `${kills.join('; ')}\n${done.stderr}`);
  for (const f of ['checkpoints/last/model.safetensors', 'checkpoints/last/optimizer.safetensors', 'checkpoints/best/model.safetensors']) {
    assert.ok(Buffer.compare(readFileSync(join(runA, f)), readFileSync(join(runC, f))) === 0, `${f} differs (kills: ${kills.join('; ')})`);
  }
  const ma = lines(readFileSync(join(runA, 'metrics.jsonl'), 'utf8')).map((l) => withoutTiming(JSON.parse(l)));
  const mc = lines(readFileSync(join(runC, 'metrics.jsonl'), 'utf8')).map((l) => withoutTiming(JSON.parse(l)));
  assert.deepEqual(mc, ma);
  // The OOD gate and temperature fitted when training ends: there too, even when a kill landed during that fit.
  const trust = (run: string) => (JSON.parse(readFileSync(join(run, 'checkpoints', 'best', 'model.json'), 'utf8')) as { extra: { trust?: unknown } }).extra.trust;
  assert.deepEqual(trust(runC), trust(runA));
  assert.deepEqual(tempLitter(runC), [], 'no temporary file of a killed write is left');
  assert.deepEqual(readdirSync(join(runC, 'checkpoints')).sort(), ['best', 'last'], 'no half-saved checkpoint folder is left');
});

test('the trained run predicts the held-out test split; evaluate reads those predictions', async () => {
  await initEngine();
  const runA = join(tmp.dir, 'runA');
  const p = await predictSplit(runA, { data, subset: 'test', workers: 0 });
  assert.equal(p.predictions.length, p.images);
  assert.ok(p.predictions.every((x) => x.probability >= 0 && x.probability <= 1 && x.image.includes('/valid/')));
  const csv = join(tmp.dir, 'test-predictions.csv');
  writeFileSync(csv, 'image,label,probability\n' + p.predictions.map((x) => `${x.image},${x.label},${x.probability}`).join('\n') + '\n');
  // `evaluate --model` decides at the run's stored operating point (chosen on validation when training ended): the
  // CSV face is given the same threshold.
  const stored = (JSON.parse(readFileSync(join(runA, 'checkpoints', 'best', 'model.json'), 'utf8')) as { decisionThreshold: number }).decisionThreshold;
  const r = runCli(['evaluate', '--predictions', csv, '--threshold', String(stored), '--bootstrap', '20', '--json', '-']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { study: { overall: { count: number } }; image: unknown };
  assert.equal(j.study.overall.count, new Set(p.predictions.map((x) => x.image.replace(/[^/]+$/, ''))).size);

  // The model face: `evaluate --model RUN --data DIR --split test` predicts the same split itself and must give
  // exactly the numbers of the CSV face on the same predictions.
  const m = runCli(['evaluate', '--model', runA, '--data', data, '--split', 'test', '--bootstrap', '20', '--json', '-']);
  assert.equal(m.code, 0, m.stderr);
  const jm = JSON.parse(m.stdout) as typeof j;
  assert.deepEqual(jm.study, j.study);
  assert.deepEqual(jm.image, j.image);
  const bad = runCli(['evaluate', '--model', runA, '--split', 'test']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--model needs --data/);
});

test('sweep with two configs writes Table 1 (Markdown + CSV) and skips finished runs when run again', () => {
  const grid = join(tmp.dir, 'grid.json');
  writeFileSync(grid, JSON.stringify({ dropout: [0, 0.3], epochs: 1 }));
  const out = join(tmp.dir, 'sweep');
  const r = runCli(['sweep', '--grid', grid, '--out', out, ...base.filter((_, i, a) => a[i] !== '--dropout' && a[i - 1] !== '--dropout'), '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const md = readFileSync(join(out, 'table1.md'), 'utf8');
  assert.match(md, /Train accuracy \| Validation accuracy \| Variance/);
  const csv = lines(readFileSync(join(out, 'table1.csv'), 'utf8'));
  assert.equal(csv.length, 3);
  assert.match(csv[0]!, /^run,model,l2,dropout,frozen,augmentation,batch_size,train_accuracy,val_accuracy,variance,val_recall/);
  const rows = csv.slice(1).map((l) => l.split(','));
  assert.deepEqual(rows.map((c) => c[3]), ['0', '0.3']);
  for (const c of rows) {
    const variance = Number(c[9]);
    assert.ok(Math.abs(variance - (Number(c[7]) - Number(c[8]))) < 1e-12, 'variance = train - val accuracy');
  }
  const again = runCli(['sweep', '--grid', grid, '--out', out, ...base.filter((_, i, a) => a[i] !== '--dropout' && a[i - 1] !== '--dropout'), '--quiet']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(readFileSync(join(out, 'table1.csv'), 'utf8'), csv.join('\n') + '\n');
});

test('starting from torchvision-layout weights: resnet18 .safetensors, classifier replaced, 17 of 18 layers frozen', async () => {
  const run = join(tmp.dir, 'r18');
  // Any resnet18 state_dict in torchvision's layout (seeded here; the shared torchvision file is not needed).
  const weights = join(tmp.dir, 'resnet18.safetensors');
  await initEngine();
  const m = createModel('resnet18', { seed: 12 });
  writeSafetensorsFile(weights, m.exportStateDict());
  m.dispose();
  const args = base.map((a) => (a === 'resnet-slim' ? 'resnet18' : a));
  const r = runCli(['train', ...args.filter((_, i, a) => a[i] !== '--frozen' && a[i - 1] !== '--frozen'), '--frozen', '17', '--weights', weights, '--epochs', '1', '--out', run, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const log = readFileSync(join(run, 'train.log'), 'utf8');
  assert.match(log, /weights: loaded 120 tensors from .*resnet18\.safetensors/);
  assert.match(log, /513 trainable \(17 of 18 layers frozen\)/); // the head: 512 weights + 1 bias
});

test('config errors name the file or flag and exit 2', () => {
  const cfg = join(tmp.dir, 'bad.json');
  writeFileSync(cfg, JSON.stringify({ data, learningRate: 0.1 }));
  const r = runCli(['train', '--config', cfg, '--out', join(tmp.dir, 'bad')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad\.json: unknown config field 'learningRate'/);
  const r2 = runCli(['train', ...base, '--frozen', '99', '--out', join(tmp.dir, 'bad2')]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /--frozen 99: resnet-slim has only 10 layers/);
  const r3 = runCli(['train', '--resume', join(tmp.dir, 'nope')]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /not a run directory/);
});
