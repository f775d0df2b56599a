/**
 * The web app in real Chromium (playwright-core driving /usr/bin/chromium) against `nextray serve`'s server with a
 * small exported model: the page gets ready cross-origin isolated with wasm threads, with every non-local request
 * aborted; picked and dropped images give the probability onnxruntime-node gives (1e-4); several views make one
 * study (their mean); the model card and research-use notice come from the ONNX metadata; bad files are named.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { camOnImage } from '../../src/inference/core/cam.js';
import { overlayHeatmap } from '../../src/inference/core/colormap.js';
import type { FastifyInstance } from 'fastify';
import { buildServer, defaultAppDir } from '../../src/serve/server.js';
import { openPredictor, type Predictor } from '../../src/serve/predictor.js';
import { preprocessImage } from '../../src/data/images.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { tempDir } from '../helpers/paths.js';
import { MURA_AGREEMENT_CLAUSE_7 } from '../../src/evaluate/report.js';
import { writeImages, writeTinyModel } from '../serve/fixture.js';
import { chromiumMissing, launch, offlinePage } from './browser.js';

const skip = chromiumMissing() ?? (existsSync(join(defaultAppDir(), 'index.html')) ? null : 'dist/app not built (npm run build)');
const tmp = tempDir('nextray-app-');
let images: Awaited<ReturnType<typeof writeImages>>;
let predictor: Predictor;
let server: FastifyInstance;
let origin: string;
let browser: Browser;
let modelPath: string;
const nodeProb = new Map<string, number>();

before(async () => {
  if (skip) return;
  modelPath = await writeTinyModel(tmp.dir, {
    threshold: 0.5,
    fitOod: true,
    extraMetadata: { dataset: 'MURA-v1.1', validation_metrics: JSON.stringify({ auc: 0.8123, kappa: 0.5 }) },
  });
  images = await writeImages(tmp.dir);
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  for (const f of [images.png1, images.png2, images.jpeg, images.photo]) nodeProb.set(f, (await clf.run(await preprocessImage(f, clf.info.preprocessing), 1)).probabilities[0]!);
  await clf.release();
  predictor = await openPredictor(modelPath, { threads: 1 });
  server = await buildServer({ predictor, modelPath, log: () => {} });
  origin = await server.listen({ host: '127.0.0.1', port: 0 });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await predictor?.release();
  tmp.cleanup();
});

async function readyPage(): Promise<{ page: Page; blocked: string[]; consoleErrors: string[] }> {
  const o = await offlinePage(browser, origin);
  await o.page.goto(origin + '/');
  await o.page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
  return o;
}

async function pick(page: Page, files: string[]): Promise<void> {
  await page.evaluate(() => (document.body.dataset.state = 'ready'));
  await page.setInputFiles('input[type=file]', files);
  await page.waitForSelector('body[data-state=done]', { timeout: 30_000 });
}

const near = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) <= 1e-4, `${what}: page ${a} vs onnxruntime-node ${b}`);

test('offline, cross-origin isolated, wasm threads; model card and MURA notice from the ONNX metadata', { skip: skip ?? false }, async () => {
  const { page, blocked, consoleErrors } = await readyPage();
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = Math.max(1, Math.min(4, cores));
  assert.match((await page.textContent('[data-testid=status]')) ?? '', new RegExp(`Ready: resnet-slim on wasm, ${threads} thread${threads > 1 ? 's' : ''},`));
  const card = (await page.textContent('[data-testid=model-card]')) ?? '';
  assert.match(card, /Architectureresnet-slim/);
  assert.match(card, /Input size64 × 64 px/);
  assert.match(card, /Decision threshold0\.5/);
  assert.match(card, /auc 0\.8123/);
  assert.equal(await page.isVisible('[data-testid=research-notice]'), true);
  const notice = (await page.textContent('[data-testid=research-notice]')) ?? '';
  assert.ok(notice.includes(MURA_AGREEMENT_CLAUSE_7), 'the notice quotes clause 7 as the report does');
  assert.deepEqual(blocked, [], 'the page asked for nothing outside its server');
  assert.deepEqual(consoleErrors, []);
  await page.context().close();
});

test('picked PNG and JPEG files give the onnxruntime-node probability; several views give their mean', { skip: skip ?? false }, async () => {
  const { page, blocked } = await readyPage();
  for (const f of [images.png1, images.png2, images.jpeg]) {
    await pick(page, [f]);
    near(Number(await page.getAttribute('[data-testid=probability]', 'data-value')), nodeProb.get(f)!, f);
  }
  const study = [images.png1, images.png2, images.jpeg];
  await pick(page, study);
  const views = await page.$$eval('[data-testid=view]', (els) => els.map((e) => Number((e as HTMLElement).dataset.value)));
  assert.equal(views.length, 3);
  study.forEach((f, i) => near(views[i]!, nodeProb.get(f)!, `view ${i}`));
  const mean = study.reduce((a, f) => a + nodeProb.get(f)!, 0) / 3;
  near(Number(await page.getAttribute('[data-testid=probability]', 'data-value')), mean, 'study');
  const t = 0.5;
  assert.equal(await page.textContent('[data-testid=decision]'), mean > t ? 'abnormal' : 'normal');
  assert.equal(await page.isVisible('[data-testid=image]'), true);
  assert.deepEqual(blocked, []);
  await page.context().close();
});

test('dropped files are read like picked ones; a bad file is named and the others still count', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  const text = join(tmp.dir, 'notes.png');
  writeFileSync(text, 'this is not an image');
  const files = [images.png2, text].map((f) => ({ name: f.split('/').pop()!, b64: readFileSync(f).toString('base64') }));
  await page.evaluate(() => (document.body.dataset.state = 'ready'));
  const dt = await page.evaluateHandle((fs) => {
    const d = new DataTransfer();
    for (const f of fs) d.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
    return d;
  }, files);
  await page.dispatchEvent('[data-testid=dropzone]', 'drop', { dataTransfer: dt });
  await page.waitForSelector('body[data-state=done]', { timeout: 30_000 });
  near(Number(await page.getAttribute('[data-testid=probability]', 'data-value')), nodeProb.get(images.png2)!, 'dropped view2.png');
  assert.equal(await page.$$eval('[data-testid=view]', (els) => els.length), 1);
  assert.match((await page.textContent('[data-testid=error]')) ?? '', /notes\.png: not an image/);
  await page.context().close();
});

test('the heatmap is onnxruntime-node\'s CAM over the picture, letterbox undone; the opacity slider fades it out', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  await page.$eval('[data-testid=opacity]', (e) => ((e as HTMLInputElement).value = '50'));
  await pick(page, [images.png1]);
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'true');
  const pixels = (id: string): Promise<{ w: number; h: number; px: number[] }> =>
    page.$eval(`[data-testid=${id}]`, (c) => {
      const cv = c as HTMLCanvasElement;
      return { w: cv.width, h: cv.height, px: [...cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data] };
    });
  const heat = await pixels('heatmap');
  const picture = await pixels('image');
  // view1.png is 90 x 120: shown 360 x 480.
  assert.deepEqual([heat.w, heat.h], [360, 480]);
  // Expected: the CAM from onnxruntime-node at the canvas size, viridis at 0.5 over the page's own grey picture.
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  const r = await clf.run(await preprocessImage(images.png1, clf.info.preprocessing), 1);
  const map = camOnImage(r.cam!, r.camSize![0], r.camSize![1], heat.w, heat.h, clf.info.preprocessing);
  await clf.release();
  const grey = Float32Array.from({ length: heat.w * heat.h }, (_, i) => picture.px[4 * i]! / 255);
  const want = overlayHeatmap(grey, map, heat.w, heat.h, { alpha: 0.5 });
  let off = 0;
  let coloured = 0;
  for (let i = 0; i < heat.px.length; i += 4) {
    if (Math.max(...[0, 1, 2].map((k) => Math.abs(heat.px[i + k]! - want[i + k]!))) > 2) off++;
    if (heat.px[i]! !== heat.px[i + 2]!) coloured++;
  }
  assert.ok(coloured > heat.px.length / 8, 'the canvas carries colour, not only the grey picture');
  assert.ok(off <= heat.px.length / 4 / 100, `${off} pixels differ by more than 2 levels from onnxruntime-node's CAM overlay`);
  await page.$eval('[data-testid=opacity]', (e) => ((e as HTMLInputElement).value = '0'));
  await page.dispatchEvent('[data-testid=opacity]', 'input');
  const faded = await pixels('heatmap');
  for (let i = 0; i < faded.px.length; i += 4) assert.ok(faded.px[i] === faded.px[i + 1] && faded.px[i] === faded.px[i + 2], 'opacity 0 leaves the grey picture');
  await page.context().close();
});

test('a colour photograph gets the OOD warning and no say in the study; radiograph-like views pass', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  assert.match((await page.textContent('[data-testid=model-card]')) ?? '', /OOD gatemahalanobis, threshold/);
  await pick(page, [images.png1]);
  assert.equal(await page.isVisible('[data-testid=ood-warning]'), false);
  assert.equal(await page.getAttribute('[data-testid=view]', 'data-ood'), 'false');
  await pick(page, [images.png1, images.photo]);
  assert.equal(await page.isVisible('[data-testid=ood-warning]'), true);
  const warning = (await page.textContent('[data-testid=ood-warning]')) ?? '';
  assert.match(warning, /photo\.jpg: out of distribution \(score \d+\.\d > \d+\.\d\)/);
  assert.doesNotMatch(warning, /view1\.png/);
  near(Number(await page.getAttribute('[data-testid=probability]', 'data-value')), nodeProb.get(images.png1)!, 'the study leaves the photograph out');
  await pick(page, [images.photo]);
  assert.equal(await page.textContent('[data-testid=decision]'), 'no decision');
  const server = await predictor.predict(readFileSync(images.photo));
  assert.equal(server.ood?.flagged, true, 'the server says the same of the photograph');
  await page.context().close();
});

test('an uncompressed DICOM is read in the page (MONOCHROME1 inverted) and gives the PNG probability; JPEG Lossless is named', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  await pick(page, [images.dicomMono1]);
  near(Number(await page.getAttribute('[data-testid=probability]', 'data-value')), nodeProb.get(images.png1)!, 'view1-mono1.dcm');
  await pick(page, [images.dicomLossless]);
  assert.match((await page.textContent('[data-testid=error]')) ?? '', /lossless\.dcm: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.201 \(High-Throughput JPEG 2000.*not supported/);
  await page.context().close();
});

test('behind a token the page loads the model with the token from its address, and says why it cannot without', { skip: skip ?? false }, async () => {
  const guarded = await buildServer({ predictor, modelPath, token: 's3cret', log: () => {} });
  const url = await guarded.listen({ host: '127.0.0.1', port: 0 });
  try {
    const { page } = await offlinePage(browser, url);
    await page.goto(url + '/');
    await page.waitForSelector('body[data-state=error]', { timeout: 60_000 });
    assert.match((await page.textContent('[data-testid=status]')) ?? '', /model\.onnx: HTTP 401 \(open the page as …\/#token=<token>\)/);
    await page.goto(url + '/#token=s3cret');
    await page.reload();
    await page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
    await pick(page, [images.png1]);
    near(Number(await page.getAttribute('[data-testid=probability]', 'data-value')), nodeProb.get(images.png1)!, 'with token');
    await page.context().close();
  } finally {
    await guarded.close();
  }
});
