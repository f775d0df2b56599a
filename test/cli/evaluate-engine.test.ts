/**
 * `nextray evaluate --model RUN --runtime onnx|tfjs|auto` end to end through the real CLI: a 1-epoch resnet-slim run
 * on a tiny dataset, its test split predicted by ONNX Runtime and by TF.js -> the same metrics (probabilities agree
 * to 1e-4), the engine named in --json and in the report's configuration; --runtime without --model is a usage error; the old
 * name --engine still works, with one line saying so.
 * Needs `npm run build` first (runCli runs dist/).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { writeTinyDataset } from '../train/fixture.js';

const tmp = tempDir('nextray-evaluate-engine-');
const data = join(tmp.dir, 'data');
const run = join(tmp.dir, 'run');

before(async () => {
  await writeTinyDataset(data, { trainPatients: 10, validPatients: 36, size: 40 });
  const r = runCli(['train', '--data', data, '--arch', 'resnet-slim', '--input-size', '32', '--frozen', '0', '--epochs', '1', '--batch-size', '8',
    '--workers', '0', '--seed', '3', '--out', run, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
});
after(() => tmp.cleanup());

interface EvalJson {
  study: { overall: { auc: number; count: number; confusion: Record<string, number> } };
  image: { overall: { auc: number; count: number; confusion: Record<string, number> } };
  inference: { engine: string; description: string; requested: string; subsets: Record<string, { engine: string; inference_seconds: number }> };
}

test('evaluate --model RUN: ONNX Runtime and TF.js give the same metrics; the engine is reported', () => {
  const common = ['evaluate', '--model', run, '--data', data, '--split', 'test', '--bootstrap', '0'];
  const onnx = runCli([...common, '--runtime', 'onnx', '--json', '-']);
  assert.equal(onnx.code, 0, onnx.stderr);
  const tfjs = runCli([...common, '--runtime', 'tfjs', '--json', '-']);
  assert.equal(tfjs.code, 0, tfjs.stderr);
  const jo = JSON.parse(onnx.stdout) as EvalJson;
  const jt = JSON.parse(tfjs.stdout) as EvalJson;
  assert.equal(jo.inference.engine, 'onnx');
  assert.match(jo.inference.description, /^onnxruntime-node /);
  assert.equal(jo.inference.requested, 'onnx');
  assert.equal(jo.inference.subsets.test?.engine, 'onnx');
  assert.equal(jt.inference.engine, 'tfjs');
  assert.match(jt.inference.description, /^TF\.js: /);
  assert.ok(jo.image.overall.count > 0);
  assert.equal(jo.image.overall.count, jt.image.overall.count);
  assert.ok(jo.image.overall.count >= 10, `test split of ${jo.image.overall.count} images`);
  assert.ok(Math.abs(jo.image.overall.auc - jt.image.overall.auc) <= 1e-6, 'same ranking of images');
  assert.ok(Math.abs(jo.study.overall.auc - jt.study.overall.auc) <= 1e-6);
  assert.deepEqual(jo.image.overall.confusion, jt.image.overall.confusion);
  assert.deepEqual(jo.study.overall.confusion, jt.study.overall.confusion);

  // The written predictions agree probability by probability.
  const outO = join(tmp.dir, 'eval-onnx');
  const outT = join(tmp.dir, 'eval-tfjs');
  assert.equal(runCli([...common, '--runtime', 'onnx', '--out', outO, '--quiet']).code, 0);
  assert.equal(runCli([...common, '--runtime', 'tfjs', '--out', outT, '--quiet']).code, 0);
  const probs = (dir: string): Map<string, number> => {
    const csv = readFileSync(join(dir, 'predictions-image.csv'), 'utf8').trim().split('\n');
    const header = csv[0]!.split(',');
    const pi = header.indexOf('probability');
    return new Map(csv.slice(1).map((l) => { const c = l.split(','); return [c[0]!, Number(c[pi])]; }));
  };
  const po = probs(outO);
  const pt = probs(outT);
  assert.equal(po.size, jo.image.overall.count);
  for (const [img, p] of pt) assert.ok(Math.abs(po.get(img)! - p) <= 1e-4, `${img}: ${po.get(img)} vs ${p}`);
  const md = readFileSync(join(outO, 'report.md'), 'utf8');
  assert.match(md, /inference engine.*onnxruntime-node/i);
  const metrics = JSON.parse(readFileSync(join(outO, 'metrics.json'), 'utf8')) as EvalJson;
  assert.equal(metrics.inference.engine, 'onnx');
});

test('evaluate: default engine is auto (ONNX Runtime here); --engine needs --model; bad names are refused', () => {
  const auto = runCli(['evaluate', '--model', run, '--data', data, '--split', 'test', '--bootstrap', '0', '--json', '-']);
  assert.equal(auto.code, 0, auto.stderr);
  const j = JSON.parse(auto.stdout) as EvalJson;
  assert.equal(j.inference.requested, 'auto');
  assert.equal(j.inference.engine, 'onnx');
  const csv = join(tmp.dir, 'p.csv');
  // The old name (--engine): same checks, same messages with the flag the user typed.
  for (const flag of ['--runtime', '--engine']) {
    const noModel = runCli(['evaluate', '--predictions', csv, flag, 'onnx']);
    assert.equal(noModel.code, 2);
    assert.match(noModel.stderr, new RegExp(`${flag} is only used with --model`));
    const bad = runCli(['evaluate', '--model', run, '--data', data, flag, 'gpu']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, new RegExp(`${flag}.*gpu.*(auto|onnx|tfjs)`, 's'));
  }
});
