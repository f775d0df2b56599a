/**
 * `nextray app build`: the static folder holds the page, onnxruntime-web's wasm and the model byte for byte; it
 * refuses to overwrite a non-empty folder without --force and a file that is not a nextray model; served by a plain
 * static server (no COOP/COEP, as most hosts) it runs in Chromium on one thread with no outside request and gives
 * onnxruntime-node's probability.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { preprocessImage } from '../../src/data/images.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { defaultAppDir } from '../../src/serve/server.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writeImages, writeTinyModel } from '../serve/fixture.js';
import { chromiumMissing, launch, offlinePage } from '../app/browser.js';

const tmp = tempDir('nextray-app-build-');
const bin = join(REPO_ROOT, 'bin', 'nextray.js');
const appBuilt = existsSync(join(defaultAppDir(), 'index.html'));
let modelPath: string;
let images: Awaited<ReturnType<typeof writeImages>>;

const nextray = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

before(async () => {
  modelPath = await writeTinyModel(tmp.dir);
  images = await writeImages(tmp.dir);
});
after(() => tmp.cleanup());

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

/** The plainest static file server: no special headers. */
function staticServer(root: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!)).replace(/^(\.\.[/\\])+/, '');
    let file = join(root, path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!file.startsWith(root) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

test('app build writes page + wasm + model; refuses a non-empty folder without --force and a non-model file', { skip: appBuilt ? false : 'dist/app not built' }, () => {
  const out = join(tmp.dir, 'site');
  const r = nextray('app', 'build', '--model', modelPath, '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { out: string; files: number; arch: string };
  assert.equal(j.arch, 'resnet-slim');
  for (const f of ['index.html', '_headers', 'ort/ort-wasm-simd-threaded.wasm', 'ort/ort-wasm-simd-threaded.mjs', 'ort/ort-wasm-simd-threaded.asyncify.wasm']) assert.ok(existsSync(join(out, f)), f);
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

test('the built folder runs from a plain static server: one thread, offline, the onnxruntime-node probability', { skip: chromiumMissing() ?? (appBuilt ? false : 'dist/app not built') }, async () => {
  const out = join(tmp.dir, 'site3');
  mkdirSync(tmp.dir, { recursive: true });
  assert.equal(nextray('app', 'build', '--model', modelPath, '--out', out).status, 0);
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  const want = (await clf.run(await preprocessImage(images.png2, clf.info.preprocessing), 1)).probabilities[0]!;
  await clf.release();
  const { server, origin } = await staticServer(out);
  const browser = await launch();
  try {
    const { page, blocked, consoleErrors } = await offlinePage(browser, origin);
    await page.goto(origin + '/');
    await page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), false);
    assert.match((await page.textContent('[data-testid=status]')) ?? '', /on wasm, 1 thread,/);
    await page.setInputFiles('input[type=file]', [images.png2]);
    await page.waitForSelector('body[data-state=done]', { timeout: 30_000 });
    const got = Number(await page.getAttribute('[data-testid=probability]', 'data-value'));
    assert.ok(Math.abs(got - want) <= 1e-4, `page ${got} vs onnxruntime-node ${want}`);
    assert.deepEqual(blocked, []);
    assert.deepEqual(consoleErrors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
