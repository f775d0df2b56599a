/**
 * One error base: every error class neXt-Ray throws on purpose is a NextrayError with its own name, a stable code
 * and the exit status the CLI ends with; cli/common.ts reportError is the one place that prints them (message,
 * hint) and picks the status, and prints a stack trace with status 1 for anything else (a bug).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { NextrayError, isNextrayError, rethrowWithPrefix, EXIT_USAGE, EXIT_FAILURE } from '../../src/util/errors.js';
import { CliError, reportError } from '../../src/cli/common.js';
import { PredictionsError } from '../../src/evaluate/predictions.js';
import { ConfigError } from '../../src/train/config.js';
import { TrainError } from '../../src/train/trainer.js';
import { OnnxModelError } from '../../src/models/onnx/info.js';
import { ProtoDecodeError } from '../../src/models/onnx/proto.js';
import { StateDictMismatchError } from '../../src/models/import.js';
import { PickleError } from '../../src/models/weights/pickle.js';
import { WeightFormatError } from '../../src/models/weights/types.js';
import { SplitFileError } from '../../src/data/splits.js';
import { DatasetError } from '../../src/data/mura.js';
import { ImageError } from '../../src/data/images.js';

const report = { loaded: [], missing: ['a'], unexpected: [], mismatched: [], skipped: [], defaulted: [], renamed: 0 };
const cases: Array<[NextrayError, string, string, number]> = [
  [new CliError('bad flag'), 'CliError', 'ERR_CLI', 2],
  [new PredictionsError('p'), 'PredictionsError', 'ERR_PREDICTIONS', 2],
  [new ConfigError('c'), 'ConfigError', 'ERR_CONFIG', 2],
  [new TrainError('t'), 'TrainError', 'ERR_TRAIN', 2],
  [new OnnxModelError('o'), 'OnnxModelError', 'ERR_ONNX_MODEL', 2],
  [new ProtoDecodeError('d'), 'ProtoDecodeError', 'ERR_PROTO_DECODE', 2],
  [new StateDictMismatchError('s', report), 'StateDictMismatchError', 'ERR_STATE_DICT_MISMATCH', 2],
  [new PickleError('k'), 'PickleError', 'ERR_PICKLE', 2],
  [new WeightFormatError('w.pth', 'truncated'), 'WeightFormatError', 'ERR_WEIGHT_FORMAT', 2],
  [new SplitFileError('s.json', 'bad'), 'SplitFileError', 'ERR_SPLIT_FILE', 2],
  [new DatasetError('no csv'), 'DatasetError', 'ERR_DATASET', 2],
  [new ImageError('a.png', 'not a PNG'), 'ImageError', 'ERR_IMAGE', 2],
];

test('every error class is a NextrayError with its own name, code and exit status', () => {
  for (const [err, name, code, status] of cases) {
    assert.ok(err instanceof NextrayError && err instanceof Error && isNextrayError(err), name);
    assert.equal(err.name, name);
    assert.equal(err.code, code);
    assert.equal(err.exitStatus, status, name);
  }
  assert.equal(new CliError('x', EXIT_FAILURE).exitStatus, 1);
  assert.equal(new WeightFormatError('w.pth', 'truncated', 'fc.weight').message, "w.pth: tensor 'fc.weight': truncated");
  assert.equal(new NextrayError('plain').exitStatus, EXIT_FAILURE);
  assert.equal(new TrainError('t', { exitStatus: EXIT_FAILURE, hint: 'h' }).hint, 'h');
  assert.notEqual(EXIT_USAGE, EXIT_FAILURE);
});

test('reportError: message and hint for a NextrayError, its status; stack and 1 for a bug; commander keeps its code', () => {
  const out: string[] = [];
  const w = (s: string) => void out.push(s);
  assert.equal(reportError(new DatasetError('/d: no CSV found'), w), 2);
  assert.deepEqual(out, ['nextray: /d: no CSV found\n']);
  out.length = 0;
  assert.equal(reportError(new CliError('needs --out', 2, 'nextray train --out runs/x'), w), 2);
  assert.deepEqual(out, ['nextray: needs --out\n', 'hint: nextray train --out runs/x\n']);
  out.length = 0;
  assert.equal(reportError(new NextrayError('some runs failed', { exitStatus: 1 }), w), 1);
  out.length = 0;
  assert.equal(reportError(new TypeError('x is undefined'), w), 1);
  assert.match(out.join(''), /^nextray: TypeError: x is undefined\n\s+at /);
  assert.match(out.join(''), /\nnextray: this is an internal error \(a bug in neXt-Ray/, 'a bug is called one, after its stack');
  out.length = 0;
  reportError(new DatasetError('/d: no CSV found'), w);
  assert.doesNotMatch(out.join(''), /internal error/, 'a user error is not called internal');
  out.length = 0;
  assert.equal(reportError(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'), w), 0);
  assert.equal(reportError(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"), w), 2, 'a usage error');
  assert.deepEqual(out, []);
});

test('rethrowWithPrefix names the flag on a NextrayError and leaves other errors alone', async () => {
  await assert.rejects(Promise.reject(new WeightFormatError('x.npy', 'not a .npy file')).catch(rethrowWithPrefix('--input ')), {
    name: 'WeightFormatError',
    message: '--input x.npy: not a .npy file',
  });
  const plain = new Error('boom');
  await assert.rejects(Promise.reject(plain).catch(rethrowWithPrefix('--input ')), (e) => e === plain && plain.message === 'boom');
});
