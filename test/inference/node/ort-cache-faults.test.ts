/**
 * The optimised-graph cache is optional, so it never makes a model unusable: a model on a full or read-only file
 * system (a real one, a small tmpfs: root ignores permissions) opens uncached with one warning line and predicts what
 * `--no-onnx-cache` predicts, in the library and through `nextray predict`. And the cache stays bounded: temporaries
 * of dead writers, surplus environments and the folders of models that are gone are pruned after a write.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { environmentKey, pruneCaches, MAX_CACHED_MODELS } from '../../../src/inference/node/ort-cache.js';
import { tempDir } from '../../helpers/paths.js';
import { runCli } from '../../helpers/cli.js';
import { smallTmpfs, type Tmpfs } from '../../helpers/faults.js';
import { greyPng, writeTinyModel } from '../../serve/fixture.js';

const tmp = tempDir('nextray-ortcache-faults-');
let model: string;
let image: string;
const x = Float32Array.from({ length: 64 * 64 * 3 }, (_, i) => Math.sin(i * 0.37));

before(async () => {
  model = await writeTinyModel(tmp.dir);
  image = join(tmp.dir, 'x.png');
  writeFileSync(image, await greyPng(70, 90, 1));
});
after(() => tmp.cleanup());

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

/** A tmpfs with the model on it and room for little else; `fill` then takes what is left. */
function modelOnTmpfs(t: { skip: (why: string) => void }): { fs: Tmpfs; path: string } | undefined {
  const kib = Math.ceil(statSync(model).size / 1024) + 24;
  const fs = smallTmpfs(tmp.dir, kib);
  if ('skip' in fs) {
    t.skip(fs.skip);
    return undefined;
  }
  const path = join(fs.dir, 'model.onnx');
  copyFileSync(model, path);
  try {
    writeFileSync(join(fs.dir, 'filler'), Buffer.alloc(kib * 1024));
  } catch {
    // full: the point
  }
  return { fs, path };
}

async function logitsWith(path: string, cache: Parameters<typeof OnnxClassifier.create>[1]): Promise<{ logits: Float32Array; status: string; lines: string[] }> {
  const lines: string[] = [];
  const clf = await OnnxClassifier.create(path, { threads: 1, ...cache, ...(cache?.optimizedCache ? { optimizedCache: { ...(cache.optimizedCache as object), onLog: (l: string) => lines.push(l) } } : {}) });
  try {
    return { logits: (await clf.run(x, 1)).logits, status: clf.cache.status, lines };
  } finally {
    await clf.release();
  }
}

