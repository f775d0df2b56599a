/**
 * The error contract, table-driven: every `nextray` command (from the registry, src/cli/commands.ts) run with a path
 * that does not exist, a bad option value (or NEXTRAY_* variable) and, where it takes one, an unusable model file or
 * input. Each must exit 2 (usage error or unusable input), name the file or the option in its message, and print no
 * stack trace: what a user can cause is a NextrayError (or commander's usage message), never an uncaught Error.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { COMMANDS } from '../../src/cli/commands.js';
import { initEngine } from '../../src/engine/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { loadMuraDataset } from '../../src/data/mura.js';
import { SPLIT_FILE_FORMAT, SPLIT_FILE_VERSION } from '../../src/data/splits.js';
import { generateSyntheticMura } from '../../src/data/synth/generate.js';
import { exportOnnxFile } from '../../src/models/onnx/files.js';
import { buildModel } from '../../src/train/archs.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writeTinyCheckpoint } from '../serve/fixture.js';

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

// A .pth (a ZIP) whose ZIP64 record points past 2^53 bytes: damaged, not a file this machine could hold.
const ZIP64_PTH = join(tmp.dir, 'zip64.pth');
{
  const b = Buffer.alloc(64 + 20 + 22);
  b.write('PK\x03\x04', 0, 'latin1');
  const loc = 64;
  b.writeUInt32LE(0x07064b50, loc); // ZIP64 end-of-central-directory locator
  b.writeBigUInt64LE(0xffffffffffffffffn, loc + 8); // ... whose record is "at" 2^64 - 1
  b.writeUInt32LE(1, loc + 16);
  const eocd = loc + 20;
  b.writeUInt32LE(0x06054b50, eocd);
  b.writeUInt16LE(0xffff, eocd + 8); // saturated entry counts: read the ZIP64 record
  b.writeUInt16LE(0xffff, eocd + 10);
  writeFileSync(ZIP64_PTH, b);
}

await initEngine('cpu');
// A checkpoint whose stored OOD gate is damaged (its mean is not base64): the error names its model.json.
const DAMAGED_GATE = await writeTinyCheckpoint(tmp.dir, { name: 'damaged-gate' });
const DAMAGED_GATE_JSON = join(DAMAGED_GATE, 'model.json');
{
  const meta = JSON.parse(readFileSync(DAMAGED_GATE_JSON, 'utf8')) as { extra?: Record<string, unknown> };
  const gate = { method: 'mahalanobis', features: 'layer-statistics', layers: ['stem'], dim: 1, mean: 'not base64!', precision: 'AACAPw==', threshold: 1, quantile: 0.99, shrinkage: 0, images: 2 };
  meta.extra = { ...(meta.extra ?? {}), trust: { ood: gate } };
  writeFileSync(DAMAGED_GATE_JSON, JSON.stringify(meta, null, 2));
}

// A deployed model with the `features` output (what adapt takes), one whose training-site grey reference is
// damaged, and labelled images that cannot be adapted on: one class only, or two views of a study that disagree.
const FEATURES_ONNX = join(tmp.dir, 'features.onnx');
const BAD_REFERENCE_ONNX = join(tmp.dir, 'bad-reference.onnx');
{
  const m = buildModel('resnet-slim', { dropout: 0, seed: 3, init: 'random' });
  const opts = { inputSize: 32, preprocessing: makePreprocessing({ size: 32 }), cam: true, features: true };
  exportOnnxFile(m, FEATURES_ONNX, opts);
  exportOnnxFile(m, BAD_REFERENCE_ONNX, { ...opts, extraMetadata: { grey_reference: JSON.stringify({ levels: [0.5, 0.2], quantiles: [0.1, 0.2] }) } });
  m.dispose();
}
const PICTURES = join(tmp.dir, 'pictures');
mkdirSync(PICTURES);
for (let i = 0; i < 8; i++) {
  const px = Buffer.alloc(32 * 32, 40 + 20 * i);
  await sharp(px, { raw: { width: 32, height: 32, channels: 1 } }).png().toFile(join(PICTURES, `v${i}.png`));
}
const ONE_CLASS_CSV = join(tmp.dir, 'one-class.csv');
writeFileSync(ONE_CLASS_CSV, ['image,label,study,patient', ...Array.from({ length: 8 }, (_, i) => `pictures/v${i}.png,0,s${i},p${i}`)].join('\n') + '\n');
const DISAGREE_CSV = join(tmp.dir, 'disagree.csv');
writeFileSync(DISAGREE_CSV, ['image,label,study,patient', ...Array.from({ length: 8 }, (_, i) => `pictures/v${i}.png,${i % 2},s${i >> 1},p${i >> 1}`)].join('\n') + '\n');

// A dataset and a split whose validation part holds normal studies only: no threshold reaches a target sensitivity.
const CAL_DATA = join(tmp.dir, 'cal-data');
const NORMAL_ONLY_SPLIT = join(tmp.dir, 'normal-only-split.json');
const CAL_CKPT = await writeTinyCheckpoint(tmp.dir, { name: 'cal-ckpt' });
{
  await generateSyntheticMura({ outDir: CAL_DATA, studies: 24, seed: 5, size: 32, validFraction: 0.4, workers: 0 });
  const ds = await loadMuraDataset(CAL_DATA);
  const normals = ds.studies.filter((st) => st.split === 'valid' && st.label === 0);
  const validation = { studies: normals.map((st) => st.key), patients: [...new Set(normals.map((st) => st.patient))] };
  const split = { format: SPLIT_FILE_FORMAT, version: SPLIT_FILE_VERSION, seed: 1, val_fraction: 0.5, source: { fingerprint: 'by hand' }, subsets: { validation, test: { studies: [], patients: [] } } };
  writeFileSync(NORMAL_ONLY_SPLIT, JSON.stringify(split));
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
  { command: 'export', kind: 'unusable model', args: ['export', '--arch', 'resnet18', '--weights', ZIP64_PTH, '--out', join(OUT, 'm.onnx')], names: ZIP64_PTH },
  { command: 'export', kind: 'unusable model', args: ['export', '--checkpoint', DAMAGED_GATE, '--out', join(OUT, 'm.onnx')], names: DAMAGED_GATE_JSON },
  { command: 'predict', kind: 'missing path', args: ['predict', '--model', MISSING, MISSING], names: MISSING },
  { command: 'predict', kind: 'bad value', args: ['predict', '--model', JUNK_ONNX, MISSING, '--threshold', '2'], names: '--threshold' },
  { command: 'predict', kind: 'bad value', args: ['predict', '--model', JUNK_ONNX, MISSING, '--runtime', 'gpu'], names: '--runtime' },
  { command: 'predict', kind: 'unusable model', args: ['predict', '--model', JUNK_ONNX, JUNK_ONNX], names: 'junk.onnx' },
  { command: 'predict', kind: 'unusable model', args: ['predict', '--model', DAMAGED_GATE, join(PICTURES, 'v0.png')], names: DAMAGED_GATE_JSON },
  { command: 'serve', kind: 'missing path', args: ['serve', '--model', MISSING, '--port', '0'], names: MISSING },
  { command: 'serve', kind: 'bad value', args: ['serve', '--model', JUNK_ONNX, '--port', '-1'], names: '--port' },
  { command: 'serve', kind: 'unusable model', args: ['serve', '--model', JUNK_ONNX, '--port', '0'], names: 'junk.onnx' },
  { command: 'app', kind: 'missing path', args: ['app', 'build', '--model', MISSING, '--out', OUT], names: MISSING },
  { command: 'app', kind: 'unusable model', args: ['app', 'build', '--model', JUNK_ONNX, '--out', OUT], names: 'junk.onnx' },
  { command: 'calibrate', kind: 'missing path', args: ['calibrate', '--model', MISSING, '--data', MISSING], names: MISSING },
  { command: 'calibrate', kind: 'bad value', args: ['calibrate', '--model', MISSING, '--data', MISSING, '--ood-quantile', '9'], names: '--ood-quantile' },
  { command: 'calibrate', kind: 'unusable input', args: ['calibrate', '--model', CAL_CKPT, '--data', CAL_DATA, '--split', NORMAL_ONLY_SPLIT, '--target-sensitivity', '0.9'], names: '--target-sensitivity' },
  { command: 'adapt', kind: 'missing path', args: ['adapt', '--model', MISSING, '--data', MISSING], names: MISSING },
  { command: 'adapt', kind: 'bad value', args: ['adapt', '--model', JUNK_ONNX, '--data', MISSING, '--held-out', '2'], names: '--held-out' },
  { command: 'adapt', kind: 'bad value', args: ['adapt', '--model', JUNK_ONNX, '--data', MISSING, '--cv-repeats', '0'], names: '--cv-repeats' },
  { command: 'adapt', kind: 'unusable model', args: ['adapt', '--model', JUNK_ONNX, '--data', tmp.dir], names: 'junk.onnx' },
  { command: 'adapt', kind: 'unusable input', args: ['adapt', '--model', FEATURES_ONNX, '--data', ONE_CLASS_CSV, '--workers', '0', '--threads', '1'], names: ONE_CLASS_CSV },
  { command: 'adapt', kind: 'unusable input', args: ['adapt', '--model', FEATURES_ONNX, '--data', DISAGREE_CSV, '--workers', '0', '--threads', '1'], names: DISAGREE_CSV },
  { command: 'adapt', kind: 'unusable model', args: ['adapt', '--model', BAD_REFERENCE_ONNX, '--data', ONE_CLASS_CSV, '--workers', '0', '--threads', '1'], names: BAD_REFERENCE_ONNX },
  { command: 'pacs', kind: 'missing path', args: ['pacs', 'enqueue', '--folder', MISSING, '--redis', 'redis://127.0.0.1:1'], names: MISSING },
  { command: 'pacs', kind: 'bad value', args: ['pacs', 'enqueue', '--folder', MISSING, '--redis', 'redis://127.0.0.1:1', '--attempts', 'many'], names: '--attempts' },
  { command: 'pacs', kind: 'bad value', args: ['pacs', 'enqueue', '--folder', MISSING, '--redis', 'redis://127.0.0.1:1', '--backoff-seconds', 'soon'], names: '--backoff-seconds' },
  { command: 'pacs', kind: 'bad value', args: ['pacs', 'work', '--folder', MISSING, '--model', JUNK_ONNX, '--redis', 'redis://127.0.0.1:1', '--lock-seconds', '-1'], names: '--lock-seconds' },
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
