/**
 * The error contract, table-driven: every `nextray` command (from the registry, src/cli/commands.ts) run with a path
 * that does not exist, a bad option value (or NEXTRAY_* variable) and, where it takes one, an unusable model file or
 * input. Each must exit 2 (usage error or unusable input), name the file or the option in its message, and print no
 * stack trace: what a user can cause is a NextrayError (or commander's usage message), never an uncaught Error.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/commands.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

const BIN = join(REPO_ROOT, 'bin', 'nextray.js');
const tmp = tempDir('nextray-bad-invocations-');
after(() => tmp.cleanup());

const MISSING = join(tmp.dir, 'no-such-file');
// Not a model: bytes that are neither an ONNX protobuf, a zip (.pth) nor safetensors.
const JUNK_ONNX = join(tmp.dir, 'junk.onnx');
const JUNK_PTH = join(tmp.dir, 'junk.pth');
writeFileSync(JUNK_ONNX, 'this is not a model\n'.repeat(10));
writeFileSync(JUNK_PTH, 'this is not a model\n'.repeat(10));
const OUT = join(tmp.dir, 'out');
// A folder whose dataset folder already holds something: synth refuses to write over it without --force.
const TAKEN = join(tmp.dir, 'taken');
mkdirSync(join(TAKEN, 'MURA-v1.1'), { recursive: true });
writeFileSync(join(TAKEN, 'MURA-v1.1', 'keep.txt'), 'not ours\n');
// A valid float32 .npy batch [1, 3, 32, 32] (format 1.0: magic, header length, header padded to 64 bytes, data).
const X_NPY = join(tmp.dir, 'x.npy');
{
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 32, 32), }";
  header = header.padEnd(64 - 10 - 1, ' ') + '\n';
  const len = Buffer.alloc(2);
  len.writeUInt16LE(header.length);
  writeFileSync(X_NPY, Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), len, Buffer.from(header, 'latin1'), Buffer.alloc(3 * 32 * 32 * 4)]));
}

interface Case {
  readonly command: string;
  readonly kind: 'missing path' | 'bad value' | 'unusable model' | 'unusable input';
  readonly args: readonly string[];
  /** Environment variables for this run (on top of the test's own). */
  readonly env?: Readonly<Record<string, string>>;
  /** Text the message must contain: the file or the option at fault. */
  readonly names: string;
}

