/**
 * The operating point a prediction was made at, in words (the SR's algorithm parameters, the console): the stored
 * operating point of a checkpoint written by `nextray calibrate` reaches the text through the model card, with its
 * rule and validation figures; a given threshold or one that is not the fitted one says so instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cardFromCheckpoint } from '../../../src/models/card.js';
import { makePreprocessing } from '../../../src/data/preprocess.js';
import { operatingPointOrigin, operatingPointText } from '../../../src/inference/core/trust.js';

const stored = {
  rule: 'max-kappa',
  threshold: 0.344,
  validationSensitivity: 0.795,
  validationSpecificity: 0.95,
  validationKappa: 0.762,
  validationCases: 210,
  validationPositives: 88,
  level: 'study' as const,
  fittedOn: 'validation',
};
const meta = {
  arch: 'resnet-slim',
  inputShape: [64, 64, 3],
  preprocessing: makePreprocessing({ size: 64 }),
  head: { kind: 'dropout-dense-sigmoid', units: 1 },
  decisionThreshold: 0.344,
  extra: { trust: { operatingPoint: stored } },
};

test('the stored operating point reaches the text through the card', () => {
  const card = cardFromCheckpoint(meta, 'best');
  assert.equal(card.decisionThreshold, 0.344);
  assert.equal(card.operatingPoint?.rule, 'max-kappa');
  assert.equal(card.operatingPoint?.kappa, 0.762);
  assert.equal(
    operatingPointText([card], 0.344, false),
    'threshold 0.344 (stored with the model: maximum study kappa on validation: kappa 0.762, sensitivity 0.795, specificity 0.950, 210 studies); abnormal when probability > threshold',
  );
});

test('a sensitivity target names its target; a given or other threshold does not claim the fitted rule', () => {
  const card = cardFromCheckpoint({ ...meta, extra: { trust: { operatingPoint: { ...stored, rule: 'sensitivity-target', targetSensitivity: 0.9, validationKappa: null } } } }, 'best');
  assert.equal(operatingPointOrigin(card.operatingPoint, 0.344), 'study sensitivity >= 0.9 on validation: sensitivity 0.795, specificity 0.950, 210 studies');
  assert.equal(operatingPointText([card], 0.5, true), 'threshold 0.5 (given with --threshold); abnormal when probability > threshold');
  assert.equal(operatingPointText([card], 0.5, false), 'threshold 0.5 (stored with the model); abnormal when probability > threshold');
  assert.equal(operatingPointText([card, card], 0.344, false), 'threshold 0.344 (stored with the model); abnormal when probability > threshold');
});