for (const kind of ['full', 'read-only'] as const) {
  test(`a model on a ${kind} file system opens uncached with one line and the uncached outputs`, async (t) => {
    const m = modelOnTmpfs(t);
    if (!m) return;
    const saved = process.env.XDG_CACHE_HOME;
    try {
      if (kind === 'read-only') m.fs.readOnly(true);
      // The user cache on the same file system: no other place to write either.
      process.env.XDG_CACHE_HOME = join(m.fs.dir, 'xdg');
      const plain = await logitsWith(m.path, {});
      const cached = await logitsWith(m.path, { optimizedCache: {} });
      assert.equal(cached.status, 'off');
      assert.equal(cached.lines.length, 1, cached.lines.join('\n'));
      assert.match(cached.lines[0]!, kind === 'full' ? /^onnx cache: .*: cannot save the optimised model \(.*\); running uncached$/ : /^onnx cache: .*: not writable \(EROFS\); running uncached$/);
      assert.deepEqual(cached.logits, plain.logits);

      const r = runCli(['predict', '--model', m.path, image, '--workers', '0', '--threads', '1'], { env: { XDG_CACHE_HOME: join(m.fs.dir, 'xdg') } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr.split('\n').filter((l) => /onnx cache:/.test(l)).length, 1, r.stderr);
      const off = runCli(['predict', '--model', m.path, image, '--workers', '0', '--threads', '1', '--no-onnx-cache']);
      assert.equal(off.code, 0, off.stderr);
      assert.equal(r.stdout, off.stdout, 'the same predictions as --no-onnx-cache');
      if (kind === 'full') assert.deepEqual(readdirSync(m.fs.dir).filter((n) => n.startsWith('.')), [], 'no temporary file left');
    } finally {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
      m.fs.unmount();
    }
  });
}

test('after a write the cache folder keeps the current environment and the most recent other one; dead temporaries go', async () => {
  const dir = join(tmp.dir, 'prune');
  mkdirSync(dir);
  const m = join(dir, 'm.onnx');
  copyFileSync(model, m);
  const cacheDir = `${m}.ort-cache`;
  mkdirSync(cacheDir);
  const others = ['0000000000000001', '0000000000000002', '0000000000000003'];
  others.forEach((k, i) => {
    writeFileSync(join(cacheDir, `${k}.ort`), 'old graph');
    writeFileSync(join(cacheDir, `${k}.json`), '{}');
    const when = new Date(Date.now() - (10 - i) * 86_400_000); // ...3 is the most recent
    utimesSync(join(cacheDir, `${k}.json`), when, when);
  });
  const dead = `.${environmentKey('all')}.${deadPid()}.123.tmp.ort`;
  const live = `.${environmentKey('all')}.${process.ppid}.124.tmp.ort`;
  writeFileSync(join(cacheDir, dead), 'half');
  writeFileSync(join(cacheDir, live), 'being written');
  // Folders of other models beside it: one whose model is gone, one whose model is there, one with a foreign file.
  for (const n of ['gone.onnx.ort-cache', 'kept.onnx.ort-cache', 'mine.onnx.ort-cache']) {
    mkdirSync(join(dir, n));
    writeFileSync(join(dir, n, `${others[0]}.ort`), 'x');
  }
  writeFileSync(join(dir, 'kept.onnx'), 'a model');
  writeFileSync(join(dir, 'mine.onnx.ort-cache', 'notes.txt'), 'not the cache\'s');

  const r = await logitsWith(m, { optimizedCache: {} });
  assert.equal(r.status, 'written');
  const key = environmentKey('all');
  assert.deepEqual(readdirSync(cacheDir).sort(), [live, `${others[2]}.json`, `${others[2]}.ort`, `${key}.json`, `${key}.ort`].sort());
  assert.equal(existsSync(join(dir, 'gone.onnx.ort-cache')), false, 'the cache of a model that is gone');
  assert.equal(existsSync(join(dir, 'kept.onnx.ort-cache')), true);
  assert.equal(existsSync(join(dir, 'mine.onnx.ort-cache', 'notes.txt')), true, 'a folder holding other files is left alone');
});

test('the user cache: folders of models that are gone are removed, the rest bounded to the most recently used', () => {
  const saved = process.env.XDG_CACHE_HOME;
  const xdg = join(tmp.dir, 'xdg-prune');
  process.env.XDG_CACHE_HOME = xdg;
  try {
    const root = join(xdg, 'nextray', 'onnx');
    const key = environmentKey('all');
    const manifest = (src: string) => JSON.stringify({ format: 'nextray-ort-optimized-model', format_version: 1, source_sha256: 'a', cache_sha256: 'b', source_path: src });
    const folders: string[] = [];
    for (let i = 0; i < MAX_CACHED_MODELS + 4; i++) {
      const d = join(root, `f${String(i).padStart(15, '0')}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `${key}.ort`), 'g');
      // Even-numbered ones name a model that exists.
      writeFileSync(join(d, `${key}.json`), manifest(i % 2 === 0 ? model : join(tmp.dir, `gone-${i}.onnx`)));
      const when = new Date(Date.now() - i * 60_000); // f0 the most recent
      utimesSync(join(d, `${key}.json`), when, when);
      folders.push(d);
    }
    const current = folders[0]!;
    pruneCaches(current, key, model);
    const left = readdirSync(root).sort();
    // Gone models' folders (odd i) removed; of the MAX_CACHED_MODELS + 4 folders, the 10 even ones remain (< bound).
    assert.deepEqual(left, folders.filter((_, i) => i % 2 === 0).map((d) => d.slice(root.length + 1)).sort());
    // Bound: more live folders than MAX_CACHED_MODELS -> the oldest go.
    for (let i = 0; i < MAX_CACHED_MODELS + 4; i++) {
      const d = join(root, `g${String(i).padStart(15, '0')}`);
      mkdirSync(d);
      writeFileSync(join(d, `${key}.json`), manifest(model));
      const when = new Date(Date.now() - (100 + i) * 60_000);
      utimesSync(join(d, `${key}.json`), when, when);
    }
    pruneCaches(current, key, model);
    const after = readdirSync(root);
    assert.equal(after.length, MAX_CACHED_MODELS);
    assert.ok(after.includes(current.slice(root.length + 1)), 'the folder just written stays');
    assert.ok(!after.includes(`g${String(MAX_CACHED_MODELS + 3).padStart(15, '0')}`), 'the least recently used went');
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});
