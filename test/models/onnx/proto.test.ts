/**
 * The protobuf codec and ONNX message layer under the exporter: byte-exact encodings against the worked examples of
 * the protobuf encoding guide (https://protobuf.dev/programming-guides/encoding/) and hand-computed bytes, decoding
 * errors, and a hand-built ONNX graph that onnxruntime-node must load and compute (values checked by hand).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { ProtoDecodeError, ProtoWriter, readFields, readVarint, asInt64, varintSize } from '../../../src/models/onnx/proto.js';
import { concatChunks, encodeModel, readModelInfo, type OnnxGraph } from '../../../src/models/onnx/graph.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('varints, strings, packed and nested fields match the protobuf guide examples', () => {
  // "08 96 01": field 1 = 150.
  assert.equal(hex(new ProtoWriter().varint(1, 150).finish()), '089601');
  // "12 07 74 65 73 74 69 6e 67": field 2 = "testing".
  assert.equal(hex(new ProtoWriter().string(2, 'testing').finish()), '120774657374696e67');
  // "1a 03 08 96 01": field 3 = message { field 1 = 150 }.
  assert.equal(hex(new ProtoWriter().message(3, (m) => m.varint(1, 150)).finish()), '1a03089601');
  // "32 06 03 8e 02 9e a7 05": field 6 packed [3, 270, 86942].
  assert.equal(hex(new ProtoWriter().packedVarints(6, [3, 270, 86942]).finish()), '3206038e029ea705');
});

test('int64 edge cases, floats and unpacked repeats (bytes by hand)', () => {
  // -1 as int64: ten bytes, 0xff x 9 then 0x01 (two's complement 2^64 - 1 in 7-bit groups).
  assert.equal(hex(new ProtoWriter().varint(1, -1).finish()), '08ffffffffffffffffff01');
  // 2^35 = 34359738368: groups of 7 bits -> 80 80 80 80 80 01.
  assert.equal(hex(new ProtoWriter().varint(1, 2 ** 35).finish()), '08808080808001');
  assert.equal(hex(new ProtoWriter().varint(1, 2n ** 63n - 1n).finish()), '08ffffffffffffffff7f');
  // float field 2 = 1.0: key (2 << 3) | 5 = 0x15, then IEEE-754 0x3f800000 little-endian.
  assert.equal(hex(new ProtoWriter().float(2, 1).finish()), '150000803f');
  // Unpacked repeated field 8 = [1, 2]: "40 01 40 02".
  assert.equal(hex(new ProtoWriter().repeatedVarints(8, [1, 2]).finish()), '40014002');
  // A field number needing a two-byte key: field 20 varint 7 -> key 160 = "a0 01".
  assert.equal(hex(new ProtoWriter().varint(20, 7).finish()), 'a00107');
  assert.equal(varintSize(0), 1);
  assert.equal(varintSize(127), 1);
  assert.equal(varintSize(128), 2);
  assert.equal(varintSize(-1), 10);
  assert.throws(() => new ProtoWriter().varint(1, 0.5), /safe integer/);
  assert.throws(() => new ProtoWriter().varint(0, 1), /field number/);
});

test('large byte fields are kept as views (no copy) and the reader gives them back', () => {
  const big = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const w = new ProtoWriter().string(1, 'w').bytes(9, big).varint(2, 5);
  const chunks = w.finishChunks();
  assert.ok(chunks.includes(big), 'the 100 kB payload is one of the output chunks, by identity');
  const bytes = concatChunks(chunks);
  assert.equal(bytes.byteLength, w.length);
  const fields = [...readFields(bytes)];
  assert.deepEqual(
    fields.map((f) => [f.field, f.wire]),
    [
      [1, 2],
      [9, 2],
      [2, 0],
    ],
  );
  const payload = fields[1]!.value as Uint8Array;
  assert.equal(payload.byteLength, big.byteLength);
  assert.ok(payload.every((v, i) => v === (i & 0xff)));
  assert.equal(fields[2]!.value, 5n);
  assert.equal(asInt64(readVarint(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 0).value), -1n);
});

test('the reader rejects truncated or malformed messages with ProtoDecodeError', () => {
  assert.throws(() => [...readFields(new Uint8Array([0x08]))], ProtoDecodeError); // key without its varint
  assert.throws(() => [...readFields(new Uint8Array([0x12, 0x05, 0x61]))], /claims 5 bytes/);
  assert.throws(() => [...readFields(new Uint8Array([0x0b]))], /wire type 3/); // deprecated groups
  assert.throws(() => readModelInfo(new TextEncoder().encode('hello, not onnx')), ProtoDecodeError);
});

/** y = Relu(x + c), MaxPool 2x2 with pads, Gemm: small enough to check by hand. */
function tinyGraph(): OnnxGraph {
  return {
    name: 'tiny',
    nodes: [
      { opType: 'Add', inputs: ['x', 'c'], outputs: ['s'], name: 'add' },
      { opType: 'Relu', inputs: ['s'], outputs: ['r'], name: 'relu' },
      { opType: 'MaxPool', inputs: ['r'], outputs: ['p'], name: 'pool', attrs: { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, 1, 1] } },
      { opType: 'Flatten', inputs: ['p'], outputs: ['f'], name: 'flat', attrs: { axis: 1 } },
      { opType: 'Gemm', inputs: ['f', 'w', 'b'], outputs: ['y'], name: 'gemm', attrs: { alpha: { float: 2 }, transB: 0 } },
    ],
    initializers: [
      { name: 'c', dims: [1], data: new Float32Array([-1]) },
      { name: 'w', dims: [4, 1], data: new Float32Array([1, 10, 100, 1000]) },
      { name: 'b', dims: [1], data: new Float32Array([0.5]) },
    ],
    inputs: [{ name: 'x', elemType: 'float32', shape: ['n', 1, 3, 3] }],
    outputs: [{ name: 'y', elemType: 'float32', shape: ['n', 1] }],
  };
}

