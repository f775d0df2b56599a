/**
 * The page's WebGPU path and its fallbacks, in Chromium with SwiftShader's WebGPU adapter (a software GPU, so it runs
 * on any CI machine): asked for, WebGPU gives the CLI's probability; a hardware-looking adapter is chosen on its own;
 * a software adapter is not (wasm is faster there); when the WebGPU session cannot be created the page runs the model
 * on wasm and says why.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { buildServer, defaultAppDir } from '../../src/serve/server.js';
import { openPredictor, type Predictor } from '../../src/serve/predictor.js';
import { tempDir } from '../helpers/paths.js';
import { writeImages, writeTinyModel } from '../serve/fixture.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumMissing } from './browser.js';
import { cliProbabilities, pick, studyCards } from './fixture.js';

const skip = chromiumMissing() ?? (existsSync(join(defaultAppDir(), 'index.html')) ? null : 'dist/app not built (npm run build)');
const tmp = tempDir('nextray-webgpu-');
let browser: Browser;
let server: FastifyInstance;
let predictor: Predictor;
let origin: string;
let images: Awaited<ReturnType<typeof writeImages>>;
let cli = new Map<string, number>();

before(async () => {
  if (skip) return;
  const model = await writeTinyModel(tmp.dir, { fitOod: true });
  images = await writeImages(tmp.dir);
  cli = cliProbabilities(model, [images.png1]);
  predictor = await openPredictor(model, { threads: 1 });
  server = await buildServer({ predictor, modelPath: model, log: () => {} });
  origin = await server.listen({ host: '127.0.0.1', port: 0 });
  const args = [...CHROMIUM_ARGS.filter((a) => a !== '--disable-gpu'), '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];
  browser = await chromium.launch({ executablePath: CHROMIUM, args, headless: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
  await predictor?.release();
  tmp.cleanup();
});

async function open(hash: string, init?: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  if (init) await page.addInitScript(init);
  await page.goto(`${origin}/${hash}`);
  await page.waitForSelector('body[data-state=ready]', { timeout: 300_000 });
  return page;
}

const backend = (page: Page): Promise<string> => page.evaluate(() => (window as unknown as { nextray: { backend: string } }).nextray.backend);

test('asked for (#backend=webgpu), the model runs on WebGPU and gives the CLI probability', { skip: skip ?? false }, async () => {
  const page = await open('#backend=webgpu');
  assert.equal(await backend(page), 'webgpu');
  assert.match((await page.textContent('[data-testid=status]')) ?? '', /on WebGPU/);
  await pick(page, [images.png1]);
  const p = (await studyCards(page))[0]!.probability!;
  assert.ok(Math.abs(p - cli.get(images.png1)!) <= 1e-3, `WebGPU ${p} vs nextray predict ${cli.get(images.png1)}`);
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'true');
  await page.context().close();
});

test('left to itself, the page takes a hardware adapter and passes over a software one', { skip: skip ?? false }, async () => {
  const soft = await open('');
  assert.equal(await backend(soft), 'wasm');
  assert.match((await soft.textContent('[data-testid=status]')) ?? '', /the WebGPU adapter is a software one/);
  await soft.context().close();
  // The same SwiftShader adapter, made to look like hardware.
  const hard = await open('', `Object.defineProperty(GPUAdapter.prototype, 'info', { get() { return { architecture: 'test-gpu', vendor: 'test', description: '' }; } });`);
  assert.equal(await backend(hard), 'webgpu');
  await hard.context().close();
});

test('a WebGPU adapter without a device: the page runs on wasm and says why', { skip: skip ?? false }, async () => {
  const page = await open('#backend=webgpu', `GPUAdapter.prototype.requestDevice = function () { return Promise.reject(new Error('no device for this test')); };`);
  assert.equal(await backend(page), 'wasm');
  assert.match((await page.textContent('[data-testid=status]')) ?? '', /WebGPU has no device here \(no device for this test\); using wasm instead/);
  await pick(page, [images.png1]);
  const p = (await studyCards(page))[0]!.probability!;
  assert.ok(Math.abs(p - cli.get(images.png1)!) <= 1e-4, `fallback ${p} vs nextray predict ${cli.get(images.png1)}`);
  await page.context().close();
});

test('when onnxruntime-web cannot build the model on WebGPU, the page runs it on wasm and says why', { skip: skip ?? false }, async () => {
  const fail = `GPUDevice.prototype.createComputePipeline = function () { throw new Error('pipeline failure for this test'); };
    GPUDevice.prototype.createComputePipelineAsync = function () { return Promise.reject(new Error('pipeline failure for this test')); };`;
  const page = await open('#backend=webgpu', fail);
  assert.equal(await backend(page), 'wasm');
  assert.match((await page.textContent('[data-testid=status]')) ?? '', /WebGPU could not run this model \(.*pipeline failure for this test.*\); using wasm instead/);
  await pick(page, [images.png1]);
  const p = (await studyCards(page))[0]!.probability!;
  assert.ok(Math.abs(p - cli.get(images.png1)!) <= 1e-4, `fallback ${p} vs nextray predict ${cli.get(images.png1)}`);
  await page.context().close();
});
