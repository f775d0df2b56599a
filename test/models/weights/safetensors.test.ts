/**
 * safetensors reader/writer: a file written by hand from NumPy bytes (make.py), bit-exact round trips, and every
 * kind of damage a header can have (each error must name the file and, where there is one, the tensor).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSafetensors, parseSafetensorsHeader, serializeSafetensors } from '../../../src/models/weights/safetensors.js';
import { compareStateDicts, detectWeightFormat } from '../../../src/models/weights/state-dict.js';
import { WeightFormatError, type RawTensor, type StateDict } from '../../../src/models/weights/types.js';
import { assertTensorMatches, EXPECTED, fixture } from './expected.js';

/** Build a safetensors file from a header object and a data blob, independently of serializeSafetensors. */
function handMade(header: unknown, data: Uint8Array = new Uint8Array(0), headerLenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp, tensor?: string): void {
  assert.throws(
    () => parseSafetensors(bytes, { source: 'bad.safetensors' }),
    (e: Error) => {
      assert.ok(e instanceof WeightFormatError, `expected WeightFormatError, got ${String(e)}`);
      assert.equal(e.source, 'bad.safetensors');
      assert.match(e.message, /^bad\.safetensors: /);
      assert.match(e.message, pattern);
      if (tensor !== undefined) assert.equal(e.tensor, tensor);
      return true;
    },
  );
}

describe('parseSafetensors on a NumPy-written file', () => {
  const bytes = fixture('mixed.safetensors');
  const { tensors, metadata } = parseSafetensors(bytes, { source: 'mixed.safetensors' });

  it('decodes every dtype exactly as NumPy/PyTorch see the values (f16 specials, bf16, int64 > 2^53, bool)', () => {
    for (const [k, want] of Object.entries(EXPECTED['mixed.safetensors'])) {
      assertTensorMatches(tensors.get(k), want as never, `mixed.safetensors ${k}`);
    }
  });

  it('keeps file order (even for integer-like keys JSON would reorder) and the metadata', () => {
    assert.deepEqual([...tensors.keys()], EXPECTED['mixed.safetensors#order']);
    assert.deepEqual(metadata, EXPECTED['mixed.safetensors#metadata']);
    assert.equal(detectWeightFormat(bytes), 'safetensors');
  });

  it('views the file bytes where aligned, copies on request', () => {
    assert.equal(tensors.get('w')!.data.buffer, bytes.buffer);
    const copied = parseSafetensors(bytes, { copy: true }).tensors.get('w')!;
    assert.notEqual(copied.data.buffer, bytes.buffer);
    assert.deepEqual(copied.data, tensors.get('w')!.data);
  });
});

describe('serializeSafetensors round trip', () => {
  it('parse(serialize(x)) is bit-exact for every dtype, scalar and empty tensors, NaN payloads included', () => {
    const sd: StateDict = new Map<string, RawTensor>([
      ['f32', { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -0, NaN, Infinity, 1e-45, -3.5]) }],
      ['nanbits', { dtype: 'F32', shape: [1], data: new Float32Array(new Uint32Array([0x7fc12345]).buffer) }],
      ['f64', { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -5e-324]) }],
      ['f16', { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0x7bff, 0x0001]) }],
      ['bf16', { dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xff80]) }],
      ['i64', { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]) }],
      ['i32', { dtype: 'I32', shape: [1], data: new Int32Array([-7]) }],
      ['i16', { dtype: 'I16', shape: [1], data: new Int16Array([-32768]) }],
      ['i8', { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) }],
      ['u8', { dtype: 'U8', shape: [1], data: new Uint8Array([200]) }],
      ['bool', { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }],
      ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([42]) }],
      ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const bytes = serializeSafetensors(sd, { k: 'v' });
    // data starts 8-byte aligned, as the reference writer pads it
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + headerLen) % 8, 0);
    const back = parseSafetensors(bytes);
    assert.deepEqual(compareStateDicts(sd, back.tensors), []);
    assert.deepEqual([...back.tensors.keys()], [...sd.keys()]);
    assert.deepEqual(back.metadata, { k: 'v' });
    assert.equal(new Uint32Array(back.tensors.get('nanbits')!.data.buffer, back.tensors.get('nanbits')!.data.byteOffset, 1)[0], 0x7fc12345);
  });

  it('re-serialising the NumPy-written file gives a file with the same tensors', () => {
    const { tensors, metadata } = parseSafetensors(fixture('mixed.safetensors'));
    const again = parseSafetensors(serializeSafetensors(tensors, metadata));
    assert.deepEqual(compareStateDicts(tensors, again.tensors), []);
    assert.deepEqual(again.metadata, metadata);
  });

  it('refuses data that does not match the shape', () => {
    const sd: StateDict = new Map([['x', { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } as RawTensor]]);
    assert.throws(() => serializeSafetensors(sd), /tensor 'x': shape \[2, 2\] needs 4 values, data has 3/);
  });
});

