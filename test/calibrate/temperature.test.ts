/**
 * Temperature scaling against NumPy written independently (a 400,001-point grid over log T):
 *   z = [-6,-4.5,-3,-.5,.8,3.5,5,6.5,-5,4,2,-2], y = [0,0,1,0,1,1,1,1,1,0,1,0]
 *   T* = 4.7178 (grid), NLL(1) = 1.1019981505918597, NLL(T*) = 0.6139880611177903
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyTemperature, fitTemperature, temperatureNll } from '../../src/calibrate/temperature.js';

test('temperature scaling equals a NumPy grid search', () => {
  const z = [-6, -4.5, -3, -0.5, 0.8, 3.5, 5, 6.5, -5, 4, 2, -2];
  const y = [0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0];
  const fit = fitTemperature(z, y);
  assert.ok(Math.abs(fit.temperature - 4.7178) < 1e-3, `T ${fit.temperature}`);
  assert.ok(Math.abs(fit.nllBefore - 1.1019981505918597) < 1e-12);
  assert.ok(Math.abs(fit.nllAfter - 0.6139880611177903) < 1e-9);
  assert.ok(Math.abs(temperatureNll(z, y, 1) - 1.1019981505918597) < 1e-12);
  const q = applyTemperature([2], 4);
  assert.ok(Math.abs(q[0]! - 1 / (1 + Math.exp(-0.5))) < 1e-15);
});
