/**
 * `nextray app build`: the static folder holds the page, onnxruntime-web's wasm and the model byte for byte; it
 * refuses to overwrite a non-empty folder without --force and a file that is not a nextray model. (The folder in a
 * browser, offline and on a plain static server: test/app/offline.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultAppDir } from '../../src/serve/server.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writeTinyModel } from '../serve/fixture.js';

const tmp = tempDir('nextray-app-build-');
const bin = join(REPO_ROOT, 'bin', 'nextray.js');
const appBuilt = existsSync(join(defaultAppDir(), 'index.html'));
let modelPath: string;

const nextray = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

before(async () => {
  modelPath = await writeTinyModel(tmp.dir);
});
after(() => tmp.cleanup());

test('app build writes page + wasm + model; refuses a non-empty folder without --force and a non-model file', { skip: appBuilt ? false : 'dist/app not built' }, () => {
  const out = join(tmp.dir, 'site');
  const r = nextray('app', 'build', '--model', modelPath, '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { out: string; files: number; arch: string };
  assert.equal(j.arch, 'resnet-slim');
  for (const f of ['index.html', '_headers', 'model.json', 'ort/ort-wasm-simd-threaded.wasm', 'ort/ort-wasm-simd-threaded.mjs']) assert.ok(existsSync(join(out, f)), f);
  assert.equal(existsSync(join(out, 'ort/ort-wasm-simd-threaded.asyncify.wasm')), false, 'the WebGPU build only with --webgpu');
  assert.deepEqual(readFileSync(join(out, 'model.onnx')), readFileSync(modelPath));
  assert.doesNotMatch(readFileSync(join(out, 'index.html'), 'utf8'), /https?:\/\//, 'the page names no outside address');
  const again = nextray('app', 'build', '--model', modelPath, '--out', out);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /exists and is not empty; give --force/);
  assert.equal(nextray('app', 'build', '--model', modelPath, '--out', out, '--force').status, 0);
  const junk = join(tmp.dir, 'junk.onnx');
  writeFileSync(junk, 'not a model');
  const bad = nextray('app', 'build', '--model', junk, '--out', join(tmp.dir, 'site2'));
  assert.equal(bad.status, 2, 'unusable input');
  assert.match(bad.stderr, /junk\.onnx: not a readable ONNX model/);
  assert.equal(existsSync(join(tmp.dir, 'site2')), false, 'nothing written for a bad model');
});
