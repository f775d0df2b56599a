/**
 * Atomic writes under faults: a temporary file left by a writer killed mid-write (`.NAME.PID.N.tmp`, its PID gone)
 * is removed by the next write to the same target, and only then (a live writer's and other targets' temps stay);
 * a full or read-only file system (a real one: a small tmpfs, since root ignores permissions) gives a FileWriteError
 * naming the target, leaves the old file as it was and leaves no temporary file behind.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { EXIT_FAILURE, EXIT_USAGE, FileWriteError } from '../../src/util/errors.js';
import { saveCheckpoint } from '../../src/models/weights/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { tempDir } from '../helpers/paths.js';
import { smallTmpfs, tempLitter } from '../helpers/faults.js';

const tmp = tempDir('nextray-atomic-');
after(() => tmp.cleanup());

/** A PID that is certainly not running: a child that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test("a dead writer's temporary file is removed by the next write to the same target; others are left", () => {
  const dir = join(tmp.dir, 'litter');
  mkdirSync(dir);
  const dead = deadPid();
  const stale = [`.report.json.${dead}.0.tmp`, `.report.json.${dead}.17.tmp`];
  const keep = [
    `.report.json.${process.ppid}.3.tmp`, // a live writer (this test's parent process)
    `.other.json.${dead}.0.tmp`, // another target's: its own next write cleans it
    `.report.json.x.0.tmp`, // not the pattern
    'report.json.bak',
  ];
  for (const n of [...stale, ...keep]) writeFileSync(join(dir, n), 'half');
  writeFileAtomic(join(dir, 'report.json'), '{"ok":true}\n');
  assert.equal(readFileSync(join(dir, 'report.json'), 'utf8'), '{"ok":true}\n');
  assert.deepEqual(readdirSync(dir).sort(), [...keep, 'report.json'].sort());
});

test('disk full: FileWriteError naming the target (ENOSPC, exit 1), the old file intact, no temporary file', (t) => {
  const fs = smallTmpfs(tmp.dir, 64);
  if ('skip' in fs) return t.skip(fs.skip);
  try {
    const target = join(fs.dir, 'model.onnx');
    writeFileAtomic(target, 'old model\n');
    let caught: unknown;
    try {
      writeFileAtomic(target, new Uint8Array(256 * 1024).fill(7));
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof FileWriteError, `got ${String(caught)}`);
    assert.equal(caught.message, `cannot write ${target}: no space left on the device (ENOSPC)`);
    assert.equal(caught.path, target);
    assert.equal(caught.exitStatus, EXIT_FAILURE);
    assert.match(caught.hint ?? '', /free some space/);
    assert.equal(readFileSync(target, 'utf8'), 'old model\n');
    assert.deepEqual(tempLitter(fs.dir), []);

    // A checkpoint folder too: the old one stays whole, no temporary folder is left.
    const ckpt = join(fs.dir, 'best');
    const small = new Map([['w', { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) }]]);
    const meta = { arch: 'resnet-slim', inputShape: [32, 32, 3] as [number, number, number], preprocessing: makePreprocessing({ size: 32 }), head: { kind: 'dropout-dense-sigmoid' as const, dropout: 0, units: 1 }, decisionThreshold: 0.5 };
    saveCheckpoint(ckpt, { tensors: small as never, metadata: meta });
    const before = readdirSync(fs.dir).sort();
    const big = new Map([['w', { dtype: 'F32' as const, shape: [65536], data: new Float32Array(65536) }]]);
    assert.throws(() => saveCheckpoint(ckpt, { tensors: big as never, metadata: meta }), (e: unknown) => e instanceof FileWriteError && e.path === ckpt && e.errno === 'ENOSPC');
    assert.deepEqual(readdirSync(fs.dir).sort(), before, 'no temporary folder left');
    assert.match(readFileSync(join(ckpt, 'model.json'), 'utf8'), /"resnet-slim"/);
  } finally {
    fs.unmount();
  }
});

test('read-only file system: FileWriteError naming the target (EROFS, exit 2), the old file intact', (t) => {
  const fs = smallTmpfs(tmp.dir, 64);
  if ('skip' in fs) return t.skip(fs.skip);
  try {
    const target = join(fs.dir, 'preds.csv');
    writeFileAtomic(target, 'a,b\n');
    fs.readOnly(true);
    assert.throws(
      () => writeFileAtomic(target, 'c,d\n'),
      (e: unknown) => e instanceof FileWriteError && e.message === `cannot write ${target}: read-only file system (EROFS)` && e.exitStatus === EXIT_USAGE,
    );
    assert.throws(() => writeFileAtomic(join(fs.dir, 'sub', 'x.json'), '{}'), (e: unknown) => e instanceof FileWriteError && e.errno === 'EROFS');
    assert.equal(readFileSync(target, 'utf8'), 'a,b\n');
  } finally {
    fs.unmount();
  }
});
