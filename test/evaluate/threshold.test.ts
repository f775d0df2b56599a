/** Threshold for a target sensitivity, worked by hand. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OperatingPointError, thresholdForMaxKappa, thresholdForSensitivity } from '../../src/evaluate/threshold.js';
import type { Label } from '../../src/data/types.js';

const cases = (pos: number[], neg: number[]): { label: Label; probability: number }[] => [
  ...pos.map((probability) => ({ label: 1 as Label, probability })),
  ...neg.map((probability) => ({ label: 0 as Label, probability })),
];

test('largest observed threshold reaching the target sensitivity (strict > rule)', () => {
  const v = cases([0.9, 0.7, 0.6, 0.3], [0.8, 0.5, 0.4, 0.2]);
  // Target 0.75 of 4 abnormal -> 3 needed; the 3rd highest abnormal is 0.6; the highest value below 0.6 is 0.5.
  // At t = 0.5: abnormal 0.9, 0.7, 0.6 called -> 3/4; normal 0.8 called -> specificity 3/4.
  // (t = 0.6 would miss 0.6, since 0.6 > 0.6 is false, giving 2/4.)
  const a = thresholdForSensitivity(v, 0.75);
  assert.equal(a.threshold, 0.5);
  assert.equal(a.validationSensitivity, 0.75);
  assert.equal(a.validationSpecificity, 0.75);
  assert.equal(a.validationCases, 8);
  assert.equal(a.validationPositives, 4);
  // Target 1: the 4th abnormal is 0.3 -> highest below is 0.2; at 0.2 all abnormal called, normal 0.8/0.5/0.4 too.
  const b = thresholdForSensitivity(v, 1);
  assert.equal(b.threshold, 0.2);
  assert.equal(b.validationSensitivity, 1);
  assert.equal(b.validationSpecificity, 0.25);
  // Target 0.5: 2 needed, 2nd abnormal 0.7 -> highest below is 0.6 -> abnormal 0.9, 0.7; normal 0.8.
  const c = thresholdForSensitivity(v, 0.5);
  assert.equal(c.threshold, 0.6);
  assert.equal(c.validationSensitivity, 0.5);
  assert.equal(c.validationSpecificity, 0.75);
});

test('0.9 of 10 needs 9, not 10 (floating point 0.9 * 10 = 9.000000000000002)', () => {
  const pos = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];
  // 9th highest abnormal = 0.2; highest value below it = 0.1 -> t = 0.1 -> sensitivity 9/10.
  const r = thresholdForSensitivity(cases(pos, [0.05]), 0.9);
  assert.equal(r.threshold, 0.1);
  assert.equal(r.validationSensitivity, 0.9);
});

test('no lower value: threshold 0; impossible or meaningless targets throw', () => {
  // All cases at or above the needed abnormal's 0.4 -> t = 0.
  assert.equal(thresholdForSensitivity(cases([0.4, 0.9], [0.6]), 1).threshold, 0);
  // What the user's validation cases cannot give is a usage error (exit 2); a target outside (0, 1] is the caller's.
  const dataError = (re: RegExp) => (err: unknown) => err instanceof OperatingPointError && err.exitStatus === 2 && re.test(err.message);
  assert.throws(() => thresholdForSensitivity(cases([], [0.3]), 0.8), dataError(/no abnormal case/));
  assert.throws(() => thresholdForSensitivity(cases([0.5, 0], [0.3]), 1), dataError(/probability 0/));
  assert.throws(() => thresholdForMaxKappa(cases([0.5, 0.7], [])), dataError(/no normal case/));
  assert.throws(() => thresholdForSensitivity(cases([0.5], [0.3]), 0), /\(0, 1\]/);
  assert.throws(() => thresholdForSensitivity(cases([0.5], [0.3]), 1.2), /\(0, 1\]/);
});
