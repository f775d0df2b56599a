/**
 * kill -9 at seeded random moments of `export`, `predict --out` and `calibrate` (train's own are in
 * test/train/train-cli.test.ts): after every kill the output is the old file or the whole new one — never a part —
 * and the next run gives what an uninterrupted run gives, byte for byte, leaving no temporary file. The moments are
 * drawn from a seeded RNG; where each landed is printed as a test diagnostic.
 *
 * For the stages that land later (the feature cache, the PACS worker): the same pattern with test/helpers/faults.ts
 * `killNine` (kill after N ms or at an output line) and `tempLitter`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { killNine, tempLitter } from '../helpers/faults.js';
import { Rng } from '../../src/util/rng.js';
import { loadCheckpoint } from '../../src/models/weights/index.js';
import { greyPng, writeTinyCheckpoint, writeTinyModel } from '../serve/fixture.js';
import { writeTinyDataset } from '../train/fixture.js';

const tmp = tempDir('nextray-kill9-');
after(() => tmp.cleanup());
let ckpt: string;
let model: string;
const images: string[] = [];

before(async () => {
  ckpt = await writeTinyCheckpoint(tmp.dir);
  model = await writeTinyModel(tmp.dir);
  for (let i = 0; i < 40; i++) {
    const f = join(tmp.dir, `img${String(i).padStart(2, '0')}.png`);
    writeFileSync(f, await greyPng(60 + (i % 7) * 9, 80 + (i % 5) * 11, i % 4));
    images.push(f);
  }
});

/**
 * Runs `args` with `kills` SIGKILLs at seeded moments in [lo, hi] ms; after each, `check` sees the output; then one
 * uninterrupted run. Returns where the kills landed.
 */
async function killRepeatedly(args: string[], seed: string, kills: number, lo: number, hi: number, check: (afterMs: number) => void): Promise<string[]> {
  const rng = new Rng(seed);
  const where: string[] = [];
  for (let k = 0; k < kills; k++) {
    const afterMs = Math.round(rng.uniform(lo, hi));
    const r = await killNine(args, { afterMs });
    where.push(`${afterMs} ms: ${r.killed ? 'killed' : `ended by itself (exit ${r.code})`}`);
    check(afterMs);
  }
  return where;
}

test('export: killed at random moments, the .onnx is the old file or the whole new one; the next export is the uninterrupted one', async (t) => {
  const ref = join(tmp.dir, 'ref.onnx');
  const r0 = runCli(['export', '--checkpoint', ckpt, '--out', ref]);
  assert.equal(r0.code, 0, r0.stderr);
  const want = readFileSync(ref);
  const out = join(tmp.dir, 'out', 'model.onnx');
  mkdirSync(join(tmp.dir, 'out'));
  cpSync(model, out); // an older model at the target
  const old = readFileSync(model);
  const where = await killRepeatedly(['export', '--checkpoint', ckpt, '--out', out], 'export-kills', 5, 300, 6000, (ms) => {
    const now = readFileSync(out);
    assert.ok(now.equals(old) || now.equals(want), `after a kill at ${ms} ms the .onnx is neither the old nor the new file (${now.length} bytes)`);
  });
  // And once exactly mid-write: as soon as the temporary file appears.
  const mid = await killNine(['export', '--checkpoint', ckpt, '--out', out], { poll: () => tempLitter(join(tmp.dir, 'out')).length > 0 });
  where.push(`mid-write: ${mid.killed ? 'killed' : 'ended by itself'}`);
  assert.ok(mid.killed, 'the export was killed while writing');
  assert.equal(tempLitter(join(tmp.dir, 'out')).length, 1, 'a kill mid-write leaves its temporary file (nothing can remove it then)');
  assert.ok(readFileSync(out).equals(old) || readFileSync(out).equals(want));
  t.diagnostic(`kill points: ${where.join('; ')}`);
  const r = runCli(['export', '--checkpoint', ckpt, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(readFileSync(out).equals(want), 'the uninterrupted export');
  assert.deepEqual(tempLitter(join(tmp.dir, 'out')), [], 'temporary files of killed exports are removed by the next export');
});

test('predict --out: killed at random moments, the CSV is the old one or the whole new one; the next run writes the uninterrupted CSV', async (t) => {
  const args = ['predict', '--model', model, ...images, '--workers', '1', '--threads', '1', '--no-onnx-cache'];
  const ref = runCli([...args, '--out', join(tmp.dir, 'ref.csv')]);
  assert.equal(ref.code, 0, ref.stderr);
  const want = readFileSync(join(tmp.dir, 'ref.csv'), 'utf8');
  const out = join(tmp.dir, 'preds', 'preds.csv');
  mkdirSync(join(tmp.dir, 'preds'));
  writeFileSync(out, 'image,probability\nold,0.5\n');
  const where = await killRepeatedly([...args, '--out', out], 'predict-kills', 5, 300, 5000, (ms) => {
    const now = readFileSync(out, 'utf8');
    assert.ok(now === 'image,probability\nold,0.5\n' || now === want, `after a kill at ${ms} ms the CSV is neither the old nor the new one`);
  });
  t.diagnostic(`kill points: ${where.join('; ')}`);
  const r = runCli([...args, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(out, 'utf8'), want);
  assert.deepEqual(tempLitter(join(tmp.dir, 'preds')), []);
});

test('calibrate: killed at random moments, the run stays loadable; the next calibrate gives the uninterrupted fit', async (t) => {
  const data = join(tmp.dir, 'data');
  await writeTinyDataset(data, { trainPatients: 12, validPatients: 16, size: 40 });
  const run = join(tmp.dir, 'run');
  const tr = runCli(['train', '--data', data, '--arch', 'resnet-slim', '--input-size', '32', '--frozen', '0', '--lr', '0.003', '--batch-size', '8', '--workers', '0', '--epochs', '1', '--seed', '3', '--no-trust', '--out', run, '--quiet']);
  assert.equal(tr.code, 0, tr.stderr);
  const runB = join(tmp.dir, 'run-b');
  cpSync(run, runB, { recursive: true });
  const cal = (r: string) => ['calibrate', '--model', r, '--data', data, '--target-sensitivity', '0.8'];
  const ref = runCli(cal(run));
  assert.equal(ref.code, 0, ref.stderr);
  const trust = (r: string) => (JSON.parse(readFileSync(join(r, 'checkpoints', 'best', 'model.json'), 'utf8')) as { extra: { trust?: unknown } }).extra.trust;
  assert.ok(trust(run) !== undefined, 'the reference fit is stored');
  const where = await killRepeatedly(cal(runB), 'calibrate-kills', 4, 500, 9000, (ms) => {
    assert.doesNotThrow(() => loadCheckpoint(join(runB, 'checkpoints', 'best')), `the best checkpoint after a kill at ${ms} ms`);
    const tb = trust(runB);
    assert.ok(tb === undefined || JSON.stringify(tb) === JSON.stringify(trust(run)), `after a kill at ${ms} ms: no fit or the whole fit`);
  });
  t.diagnostic(`kill points: ${where.join('; ')}`);
  const r = runCli(cal(runB));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(trust(runB), trust(run));
  assert.ok(readFileSync(join(runB, 'checkpoints', 'best', 'model.safetensors')).equals(readFileSync(join(run, 'checkpoints', 'best', 'model.safetensors'))), 'the weights are untouched');
  assert.deepEqual(tempLitter(runB), []);
  assert.equal(existsSync(join(runB, 'checkpoints', '.best.previous')), false);
});
