/**
 * The optimised-model cache of ONNX Runtime sessions (src/inference/node/ort-cache.ts via OnnxClassifier.create's
 * `optimizedCache`): a cached session gives the uncached session's outputs; a corrupt or stale cache is detected,
 * said in one line and rewritten; the key follows the model; an unwritable model folder falls back to the user cache.
 * Tiny resnet-slim models at 64 px; every cache goes into a temporary folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { initEngine, tf } from '../../../src/engine/index.js';
import { createModel } from '../../../src/models/index.js';
import { exportOnnx } from '../../../src/models/onnx/export.js';
import { saveOnnx } from '../../../src/models/onnx/files.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { cacheKey, environmentKey, type OrtCacheOptions } from '../../../src/inference/node/ort-cache.js';
import { tempDir } from '../../helpers/paths.js';

const SIZE = 64;
const x = Float32Array.from({ length: 3 * SIZE * SIZE * 3 }, (_, i) => Math.sin(i * 0.37) * 1.5);

async function writeModel(path: string, seed: number): Promise<void> {
  await initEngine();
  const before = tf.memory().numTensors;
  const model = createModel('resnet-slim', { head: 'binary', seed });
  saveOnnx(path, exportOnnx(model, { inputSize: SIZE }));
  model.dispose();
  assert.equal(tf.memory().numTensors, before, 'the export leaves no tensors behind');
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Open `path`, run `x`, release; returns the logits and what the cache did. */
async function runOnce(path: string, cache: boolean | OrtCacheOptions | undefined) {
  const clf = await OnnxClassifier.create(path, { threads: 1, ...(cache !== undefined ? { optimizedCache: cache } : {}) });
  try {
    return { logits: (await clf.run(x, 3)).logits, cache: clf.cache };
  } finally {
    await clf.release();
  }
}

const close = (a: Float32Array, b: Float32Array): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 * Math.max(1, Math.abs(b[i]!)), `logit ${i}: ${a[i]} vs ${b[i]}`);
};

test('a cached session is written once, then loaded, with the uncached outputs; the manifest records both sha256s', async () => {
  const { dir, cleanup } = tempDir('nextray-ortcache-');
  try {
    const model = join(dir, 'm.onnx');
    await writeModel(model, 1);
    const cacheDir = join(dir, 'cache');
    const lines: string[] = [];
    const opts = { dir: cacheDir, onLog: (l: string) => lines.push(l) };
    const plain = await runOnce(model, undefined);
    assert.deepEqual(plain.cache, { status: 'off', reason: 'not asked for' });
    assert.equal(existsSync(cacheDir), false, 'no cache unless asked for');

    const first = await runOnce(model, opts);
    assert.equal(first.cache.status, 'written');
    const file = join(cacheDir, `${environmentKey('all')}.ort`);
    assert.equal(first.cache.file, file);
    assert.equal(first.cache.sourceSha256, sha256(model));
    const manifest = JSON.parse(readFileSync(join(cacheDir, `${environmentKey('all')}.json`), 'utf8'));
    assert.equal(manifest.source_sha256, sha256(model));
    assert.equal(manifest.cache_sha256, sha256(file));
    assert.equal(manifest.level, 'all');
    assert.equal(manifest.key, cacheKey(sha256(model), 'all'));
    // Only the cache file and its manifest: no temporary file left behind.
    assert.deepEqual(readdirSync(cacheDir).sort(), [`${environmentKey('all')}.json`, `${environmentKey('all')}.ort`]);

    const second = await runOnce(model, opts);
    assert.equal(second.cache.status, 'hit');
    assert.equal(lines.length, 0, lines.join('\n'));
    close(first.logits, plain.logits);
    close(second.logits, plain.logits);
    // A session made from bytes is not cached (nothing to key a file beside).
    const fromBytes = await OnnxClassifier.create(new Uint8Array(readFileSync(model)), { threads: 1, optimizedCache: opts });
    assert.deepEqual(fromBytes.cache, { status: 'off', reason: 'model given as bytes' });
    await fromBytes.release();
  } finally {
    cleanup();
  }
});

test('a cached graph used in place survives garbage collection: the session keeps its bytes alive', async () => {
  const { dir, cleanup } = tempDir('nextray-ortcache-');
  try {
    const model = join(dir, 'm.onnx');
    await writeModel(model, 6);
    const opts = { dir: join(dir, 'c') };
    const plain = await runOnce(model, undefined);
    await runOnce(model, opts);
    const clf = await OnnxClassifier.create(model, { threads: 1, optimizedCache: opts });
    try {
      assert.equal(clf.cache.status, 'hit');
      // Collect garbage, then allocate buffers of the cache file's size full of NaN bytes: were the bytes not held,
      // their memory would now hold these (wrong logits) or be unmapped (a crash).
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      for (let i = 0; i < 3; i++) gc();
      const size = statSync(clf.cache.file!).size;
      const junk = Array.from({ length: 16 }, () => Buffer.alloc(size, 0xff));
      close((await clf.run(x, 3)).logits, plain.logits);
      assert.equal(junk.length, 16);
    } finally {
      await clf.release();
    }
  } finally {
    cleanup();
  }
});

