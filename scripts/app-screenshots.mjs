#!/usr/bin/env node
// Screenshots of the web app for docs/app.md: the demo model (exported with its CAM output and its training facts)
// served by `nextray serve`'s server, one abnormal study of the demo's validation data picked in Chromium, at a
// desktop size (1280 wide) and at a phone's (375 x 667, the whole page).
// Usage: node scripts/app-screenshots.mjs [--run /work/demo/run] [--study DIR] [--out docs]   (after npm run build)
//        [--model FILE.onnx]  use an exported model instead of exporting the run's best checkpoint
//        [--files a.png,b.jpg] [--name app-desktop.png] [--phone app-phone.png]  pick these files; write these
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const run = opt('run', '/work/demo/run');
const outDir = opt('out', 'docs');

const { initEngine } = await import(new URL('src/engine/index.js', dist).href);
const { loadTrainedModel } = await import(new URL('src/inference/node/checkpoint.js', dist).href);
const { exportOnnxFile } = await import(new URL('src/models/onnx/files.js', dist).href);
const { trainingFacts } = await import(new URL('src/cli/export.js', dist).href);
const { openPredictor } = await import(new URL('src/serve/predictor.js', dist).href);
const { buildServer } = await import(new URL('src/serve/server.js', dist).href);
const { chromium } = await import('playwright-core');

function findStudy(root) {
  // The first positive study of the validation split with two or more views.
  for (const region of readdirSync(root).sort()) {
    for (const patient of readdirSync(join(root, region)).sort()) {
      for (const study of readdirSync(join(root, region, patient)).sort()) {
        const dir = join(root, region, patient, study);
        if (!/positive/.test(study) || !statSync(dir).isDirectory()) continue;
        const views = readdirSync(dir).filter((f) => /\.png$/.test(f)).map((f) => join(dir, f));
        if (views.length >= 2) return views;
      }
    }
  }
  throw new Error(`no positive study with 2+ views under ${root}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'nextray-shots-'));
try {
  let modelPath = opt('model', null);
  if (!modelPath) {
    await initEngine('auto');
    const loaded = loadTrainedModel(join(run, 'checkpoints', 'best'));
    modelPath = join(tmp, 'demo.onnx');
    exportOnnxFile(loaded.model, modelPath, {
      inputSize: loaded.preprocessing.size,
      preprocessing: loaded.preprocessing,
      decisionThreshold: loaded.metadata.decisionThreshold,
      cam: true,
      extraMetadata: trainingFacts(loaded.metadata),
    });
    loaded.model.dispose();
  }
  const views = opt('files', null)
    ? opt('files').split(',')
    : opt('study', null)
      ? readdirSync(opt('study')).map((f) => join(opt('study'), f))
      : findStudy(join(run, '..', 'data', 'MURA-v1.1', 'valid'));
  const predictor = await openPredictor(modelPath, { threads: 2 });
  const server = await buildServer({ predictor, modelPath, log: () => {} });
  const origin = await server.listen({ host: '127.0.0.1', port: 0 });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  try {
    const shots = [];
    for (const [viewport, name] of [[{ width: 1280, height: 900 }, opt('name', 'app-desktop.png')], [{ width: 375, height: 667 }, opt('phone', 'app-phone.png')]]) {
      const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
      await page.route('**/*', (r) => (r.request().url().startsWith(origin) ? r.continue() : r.abort()));
      await page.goto(origin + '/');
      await page.waitForSelector('body[data-state=ready]', { timeout: 300_000 });
      await page.setInputFiles('input[type=file]', views);
      await page.waitForSelector('body[data-state=done]', { timeout: 300_000 });
      await page.waitForSelector('[data-testid=offline][data-ready]', { timeout: 300_000 }).catch(() => undefined);
      const file = join(outDir, name);
      await page.screenshot({ path: file, fullPage: true });
      shots.push({ screenshot: file, width: await page.evaluate(() => document.documentElement.scrollWidth), study: await page.textContent('[data-testid=study-line]') });
      await page.close();
    }
    console.log(JSON.stringify({ views, shots, status: 'ok' }, null, 2));
  } finally {
    await browser.close();
    await server.close();
    await predictor.release();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
