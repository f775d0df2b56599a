#!/usr/bin/env node
// `npm run bench:serve`: load and speed of `nextray serve` and of the web page, for the demo model and ResNet-152.
//   1. Load: `nextray serve` in a child process (2 ONNX Runtime threads); C concurrent clients each send R
//      POST /v1/predict requests (the raw PNG) over keep-alive HTTP on 127.0.0.1 — latency p50/p99, throughput,
//      errors, and the server's peak RSS (VmHWM from /proc).
//   2. Browser: Chromium (playwright-core, /usr/bin/chromium, headless) opens the served page: time from navigation
//      to a ready page (model downloaded, session created, one warm-up run), then the per-image time the page
//      measures (preprocessing + inference, median of K picks after one) against onnxruntime-node on the same
//      machine (preprocessing + inference, 2 threads, median of K after one).
//   3. Soak (`--soak`, alone): `nextray serve --token T --timeout 5000` under 32 clients x 50 good requests (Bearer
//      token, keep-alive) while slow clients (1 byte per 100 ms bodies, cut at the timeout: 408) and bad requests
//      (no token, encoded and absolute-form paths, malformed multipart, truncated images, garbage) run beside
//      them. Reports transport errors (connections that ended without an answer: must be 0), every status seen,
//      p50/p99 of the good requests, and the server's RSS (start, peak, end; sampled every 250 ms).
// Usage: npm run bench:serve -- [--models demo,resnet152] [--clients 16] [--requests 200] [--r152-requests 200]
//        [--browser-images 5] [--no-browser] [--no-load] [--demo-run /work/demo/run] [--image FILE] [--work DIR]
//        npm run bench:serve -- --soak [--soak-clients 32] [--soak-requests 50] [--slow-clients 4] [--bad-clients 8]
// Needs `npm run build`. Prints one JSON document (and a Markdown table on stderr).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { median, option } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = new URL('../dist/', import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
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
const image = opt('image', null) ?? (existsSync(demoRun) ? firstPng(join(demoRun, '..', 'data', 'MURA-v1.1', 'valid')) : null);
if (!image && !flag('soak')) throw new Error('no test image: give --image FILE');


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

function startServe(file, extra = ['--timeout', '600000', '--max-queue', String(Math.max(32, clients * 2))]) {
  const child = spawn(process.execPath, [bin, 'serve', '--model', file, '--port', '0', '--json', '--threads', '2', ...extra], {
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
      await page.evaluate(() => (document.body.dataset.state = 'picking'));
      await page.setInputFiles('input[type=file]', [image]);
      await page.waitForSelector('body[data-state=done]', { timeout: 600_000 });
      // The page's own measurement of the view (preprocessing + inference), kept out of the result and in window.nextray.
      const last = await page.evaluate(() => window.nextray.last.views[0]);
      p = last.probability;
      if (i > 0) times.push(last.ms);
    }
    return { ready_ms: Math.round(readyMs), phases_ms: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])), status, per_image_ms: +median(times).toFixed(1), probability: p };
  } finally {
    await b.close();
  }
}

if (flag('soak')) {
  process.stdout.write(JSON.stringify(await soak(), null, 2) + '\n');
  process.exit(0);
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

/** One request over a plain socket (for what fetch will not send: odd targets, slow or broken bodies). */
function rawRequest(port, bytes, { slow = false, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ transport: 'no answer (client gave up)' }), timeoutMs);
    socket.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1', 0, 16));
      const end = data.indexOf('\r\n\r\n');
      if (m && end > 0) {
        const len = /content-length: (\d+)/i.exec(data.toString('latin1', 0, end));
        if (!len || data.length >= end + 4 + Number(len[1])) finish({ status: Number(m[1]) });
      }
    });
    socket.on('error', (e) => finish({ transport: e.code ?? e.message }));
    socket.on('close', () => finish({ transport: 'closed without an answer' }));
    socket.on('connect', async () => {
      if (!slow) return socket.write(bytes);
      // Headers at once, then the body one byte per 100 ms until the server answers (408) or closes.
      const head = bytes.indexOf('\r\n\r\n') + 4;
      socket.write(bytes.subarray(0, head));
      for (let i = head; i < bytes.length && !done && !socket.destroyed; i++) {
        socket.write(bytes.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, 100));
      }
    });
  });
}

