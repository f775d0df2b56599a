/**
 * The cache's number formats against independent references (test/fixtures/feature-cache/make.py): float32 ->
 * float16 against numpy's astype (round to nearest even, subnormals, overflow, NaN), float16 -> float32 against
 * numpy, CRC-32 against Python's zlib (both the native and the JavaScript implementation).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/paths.js';
import { decodeFp16, encodeFp16, roundToFp16 } from '../../../src/train/feature-cache/fp16.js';
import { crc32, crc32Js } from '../../../src/train/feature-cache/crc32.js';

const dir = join(REPO_ROOT, 'test', 'fixtures', 'feature-cache');
const f16 = JSON.parse(readFileSync(join(dir, 'float16.json'), 'utf8')) as { f32_bits: number[]; f16_bits: number[]; f16_to_f32_bits: (number | null)[] };
const crc = JSON.parse(readFileSync(join(dir, 'crc32.json'), 'utf8')) as { cases: { hex: string; crc32: number }[] };

test('float32 -> float16 gives numpy\'s bits for edge cases and 6,000 random / activation-like values', () => {
  const src = new Float32Array(Uint32Array.from(f16.f32_bits).buffer);
  const out = new Uint16Array(src.length);
  const overflow = encodeFp16(src, out);
  let wrong = 0;
  const examples: string[] = [];
  for (let i = 0; i < src.length; i++) {
    const want = f16.f16_bits[i]!;
    const got = out[i]!;
    const bothNan = (want & 0x7c00) === 0x7c00 && (want & 0x3ff) !== 0 && (got & 0x7c00) === 0x7c00 && (got & 0x3ff) !== 0;
    if (got !== want && !bothNan) {
      wrong++;
      if (examples.length < 5) examples.push(`${src[i]} -> 0x${got.toString(16)}, numpy 0x${want.toString(16)}`);
    }
  }
  assert.equal(wrong, 0, examples.join('; '));
  // Finite inputs that numpy turned into +/-Infinity are the ones counted as overflow.
  let expected = 0;
  for (let i = 0; i < src.length; i++) if (Number.isFinite(src[i]!) && (f16.f16_bits[i]! & 0x7fff) === 0x7c00) expected++;
  assert.ok(expected > 0, 'the fixture has overflowing values');
  assert.equal(overflow, expected);
});

test('float16 -> float32 gives numpy\'s values; rounding in place is encode + decode', () => {
  const halves = Uint16Array.from(f16.f16_bits);
  const back = new Float32Array(halves.length);
  decodeFp16(halves, back);
  const bits = new Uint32Array(back.buffer);
  f16.f16_to_f32_bits.forEach((want, i) => {
    if (want === null) assert.ok(Number.isNaN(back[i]!), `half 0x${halves[i]!.toString(16)} is NaN`);
    else assert.equal(bits[i], want >>> 0, `half 0x${halves[i]!.toString(16)}`);
  });
  const v = new Float32Array(Uint32Array.from(f16.f32_bits).buffer).slice();
  roundToFp16(v);
  const vb = new Uint32Array(v.buffer);
  f16.f16_to_f32_bits.forEach((want, i) => {
    if (want !== null) assert.equal(vb[i], want >>> 0);
  });
});

test('CRC-32 matches zlib for both implementations, and sees a single flipped bit', () => {
  for (const c of crc.cases) {
    const bytes = Buffer.from(c.hex, 'hex');
    assert.equal(crc32(bytes), c.crc32, `native/auto on ${c.hex.slice(0, 16)}`);
    assert.equal(crc32Js(bytes), c.crc32, `JavaScript on ${c.hex.slice(0, 16)}`);
  }
  const b = Buffer.from(crc.cases[4]!.hex, 'hex');
  const before = crc32(b);
  b[300]! ^= 0x10;
  assert.notEqual(crc32(b), before);
});
