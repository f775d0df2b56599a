/**
 * The feature cache through the real CLI, as a long job: usage errors and the one-line fallback; kill -9 of a
 * `nextray train` child at random points of its extraction, each followed by `--resume`, ending with the cache and
 * the weights of an uninterrupted run byte for byte; a disk too small (refused before any work) and a disk that
 * fills part way (a clear error, a consistent store, and the same command finishing once space is back), both on a
 * small tmpfs (skipped, with the reason, where it cannot be mounted); a sweep whose configurations share one
 * extraction. Needs `npm run build` first (runCli runs dist/).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { writeTinyDataset } from './fixture.js';
import { initEngine } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { writeSafetensorsFile } from '../../src/models/weights/files.js';
import { Rng } from '../../src/util/rng.js';
import { FeatureStore, recordBytesFor, type Variant } from '../../src/train/feature-cache/store.js';
import { hashImageFiles, makeKeySet, prefixOutputShape, type KeySet } from '../../src/train/feature-cache/key.js';
import { extractFeatures, type ExtractItem } from '../../src/train/feature-cache/extract.js';
import { FeatureCacheError } from '../../src/train/feature-cache/errors.js';
import { loadMuraDataset } from '../../src/data/mura.js';
import { makePreprocessing } from '../../src/data/preprocess.js';

const tmp = tempDir('nextray-fcache-cli-');
const small = join(tmp.dir, 'small');
const big = join(tmp.dir, 'big');
const r18 = join(tmp.dir, 'resnet18.safetensors');
const mounts: string[] = [];

before(async () => {
  await writeTinyDataset(small, { trainPatients: 12, validPatients: 8, size: 40, seed: 8 });
  await writeTinyDataset(big, { trainPatients: 120, validPatients: 8, size: 64, seed: 9 });
  await initEngine();
  const m = createModel('resnet18', { seed: 13 });
  writeSafetensorsFile(r18, m.exportStateDict());
  m.dispose();
});
after(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  tmp.cleanup();
});

const slim = (data: string) => ['--data', data, '--arch', 'resnet-slim', '--input-size', '32', '--frozen', '7', '--lr', '0.003', '--l2', '0.01', '--batch-size', '8', '--workers', '0', '--seed', '5', '--epochs', '1', '--no-trust'];
const log = (run: string) => readFileSync(join(run, 'train.log'), 'utf8');

/** Mounts a tmpfs of `size` at a new folder, or returns why it cannot (not root, no mount, a container without the capability). */
function mountTmpfs(name: string, size: string): string | { skip: string } {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return { skip: `cannot mount a tmpfs to fill (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}); run the tests as root to check a full disk` };
  mounts.push(dir);
  return dir;
}

test('--feature-cache with rotation or nothing frozen is a usage error naming the reason; the default cache steps aside with one line', () => {
  const rot = runCli(['train', ...slim(small), '--rotation', '10', '--feature-cache', join(tmp.dir, 'c-rot'), '--out', join(tmp.dir, 'rot')]);
  assert.equal(rot.code, 2, rot.stderr);
  assert.match(rot.stderr, /--feature-cache .*c-rot: the frozen prefix's output cannot be cached exactly: random rotation \(--rotation 10\)/);
  assert.equal(existsSync(join(tmp.dir, 'rot', 'config.json')), false, 'refused before the run directory was written');
  const none = runCli(['train', ...slim(small).map((a) => (a === '7' ? '0' : a)), '--feature-cache', join(tmp.dir, 'c-none'), '--out', join(tmp.dir, 'none')]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /no layer is frozen \(--frozen 0\)/);

  const auto = runCli(['train', ...slim(small), '--rotation', '10', '--out', join(tmp.dir, 'rot-auto')]);
  assert.equal(auto.code, 0, auto.stderr);
  const lines = log(join(tmp.dir, 'rot-auto')).split('\n').filter((l) => /feature cache/.test(l));
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, /feature cache: off: random rotation .*; training runs uncached/);
  assert.doesNotMatch(readFileSync(join(tmp.dir, 'rot-auto', 'metrics.jsonl'), 'utf8'), /features_cached/);
});

test('the default cache lives in nextray-features beside MURA-v1.1 and is reused by the next run', () => {
  const a = runCli(['train', ...slim(small), '--out', join(tmp.dir, 'auto-a'), '--quiet']);
  assert.equal(a.code, 0, a.stderr);
  assert.match(log(join(tmp.dir, 'auto-a')), new RegExp(`feature cache: ${join(small, 'nextray-features').replace(/[/.]/g, '\\$&')}/[0-9a-f]{32}: 0 of \\d+ entries present; extracting`));
  const b = runCli(['train', ...slim(small), '--l2', '0.5', '--out', join(tmp.dir, 'auto-b'), '--quiet']);
  assert.equal(b.code, 0, b.stderr);
  assert.match(log(join(tmp.dir, 'auto-b')), /nothing to extract/);
});

