/**
 * The trainer runs the frozen prefix outside the gradient tape (model.forwardFrozen, then only
 * model.forwardTrainable under tf.variableGrads). Checked end to end in-process: ResNet-18 from a weight file
 * (seeded, written by the test: any valid resnet18 state_dict will do) with 15 of 18 layers frozen (prefix = stem + layer1..layer3 + layer4.0) trains 2 epochs to
 * byte-identical checkpoints (weights, batchnorm statistics, Adam moments) and metrics as the same run with the
 * split disabled (whole forward under the tape), says so in its log, and leaks no tensor.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { tempDir } from '../helpers/paths.js';
import { writeTinyDataset } from './fixture.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { initEngine } from '../../src/engine/index.js';
import { NetworkModel, createModel } from '../../src/models/index.js';
import { writeSafetensorsFile } from '../../src/models/weights/files.js';

const tmp = tempDir('nextray-frozen-split-');
const data = join(tmp.dir, 'data');
const weights = join(tmp.dir, 'resnet18.safetensors');

before(async () => {
  await writeTinyDataset(data, { trainPatients: 10, validPatients: 8, size: 40, seed: 4 });
  await initEngine();
  const m = createModel('resnet18', { seed: 11 });
  writeSafetensorsFile(weights, m.exportStateDict());
  m.dispose();
});
after(() => tmp.cleanup());

const config = () =>
  resolveConfig([
    {
      values: {
        data,
        arch: 'resnet18',
        weights,
        inputSize: 32,
        frozenLayers: 15,
        lr: 0.001,
        l2: 0.1,
        dropout: 0.5,
        batchSize: 8,
        epochs: 2,
        hflip: true,
        workers: 0,
        seed: 7,
        plateauPatience: 0,
        earlyStopPatience: 0,
        // This test is about the split alone: rotation keeps the feature cache out (a cacheable prefix would also
        // run at the fixed prefix batch, src/train/feature-cache/prefix.ts), which has its own tests.
        rotation: 5,
      },
      source: 'test',
    },
  ]);

const withoutTiming = (l: string) => {
  const { seconds: _s, images_per_second: _i, ...rest } = JSON.parse(l) as Record<string, unknown>;
  return rest;
};

test('split training (frozen prefix outside the tape) equals unsplit training byte for byte', async () => {
  const tensors = tf.memory().numTensors;
  const split = join(tmp.dir, 'split');
  await train(config(), { runDir: split, quiet: true, echo: null });
  assert.equal(tf.memory().numTensors, tensors, 'training leaks no tensors');
  assert.match(readFileSync(join(split, 'train.log'), 'utf8'), /frozen prefix: 15 of 18 layers run outside the gradient tape/);

  // Reference: the same run with the split turned off, i.e. the whole forward under the gradient tape.
  const proto = NetworkModel.prototype;
  const saved = { frozen: proto.forwardFrozen, trainable: proto.forwardTrainable, layers: proto.frozenPrefixLayers };
  proto.forwardFrozen = (x: tf.Tensor4D) => tf.clone(x);
  proto.forwardTrainable = function (this: NetworkModel, x: tf.Tensor4D, training: boolean) {
    return this.forward(x, training);
  };
  proto.frozenPrefixLayers = () => 0;
  const whole = join(tmp.dir, 'whole');
  try {
    await train(config(), { runDir: whole, quiet: true, echo: null });
  } finally {
    Object.assign(proto, { forwardFrozen: saved.frozen, forwardTrainable: saved.trainable, frozenPrefixLayers: saved.layers });
  }
  assert.doesNotMatch(readFileSync(join(whole, 'train.log'), 'utf8'), /frozen prefix:/);

  for (const f of ['checkpoints/last/model.safetensors', 'checkpoints/last/optimizer.safetensors', 'checkpoints/best/model.safetensors']) {
    assert.ok(Buffer.compare(readFileSync(join(split, f)), readFileSync(join(whole, f))) === 0, `${f} differs between split and unsplit training`);
  }
  const metrics = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map(withoutTiming);
  assert.deepEqual(metrics(split), metrics(whole));
  assert.equal(metrics(split).length, 2);
});