describe('corrupted safetensors', () => {
  const good = serializeSafetensors(
    new Map<string, RawTensor>([
      ['a', { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }],
      ['b', { dtype: 'F32', shape: [1], data: new Float32Array([3]) }],
    ]),
  );

  it('shorter than the length field', () => rejects(good.subarray(0, 5), /shorter than the 8-byte header length/));

  it('header length beyond the file', () => {
    const bad = Uint8Array.from(good);
    new DataView(bad.buffer).setBigUint64(0, 1n << 40n, true);
    rejects(bad, /header length 1099511627776 runs past the end of the file/);
  });

  it('truncated data names the tensor whose bytes are missing', () => rejects(good.subarray(0, good.length - 2), /run past the end of the data \(10 bytes\): file truncated/, 'b'));

  it('header that is not JSON', () => {
    const bad = Uint8Array.from(good);
    bad[8] = 0x5b; // '[' breaks the object
    rejects(bad, /header is not valid UTF-8 JSON/);
  });

  it('wrong magic: a zip file handed to the safetensors reader', () => rejects(fixture('small.pth'), /runs past the end of the file|not valid UTF-8 JSON/));

  it('unknown and unsupported dtypes', () => {
    rejects(handMade({ x: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /unknown dtype "F12"/, 'x');
    rejects(handMade({ x: { dtype: 'U32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /dtype U32 is valid safetensors but not supported/, 'x');
  });

  it('size mismatch between data_offsets and shape x dtype', () => {
    rejects(handMade({ x: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, new Uint8Array(20)), /holds 20 bytes but dtype F32 with shape \[2, 3\] needs 24/, 'x');
  });

  it('overlapping tensors (also with a tensor that is not adjacent)', () => {
    const data = new Uint8Array(16);
    rejects(
      handMade({
        big: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
        mid: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      }, data),
      /overlap tensor 'big' \[0, 16\]/,
      'mid',
    );
    rejects(
      handMade({
        a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
        b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        c: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      }, new Uint8Array(12)),
      /overlap tensor 'a'/,
    );
  });

  it('malformed offsets, shapes and metadata', () => {
    rejects(handMade({ x: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(8)), /data_offsets \[8,4\] is not \[begin, end\]/, 'x');
    rejects(handMade({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /shape \[-1\] is not a list of non-negative integers/, 'x');
    rejects(handMade({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, __metadata__: { n: 1 } }, new Uint8Array(4)), /__metadata__\['n'\] is number/);
    rejects(handMade({ x: 5 }), /tensor 'x': header entry is not an object/, 'x');
  });
});

describe('safetensors files on disk', () => {
  it('writeSafetensorsFile streams an atomic file that reads back bit-exactly; missing files are named', async () => {
    const { readdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tempDir } = await import('../../helpers/paths.js');
    const { readSafetensorsFile, readStateDict, writeSafetensorsFile } = await import('../../../src/models/weights/files.js');
    const tmp = tempDir();
    try {
      const { tensors, metadata } = parseSafetensors(fixture('mixed.safetensors'));
      const path = join(tmp.dir, 'sub', 'w.safetensors');
      writeSafetensorsFile(path, tensors, metadata);
      const back = await readSafetensorsFile(path);
      assert.deepEqual(compareStateDicts(tensors, back.tensors), []);
      assert.deepEqual(back.metadata, metadata);
      assert.deepEqual(readdirSync(join(tmp.dir, 'sub')), ['w.safetensors']);
      await assert.rejects(readStateDict(join(tmp.dir, 'nope.pth')), /nope\.pth: file not found/);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('header-only reading', () => {
  it('readSafetensorsHeaderFile lists a torchvision file from its header and agrees with the full parse', async () => {
    const { join } = await import('node:path');
    const { SMALL_FIXTURES } = await import('../../helpers/paths.js');
    const { readSafetensorsFile, readSafetensorsHeaderFile } = await import('../../../src/models/weights/files.js');
    const path = join(SMALL_FIXTURES, 'bottleneck_narrow.safetensors');
    const header = await readSafetensorsHeaderFile(path);
    const full = await readSafetensorsFile(path);
    assert.deepEqual(header.entries.map((e) => e.name), [...full.tensors.keys()]);
    for (const e of header.entries) {
      const t = full.tensors.get(e.name)!;
      assert.equal(e.dtype, t.dtype);
      assert.deepEqual(e.shape, t.shape);
    }
    await assert.rejects(readSafetensorsHeaderFile(join(SMALL_FIXTURES, 'nope.safetensors')), /nope\.safetensors: file not found/);
  });

  it('checks offsets against the real file size, not the bytes it was given', () => {
    const good = serializeSafetensors(new Map<string, RawTensor>([['a', { dtype: 'F32', shape: [4], data: new Float32Array(4) }]]));
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    const head = good.subarray(0, 8 + n);
    assert.equal(parseSafetensorsHeader(head, good.length).entries[0]!.end, 16);
    assert.throws(() => parseSafetensorsHeader(head, good.length - 1, { source: 'h' }), /h: tensor 'a': data_offsets \[0, 16\] run past the end/);
  });
});