const CASES: readonly Case[] = [
  { command: 'synth', kind: 'bad value', args: ['synth', '--out', OUT, '--studies', '-3'], names: '--studies' },
  { command: 'synth', kind: 'unusable input', args: ['synth', '--out', TAKEN, '--studies', '20'], names: join(TAKEN, 'MURA-v1.1') },
  { command: 'data', kind: 'missing path', args: ['data', 'summary', MISSING], names: MISSING },
  { command: 'data', kind: 'bad value', args: ['data', 'split', MISSING, '--val-fraction', '7'], names: '--val-fraction' },
  { command: 'models', kind: 'bad value', args: ['models', '--no-such-flag'], names: '--no-such-flag' },
  { command: 'forward', kind: 'missing path', args: ['forward', '--arch', 'resnet18', '--weights', MISSING, '--input', MISSING, '--output', OUT], names: MISSING },
  { command: 'forward', kind: 'bad value', args: ['forward', '--arch', 'resnet18', '--weights', JUNK_PTH, '--input', MISSING, '--output', OUT, '--batch', '0'], names: '--batch' },
  { command: 'forward', kind: 'bad value', args: ['forward', '--arch', 'resnet18', '--weights', JUNK_PTH, '--input', MISSING, '--output', OUT, '--runtime', 'gpu'], names: '--runtime' },
  { command: 'forward', kind: 'bad value', args: ['forward', '--arch', 'resnet18', '--weights', JUNK_PTH, '--input', MISSING, '--output', OUT, '--engine', 'gpu'], names: '--engine' },
  { command: 'forward', kind: 'unusable model', args: ['forward', '--arch', 'resnet18', '--weights', JUNK_PTH, '--input', X_NPY, '--output', OUT], names: 'junk.pth' },
  { command: 'train', kind: 'missing path', args: ['train', '--data', MISSING, '--out', OUT], names: MISSING },
  { command: 'train', kind: 'bad value', args: ['train', '--data', MISSING, '--out', OUT, '--val-fraction', 'abc'], names: '--val-fraction' },
  { command: 'sweep', kind: 'missing path', args: ['sweep', '--grid', MISSING, '--out', OUT], names: MISSING },
  { command: 'sweep', kind: 'bad value', args: ['sweep', '--grid', MISSING, '--out', OUT, '--input-size', 'big'], names: '--input-size' },
  { command: 'evaluate', kind: 'missing path', args: ['evaluate', '--predictions', MISSING], names: MISSING },
  { command: 'evaluate', kind: 'bad value', args: ['evaluate', '--predictions', MISSING, '--threshold', '3'], names: '--threshold' },
  { command: 'evaluate', kind: 'bad value', args: ['evaluate', '--predictions', MISSING, '--runtime', 'gpu'], names: '--runtime' },
  { command: 'evaluate', kind: 'unusable model', args: ['evaluate', '--model', tmp.dir, '--data', tmp.dir, '--onnx', JUNK_ONNX], names: tmp.dir },
  { command: 'demo', kind: 'bad value', args: ['demo', '--out', OUT, '--studies', '-1'], names: '--studies' },
  // A bad NEXTRAY_* variable is found when the engine starts (after the demo's data is made): no stack either.
  { command: 'demo', kind: 'bad value', args: ['demo', '--out', join(tmp.dir, 'demo-env'), '--studies', '20', '--epochs', '1', '--quiet'], env: { NEXTRAY_ENGINE: 'gpu' }, names: 'NEXTRAY_ENGINE' },
  { command: 'export', kind: 'missing path', args: ['export', '--arch', 'resnet18', '--weights', MISSING, '--out', join(OUT, 'm.onnx')], names: MISSING },
  { command: 'export', kind: 'bad value', args: ['export', '--arch', 'resnet18', '--weights', MISSING, '--out', join(OUT, 'm.onnx'), '--input-size', '-5'], names: '--input-size' },
  { command: 'export', kind: 'unusable model', args: ['export', '--arch', 'resnet18', '--weights', JUNK_PTH, '--out', join(OUT, 'm.onnx')], names: 'junk.pth' },
  { command: 'predict', kind: 'missing path', args: ['predict', '--model', MISSING, MISSING], names: MISSING },
  { command: 'predict', kind: 'bad value', args: ['predict', '--model', JUNK_ONNX, MISSING, '--threshold', '2'], names: '--threshold' },
  { command: 'predict', kind: 'bad value', args: ['predict', '--model', JUNK_ONNX, MISSING, '--runtime', 'gpu'], names: '--runtime' },
  { command: 'predict', kind: 'unusable model', args: ['predict', '--model', JUNK_ONNX, JUNK_ONNX], names: 'junk.onnx' },
  { command: 'serve', kind: 'missing path', args: ['serve', '--model', MISSING, '--port', '0'], names: MISSING },
  { command: 'serve', kind: 'bad value', args: ['serve', '--model', JUNK_ONNX, '--port', '-1'], names: '--port' },
  { command: 'serve', kind: 'unusable model', args: ['serve', '--model', JUNK_ONNX, '--port', '0'], names: 'junk.onnx' },
  { command: 'app', kind: 'missing path', args: ['app', 'build', '--model', MISSING, '--out', OUT], names: MISSING },
  { command: 'app', kind: 'unusable model', args: ['app', 'build', '--model', JUNK_ONNX, '--out', OUT], names: 'junk.onnx' },
  { command: 'calibrate', kind: 'missing path', args: ['calibrate', '--model', MISSING, '--data', MISSING], names: MISSING },
  { command: 'calibrate', kind: 'bad value', args: ['calibrate', '--model', MISSING, '--data', MISSING, '--ood-quantile', '9'], names: '--ood-quantile' },
  { command: 'adapt', kind: 'missing path', args: ['adapt', '--model', MISSING, '--data', MISSING], names: MISSING },
  { command: 'adapt', kind: 'bad value', args: ['adapt', '--model', JUNK_ONNX, '--data', MISSING, '--held-out', '2'], names: '--held-out' },
  { command: 'adapt', kind: 'unusable model', args: ['adapt', '--model', JUNK_ONNX, '--data', tmp.dir], names: 'junk.onnx' },
  { command: 'pacs', kind: 'missing path', args: ['pacs', 'enqueue', '--folder', MISSING, '--redis', 'redis://127.0.0.1:1'], names: MISSING },
  { command: 'pacs', kind: 'bad value', args: ['pacs', 'enqueue', '--folder', MISSING, '--redis', 'redis://127.0.0.1:1', '--attempts', 'many'], names: '--attempts' },
];

function runCli(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp.dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    // A command that starts serving instead of refusing is a failure too: stop it after a while.
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

test('the table covers every command of the registry', () => {
  assert.deepEqual([...new Set(CASES.map((c) => c.command))].sort(), COMMANDS.map((c) => c.name).sort());
});

for (const c of CASES) {
  test(`${c.command}: ${c.kind} -> exit 2, names ${c.names === MISSING ? 'the missing path' : c.names}, no stack trace`, async () => {
    const r = await runCli(c.args, c.env);
    const where = `${Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v} `).join('')}nextray ${c.args.join(' ')}\n--- stderr ---\n${r.stderr}`;
    assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace in stderr: ${where}`);
    assert.doesNotMatch(r.stderr, /internal error/, `called a bug: ${where}`);
    assert.equal(r.status, 2, `exit status: ${where}`);
    assert.ok(r.stderr.includes(c.names), `the message names ${c.names}: ${where}`);
  });
}