test('a corrupt cache (same size, other bytes; or cut short) is detected, said in one line and rewritten', async () => {
  const { dir, cleanup } = tempDir('nextray-ortcache-');
  try {
    const model = join(dir, 'm.onnx');
    await writeModel(model, 2);
    const lines: string[] = [];
    const opts = { dir: join(dir, 'c'), onLog: (l: string) => lines.push(l) };
    const plain = await runOnce(model, undefined);
    const file = (await runOnce(model, opts)).cache.file!;

    // Flip bytes in the middle of the weights: ONNX Runtime would load this happily; the sha256 check does not.
    const bytes = readFileSync(file);
    for (let i = bytes.length >> 1; i < (bytes.length >> 1) + 64; i++) bytes[i] = bytes[i]! ^ 0x5a;
    writeFileSync(file, bytes);
    const flipped = await runOnce(model, opts);
    assert.equal(flipped.cache.status, 'written');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^onnx cache: .*\.ort: content does not match its manifest's sha256 \(corrupt\); rebuilding it$/);
    close(flipped.logits, plain.logits);
    assert.equal(sha256(file), JSON.parse(readFileSync(file.replace(/\.ort$/, '.json'), 'utf8')).cache_sha256);
    assert.equal((await runOnce(model, opts)).cache.status, 'hit');

    writeFileSync(file, bytes.subarray(0, 100));
    const cut = await runOnce(model, opts);
    assert.equal(cut.cache.status, 'written');
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /size 100 bytes, its manifest says \d+ \(corrupt\); rebuilding it$/);
    close(cut.logits, plain.logits);

    writeFileSync(file.replace(/\.ort$/, '.json'), '{ not json');
    const badManifest = await runOnce(model, opts);
    assert.equal(badManifest.cache.status, 'written');
    assert.match(lines[2]!, /manifest unreadable; rebuilding it$/);
    assert.equal((await runOnce(model, opts)).cache.status, 'hit');
    assert.equal(lines.length, 3);
  } finally {
    cleanup();
  }
});

test('a new model at the same path makes the cache stale: rebuilt, with the new model outputs', async () => {
  const { dir, cleanup } = tempDir('nextray-ortcache-');
  try {
    const model = join(dir, 'm.onnx');
    await writeModel(model, 3);
    const lines: string[] = [];
    const opts = { dir: join(dir, 'c'), onLog: (l: string) => lines.push(l) };
    const old = await runOnce(model, opts);
    const oldSha = sha256(model);
    await writeModel(model, 4);
    const newSha = sha256(model);
    assert.notEqual(newSha, oldSha);
    assert.notEqual(cacheKey(newSha, 'all'), cacheKey(oldSha, 'all'));
    const plain = await runOnce(model, undefined);
    const fresh = await runOnce(model, opts);
    assert.equal(fresh.cache.status, 'written');
    assert.deepEqual(lines.length, 1);
    assert.match(lines[0]!, /made from another version of the model \(stale\); rebuilding it$/);
    close(fresh.logits, plain.logits);
    assert.ok(Math.abs(fresh.logits[0]! - old.logits[0]!) > 1e-3, 'the two seeds give different models');
    const again = await runOnce(model, opts);
    assert.equal(again.cache.status, 'hit');
    close(again.logits, plain.logits);
  } finally {
    cleanup();
  }
});