function request(method, target, port, headers, body) {
  const b = body ?? Buffer.alloc(0);
  const h = { host: `127.0.0.1:${port}`, connection: 'close', ...headers, ...(body ? { 'content-length': String(b.length) } : {}) };
  return Buffer.concat([Buffer.from(`${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1'), b]);
}

/** A small model and picture for the soak when there is no demo run: resnet-slim at 128 px (random weights). */
async function soakInputs() {
  const sharp = (await import('sharp')).default;
  const file = join(work, 'soak-slim-128.onnx');
  if (!existsSync(file)) {
    const { initEngine } = await import(new URL('src/engine/index.js', dist).href);
    const { createModel } = await import(new URL('src/models/index.js', dist).href);
    const { exportOnnxFile } = await import(new URL('src/models/onnx/files.js', dist).href);
    await initEngine('cpu');
    const m = createModel('resnet-slim', { head: 'binary', seed: 0, init: 'random' });
    exportOnnxFile(m, file, { inputSize: 128, cam: true });
    m.dispose();
  }
  const px = Buffer.alloc(320 * 256);
  for (let i = 0; i < px.length; i++) px[i] = (i * 13 + (i >> 8) * 7) % 256;
  const png = image ? readFileSync(image) : await sharp(px, { raw: { width: 320, height: 256, channels: 1 } }).png().toBuffer();
  return { file, png };
}

async function soak() {
  const soakClients = Number(opt('soak-clients', '32'));
  const perClient = Number(opt('soak-requests', '50'));
  const slowClients = Number(opt('slow-clients', '4'));
  const badClients = Number(opt('bad-clients', '8'));
  const timeoutMs = 5000;
  const token = 'soak-' + Math.random().toString(36).slice(2);
  const { file, png } = await soakInputs();
  const { child, url } = await startServe(file, ['--token', token, '--timeout', String(timeoutMs), '--max-queue', String(soakClients * 4), '--no-onnx-cache']);
  const port = Number(new URL(url).port);
  const rss = [];
  const sampler = setInterval(() => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    if (m) rss.push(Number(m[1]) / 1024);
  }, 250);
  log(`soak: ${soakClients} clients x ${perClient} requests, ${slowClients} slow and ${badClients} bad clients beside them (load ${loadavg()[0].toFixed(1)})`);
  const good = { lat: [], statuses: {}, transport: 0 };
  const bad = { statuses: {}, transport: 0, kinds: {} };
  const slow = { statuses: {}, transport: 0, seconds: [], transports: {} };
  let running = true;
  const count = (o, k) => (o[k] = (o[k] ?? 0) + 1);
  const cut = png.subarray(0, Math.floor(png.length / 2));
  const mp = (boundary, bodyText) => Buffer.from(bodyText.replace(/B/g, boundary));
  const badRequests = [
    ['no token', () => request('POST', '/v1/predict', port, { 'content-type': 'image/png' }, png)],
    ['encoded path, no token', () => request('POST', '/%76%31/predict', port, { 'content-type': 'image/png' }, png)],
    ['absolute-form, no token', () => request('GET', `http://127.0.0.1:${port}/model.onnx`, port, {})],
    ['dot segments, no token', () => request('GET', '/v1/../model%2eonnx', port, {})],
    ['encoded slash', () => request('GET', '/v1%2fhealth', port, { authorization: `Bearer ${token}` })],
    ['truncated multipart', () => request('POST', '/v1/predict', port, { authorization: `Bearer ${token}`, 'content-type': 'multipart/form-data; boundary=zz' }, mp('zz', '--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\nPNGDA'))],
    ['multipart without boundary', () => request('POST', '/v1/predict', port, { authorization: `Bearer ${token}`, 'content-type': 'multipart/form-data' }, png)],
    ['truncated PNG', () => request('POST', '/v1/predict', port, { authorization: `Bearer ${token}`, 'content-type': 'image/png' }, cut)],
    ['garbage', () => request('POST', '/v1/predict', port, { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, Buffer.from('not an image at all'))],
    ['empty body', () => request('POST', '/v1/predict', port, { authorization: `Bearer ${token}`, 'content-type': 'image/png' }, Buffer.alloc(0))],
  ];
  const t0 = performance.now();
  const goodRuns = Array.from({ length: soakClients }, async () => {
    for (let i = 0; i < perClient; i++) {
      const s = performance.now();
      try {
        const r = await fetch(`${url}/v1/predict`, { method: 'POST', body: png, headers: { 'content-type': 'image/png', authorization: `Bearer ${token}` } });
        await r.arrayBuffer();
        count(good.statuses, r.status);
      } catch (e) {
        good.transport++;
        count(good.statuses, `transport: ${e.cause?.code ?? e.message}`);
      }
      good.lat.push(performance.now() - s);
    }
  });
  const badRuns = Array.from({ length: badClients }, async (_, c) => {
    for (let i = 0; running; i++) {
      const [kind, make] = badRequests[(c + i) % badRequests.length];
      const r = await rawRequest(port, make(), { timeoutMs: 30_000 });
      count(bad.kinds, `${kind}: ${r.status ?? r.transport}`);
      if (r.transport) {
        bad.transport++;
        count(bad.statuses, `transport: ${r.transport}`);
      } else count(bad.statuses, r.status);
    }
  });
  const slowRuns = Array.from({ length: slowClients }, async () => {
    while (running) {
      const s = performance.now();
      const r = await rawRequest(port, request('POST', '/v1/predict', port, { authorization: `Bearer ${token}`, 'content-type': 'image/png', connection: 'keep-alive' }, png), { slow: true, timeoutMs: 60_000 });
      slow.seconds.push((performance.now() - s) / 1000);
      if (r.transport) {
        slow.transport++;
        count(slow.transports, r.transport);
      } else count(slow.statuses, r.status);
    }
  });
  await Promise.all(goodRuns);
  running = false;
  await Promise.all([...badRuns, ...slowRuns]);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
  good.lat.sort((a, b) => a - b);
  const out = {
    bench: 'serve-soak',
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    model: file,
    clients: soakClients,
    per_client: perClient,
    slow_clients: slowClients,
    bad_clients: badClients,
    timeout_ms: timeoutMs,
    seconds: +seconds.toFixed(1),
    transport_errors: good.transport + bad.transport + slow.transport,
    good: { requests: good.lat.length, statuses: good.statuses, p50_ms: +pct(good.lat, 0.5).toFixed(1), p99_ms: +pct(good.lat, 0.99).toFixed(1), throughput_rps: +(good.lat.length / seconds).toFixed(2) },
    bad: { requests: Object.values(bad.kinds).reduce((a, b) => a + b, 0), statuses: bad.statuses, by_kind: bad.kinds },
    slow: { requests: slow.seconds.length, statuses: slow.statuses, transport: slow.transports, max_seconds: +Math.max(0, ...slow.seconds).toFixed(1) },
    rss_mb: { start: Math.round(rss[0] ?? 0), peak: peak ? Math.round(Number(peak[1]) / 1024) : null, end: Math.round(rss[rss.length - 1] ?? 0), samples: rss.length },
    loadavg_end: loadavg().map((x) => +x.toFixed(2)),
  };
  log(`soak: ${out.transport_errors} transport errors; good p50 ${out.good.p50_ms} ms, p99 ${out.good.p99_ms} ms; RSS ${out.rss_mb.start} -> peak ${out.rss_mb.peak} -> ${out.rss_mb.end} MB; slow clients cut after at most ${out.slow.max_seconds} s`);
  if (out.transport_errors > 0) process.exitCode = 1;
  return out;
}