test('a hand-built graph encodes, reads back, and computes in onnxruntime-node', async () => {
  const bytes = concatChunks(encodeModel(tinyGraph(), { producerName: 'test', producerVersion: '1', metadata: { a: 'b', 'é': 'ü' } }));
  const info = readModelInfo(bytes);
  assert.equal(info.irVersion, 8);
  assert.deepEqual(info.opsets, [{ domain: '', version: 17 }]);
  assert.deepEqual(info.metadata, { a: 'b', 'é': 'ü' });
  assert.deepEqual(info.inputs, [{ name: 'x', elemType: 1, shape: ['n', 1, 3, 3] }]);
  assert.deepEqual(info.outputs, [{ name: 'y', elemType: 1, shape: ['n', 1] }]);
  assert.equal(info.nodeCount, 5);
  assert.equal(info.initializerCount, 3);

  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    // x = 1..9 in a 3x3 grid; x - 1 -> 0..8; relu keeps it; 2x2/2 max-pool with bottom/right padding -> [[4, 5], [7, 8]];
    // y = 2 * (4*1 + 5*10 + 7*100 + 8*1000) + 0.5 = 17508.5. Second image: -x -> relu 0 -> y = 0.5.
    const x = new Float32Array(18);
    for (let i = 0; i < 9; i++) {
      x[i] = i + 1;
      x[9 + i] = -(i + 1);
    }
    const out = await session.run({ x: new ort.Tensor('float32', x, [2, 1, 3, 3]) });
    assert.deepEqual([...(out.y!.data as Float32Array)], [17508.5, 0.5]);
  } finally {
    await session.release();
  }
});

test('encodeModel refuses miswired graphs, naming the node', () => {
  const g = tinyGraph();
  g.nodes[1] = { ...g.nodes[1]!, inputs: ['nope'] };
  assert.throws(() => encodeModel(g, { producerName: 't', producerVersion: '1', metadata: {} }), /node relu \(Relu\) reads 'nope'/);
  const g2 = tinyGraph();
  g2.initializers[1] = { name: 'w', dims: [4, 2], data: new Float32Array(4) };
  assert.throws(() => encodeModel(g2, { producerName: 't', producerVersion: '1', metadata: {} }), /dims \[4, 2\] need 8 values, got 4/);
  const g3 = tinyGraph();
  g3.outputs.push({ name: 'ghost', elemType: 'float32', shape: [1] });
  assert.throws(() => encodeModel(g3, { producerName: 't', producerVersion: '1', metadata: {} }), /'ghost' is never computed/);
});
