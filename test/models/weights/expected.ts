/**
 * Test helpers for the weight-format tests: the golden fixtures folder and a comparison of a parsed RawTensor
 * with what PyTorch/NumPy recorded for it in expected.json (written by test/fixtures/weights/make.py).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/paths.js';
import { toFloat32 } from '../../../src/models/weights/dtype.js';
import type { RawTensor } from '../../../src/models/weights/types.js';

export const WEIGHT_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'weights');

/** A fixture's bytes as a plain Uint8Array (not a Buffer, so deepEqual compares bytes only). */
export function fixture(name: string): Uint8Array {
  const b = readFileSync(join(WEIGHT_FIXTURES, name));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** One tensor as make.py describes it: floats exact (NaN/inf as strings), int64 as decimal strings, bool 0/1. */
export interface ExpectedTensor {
  dtype: string;
  shape: number[];
  values: Array<number | string>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const EXPECTED: Record<string, any> = JSON.parse(readFileSync(join(WEIGHT_FIXTURES, 'expected.json'), 'utf8'));

export function decodeExpected(v: number | string): number {
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  return v as number;
}

/** Assert a parsed tensor equals PyTorch's view of it, value by value, exactly. */
export function assertTensorMatches(t: RawTensor | undefined, want: ExpectedTensor, what: string): void {
  assert.ok(t, `${what}: missing`);
  assert.equal(t.dtype, want.dtype, `${what}: dtype`);
  assert.deepEqual(t.shape, want.shape, `${what}: shape`);
  assert.equal(t.data.length, want.values.length, `${what}: element count`);
  if (t.dtype === 'I64') {
    assert.deepEqual(Array.from(t.data, (x) => x.toString()), want.values, `${what}: int64 values`);
    return;
  }
  if (t.dtype === 'I32' || t.dtype === 'I16' || t.dtype === 'I8' || t.dtype === 'U8' || t.dtype === 'BOOL') {
    assert.deepEqual(Array.from(t.data), want.values, `${what}: integer values`);
    return;
  }
  // F64 compares its own doubles; everything else through toFloat32, which must be exact for these values.
  const got: ArrayLike<number> = t.dtype === 'F64' ? t.data : toFloat32(t);
  for (let i = 0; i < want.values.length; i++) {
    const w = decodeExpected(want.values[i]!);
    const g = got[i]!;
    const ok = Number.isNaN(w) ? Number.isNaN(g) : Object.is(g, t.dtype === 'F64' ? w : Math.fround(w));
    assert.ok(ok, `${what}[${i}]: got ${g}, PyTorch says ${w}`);
  }
}
