/**
 * Checkpoint folders: bit-exact round trips, metadata validation with clear messages, and atomicity: a save that
 * throws, or a process killed (SIGKILL) at any stage of a save, leaves the previous checkpoint loadable.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_PREPROCESSING } from '../../../src/data/preprocess.js';
import {
  CHECKPOINT_FORMAT_VERSION,
  loadCheckpoint,
  readCheckpointMetadata,
  saveCheckpoint,
  type CheckpointInfo,
} from '../../../src/models/weights/checkpoint.js';
import { readStateDict } from '../../../src/models/weights/files.js';
import { compareStateDicts } from '../../../src/models/weights/state-dict.js';
import { WeightFormatError, type RawTensor, type StateDict } from '../../../src/models/weights/types.js';
import { tempDir } from '../../helpers/paths.js';

const tmp = tempDir('nextray-ckpt-');
after(tmp.cleanup);
let n = 0;
const fresh = (): string => join(tmp.dir, `run${n++}`, 'ckpt');

function info(overrides: Partial<CheckpointInfo> = {}): CheckpointInfo {
  return {
    arch: 'resnet152',
    inputShape: [320, 320, 3],
    preprocessing: { ...DEFAULT_PREPROCESSING, mean: [...DEFAULT_PREPROCESSING.mean], std: [...DEFAULT_PREPROCESSING.std] },
    head: { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 },
    decisionThreshold: 0.5,
    training: { optimizer: 'adam', lr: 1e-5, l2: 0.1, batchSize: 16, frozenLayers: 148 },
    dataset: { fingerprint: 'sha256:abc', studies: 3 },
    extra: { note: 'test', metrics: { auc: 0.9 } },
    ...overrides,
  };
}

function tensors(seed: number): StateDict {
  const w = new Float32Array(2 * 3 * 3 * 4).map((_, i) => Math.sin(i * 7 + seed) * 1e3);
  w[0] = NaN;
  w[1] = -0;
  return new Map<string, RawTensor>([
    ['conv1.weight', { dtype: 'F32', shape: [3, 3, 2, 4], data: w }],
    ['bn1.num_batches_tracked', { dtype: 'I64', shape: [], data: new BigInt64Array([BigInt(seed) * 2n ** 40n]) }],
    ['fc.bias', { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00 + seed]) }],
  ]);
}

function saveOld(dir: string): void {
  saveCheckpoint(dir, { tensors: tensors(1), metadata: info({ extra: { generation: 'old' } }) });
}

function assertOldIntact(dir: string): void {
  const ck = loadCheckpoint(dir);
  assert.deepEqual(compareStateDicts(ck.tensors, tensors(1)), []);
  assert.deepEqual(ck.metadata.extra, { generation: 'old' });
}

describe('checkpoint round trip', () => {
  it('loads exactly what was saved: tensors bit-exact (NaN, -0, int64, f16), optimizer, metadata', () => {
    const dir = fresh();
    const opt: StateDict = new Map([['conv1.weight.m', { dtype: 'F32', shape: [2], data: new Float32Array([1e-8, -3]) } as RawTensor]]);
    const written = saveCheckpoint(dir, { tensors: tensors(3), metadata: info() }, { optimizer: opt });
    assert.deepEqual(readdirSync(dir).sort(), ['model.json', 'model.safetensors', 'optimizer.safetensors']);
    const ck = loadCheckpoint(dir);
    assert.deepEqual(compareStateDicts(ck.tensors, tensors(3)), []);
    assert.deepEqual([...ck.tensors.keys()], [...tensors(3).keys()]);
    assert.deepEqual(compareStateDicts(ck.optimizer!, opt), []);
    assert.deepEqual(ck.metadata, written);
    assert.equal(ck.metadata.formatVersion, CHECKPOINT_FORMAT_VERSION);
    assert.equal(ck.metadata.arch, 'resnet152');
    assert.deepEqual(ck.metadata.extra, { note: 'test', metrics: { auc: 0.9 } });
    assert.deepEqual(ck.metadata.training, info().training);
    assert.match(ck.metadata.versions.package, /^\d+\.\d+\.\d+/);
    assert.match(ck.metadata.versions.tfjs, /^4\./);
    assert.ok(Math.abs(Date.parse(ck.metadata.created) - Date.now()) < 60_000);
    assert.equal(loadCheckpoint(dir, { skipOptimizer: true }).optimizer, undefined);
  });

  it('replacing a checkpoint leaves no temporary or previous folders behind', () => {
    const dir = fresh();
    saveOld(dir);
    saveCheckpoint(dir, { tensors: tensors(2), metadata: info() });
    assert.deepEqual(compareStateDicts(loadCheckpoint(dir).tensors, tensors(2)), []);
    assert.deepEqual(readdirSync(join(dir, '..')), ['ckpt']);
  });

  it('readStateDict accepts the checkpoint folder', async () => {
    const dir = fresh();
    saveOld(dir);
    assert.deepEqual(compareStateDicts(await readStateDict(dir), tensors(1)), []);
  });
});

describe('checkpoint atomicity', () => {
  it('a save that fails after writing everything leaves the previous checkpoint and no debris', () => {
    const dir = fresh();
    saveOld(dir);
    assert.throws(
      () =>
        saveCheckpoint(dir, { tensors: tensors(2), metadata: info() }, {
          onStage: (s) => {
            if (s === 'written') throw new Error('disk full (simulated)');
          },
        }),
      /disk full/,
    );
    assertOldIntact(dir);
    assert.deepEqual(readdirSync(join(dir, '..')), ['ckpt']);
  });

  it('a failure between the two renames puts the previous checkpoint back', () => {
    const dir = fresh();
    saveOld(dir);
    assert.throws(() =>
      saveCheckpoint(dir, { tensors: tensors(2), metadata: info() }, {
        onStage: (s) => {
          if (s === 'swapping') throw new Error('simulated');
        },
      }),
    );
    assertOldIntact(dir);
  });

  it('invalid metadata is refused before anything is written', () => {
    const dir = fresh();
    saveOld(dir);
    assert.throws(() => saveCheckpoint(dir, { tensors: tensors(2), metadata: info({ decisionThreshold: 2 }) }), /decisionThreshold must be a number in \[0, 1\], got 2/);
    assert.throws(() => saveCheckpoint(dir, { tensors: tensors(2), metadata: info({ preprocessing: { ...info().preprocessing, size: 0 } }) }), /size must be an integer/);
    assert.throws(() => saveCheckpoint(dir, { tensors: new Map(), metadata: info() }), /without tensors/);
    assertOldIntact(dir);
  });

  // A real crash: a child process saving a checkpoint SIGKILLs itself at a chosen stage (no cleanup can run).
  const modUrl = new URL('../../../src/models/weights/checkpoint.js', import.meta.url).href;
  const loaderArgs: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const a = process.execArgv[i]!;
    if (/^--(import|require|loader|experimental-loader)=/.test(a)) loaderArgs.push(a);
    else if (/^--(import|require|loader|experimental-loader)$/.test(a)) loaderArgs.push(a, process.execArgv[++i]!);
  }
  function killedSave(dir: string, stage: string): void {
    const code = `
      const m = await import(${JSON.stringify(modUrl)});
      const sd = new Map([['conv1.weight', { dtype: 'F32', shape: [1 << 20], data: new Float32Array(1 << 20).fill(5) }]]);
      m.saveCheckpoint(${JSON.stringify(dir)}, { tensors: sd, metadata: ${JSON.stringify(info({ extra: { generation: 'new' } }))} }, {
        onStage: (s) => { if (s === ${JSON.stringify(stage)}) process.kill(process.pid, 'SIGKILL'); },
      });
      console.log('not killed');`;
    const r = spawnSync(process.execPath, [...loaderArgs, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, 'SIGKILL', `child was not killed at '${stage}': ${r.stdout} ${r.stderr}`);
  }

  for (const stage of ['written', 'swapping']) {
    it(`a process killed at '${stage}' leaves the previous checkpoint loadable; the next save cleans up`, () => {
      const dir = fresh();
      saveOld(dir);
      killedSave(dir, stage);
      const debris = readdirSync(join(dir, '..')).sort();
      assert.ok(debris.some((f) => f.startsWith('.ckpt.')), 'the killed save left its temporary folder');
      assertOldIntact(dir); // reads the moved-aside copy when the swap was cut short
      assert.deepEqual(readdirSync(join(dir, '..')).sort(), debris, 'loading modifies nothing');
      saveCheckpoint(dir, { tensors: tensors(2), metadata: info() });
      assert.deepEqual(compareStateDicts(loadCheckpoint(dir).tensors, tensors(2)), []);
      assert.deepEqual(readdirSync(join(dir, '..')), ['ckpt']);
    });
  }
});

describe('checkpoint validation on load', () => {
  function expectError(dir: string, pattern: RegExp): void {
    assert.throws(() => loadCheckpoint(dir), (e: Error) => {
      assert.ok(e instanceof WeightFormatError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  }
  function editJson(dir: string, edit: (m: Record<string, any>) => void): void {
    const p = join(dir, 'model.json');
    const m = JSON.parse(readFileSync(p, 'utf8')) as Record<string, any>;
    edit(m);
    writeFileSync(p, JSON.stringify(m));
  }

  it('missing folder, missing model.json, not JSON', () => {
    const dir = fresh();
    expectError(dir, /no checkpoint here \(folder does not exist\)/);
    mkdirSync(dir, { recursive: true });
    expectError(dir, /not a checkpoint folder: model\.json is missing/);
    writeFileSync(join(dir, 'model.json'), '{oops');
    expectError(dir, /model\.json: is not valid JSON/);
  });

  it('wrong format, newer format version, bad fields', () => {
    const dir = fresh();
    saveOld(dir);
    editJson(dir, (m) => (m.format = 'keras'));
    expectError(dir, /format is "keras", expected 'nextray-checkpoint'/);
    saveOld(dir);
    editJson(dir, (m) => (m.formatVersion = CHECKPOINT_FORMAT_VERSION + 1));
    expectError(dir, new RegExp(`format version ${CHECKPOINT_FORMAT_VERSION + 1} by a newer nextray.*upgrade nextray`));
    saveOld(dir);
    editJson(dir, (m) => (m.preprocessing.mean = [0.5]));
    expectError(dir, /model\.json: checkpoint metadata: preprocessing: mean must be three finite numbers/);
    saveOld(dir);
    editJson(dir, (m) => delete m.versions);
    expectError(dir, /versions\.package and versions\.tfjs must be strings/);
  });

  it('missing, truncated or altered tensor files', () => {
    const dir = fresh();
    saveOld(dir);
    rmSync(join(dir, 'model.safetensors'));
    expectError(dir, /model\.safetensors: missing: model\.json lists it/);
    saveOld(dir);
    truncateSync(join(dir, 'model.safetensors'), 100);
    expectError(dir, /model\.safetensors: is 100 bytes but model\.json records \d+: truncated or replaced/);
    saveOld(dir);
    const p = join(dir, 'model.safetensors');
    const b = readFileSync(p);
    b[b.length - 1]! ^= 1;
    writeFileSync(p, b);
    expectError(dir, /SHA-256 does not match model\.json/);
    // without hash verification the flipped bit goes unnoticed, which is why verification is the default
    assert.ok(loadCheckpoint(dir, { verifyHashes: false }));
  });

  it('tensors that disagree with the manifest are listed', () => {
    const dir = fresh();
    saveOld(dir);
    editJson(dir, (m) => {
      m.files.model.tensors['conv1.weight'].shape = [4, 3, 3, 2];
      m.files.model.tensors['fc.weight'] = { dtype: 'F32', shape: [1, 2048] };
      delete m.files.model.tensors['fc.bias'];
    });
    expectError(dir, /tensors do not match model\.json \(3 problems\): 'conv1\.weight' has shape \[3, 3, 2, 4\], model\.json says \[4, 3, 3, 2\]; missing 'fc\.weight'; unexpected 'fc\.bias'/);
  });

  it('readCheckpointMetadata reads model.json alone', () => {
    const dir = fresh();
    saveOld(dir);
    rmSync(join(dir, 'model.safetensors'));
    assert.equal(readCheckpointMetadata(dir).arch, 'resnet152');
    assert.ok(!existsSync(join(dir, 'model.safetensors')));
  });
});
