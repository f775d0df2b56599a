/**
 * The feature store's crash safety, by damaging its files the way a kill -9, a power cut or a bad disk would:
 * a record cut part way, a flipped byte in a record written after the last commit, a flipped byte in a committed
 * record, a destroyed index; and the writer lock. Each damaged entry must read as missing (to be recomputed),
 * every other entry must read back exactly, and a store with nothing wrong must lose nothing.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { openSync, readFileSync, statSync, closeSync, writeSync, writeFileSync, truncateSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { tempDir } from '../../helpers/paths.js';
import { FeatureStore, recordBytesFor } from '../../../src/train/feature-cache/store.js';
import { FEATURE_CACHE_FORMAT, type KeySet } from '../../../src/train/feature-cache/key.js';
import { makePreprocessing } from '../../../src/data/preprocess.js';

const tmp = tempDir('nextray-fstore-');
after(() => tmp.cleanup());

const keySet = (storage: 'fp16' | 'fp32', tag = 'a'): KeySet => ({
  format: FEATURE_CACHE_FORMAT,
  arch: 'test',
  layers: 3,
  prefixLayers: 2,
  prefixTensors: createHash('sha256').update(tag).digest('hex'),
  preprocessing: makePreprocessing({ size: 32 }),
  engine: 'cpu',
  computePrecision: 'fp32',
  prefixBatch: 16,
  storage,
  shape: [2, 3, 5],
});
const VALUES = 30;
const hash = (i: number) => createHash('sha256').update(`image-${i}`).digest('hex');
/** Distinct values per (image, variant), not all representable in fp16. */
const values = (i: number, v: number) => Float32Array.from({ length: VALUES }, (_, k) => Math.sin(1 + i * 7.1 + v * 3.3 + k * 0.37) * (1 + k));

function readAll(s: FeatureStore, n: number): (Float32Array | null)[] {
  const out: (Float32Array | null)[] = [];
  for (let i = 0; i < n; i++) {
    for (const v of [0, 1] as const) {
      const buf = new Float32Array(VALUES);
      out.push(s.read(hash(i), v, buf) ? buf : null);
    }
  }
  return out;
}

function fill(root: string, storage: 'fp16' | 'fp32', n: number, commitAfter: number): FeatureStore {
  const s = FeatureStore.open(root, keySet(storage));
  for (let i = 0; i < n; i++) {
    s.append(hash(i), 0, values(i, 0));
    s.append(hash(i), 1, values(i, 1));
    if (i + 1 === commitAfter) s.commit();
  }
  return s;
}

/** Closes a store without committing or releasing the lock, as a kill -9 would leave it. */
function abandon(s: FeatureStore): void {
  const fd = (s as unknown as { fd: number }).fd;
  closeSync(fd);
  (s as unknown as { closed: boolean }).closed = true;
}

test('entries read back exactly (fp32) or as numpy-style halves (fp16) after close and reopen; other keys miss', () => {
  for (const storage of ['fp32', 'fp16'] as const) {
    const root = join(tmp.dir, `roundtrip-${storage}`);
    const s = fill(root, storage, 4, 0);
    assert.equal(s.size, 8);
    s.close();
    const r = FeatureStore.open(root, keySet(storage));
    assert.equal(r.size, 8);
    assert.equal(r.report.recovered, 0, 'a clean close commits everything');
    const got = readAll(r, 4);
    got.forEach((g, j) => {
      const want = values(Math.floor(j / 2), j % 2);
      assert.ok(g, `entry ${j} present`);
      for (let k = 0; k < VALUES; k++) {
        if (storage === 'fp32') assert.equal(g[k], want[k]);
        else assert.ok(Math.abs(g[k]! - want[k]!) <= Math.abs(want[k]!) * 2 ** -11 + 2 ** -25, `fp16 entry ${j}[${k}]`);
      }
    });
    assert.equal(r.has(hash(9), 0), false);
    assert.equal(r.recordBytes, recordBytesFor(VALUES, storage));
    r.close();
    // A different key-set is a different folder: nothing of the first is visible.
    const other = FeatureStore.open(root, keySet(storage, 'b'));
    assert.equal(other.size, 0);
    assert.notEqual(other.dir, r.dir);
    other.close();
  }
});