/** Every entry of the store in `root` (one key-set folder), as key -> bytes of its float32 values. */
function storeContents(root: string): Map<string, Buffer> {
  const [id] = readdirSync(root);
  const meta = JSON.parse(readFileSync(join(root, id!, 'meta.json'), 'utf8')) as { keySet: KeySet };
  const s = FeatureStore.open(root, meta.keySet, { readOnly: true });
  const out = new Map<string, Buffer>();
  for (const [h, v] of s.entries()) {
    const buf = new Float32Array(s.values);
    assert.ok(s.read(h, v, buf), `entry ${h}/${v} reads back`);
    out.set(`${h}/${v}`, Buffer.from(buf.buffer));
  }
  s.close();
  return out;
}

test('kill -9 at random points of the extraction, then --resume: the cache and the weights equal an uninterrupted run', async (t) => {
  const args = ['--data', big, '--arch', 'resnet18', '--weights', r18, '--input-size', '64', '--frozen', '15', '--batch-size', '16', '--lr', '0.001', '--workers', '0', '--seed', '2', '--epochs', '1', '--feature-precision', 'fp32', '--no-trust', '--quiet'];
  const refCache = join(tmp.dir, 'kill-ref-cache');
  const refRun = join(tmp.dir, 'kill-ref');
  const ref = runCli(['train', ...args, '--feature-cache', refCache, '--out', refRun]);
  assert.equal(ref.code, 0, ref.stderr);
  const [id] = readdirSync(refCache);
  const full = statSync(join(refCache, id!, 'data.bin')).size;
  const recordBytes = recordBytesFor((JSON.parse(readFileSync(join(refCache, id!, 'meta.json'), 'utf8')) as { keySet: KeySet }).keySet.shape.reduce((a, b) => a * b, 1), 'fp32');

  const cache = join(tmp.dir, 'kill-cache');
  const run = join(tmp.dir, 'kill-run');
  const data = join(cache, id!, 'data.bin');
  const sizeOf = () => (existsSync(data) ? statSync(data).size : 0);
  // Kill points: increasing fractions of the extraction, with seeded jitter.
  const rng = new Rng(20261207);
  const fractions = [0.08, 0.25, 0.45, 0.6, 0.8, 0.95].map((f) => f + rng.uniform(-0.04, 0.04));
  const kills: { target: number; atKill: number; presentNext?: number }[] = [];
  for (const f of fractions) {
    const first = !existsSync(join(run, 'config.json'));
    const cli = first ? ['train', ...args, '--feature-cache', cache, '--out', run] : ['train', '--resume', run, '--quiet', '--no-trust'];
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'nextray.js'), ...cli], { stdio: 'ignore' });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const target = 64 + Math.floor(f * (full - 64));
    const deadline = Date.now() + 5 * 60 * 1000;
    while (child.exitCode === null && sizeOf() < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    child.kill('SIGKILL');
    await exited;
    kills.push({ target, atKill: sizeOf() });
    if (existsSync(join(run, 'summary.json'))) break; // it finished before this kill point
  }
  const final = runCli(['train', '--resume', run, '--quiet', '--no-trust']);
  assert.equal(final.code, 0, final.stderr);
  const mid = kills.filter((k) => k.atKill > 64 && k.atKill < full);
  t.diagnostic(`kills (bytes of data.bin when killed, of ${full}): ${kills.map((k) => k.atKill).join(', ')}`);
  assert.ok(mid.length >= 3, `at least three kills landed inside the extraction: ${JSON.stringify(kills)} (full ${full})`);

  // Each resume started from what the kill left: at most the record being written is lost.
  const present = [...log(run).matchAll(/: (\d+) of (\d+) entries present/g)].map((m) => Number(m[1]));
  kills.forEach((k, i) => {
    if (k.atKill > 64 && k.atKill < full && present[i + 1] !== undefined) {
      assert.ok(present[i + 1]! >= Math.floor((k.atKill - 64) / recordBytes) - 1, `resume ${i + 1} kept the entries on disk (${present[i + 1]} present after a kill at ${k.atKill} bytes)`);
    }
  });

  const want = storeContents(refCache);
  const got = storeContents(cache);
  assert.equal(got.size, want.size, 'every entry is there, none skipped');
  for (const [k, v] of want) assert.ok(got.get(k)?.equals(v), `entry ${k} equals the uninterrupted run's`);
  for (const f of ['checkpoints/last/model.safetensors', 'checkpoints/last/optimizer.safetensors']) {
    assert.ok(readFileSync(join(run, f)).equals(readFileSync(join(refRun, f))), `${f} equals the uninterrupted run's`);
  }
});

