#!/usr/bin/env node
// `npm run bench:serve`: load and speed of `nextray serve` and of the web page, for the demo model and ResNet-152.
//   1. Load: `nextray serve` in a child process (2 ONNX Runtime threads); C concurrent clients each send R
//      POST /v1/predict requests (the raw PNG) over keep-alive HTTP on 127.0.0.1 — latency p50/p99, throughput,
//      errors, and the server's peak RSS (VmHWM from /proc).
//   2. Browser: Chromium (playwright-core, /usr/bin/chromium, headless) opens the served page: time from navigation
//      to a ready page (model downloaded, session created, one warm-up run), then the per-image time the page
//      measures (preprocessing + inference, median of K picks after one) against onnxruntime-node on the same
//      machine (preprocessing + inference, 2 threads, median of K after one).
// Usage: npm run bench:serve -- [--models demo,resnet152] [--clients 16] [--requests 200] [--r152-requests 200]
//        [--browser-images 5] [--no-browser] [--no-load] [--demo-run /work/demo/run] [--image FILE] [--work DIR]
// Needs `npm run build`. Prints one JSON document (and a Markdown table on stderr).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = new URL('../dist/', import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const flag = (name) => argv.includes(`--${name}`);
const models = opt('models', 'demo,resnet152').split(',');
const clients = Number(opt('clients', '16'));
const requests = Number(opt('requests', '200'));
const r152Requests = Number(opt('r152-requests', String(requests)));
const browserImages = Number(opt('browser-images', '5'));
const demoRun = opt('demo-run', '/work/demo/run');
const work = opt('work', join(tmpdir(), 'nextray-bench-serve'));
const bin = join(root, 'bin', 'nextray.js');
mkdirSync(work, { recursive: true });
const log = (s) => process.stderr.write(s + '\n');

function firstPng(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      const f = firstPng(p);
      if (f) return f;
    } else if (/\.png$/i.test(name)) return p;
  }
  return null;
}
const image = opt('image', null) ?? firstPng(join(demoRun, '..', 'data', 'MURA-v1.1', 'valid'));
if (!image) throw new Error('no test image: give --image FILE');

async function modelFile(name) {
  if (name === 'demo') {
    const out = join(work, 'demo.onnx');
    if (!existsSync(out)) {
      log(`exporting the demo model from ${demoRun}`);
      const r = spawnSync(process.execPath, [bin, 'export', '--checkpoint', join(demoRun, 'checkpoints', 'best'), '--out', out], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`export failed: ${r.stderr}`);
    }
    return { file: out, label: 'demo (resnet-slim, 128 px)' };
  }
  if (name === 'resnet152') {
    const out = join(work, 'resnet152-320.onnx');
    if (!existsSync(out)) {
      log('exporting ResNet-152 @320 (random weights, binary head, cam output)');
      const { initEngine } = await import(new URL('src/engine/index.js', dist).href);
      const { createModel } = await import(new URL('src/models/index.js', dist).href);
      const { exportOnnxFile } = await import(new URL('src/models/onnx/files.js', dist).href);
      await initEngine('auto');
      const m = createModel('resnet152', { head: 'binary', seed: 0, init: 'random' });
      exportOnnxFile(m, out, { inputSize: 320, cam: true });
      m.dispose();
    }
    return { file: out, label: 'ResNet-152 @320 (random weights)' };
  }
  throw new Error(`unknown model ${name}`);
}

