/** Config resolution (defaults = the seed report's chosen model, file < flags, errors naming the source) and grid expansion. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULT_CONFIG, parseRegionWeights, resolveConfig } from '../../src/train/config.js';
import { expandGrid, parseGrid, table1Csv, table1Markdown, type SweepRow } from '../../src/train/sweep.js';

test("defaults are the seed report's chosen model", () => {
  const c = resolveConfig([{ values: { data: '/d' }, source: 'test' }]);
  assert.equal(c.arch, 'resnet152');
  assert.equal(c.lr, 1e-5);
  assert.equal(c.l2, 0.1);
  assert.equal(c.dropout, 0.5);
  assert.equal(c.frozenLayers, 148);
  assert.equal(c.batchSize, 16);
  assert.equal(c.hflip, true);
  assert.equal(c.inputSize, 320);
  assert.deepEqual([c.beta1, c.beta2], [0.9, 0.999]);
  assert.equal(c.loss, 'bce');
  assert.equal(c.selectBy, 'kappa');
  assert.equal(DEFAULT_CONFIG.rotation, 0);
});

test('later layers override earlier ones; errors name the source and the flag', () => {
  const c = resolveConfig([
    { values: { data: '/d', lr: 0.01, epochs: 3 }, source: 'my.json' },
    { values: { lr: 0.001 }, source: 'command line' },
  ]);
  assert.equal(c.lr, 0.001);
  assert.equal(c.epochs, 3);
  assert.throws(() => resolveConfig([{ values: { data: '/d', dropout: 1.5 }, source: 'my.json' }]), (e: Error) => e instanceof ConfigError && /my\.json: dropout \(--dropout\) must be a number in \[0, 1\)/.test(e.message));
  assert.throws(() => resolveConfig([{ values: { data: '/d', lossKind: 'bce' }, source: 'my.json' }]), /my\.json: unknown config field 'lossKind'/);
  assert.throws(() => resolveConfig([{ values: {}, source: 'x' }]), /no dataset/);
});

test('region weights: validation, key=value list, JSON; unknown regions refused', () => {
  assert.equal(parseRegionWeights('validation', 'w'), 'validation');
  assert.deepEqual(parseRegionWeights('XR_WRIST=2,XR_HAND=1.5', 'w'), { XR_WRIST: 2, XR_HAND: 1.5 });
  assert.deepEqual(parseRegionWeights('{"XR_ELBOW": 3}', 'w'), { XR_ELBOW: 3 });
  assert.throws(() => parseRegionWeights('XR_KNEE=2', 'w'), /unknown region 'XR_KNEE'/);
});

test('grid: lists are axes (cartesian product, first axis slowest), scalars fixed', () => {
  const g = parseGrid({ l2: [0, 0.1], dropout: [0.2, 0.5, 0.7], epochs: 4 }, 'grid.json');
  assert.deepEqual(g.fixed, { epochs: 4 });
  assert.deepEqual(expandGrid(g), [
    { l2: 0, dropout: 0.2 },
    { l2: 0, dropout: 0.5 },
    { l2: 0, dropout: 0.7 },
    { l2: 0.1, dropout: 0.2 },
    { l2: 0.1, dropout: 0.5 },
    { l2: 0.1, dropout: 0.7 },
  ]);
  assert.throws(() => parseGrid({ l2: [] }, 'grid.json'), /grid\.json: grid axis 'l2' is an empty list/);
});

test('Table 1 rows: variance = train - validation accuracy, percentages in Markdown', () => {
  const row: SweepRow = {
    run: 'run-001', model: 'resnet152', l2: 0.1, dropout: 0.5, frozen: 148, augmentation: 'hflip', batch_size: 16,
    train_accuracy: 0.875, val_accuracy: 0.8, variance: 0.875 - 0.8, val_recall: 0.7, best_epoch: 3, epochs: 5, status: 'done',
  };
  const md = table1Markdown([row]);
  assert.match(md, /\| run-001 \| resnet152 \| 0\.1 \| 0\.5 \| 148 \| hflip \| 16 \| 87\.5% \| 80\.0% \| 7\.5 pp \| 70\.0% \|/);
  const csv = table1Csv([row]).trim().split('\n');
  assert.equal(csv.length, 2);
  const cells = csv[1]!.split(',');
  assert.deepEqual(cells.slice(0, 9), ['run-001', 'resnet152', '0.1', '0.5', '148', 'hflip', '16', '0.875', '0.8']);
  assert.ok(Math.abs(Number(cells[9]) - 0.075) < 1e-12);
  assert.deepEqual(cells.slice(10), ['0.7', '3', '5', 'done', '']);
});
