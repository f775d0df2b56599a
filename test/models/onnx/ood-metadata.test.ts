/**
 * parseOodMetadata, the one reader of a model's `ood` metadata: the model's info, its card and the trust layer's
 * threshold all go through it, so a gate the info refuses is never half-read elsewhere. Fails on a reader that
 * accepts any JSON, one that drops a valid gate, and on a caller that parses the JSON itself with other rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOodMetadata } from '../../../src/models/onnx/extras.js';
import { oodThreshold } from '../../../src/inference/core/trust.js';

const GATE = { method: 'mahalanobis', output: 'ood_score', layers: ['layer4'], threshold: 41.5, quantile: 0.99, threshold_from: 'validation', shrinkage: 0.007, dim: 512, images: 1272 };

test('a valid gate is read whole; absent is null with no problem', () => {
  assert.deepEqual(parseOodMetadata(JSON.stringify(GATE)), { ood: GATE });
  assert.deepEqual(parseOodMetadata(undefined), { ood: null });
  assert.deepEqual(parseOodMetadata(''), { ood: null });
});

test('broken gates are refused with what is wrong', () => {
  assert.deepEqual(parseOodMetadata('{not json'), { ood: null, problem: 'is not JSON' });
  for (const bad of [{ ...GATE, method: 'knn' }, { ...GATE, threshold: '41.5' }, { ...GATE, threshold: null }, null, 3, []]) {
    const r = parseOodMetadata(JSON.stringify(bad));
    assert.equal(r.ood, null, JSON.stringify(bad));
    assert.match(r.problem ?? '', /mahalanobis/, JSON.stringify(bad));
  }
});

test('the threshold of the trust layer comes from the same reader', () => {
  assert.equal(oodThreshold({ ood: JSON.stringify(GATE) }), 41.5);
  assert.equal(oodThreshold({ ood: JSON.stringify({ ...GATE, method: 'knn' }) }), null, 'a gate the info refuses gives no threshold');
  assert.equal(oodThreshold({}), null);
});
