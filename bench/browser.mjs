#!/usr/bin/env node
/**
 * The web page's speed in Chromium against onnxruntime-node on the same machine, at equal thread counts, and the
 * time to a ready page on a second visit (everything from the service worker's cache and the page's model store).
 *
 *   npm run build && node bench/browser.mjs [--models demo,r152,r152-int8] [--threads N] [--images 5] [--visits 3]
 *       [--demo-run RUN_DIR] [--work DIR] [--keep] [--stop-worker]
 *
 * Models: `demo` is the demo's architecture (resnet-slim at 128 px): `--demo-run` exports a trained run's best
 * checkpoint (`nextray demo` writes one), else a seeded one (speed does not depend on the weights). `r152` is a
 * seeded ResNet-152 at 320 px (torchvision-style random initialisation, binary head with its CAM output, as
 * bench/quant.mjs's --archs), `r152-int8` the same graph quantised to int8 (QDQ), calibrated on 16 images of a
 * small synthetic dataset (`nextray synth`).
 *
 * For each model: `nextray app build` writes the site, `nextray app serve`'s server serves it on 127.0.0.1 (COOP/COEP:
 * the page uses navigator.hardwareConcurrency threads); Chromium (/usr/bin/chromium, headless, a fresh profile)
 *   1. visits once (cold: model download, wasm compile), waits until the page says it is available offline;
 *   2. picks one MURA-sized PNG `--images` + 1 times: per-image milliseconds as the page measures them
 *      (preprocessing + inference, median after the first), window.nextray.last;
 *   3. visits `--visits` more times in the same profile: navigation to a ready page (median), the warm start. A new
 *      tab right after the last one closed finds the page's service worker still running, and Chromium keeps the
 *      site's renderer process (with V8's compiled runtime in it) alive with it; `--stop-worker` stops the worker
 *      before each visit (CDP ServiceWorker.stopAllWorkers, as the browser does after ~30 s idle), so each visit gets
 *      a fresh renderer and compiles the runtime again, as a visit on another day does.
 * onnxruntime-node does the same per-image work (the image decoded once; preprocessing + one run with every output
 * the graph has), with the page's thread count, taking turns with the page image by image (same load for both),
 * median of `--images` after one.
 * Prints one JSON document (stdout) and a Markdown table (stderr). Numbers depend on the machine and its load: the
 * load average is printed beside them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stopWorkers } from './lib/service-workers.mjs';
import sharp from 'sharp';
import { median } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;
const { values: a } = parseArgs({
  options: {
    models: { type: 'string', default: 'demo,r152,r152-int8' },
    threads: { type: 'string' },
    images: { type: 'string', default: '5' },
    visits: { type: 'string', default: '3' },
    'demo-run': { type: 'string' },
    'stop-worker': { type: 'boolean', default: false },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const nImages = Number(a.images);
const visits = Number(a.visits);
const work = a.work ?? mkdtempSync(join(tmpdir(), 'nextray-bench-browser-'));
mkdirSync(work, { recursive: true });
const bin = join(root, 'bin', 'nextray.js');
const log = (s) => process.stderr.write(`bench browser: ${s}\n`);
const r1 = (x) => Math.round(x * 10) / 10;
const load = () => loadavg().map((x) => +x.toFixed(2));

function run(args, what) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what}: nextray ${args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout;
}

/** One MURA-sized greyscale PNG (512 px on the long side). */
async function testImage() {
  const file = join(work, 'image.png');
  if (!existsSync(file)) {
    const w = 400;
    const h = 512;
    const px = Buffer.alloc(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = (x * 3 + y * 5 + ((x * y) % 61)) & 255;
    await sharp(px, { raw: { width: w, height: h, channels: 1 } }).png().toFile(file);
  }
  return file;
}

let fp32R152 = null;
async function seeded(arch, size) {
  const { initEngine } = await import(dist('src/engine/index.js'));
  const { createModel } = await import(dist('src/models/index.js'));
  const { exportOnnx } = await import(dist('src/models/onnx/index.js'));
  await initEngine('auto');
  const model = createModel(arch, { head: 'binary', seed: 0 });
  const exported = exportOnnx(model, { inputSize: size, cam: true });
  model.dispose();
  return exported;
}

async function modelFile(name) {
  if (name === 'demo') {
    const out = join(work, 'demo.onnx');
    if (!existsSync(out)) {
      if (a['demo-run']) run(['export', '--checkpoint', a['demo-run'], '--out', out], 'export the demo run');
      else writeFileSync(out, (await seeded('resnet-slim', 128)).toBytes());
    }
    return { file: out, label: a['demo-run'] ? 'demo run (resnet-slim, 128 px)' : 'demo architecture (resnet-slim, 128 px, seeded)' };
  }
  if (name === 'r152' || name === 'r152-int8') {
    const out = join(work, `${name}.onnx`);
    if (!existsSync(out)) {
      log(`exporting ${name} (seeded ResNet-152 at 320 px) ...`);
      fp32R152 ??= await seeded('resnet152', 320);
      if (name === 'r152') writeFileSync(out, fp32R152.toBytes());
      else {
        const data = join(work, 'calibration');
        if (!existsSync(join(data, 'MURA-v1.1'))) run(['synth', '--out', data, '--studies', '40', '--size', '256', '--seed', '3'], 'synthetic calibration data');
        const { applyPrecision } = await import(dist('src/models/onnx/precision.js'));
        const { datasetCalibrationImages } = await import(dist('src/data/calibration-sample.js'));
        const { ort } = await import(dist('src/inference/node/onnx-session.js'));
        const r = await applyPrecision(fp32R152, { precision: 'int8', calibration: datasetCalibrationImages(data), runtime: ort, calibrationImages: 16, calibrationBatch: 1 });
        writeFileSync(out, r.exported.toBytes());
      }
    }
    return { file: out, label: name === 'r152' ? 'ResNet-152 fp32, 320 px (seeded)' : 'ResNet-152 int8 QDQ, 320 px (seeded)' };
  }
  throw new Error(`unknown model ${name} (demo, r152, r152-int8)`);
}

/** onnxruntime-node: preprocessing + one run per image, every output the page asks for, `threads` threads. */
async function nodeRunner(file, image, threads) {
  const { OnnxClassifier } = await import(dist('src/inference/node/onnx-session.js'));
  const { decodeGrey } = await import(dist('src/data/images.js'));
  const { preprocessGrey } = await import(dist('src/data/preprocess.js'));
  const clf = await OnnxClassifier.create(file, { threads });
  const decoded = await decodeGrey(image);
  return {
    threads,
    async once() {
      const t = performance.now();
      const x = preprocessGrey(decoded.data, decoded.width, decoded.height, clf.info.preprocessing);
      const probability = (await clf.run(x, 1)).probabilities[0];
      return { ms: performance.now() - t, probability };
    },
    release: () => clf.release(),
  };
}

async function browser(url, image, file) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'nextray-bench-profile-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.NEXTRAY_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    let page = ctx.pages()[0] ?? (await ctx.newPage());
    let t0 = performance.now();
    await page.goto(url + '/');
    await page.waitForSelector('body[data-state=ready]', { timeout: 900_000 });
    const coldMs = performance.now() - t0;
    const first = await page.evaluate(() => ({ phases: window.nextray.phases, threads: window.nextray.threads, backend: window.nextray.backend, cores: navigator.hardwareConcurrency, isolated: self.crossOriginIsolated }));
    await page.waitForSelector('[data-testid=offline][data-ready=true]', { timeout: 900_000 });
    // The page and onnxruntime-node take turns, image by image, so both see the same machine load.
    const node = await nodeRunner(file, image, a.threads ? Number(a.threads) : first.threads);
    const times = [];
    const nodeTimes = [];
    let probability;
    let nodeProbability;
    // A pause before each turn lets the other side's idle threads stop spinning (with 2 cores they would steal it).
    const pause = () => new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i <= nImages; i++) {
      await pause();
      await page.evaluate(() => (document.body.dataset.state = 'picking'));
      await page.setInputFiles('input[type=file]', [image]);
      await page.waitForSelector('body[data-state=done]', { timeout: 900_000 });
      const last = await page.evaluate(() => window.nextray.last.views[0]);
      probability = last.probability;
      await pause();
      const n = await node.once();
      nodeProbability = n.probability;
      if (i > 0) {
        times.push(last.ms);
        nodeTimes.push(n.ms);
      }
    }
    await node.release();
    const warm = [];
    const warmInside = [];
    const warmFromNavigation = [];
    const warmPhases = [];
    for (let v = 0; v < visits; v++) {
      await page.close();
      page = await ctx.newPage();
      if (a['stop-worker']) await stopWorkers(ctx, page);
      t0 = performance.now();
      await page.goto(url + '/');
      await page.waitForSelector('body[data-state=ready]', { timeout: 900_000 });
      warm.push(performance.now() - t0);
      const s = await page.evaluate(() => ({
        readyMs: window.nextray.readyMs,
        from: window.nextray.source.from,
        phases: window.nextray.phases,
        nav: performance.getEntriesByType('navigation')[0]?.toJSON(),
        marks: Object.fromEntries(performance.getEntriesByType('mark').filter((m) => m.name.startsWith('nextray:')).map((m) => [m.name.slice(8), Math.round(m.startTime)])),
      }));
      warmPhases.push({ ...Object.fromEntries(Object.entries(s.phases).map(([k, x]) => [k, Math.round(x)])), navigation_to_script_ms: Math.round(s.nav?.domContentLoadedEventEnd ?? 0), marks_ms: s.marks });
      if (s.from !== 'cache') throw new Error(`visit ${v + 2}: the model came from the ${s.from}, not the page's store`);
      warmInside.push(s.readyMs);
      if (s.marks.ready !== undefined) warmFromNavigation.push(s.marks.ready);
    }
    return {
      ...first,
      phases: Object.fromEntries(Object.entries(first.phases).map(([k, v]) => [k, Math.round(v)])),
      cold_ready_ms: Math.round(coldMs),
      warm_ready_ms: Math.round(median(warm)),
      warm_ready_runs_ms: warm.map(Math.round),
      warm_ready_in_page_ms: Math.round(median(warmInside)),
      // From the browser's navigation start to the page's ready mark: without the tab's creation and Playwright's
      // round trips, which warm_ready_ms (goto to ready) includes.
      warm_ready_from_navigation_ms: warmFromNavigation.length ? Math.round(median(warmFromNavigation)) : null,
      warm_phases_ms: warmPhases,
      per_image_ms: r1(median(times)),
      probability,
      node: { ms: r1(median(nodeTimes)), probability: nodeProbability, threads: node.threads },
    };
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const { buildSite, serveSite } = await import(dist('src/cli/app.js'));
const image = await testImage();
const report = { bench: 'browser', stop_worker: a['stop-worker'], date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, load_start: load(), image: '400 x 512 PNG', results: [] };
try {
  for (const name of a.models.split(',').filter(Boolean)) {
    const { file, label } = await modelFile(name);
    const site = join(work, `site-${name}`);
    await buildSite(file, site, { force: true });
    const server = await serveSite(site, 0);
    const entry = { model: name, label, onnx_mb: +(statSync(file).size / 1e6).toFixed(1), load_before: load() };
    try {
      log(`${label}: Chromium (load ${entry.load_before[0]}) ...`);
      const { node, ...page } = await browser(server.url, image, file);
      entry.browser = page;
      entry.node = node;
    } finally {
      await server.close();
    }
    entry.browser_over_node = +(entry.browser.per_image_ms / entry.node.ms).toFixed(2);
    entry.probability_diff = +Math.abs(entry.browser.probability - entry.node.probability).toExponential(2);
    entry.load_after = load();
    report.results.push(entry);
    log(JSON.stringify(entry));
  }
} finally {
  if (!a.keep && !a.work) rmSync(work, { recursive: true, force: true });
}
report.load_end = load();
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
log('\n| model | MB | threads (page = node) | page ms/image | node ms/image | page/node | cold ready s | warm ready s (goto / navigation) | load |');
log('|---|---|---|---|---|---|---|---|---|');
for (const r of report.results) {
  log(`| ${r.label} | ${r.onnx_mb} | ${r.browser.threads} = ${r.node.threads} | ${r.browser.per_image_ms} | ${r.node.ms} | ${r.browser_over_node} | ${(r.browser.cold_ready_ms / 1000).toFixed(2)} | ${(r.browser.warm_ready_ms / 1000).toFixed(2)} / ${r.browser.warm_ready_from_navigation_ms === null ? '–' : (r.browser.warm_ready_from_navigation_ms / 1000).toFixed(2)} | ${r.load_before[0]}–${r.load_after[0]} |`);
}
