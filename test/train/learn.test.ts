/**
 * The training loop learns: on a small learnable MURA-layout set (abnormal = a bright square), the training loss
 * goes down over the epochs and the validation AUC beats chance clearly; no tensor is left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { tempDir } from '../helpers/paths.js';
import { writeTinyDataset } from './fixture.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { initEngine } from '../../src/engine/index.js';

const tmp = tempDir('nextray-learn-');
const data = join(tmp.dir, 'data');

before(async () => {
  await writeTinyDataset(data, { trainPatients: 40, validPatients: 32, size: 40, seed: 11 });
  await initEngine();
});
after(() => tmp.cleanup());

test('loss decreases and validation AUC beats chance; tf.memory() does not grow', async () => {
  const config = resolveConfig([
    {
      values: {
        data,
        arch: 'resnet-slim',
        inputSize: 32,
        frozenLayers: 0,
        lr: 0.003,
        l2: 0,
        dropout: 0,
        batchSize: 8,
        epochs: 4,
        hflip: true,
        workers: 0,
        seed: 3,
        selectBy: 'auc',
        plateauPatience: 0,
        earlyStopPatience: 0,
      },
      source: 'test',
    },
  ]);
  const before = tf.memory().numTensors;
  const res = await train(config, { runDir: join(tmp.dir, 'run'), quiet: true, echo: null });
  assert.equal(tf.memory().numTensors, before, 'training leaks no tensors');
  const h = res.state.history;
  assert.equal(h.length, 4);
  assert.ok(h[h.length - 1]!.train_loss < h[0]!.train_loss, `train loss ${h.map((m) => m.train_loss.toFixed(3)).join(' -> ')} does not decrease`);
  const bestAuc = Math.max(...h.map((m) => m.val_auc ?? 0));
  assert.ok(bestAuc >= 0.8, `best validation AUC ${bestAuc} is not clearly above chance (0.5)`);
});
