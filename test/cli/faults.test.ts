/**
 * User-facing faults get a named answer, never a stack trace: `train --arch nosuch` (and a missing dataset) is
 * refused before any folder is made; `serve` on a port in use exits 2 with the address; `train`, `predict --out` and
 * `export` on a full disk (a small tmpfs) name the file, exit 1, keep the old files and leave no temporary file; the
 * one error mapper turns a raw system error (ENOSPC in some write no module wraps) into words.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { smallTmpfs, tempLitter, type Tmpfs } from '../helpers/faults.js';
import { writeTinyDataset } from '../train/fixture.js';
import { greyPng, writeTinyCheckpoint, writeTinyModel } from '../serve/fixture.js';
import { reportError } from '../../src/cli/common.js';

const tmp = tempDir('nextray-faults-');
const data = join(tmp.dir, 'data');
const TRAIN = ['--data', data, '--arch', 'resnet-slim', '--input-size', '32', '--frozen', '0', '--batch-size', '8', '--workers', '0', '--epochs', '1', '--no-trust', '--quiet'];
let model: string;
let ckpt: string;
let image: string;

before(async () => {
  await writeTinyDataset(data, { trainPatients: 8, validPatients: 8, size: 40 });
  model = await writeTinyModel(tmp.dir);
  ckpt = await writeTinyCheckpoint(tmp.dir);
  image = join(tmp.dir, 'x.png');
  writeFileSync(image, await greyPng(64, 64, 1));
});
after(() => tmp.cleanup());

const noStack = (s: string): void => assert.doesNotMatch(s, /\n\s+at |Error: E[A-Z]+:/, `a stack trace or a raw system error:\n${s}`);

test('train --arch nosuch and a missing dataset are refused before any folder is made (exit 2)', () => {
  const out = join(tmp.dir, 'run-nosuch');
  const r = runCli(['train', ...TRAIN, '--arch', 'nosuch', '--out', out]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /arch \(--arch\) must be one of .*resnet152.*resnet-slim.*, got "nosuch"/);
  noStack(r.stderr);
  assert.equal(existsSync(out), false, 'no run folder');
  const missing = runCli(['train', ...TRAIN, '--data', join(tmp.dir, 'no-such-data'), '--out', out]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /no-such-data: no such folder/);
  assert.equal(existsSync(out), false, 'no run folder');
  const weights = runCli(['train', ...TRAIN, '--weights', join(tmp.dir, 'nope.pth'), '--out', out]);
  assert.equal(weights.code, 2, weights.stderr);
  assert.match(weights.stderr, /--weights .*nope\.pth: no such file/);
  assert.equal(existsSync(out), false, 'no run folder');
});

test('serve on a port in use: the address and what to do, exit 2, no stack trace', async () => {
  const blocker = createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  const port = (blocker.address() as { port: number }).port;
  try {
    const r = runCli(['serve', '--model', model, '--port', String(port), '--threads', '1', '--no-onnx-cache']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use`));
    assert.match(r.stderr, /hint: pick another --port/);
    noStack(r.stderr);
  } finally {
    blocker.close();
  }
});

/** Runs `fn` with a fresh small tmpfs, or skips the test with the reason. */
function onTmpfs(kib: number, t: { skip: (why: string) => void }, fn: (fs: Tmpfs) => void): void {
  const fs = smallTmpfs(tmp.dir, kib);
  if ('skip' in fs) return t.skip(fs.skip);
  try {
    fn(fs);
  } finally {
    fs.unmount();
  }
}

test('train on a full disk: names the file, exit 1, no stack trace, no temporary file', (t) => {
  onTmpfs(48, t, (fs) => {
    const out = join(fs.dir, 'run');
    const r = runCli(['train', ...TRAIN, '--out', out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`nextray: cannot write ${fs.dir}/run/\\S+: no space left on the device \\(ENOSPC\\)`));
    assert.match(r.stderr, new RegExp(`hint: free some space, then continue with nextray train --resume ${out}`));
    noStack(r.stderr);
    assert.deepEqual(tempLitter(fs.dir), []);
    assert.deepEqual(readdirSync(join(fs.dir, 'run')).filter((n) => n.startsWith('.')), [], 'no hidden temporary folder either');
  });
});

test('predict --out and export on a full disk: the old file stays, exit 1, no temporary file', (t) => {
  onTmpfs(96, t, (fs) => {
    const csv = join(fs.dir, 'preds.csv');
    const ok = runCli(['predict', '--model', model, image, '--out', csv, '--workers', '0', '--no-onnx-cache']);
    assert.equal(ok.code, 0, ok.stderr);
    const before = readFileSync(csv, 'utf8');
    writeFileSync(join(fs.dir, 'old.onnx'), 'the old model\n');
    // Fill the disk, leaving less than the CSV needs.
    const filler = join(fs.dir, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(200 * 1024));
    } catch {
      // ENOSPC part-way: the disk is full, which is the point.
    }
    const full = runCli(['predict', '--model', model, image, image, image, '--out', csv, '--workers', '0', '--no-onnx-cache']);
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, new RegExp(`cannot write ${csv}: no space left on the device \\(ENOSPC\\)`));
    noStack(full.stderr);
    assert.equal(readFileSync(csv, 'utf8'), before, 'the old predictions are intact');
    const onnx = join(fs.dir, 'old.onnx');
    const ex = runCli(['export', '--checkpoint', ckpt, '--out', onnx]);
    assert.equal(ex.code, 1, ex.stderr);
    assert.match(ex.stderr, new RegExp(`cannot write ${onnx}: no space left on the device \\(ENOSPC\\)`));
    noStack(ex.stderr);
    assert.equal(readFileSync(onnx, 'utf8'), 'the old model\n', 'the old model is intact');
    assert.deepEqual(tempLitter(fs.dir), []);
  });
});

test('the one error mapper: a raw system error a user can act on becomes words and the path, not a stack', () => {
  const cases: [Error, RegExp, number][] = [
    [Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' }), /^nextray: no space left on the device \(ENOSPC, during write\)\n$/, 1],
    [Object.assign(new Error("EROFS: read-only file system, open '/ro/x'"), { code: 'EROFS', syscall: 'open', path: '/ro/x' }), /^nextray: \/ro\/x: read-only file system \(EROFS, during open\)\n$/, 2],
    [Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE', syscall: 'listen' }), /^nextray: address already in use .*\(EADDRINUSE, during listen\)\n$/, 2],
  ];
  for (const [err, want, status] of cases) {
    let out = '';
    assert.equal(reportError(err, (s) => (out += s)), status, err.message);
    assert.match(out, want);
  }
  let bug = '';
  reportError(new TypeError('x is undefined'), (s) => (bug += s));
  assert.match(bug, /TypeError: x is undefined\n\s+at /, 'a bug still shows its stack');
});
