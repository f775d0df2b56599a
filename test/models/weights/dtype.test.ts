/**
 * Half/bfloat16 conversions checked against NumPy (make.py: a sweep of f16 bit patterns decoded by NumPy, and
 * float32 -> float16 rounding as NumPy does it), plus toFloat32 on every dtype.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bf16BitsToNumber,
  f16BitsToNumber,
  fromFloat32,
  numberToBF16Bits,
  numberToF16Bits,
  rawTensor,
  toFloat32,
  typedFromBytes,
} from '../../../src/models/weights/dtype.js';
import type { RawTensor } from '../../../src/models/weights/types.js';
import { decodeExpected, EXPECTED } from './expected.js';

describe('float16', () => {
  it('decodes bit patterns exactly as NumPy does (subnormals, infinities, NaN, -0)', () => {
    const { bits, values } = EXPECTED['f16_decode'] as { bits: number[]; values: Array<number | string> };
    assert.ok(bits.length > 600);
    for (let i = 0; i < bits.length; i++) {
      const want = decodeExpected(values[i]!);
      const got = f16BitsToNumber(bits[i]!);
      assert.ok(Number.isNaN(want) ? Number.isNaN(got) : Object.is(got, want), `0x${bits[i]!.toString(16)}: ${got} vs NumPy ${want}`);
    }
  });

  it('toFloat32 on an F16 tensor gives the same values', () => {
    const { bits, values } = EXPECTED['f16_decode'] as { bits: number[]; values: Array<number | string> };
    const f = toFloat32({ dtype: 'F16', shape: [bits.length], data: Uint16Array.from(bits) });
    for (let i = 0; i < bits.length; i++) {
      const want = decodeExpected(values[i]!);
      assert.ok(Number.isNaN(want) ? Number.isNaN(f[i]!) : Object.is(f[i], want));
    }
  });

  it('encodes float32 with the rounding NumPy uses (half to even, overflow to inf, subnormals)', () => {
    const { f32, bits } = EXPECTED['f16_encode'] as { f32: Array<number | string>; bits: number[] };
    for (let i = 0; i < f32.length; i++) {
      const x = Math.fround(decodeExpected(f32[i]!));
      assert.equal(numberToF16Bits(x), bits[i], `${x}: 0x${numberToF16Bits(x).toString(16)} vs NumPy 0x${bits[i]!.toString(16)}`);
    }
  });

  it('encode(decode(b)) === b for every non-NaN pattern', () => {
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7c00) === 0x7c00 && b & 0x3ff) continue;
      assert.equal(numberToF16Bits(f16BitsToNumber(b)), b);
    }
  });
});

describe('bfloat16', () => {
  it('decodes as the top half of a float32 (by hand: 0x3f80 = 1, 0xc020 = -2.5, 0x7f80 = inf)', () => {
    assert.equal(bf16BitsToNumber(0x3f80), 1);
    assert.equal(bf16BitsToNumber(0xc020), -2.5);
    assert.equal(bf16BitsToNumber(0x7f80), Infinity);
    assert.ok(Number.isNaN(bf16BitsToNumber(0x7fc0)));
  });

  it('encodes with round half to even (by hand)', () => {
    // 1 + 2^-8 lies exactly between bf16 1 (0x3f80) and 1 + 2^-7 (0x3f81): ties to even -> 0x3f80
    assert.equal(numberToBF16Bits(1 + 2 ** -8), 0x3f80);
    // 1 + 3 * 2^-8 lies between 0x3f81 and 0x3f82: tie -> even 0x3f82
    assert.equal(numberToBF16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(numberToBF16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
    assert.ok(Number.isNaN(bf16BitsToNumber(numberToBF16Bits(NaN))));
  });
});

describe('toFloat32 / fromFloat32', () => {
  it('converts every dtype by value', () => {
    const cases: Array<[RawTensor, number[]]> = [
      [{ dtype: 'F64', shape: [2], data: new Float64Array([0.1, -2]) }, [Math.fround(0.1), -2]],
      [{ dtype: 'I64', shape: [2], data: new BigInt64Array([-3n, 2n ** 40n]) }, [-3, 2 ** 40]],
      [{ dtype: 'I32', shape: [1], data: new Int32Array([-5]) }, [-5]],
      [{ dtype: 'I16', shape: [1], data: new Int16Array([300]) }, [300]],
      [{ dtype: 'I8', shape: [1], data: new Int8Array([-1]) }, [-1]],
      [{ dtype: 'U8', shape: [1], data: new Uint8Array([255]) }, [255]],
      [{ dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }, [1, 0]],
      [{ dtype: 'BF16', shape: [1], data: new Uint16Array([0xc020]) }, [-2.5]],
    ];
    for (const [t, want] of cases) assert.deepEqual(Array.from(toFloat32(t)), want, t.dtype);
  });

  it('F32 is returned without a copy', () => {
    const data = new Float32Array([1, 2]);
    assert.equal(toFloat32({ dtype: 'F32', shape: [2], data }), data);
  });

  it('fromFloat32 inverts it (integers truncate toward zero like torch .to(int))', () => {
    const x = new Float32Array([1.75, -1.75, 0]);
    assert.deepEqual(Array.from(fromFloat32(x, 'I32')), [1, -1, 0]);
    assert.deepEqual(Array.from(fromFloat32(x, 'I64')), [1n, -1n, 0n]);
    assert.deepEqual(Array.from(fromFloat32(x, 'BOOL')), [1, 1, 0]);
    assert.deepEqual(Array.from(toFloat32({ dtype: 'F16', shape: [3], data: fromFloat32(x, 'F16') })), [1.75, -1.75, 0]);
    assert.throws(() => rawTensor([2, 2], x), /shape \[2, 2\] needs 4 values, got 3/);
  });

  it('typedFromBytes views aligned little-endian bytes and copies or swaps otherwise', () => {
    const buf = new Uint8Array(12);
    new DataView(buf.buffer).setFloat32(4, 1.5, true);
    const view = typedFromBytes('F32', buf.subarray(4), 1);
    assert.equal(view.buffer, buf.buffer);
    assert.equal(view[0], 1.5);
    new DataView(buf.buffer).setFloat32(1, -2.25, true);
    const unaligned = typedFromBytes('F32', buf.subarray(1), 1);
    assert.notEqual(unaligned.buffer, buf.buffer);
    assert.equal(unaligned[0], -2.25);
    new DataView(buf.buffer).setFloat32(8, 6.5, false);
    assert.equal(typedFromBytes('F32', buf.subarray(8), 1, { bigEndian: true })[0], 6.5);
    assert.throws(() => typedFromBytes('F64', buf.subarray(8), 1), /need 8 bytes/);
  });
});
