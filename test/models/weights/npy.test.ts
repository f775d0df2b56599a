/**
 * .npy/.npz against NumPy-written files (make.py): every supported dtype incl. big-endian, clear refusals for
 * Fortran order and unsupported dtypes, and round trips whose output NumPy's header rules accept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseNpy, parseNpz, serializeNpy, serializeNpyTensor } from '../../../src/models/weights/npy.js';
import { detectWeightFormat, parseStateDict } from '../../../src/models/weights/state-dict.js';
import { WeightFormatError } from '../../../src/models/weights/types.js';
import { assertTensorMatches, EXPECTED, fixture } from './expected.js';

describe('parseNpy on NumPy-written files', () => {
  for (const name of ['np_f32.npy', 'np_f16.npy', 'np_i64.npy', 'np_bool.npy', 'np_scalar.npy', 'np_be_f4.npy', 'np_be_i8.npy']) {
    it(`${name} matches NumPy's values`, () => {
      const arr = parseNpy(fixture(name), { source: name });
      assert.equal(arr.fortranOrder, false);
      assertTensorMatches(arr, EXPECTED['npy'][name], name);
    });
  }

  it('refuses Fortran order, saying how to fix it', () => {
    assert.throws(() => parseNpy(fixture('np_fortran.npy'), { source: 'f.npy' }), (e: Error) => {
      assert.ok(e instanceof WeightFormatError);
      assert.match(e.message, /^f\.npy: array is stored in Fortran .*np\.ascontiguousarray/);
      return true;
    });
  });

  it('refuses an unsupported dtype by name', () => {
    assert.throws(() => parseNpy(fixture('np_u32.npy'), { source: 'u.npy' }), /^WeightFormatError: u\.npy: unsupported dtype '<u4'/);
  });

  it('refuses truncated data, bad magic and trailing garbage', () => {
    const f = fixture('np_f32.npy');
    assert.throws(() => parseNpy(f.subarray(0, f.length - 1), { source: 't.npy' }), /t\.npy: data truncated: shape \[2, 3, 4\] of <f4 needs 96 bytes, file has 95/);
    assert.throws(() => parseNpy(f.subarray(0, 9), { source: 't.npy' }), /t\.npy: .npy file truncated/);
    assert.throws(() => parseNpy(fixture('small.pth'), { source: 'p.npy' }), /p\.npy: not a \.npy file/);
    const longer = new Uint8Array(f.length + 4);
    longer.set(f);
    assert.throws(() => parseNpy(longer, { source: 'g.npy' }), /g\.npy: 4 unexpected bytes after the data/);
  });
});

describe('torchvision fixture inputs and logits', async () => {
  const { readFileSync } = await import('node:fs');
  const { SMALL_FIXTURE_SET, LARGE_FIXTURE_SET, fixturePath } = await import('../../helpers/torchvision.js');
  const { SHARED_FIXTURES_SKIP } = await import('../../helpers/paths.js');
  for (const fx of [...SMALL_FIXTURE_SET, ...(SHARED_FIXTURES_SKIP ? [] : LARGE_FIXTURE_SET)]) {
    it(`${fx.name} (${fx.size}) parses to float32 [2, 3, 64, 64] and [2, ${fx.numClasses}]`, () => {
      const input = parseNpy(readFileSync(fixturePath(fx, `${fx.name}.input.npy`)));
      const logits = parseNpy(readFileSync(fixturePath(fx, `${fx.name}.logits.npy`)));
      assert.equal(input.dtype, 'F32');
      assert.deepEqual(input.shape, [2, 3, 64, 64]);
      assert.deepEqual(logits.shape, [2, fx.numClasses]);
      assert.ok(input.data.every(Number.isFinite));
      // make.py (and the shared fixtures' README) give the largest |logit| in NAME.json
      const meta = JSON.parse(readFileSync(fixturePath(fx, `${fx.name}.json`), 'utf8')) as { logits_abs_max: number };
      let m = 0;
      for (const v of logits.data as Float32Array) m = Math.max(m, Math.abs(v));
      assert.equal(m, Math.fround(meta.logits_abs_max));
    });
  }
  // Absent large fixtures show as one skip with the reason (present, they run in the loop above).
  if (SHARED_FIXTURES_SKIP) it('large torchvision fixtures (../shared/fixtures/torchvision) parse the same way', { skip: SHARED_FIXTURES_SKIP }, () => {});
});

describe('serializeNpy', () => {
  it('writes the header NumPy writes (same bytes as np.save for the same array)', () => {
    const want = fixture('np_f32.npy');
    const arr = parseNpy(want, { copy: true });
    const got = serializeNpy(arr.shape, arr.data);
    assert.deepEqual(got, want);
    assert.deepEqual(serializeNpyTensor(parseNpy(fixture('np_i64.npy'))), fixture('np_i64.npy'));
    assert.deepEqual(serializeNpyTensor(parseNpy(fixture('np_bool.npy'))), fixture('np_bool.npy'));
    assert.deepEqual(serializeNpyTensor(parseNpy(fixture('np_scalar.npy'))), fixture('np_scalar.npy'));
    assert.deepEqual(serializeNpyTensor(parseNpy(fixture('np_f16.npy'))), fixture('np_f16.npy'));
  });

  it('round-trips 1-d, empty and big-endian-read arrays bit-exactly', () => {
    const data = new Float32Array([1.5, NaN, -0, 3e38]);
    const back = parseNpy(serializeNpy([4], data));
    assert.deepEqual(back.shape, [4]);
    assert.deepEqual(new Uint8Array(back.data.buffer, back.data.byteOffset, 16), new Uint8Array(data.buffer));
    assert.deepEqual(parseNpy(serializeNpy([0, 3], new Float32Array(0))).shape, [0, 3]);
    const be = parseNpy(fixture('np_be_f4.npy'));
    const again = parseNpy(serializeNpyTensor(be));
    assert.deepEqual(again.data, be.data);
  });

  it('refuses a shape that does not match the data, and BF16', () => {
    assert.throws(() => serializeNpy([2, 2], new Float32Array(3)), /shape \[2, 2\] needs 4 values, got 3/);
    assert.throws(() => serializeNpy([1], new Uint16Array(1), 'BF16'), /BF16 has no NumPy dtype/);
    assert.throws(() => serializeNpy([1], new Uint16Array(1)), /ambiguous/);
  });
});

describe('.npz', () => {
  it('reads np.savez_compressed (deflated entries) as a state_dict, also through parseStateDict', () => {
    const bytes = fixture('arrays.npz');
    assert.equal(detectWeightFormat(bytes), 'npz');
    const sd = parseNpz(bytes, { source: 'arrays.npz' });
    for (const [k, want] of Object.entries(EXPECTED['npy']['arrays.npz'])) assertTensorMatches(sd.get(k), want as never, k);
    assert.deepEqual([...parseStateDict(bytes).keys()].sort(), ['bias', 'steps', 'weight']);
  });

  it('a single .npy is not a state_dict', () => {
    assert.throws(() => parseStateDict(fixture('np_f32.npy'), { source: 'a.npy' }), /a\.npy: this is a single NumPy array \(\.npy\), not a state_dict; use parseNpy/);
  });
});