test('a disk too small is refused before any work, naming what is needed and what is free', (t) => {
  const mnt = mountTmpfs('tiny-disk', '16k');
  if (typeof mnt !== 'string') return t.skip(mnt.skip);
  const r = runCli(['train', ...slim(small), '--feature-cache', mnt, '--out', join(tmp.dir, 'tiny'), '--quiet']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the feature cache needs \d+ more entries x [\d.]+ B = [\d.]+ KiB \(plus 1.0 MiB to spare\), but only [\d.]+ KiB is free on that disk/);
  assert.match(r.stderr, /hint: free some space, give --feature-cache a folder on a bigger disk/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('disk full part way: a clear error, a consistent store that keeps what it wrote, and the same job finishing once there is space', async (t) => {
  const mnt = mountTmpfs('full-disk', '256k');
  if (typeof mnt !== 'string') return t.skip(mnt.skip);
  const model = createModel('resnet-slim', { head: 'binary', seed: 3 });
  model.freezeLayers(7);
  const prep = makePreprocessing({ size: 32 });
  const ds = await loadMuraDataset(small);
  const records = ds.images.filter((r) => r.split === 'train');
  const hashes = await hashImageFiles(records.map((r) => r.absPath));
  const items: ExtractItem[] = records.map((record, i) => ({ record, hash: (hashes[i] as { hash: string }).hash, variants: [0, 1] as Variant[] }));
  const keySet = makeKeySet({ model, preprocessing: prep, engine: { engine: 'cpu' }, computePrecision: 'fp32', storage: 'fp32', shape: prefixOutputShape(model, 32) });
  const opts = { preprocessing: prep, workers: 0, quiet: true, commitEveryMs: 0 };

  const refRoot = join(tmp.dir, 'full-ref');
  const ref = FeatureStore.open(refRoot, keySet);
  await extractFeatures(model, ref, items, opts);
  ref.close();

  const filler = join(mnt, 'filler');
  const store = FeatureStore.open(mnt, keySet);
  let filled = false;
  const fill = () => {
    if (filled) return;
    filled = true;
    const fd = openSync(filler, 'w');
    const block = Buffer.alloc(4096, 1);
    try {
      for (;;) writeSync(fd, block);
    } catch {
      // ENOSPC: the disk is full now
    } finally {
      closeSync(fd);
    }
  };
  await assert.rejects(
    () => extractFeatures(model, store, items, { ...opts, onChunk: fill }),
    (err: unknown) => err instanceof FeatureCacheError && err.code === 'ERR_FEATURE_CACHE_DISK_FULL' && /disk full after \d+ cached entries; the cache is consistent/.test(err.message),
  );
  const kept = store.size;
  store.close();
  assert.ok(kept >= 16 && kept < items.length * 2, `the first chunk's entries are kept (${kept} of ${items.length * 2})`);

  // Still full: the store opens (read-only, it cannot even take its lock) and every entry it lists is whole and right.
  const want = storeContents(refRoot);
  const readBack = FeatureStore.open(mnt, keySet, { readOnly: true });
  assert.equal(readBack.size, kept);
  for (const [h, v] of readBack.entries()) {
    const buf = new Float32Array(readBack.values);
    assert.ok(readBack.read(h, v, buf));
    assert.ok(Buffer.from(buf.buffer).equals(want.get(`${h}/${v}`)!), `entry ${h}/${v}`);
  }
  readBack.close();

  rmSync(filler);
  const again = FeatureStore.open(mnt, keySet);
  const stats = await extractFeatures(model, again, items, opts);
  assert.equal(stats.present, kept);
  assert.equal(stats.written, items.length * 2 - kept);
  again.close();
  const got = storeContents(mnt);
  assert.equal(got.size, want.size);
  for (const [k, v] of want) assert.ok(got.get(k)?.equals(v), `entry ${k} after the rerun`);
  model.dispose();
});

test('a sweep over L2 and batch size extracts the shared prefix once; the other runs only read', () => {
  const grid = join(tmp.dir, 'grid.json');
  writeFileSync(grid, JSON.stringify({ l2: [0, 0.1], batchSize: [8, 16] }));
  const out = join(tmp.dir, 'sweep');
  const cache = join(tmp.dir, 'sweep-cache');
  const noTrust = (a: string) => a !== '--no-trust';
  const r = runCli(['sweep', '--grid', grid, ...slim(small).filter(noTrust), '--feature-cache', cache, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /sweep: feature cache: 4 of 4 configuration\(s\) share 1 frozen prefix\(es\)/);
  const runs = readdirSync(out).filter((d) => d.startsWith('run-')).sort();
  assert.equal(runs.length, 4);
  runs.forEach((d, i) => {
    const l = log(join(out, d));
    if (i === 0) assert.match(l, /: 0 of \d+ entries present; extracting \d+/);
    else assert.match(l, /nothing to extract/, `${d} extracted again`);
    for (const line of readFileSync(join(out, d, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean)) {
      const m = JSON.parse(line) as { features_cached: number; features_computed: number; train_images: number };
      assert.equal(m.features_computed, 0);
      assert.equal(m.features_cached, m.train_images);
    }
  });
  const rot = runCli(['sweep', '--grid', grid, ...slim(small).filter(noTrust), '--rotation', '5', '--feature-cache', cache, '--out', join(tmp.dir, 'sweep-rot')]);
  assert.equal(rot.code, 2, rot.stderr);
  assert.match(rot.stderr, /random rotation/);
});