test('a kill after the last commit: whole records after it are recovered, a record cut part way is dropped and cut off', () => {
  const root = join(tmp.dir, 'torn');
  const s = fill(root, 'fp32', 5, 3); // slots 0-5 committed, 6-9 not
  const data = s.dataPath;
  const rb = s.recordBytes;
  abandon(s);
  // The last record cut in the middle (a write interrupted by the kill).
  truncateSync(data, 64 + 9 * rb + Math.floor(rb / 2));
  const r = FeatureStore.open(root, keySet('fp32'));
  assert.equal(r.report.recovered, 3, 'slots 6, 7, 8 were whole');
  assert.equal(r.report.dropped, 1, 'the partial record');
  assert.equal(r.size, 9);
  assert.equal(r.has(hash(4), 1), false, 'the torn entry is missing, so it will be computed again');
  assert.equal(statSync(data).size, 64 + 9 * rb, 'cut back to whole records');
  const got = readAll(r, 5);
  got.slice(0, 9).forEach((g, j) => assert.deepEqual(g, values(Math.floor(j / 2), j % 2)));
  // Appending goes on at the cut: the recomputed entry lands in slot 9.
  r.append(hash(4), 1, values(4, 1));
  r.close();
  const again = FeatureStore.open(root, keySet('fp32'));
  assert.equal(again.size, 10);
  assert.deepEqual(readAll(again, 5)[9], values(4, 1));
  again.close();
});

test('a flipped byte in an uncommitted record is caught by its checksum on open; in a committed one, when read', () => {
  const root = join(tmp.dir, 'bitrot');
  const s = fill(root, 'fp32', 4, 2); // slots 0-3 committed
  const data = s.dataPath;
  const rb = s.recordBytes;
  abandon(s);
  const flip = (slot: number, at: number) => {
    const fd = openSync(data, 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 64 + slot * rb + at);
    b[0]! ^= 0x01;
    writeSync(fd, b, 0, 1, 64 + slot * rb + at);
    closeSync(fd);
  };
  flip(5, 60); // uncommitted slot 5 = image 2, hflip
  flip(1, 70); // committed slot 1 = image 0, hflip
  const r = FeatureStore.open(root, keySet('fp32'));
  assert.equal(r.report.dropped, 1);
  assert.equal(r.has(hash(2), 1), false);
  assert.equal(r.has(hash(0), 1), true, 'committed slots are trusted until read');
  const buf = new Float32Array(VALUES);
  assert.equal(r.read(hash(0), 1, buf), false, 'the checksum catches it on read');
  assert.equal(r.has(hash(0), 1), false, 'and the entry is forgotten');
  assert.equal(r.size, 6);
  assert.ok(r.read(hash(3), 0, buf));
  assert.deepEqual(buf, values(3, 0));
  r.close();
  const again = FeatureStore.open(root, keySet('fp32'));
  assert.equal(again.has(hash(0), 1), false, 'the forgotten entry stays forgotten after a commit');
  assert.equal(again.size, 6);
  again.close();
});

test('a destroyed index: every record is checked and kept', () => {
  const root = join(tmp.dir, 'noindex');
  const s = fill(root, 'fp16', 3, 0);
  s.close();
  writeFileSync(s.indexPath, 'garbage');
  const r = FeatureStore.open(root, keySet('fp16'));
  assert.equal(r.size, 6);
  assert.equal(r.report.recovered, 6);
  assert.equal(r.report.dropped, 0);
  r.close();
  assert.equal(readFileSync(s.indexPath).subarray(0, 8).toString('latin1'), 'NXRYFIDX', 'the index is rewritten');
});

test('the writer lock: a live holder makes the store read-only, a dead one\'s lock is taken over', async () => {
  const root = join(tmp.dir, 'lock');
  const s = fill(root, 'fp32', 1, 0);
  s.close();
  const lock = join(s.dir, 'writer.lock');
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    writeFileSync(lock, `${child.pid}\n`);
    const r = FeatureStore.open(root, keySet('fp32'));
    assert.equal(r.canWrite, false);
    assert.match(r.report.readOnlyReason ?? '', new RegExp(`process ${child.pid} is writing it`));
    assert.equal(r.size, 2, 'a read-only store still reads');
    assert.throws(() => r.append(hash(5), 0, values(5, 0)), /read-only/);
    r.close();
    assert.equal(readFileSync(lock, 'utf8').trim(), String(child.pid), 'a reader leaves the writer\'s lock alone');
  } finally {
    child.kill('SIGKILL');
    await new Promise((res) => child.on('exit', res));
  }
  const w = FeatureStore.open(root, keySet('fp32'));
  assert.equal(w.canWrite, true, 'the holder is dead: its lock is stale');
  w.close();
});
