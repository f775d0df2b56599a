/**
 * concatChunksInPlace: the model written over the buffer its large views lie in must be byte for byte what
 * concatChunks writes into a fresh array, must reuse that buffer only when every view lies at or after its place
 * (else copy), and must move views that lie past the model's end in full. Fails on a stub that copies always, one
 * that moves views in any order, and one that moves within the model-sized view (the clamp found by ResNet-152).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatChunks, concatChunksInPlace } from '../../../src/models/onnx/graph.js';

function filled(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed * 17) & 255;
  return a;
}

test('views in buffer order, each at or after its place: written in place, same bytes as a copy', () => {
  const host = filled(1000, 1);
  const header = filled(10, 2);
  const mid = filled(7, 3);
  // Sources at 40..240 and 300..700 (the last one reaching past the model's 617 bytes), moved down to 10 and 217.
  const chunks = [header, host.subarray(40, 240), mid, host.subarray(300, 700)];
  const want = concatChunks(chunks.map((c) => c.slice()));
  const list = [...chunks];
  const got = concatChunksInPlace(list);
  assert.equal(got.buffer, host.buffer, 'reuses the host buffer');
  assert.equal(got.byteOffset, 0);
  assert.deepEqual([...got], [...want]);
  assert.deepEqual(list, [got], 'the chunk list now holds the one result');
});

test('a view before its place in the output: copied, the host left as it was', () => {
  const host = filled(1000, 4);
  const before = host.slice();
  const chunks = [filled(50, 5), host.subarray(600, 900), host.subarray(10, 60)];
  const want = concatChunks(chunks.map((c) => c.slice()));
  const got = concatChunksInPlace([...chunks]);
  assert.notEqual(got.buffer, host.buffer);
  assert.deepEqual([...got], [...want]);
  assert.deepEqual([...host], [...before], 'the host is untouched when the order does not allow it');
});

test('a host smaller than the model: copied', () => {
  const host = filled(100, 6);
  const chunks = [filled(80, 7), host.subarray(0, 90)];
  const got = concatChunksInPlace([...chunks]);
  assert.notEqual(got.buffer, host.buffer);
  assert.equal(got.byteLength, 170);
});
