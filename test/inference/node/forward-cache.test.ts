/**
 * `nextray forward`'s optimised-graph cache (inference/node/forward.ts over ort-cache.ts's GraphSource), through the
 * real CLI: the first run marks the weights, the second writes it, the third uses it and gives the same logits byte
 * for byte; a corrupt cache file, a garbled manifest or one without the model's skeleton is rebuilt with one line and
 * the same logits; new weights at the same path give their own logits (the TF.js model's, not the cached graph's);
 * --no-onnx-cache leaves it alone; a cache folder that cannot be written never fails the command. Needs `npm run build`
 * first.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine } from '../../../src/engine/index.js';
import { readNpyFile } from '../../../src/models/weights/files.js';
import { runCli } from '../../helpers/cli.js';
import { writeSeededResnet18 } from '../../helpers/torchvision.js';
import { SMALL_FIXTURES, tempDir } from '../../helpers/paths.js';

const tmp = tempDir('nextray-forward-cache-');
after(() => tmp.cleanup());
const INPUT = join(SMALL_FIXTURES, 'basic_narrow.input.npy');
const W = join(tmp.dir, 'resnet18.safetensors');
const XDG = join(tmp.dir, 'xdg');
let want: Float32Array;

before(async () => {
  await initEngine('cpu');
  want = await writeSeededResnet18(W, 11);
});

let runs = 0;
function forward(extra: string[] = [], env: NodeJS.ProcessEnv = { XDG_CACHE_HOME: XDG }): { cache: string | undefined; stderr: string; bytes: Buffer; logits: Promise<Float32Array> } {
  const out = join(tmp.dir, `y${runs++}.npy`);
  const r = runCli(['forward', '--arch', 'resnet18', '--weights', W, '--input', INPUT, '--output', out, '--threads', '1', '--json', ...extra], { env });
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { onnx_cache?: string; engine: string };
  assert.equal(s.engine, 'onnx');
  return { cache: s.onnx_cache, stderr: r.stderr, bytes: readFileSync(out), logits: readNpyFile(out).then((a) => a.data as Float32Array) };
}

function relErr(got: Float32Array, ref: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return diff / scale;
}

/** The one cache folder's files (forward caches under the user cache only). */
function cacheFiles(): { ort: string; json: string } {
  const root = join(XDG, 'nextray', 'onnx');
  const dirs = readdirSync(root);
  assert.equal(dirs.length, 1, dirs.join(' '));
  const names = readdirSync(join(root, dirs[0]!));
  const ort = names.find((n) => n.endsWith('.ort'));
  const json = names.find((n) => n.endsWith('.json'));
  assert.ok(ort && json, names.join(' '));
  return { ort: join(root, dirs[0]!, ort), json: join(root, dirs[0]!, json) };
}

test('forward caches the optimised graph of the weights from the second run and uses it next, with the same logits byte for byte', async () => {
  // The first run on new weights runs uncached and only marks them; the second keeps the graph.
  const first = forward();
  assert.equal(first.cache, 'deferred');
  assert.equal(first.stderr, '');
  assert.ok(relErr(await first.logits, want) < 1e-4, 'the TF.js model\'s logits');
  const kept = forward();
  assert.equal(kept.cache, 'written');
  assert.ok(kept.bytes.equals(first.bytes), 'the uncached first run and the run that saves the graph agree byte for byte');
  const second = forward();
  assert.equal(second.cache, 'hit');
  assert.equal(second.stderr, '');
  assert.ok(second.bytes.equals(first.bytes), 'a cached graph gives the same output file');
  const manifest = JSON.parse(readFileSync(cacheFiles().json, 'utf8')) as { facts: unknown; skeleton_base64: string };
  assert.deepEqual(manifest.facts, { numClasses: 1000, layout: 'torch', head: 'imagenet' });

  // Corrupt cache file (same size, one byte changed), garbled manifest, manifest without the skeleton: each rebuilt.
  const { ort, json } = cacheFiles();
  const b = readFileSync(ort);
  b[b.length >> 1] ^= 0xff;
  writeFileSync(ort, b);
  let r = forward();
  assert.equal(r.cache, 'written');
  assert.match(r.stderr, /corrupt\); rebuilding it/);
  assert.ok(r.bytes.equals(first.bytes));
  writeFileSync(json, '{"format": "nextray-ort-optimized-model", "format_ver');
  r = forward();
  assert.equal(r.cache, 'written');
  assert.match(r.stderr, /manifest unreadable; rebuilding it/);
  assert.ok(r.bytes.equals(first.bytes));
  const m = JSON.parse(readFileSync(json, 'utf8')) as Record<string, unknown>;
  delete m.skeleton_base64;
  writeFileSync(json, JSON.stringify(m));
  r = forward();
  assert.equal(r.cache, 'written');
  assert.match(r.stderr, /lacks the model's skeleton/);
  assert.ok(r.bytes.equals(first.bytes));
  assert.equal(forward().cache, 'hit');

  // --no-onnx-cache: neither used nor written.
  r = forward(['--no-onnx-cache']);
  assert.equal(r.cache, undefined);
  assert.ok(r.bytes.equals(first.bytes));
});

test('new weights at the same path give their own logits, not the cached graph\'s', async () => {
  const before = forward();
  const other = await writeSeededResnet18(W, 12);
  const after = forward();
  assert.equal(after.cache, 'written', 'stale: rebuilt');
  assert.ok(relErr(await after.logits, other) < 1e-4, 'the new weights\' logits');
  assert.ok(relErr(await before.logits, other) > 1e-2, 'the two weights differ (else this test proves nothing)');
  assert.equal(forward().cache, 'hit');
});

test('a cache that cannot be written never fails forward', async () => {
  // XDG_CACHE_HOME under a regular file: no folder can be made there.
  const file = join(tmp.dir, 'not-a-folder');
  writeFileSync(file, 'x');
  const r = forward([], { XDG_CACHE_HOME: join(file, 'xdg') });
  assert.equal(r.cache, 'off');
  assert.match(r.stderr, /onnx cache: .*not writable/);
  assert.ok(relErr(await r.logits, await forward([], { XDG_CACHE_HOME: join(tmp.dir, 'xdg-other') }).logits) === 0);
});