function startServe(file) {
  const child = spawn(process.execPath, [bin, 'serve', '--model', file, '--port', '0', '--json', '--threads', '2', '--timeout', '600000', '--max-queue', String(Math.max(32, clients * 2))], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, url: JSON.parse(out.split('\n')[0]).url, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

function peakRssMb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function load(url, body, perClient) {
  const lat = [];
  const statuses = {};
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < perClient; i++) {
        const s = performance.now();
        try {
          const r = await fetch(`${url}/v1/predict`, { method: 'POST', body, headers: { 'content-type': 'image/png' } });
          const j = await r.json();
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (r.status !== 200 || typeof j.probability !== 'number') errors++;
        } catch {
          errors++;
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { requests: lat.length, errors, statuses, seconds: +seconds.toFixed(1), throughput_rps: +(lat.length / seconds).toFixed(2), p50_ms: +pct(lat, 0.5).toFixed(1), p99_ms: +pct(lat, 0.99).toFixed(1) };
}

async function nodePerImage(file) {
  const { OnnxClassifier } = await import(new URL('src/inference/node/onnx-session.js', dist).href);
  const { preprocessImage } = await import(new URL('src/data/images.js', dist).href);
  const clf = await OnnxClassifier.create(file, { threads: 2 });
  const times = [];
  let p;
  for (let i = 0; i <= browserImages; i++) {
    const t = performance.now();
    const x = await preprocessImage(image, clf.info.preprocessing);
    p = (await clf.run(x, 1)).probabilities[0];
    if (i > 0) times.push(performance.now() - t);
  }
  await clf.release();
  return { ms: +median(times).toFixed(1), probability: p };
}

async function browser(url) {
  const { chromium } = await import('playwright-core');
  const b = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const context = await b.newContext();
    await context.route('**/*', (r) => (r.request().url().startsWith(url) ? r.continue() : r.abort()));
    const page = await context.newPage();
    const t0 = performance.now();
    await page.goto(url + '/');
    await page.waitForSelector('body[data-state=ready]', { timeout: 600_000 });
    const readyMs = performance.now() - t0;
    const status = await page.textContent('[data-testid=status]');
    const phases = await page.evaluate(() => window.nextray.phases);
    const times = [];
    let p;
    for (let i = 0; i <= browserImages; i++) {
      await page.evaluate(() => (document.body.dataset.state = 'ready'));
      await page.setInputFiles('input[type=file]', [image]);
      await page.waitForSelector('body[data-state=done]', { timeout: 600_000 });
      const ms = Number(await page.getAttribute('[data-testid=view]', 'data-ms'));
      p = Number(await page.getAttribute('[data-testid=probability]', 'data-value'));
      if (i > 0) times.push(ms);
    }
    return { ready_ms: Math.round(readyMs), phases_ms: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])), status, per_image_ms: +median(times).toFixed(1), probability: p };
  } finally {
    await b.close();
  }
}

const results = [];
const body = readFileSync(image);
for (const name of models) {
  const { file, label } = await modelFile(name);
  const perClient = name === 'resnet152' ? r152Requests : requests;
  const { child, url, stderr } = await startServe(file);
  log(`${label}: ${clients} clients x ${perClient} requests (load ${loadavg()[0].toFixed(1)})`);
  const entry = { model: name, label, onnx_mb: +(statSync(file).size / 1e6).toFixed(1), clients, per_client: perClient, load_before: +loadavg()[0].toFixed(2) };
  if (!flag('no-load')) {
    entry.serve = await load(url, body, perClient);
    entry.serve.peak_rss_mb = Math.round(peakRssMb(child.pid));
    entry.load_after_serve = +loadavg()[0].toFixed(2);
  }
  if (!flag('no-browser')) {
    log(`${label}: browser`);
    entry.browser = await browser(url);
    entry.node = await nodePerImage(file);
    entry.browser_vs_node = +(entry.browser.per_image_ms / entry.node.ms).toFixed(2);
    entry.probability_diff = Math.abs(entry.browser.probability - entry.node.probability);
  }
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
  entry.log_lines = stderr().split('\n').filter((l) => / POST \/v1\/predict /.test(l)).length;
  results.push(entry);
  log(JSON.stringify(entry));
}

const doc = { bench: 'serve', date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, image, loadavg_end: loadavg().map((x) => +x.toFixed(2)), results };
process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
log('\n| model | requests | errors | p50 ms | p99 ms | req/s | peak RSS MB | page ready s | page ms/image | node ms/image | page/node |');
log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const sv = r.serve ?? {};
  log(`| ${r.label} | ${r.clients}x${r.per_client} | ${sv.errors ?? '-'} | ${sv.p50_ms ?? '-'} | ${sv.p99_ms ?? '-'} | ${sv.throughput_rps ?? '-'} | ${sv.peak_rss_mb ?? '-'} | ${r.browser ? (r.browser.ready_ms / 1000).toFixed(2) : '-'} | ${r.browser?.per_image_ms ?? '-'} | ${r.node?.ms ?? '-'} | ${r.browser_vs_node ?? '-'} |`);
}