test('deferFirstWrite: the first run marks the model and runs uncached, the second saves the graph, the third loads it', async () => {
  const { dir, cleanup } = tempDir('nextray-ortcache-');
  try {
    const model = join(dir, 'm.onnx');
    await writeModel(model, 6);
    const cacheDir = join(dir, 'c');
    const lines: string[] = [];
    const opts: OrtCacheOptions = { dir: cacheDir, onLog: (l) => lines.push(l), deferFirstWrite: true };
    const env = environmentKey('all');
    const plain = await runOnce(model, undefined);

    const first = await runOnce(model, opts);
    assert.equal(first.cache.status, 'deferred');
    assert.equal(first.cache.sourceSha256, sha256(model));
    assert.deepEqual(readdirSync(cacheDir), [`${env}.seen`], 'only the marker: no graph saved on the first sight');
    assert.equal(JSON.parse(readFileSync(join(cacheDir, `${env}.seen`), 'utf8')).source_sha256, sha256(model));
    close(first.logits, plain.logits);

    const second = await runOnce(model, opts);
    assert.equal(second.cache.status, 'written');
    assert.deepEqual(readdirSync(cacheDir).sort(), [`${env}.json`, `${env}.ort`], 'the marker goes once the graph is kept');
    close(second.logits, plain.logits);
    const third = await runOnce(model, opts);
    assert.equal(third.cache.status, 'hit');
    close(third.logits, plain.logits);

    // Another model at the same path: its stale cache counts as seen, so it is rewritten at once.
    await writeModel(model, 7);
    const plain7 = await runOnce(model, undefined);
    const stale = await runOnce(model, opts);
    assert.equal(stale.cache.status, 'written');
    assert.match(lines.at(-1)!, /\(stale\); rebuilding it$/);
    close(stale.logits, plain7.logits);

    // A marker of another model does not count: a new model with no cache is deferred again.
    const other = join(dir, 'o.onnx');
    await writeModel(other, 8);
    const otherDir = join(dir, 'c-other');
    const oOpts: OrtCacheOptions = { ...opts, dir: otherDir };
    assert.equal((await runOnce(other, oOpts)).cache.status, 'deferred');
    writeFileSync(join(otherDir, `${env}.seen`), JSON.stringify({ format: 'nextray-ort-seen', source_sha256: 'f'.repeat(64) }));
    assert.equal((await runOnce(other, oOpts)).cache.status, 'deferred', 'a marker for other bytes');
    assert.equal((await runOnce(other, oOpts)).cache.status, 'written');

    // Nowhere to put the marker: as without deferring, the plain session and one line.
    writeFileSync(join(dir, 'blocked'), 'in the way');
    lines.length = 0;
    const off = await runOnce(model, { ...opts, dir: join(dir, 'blocked', 'c') });
    assert.equal(off.cache.status, 'off');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /not writable \(ENOTDIR\); running uncached$/);
  } finally {
    cleanup();
  }
});

test('the key follows the model, the runtime version, the level and the CPU', () => {
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const k = cacheKey(a, 'all', '1.30.0', 'linux-x64 cpu');
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(cacheKey(a, 'all', '1.30.0', 'linux-x64 cpu'), k);
  assert.notEqual(cacheKey(b, 'all', '1.30.0', 'linux-x64 cpu'), k);
  assert.notEqual(cacheKey(a, 'extended', '1.30.0', 'linux-x64 cpu'), k);
  assert.notEqual(cacheKey(a, 'all', '1.31.0', 'linux-x64 cpu'), k);
  assert.notEqual(cacheKey(a, 'all', '1.30.0', 'linux-x64 other cpu'), k);
  assert.notEqual(environmentKey('all', '1.30.0', 'linux-x64 cpu'), environmentKey('all', '1.30.0', 'linux-x64 other cpu'));
});

test('a model folder where the cache cannot be written: the user cache folder, else uncached with one line', async () => {
  const { dir, cleanup } = tempDir('nextray-ortcache-');
  const saved = process.env.XDG_CACHE_HOME;
  try {
    const model = join(dir, 'm.onnx');
    await writeModel(model, 5);
    const plain = await runOnce(model, undefined);
    // A file where the cache folder beside the model would go: not creatable, as in a read-only folder (root ignores
    // permission bits, so chmod would not show it in a test run as root).
    writeFileSync(`${model}.ort-cache`, 'in the way');
    process.env.XDG_CACHE_HOME = join(dir, 'xdg');
    const lines: string[] = [];
    const fallback = await runOnce(model, { onLog: (l) => lines.push(l) });
    assert.equal(fallback.cache.status, 'written');
    assert.ok(fallback.cache.file!.startsWith(join(dir, 'xdg', 'nextray', 'onnx') + '/'), fallback.cache.file);
    assert.equal(lines.length, 0, lines.join('\n'));
    close(fallback.logits, plain.logits);
    assert.equal((await runOnce(model, { onLog: (l) => lines.push(l) })).cache.status, 'hit');

    // Neither place writable: the plain session and one line.
    writeFileSync(join(dir, 'xdg2'), 'in the way too');
    process.env.XDG_CACHE_HOME = join(dir, 'xdg2');
    const off = await runOnce(model, { onLog: (l) => lines.push(l) });
    assert.equal(off.cache.status, 'off');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^onnx cache: .*xdg2.*: not writable \(ENOTDIR\); running uncached$/);
    close(off.logits, plain.logits);
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
    cleanup();
  }
});
