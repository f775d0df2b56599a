#!/usr/bin/env node
/**
 * ONNX Runtime Web latency of exported models in Chromium (headless, /usr/bin/chromium), per file: batch 1 and 8,
 * the files timed interleaved (one run of each in turn; medians after one warm-up run), wasm backend with
 * `--threads` threads (1 = what a page without cross-origin isolation gets; the page here is served with COOP/COEP
 * so more threads are possible). Prints one JSON object.
 *
 *   node bench/quant-browser.mjs [--threads 1] [--reps1 5] [--reps8 2] [--size 320] [--batches 1,8] a.onnx b.onnx ...
 *
 * Needs onnxruntime-web and playwright-core (the app's dependencies) and a Chromium binary (CHROMIUM or
 * /usr/bin/chromium). The files are served from 127.0.0.1 on a free port; nothing leaves the machine.
 */
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';

const { values: a, positionals: files } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '1' },
    reps1: { type: 'string', default: '5' },
    reps8: { type: 'string', default: '2' },
    size: { type: 'string', default: '320' },
    batches: { type: 'string', default: '1,8' },
  },
});
if (!files.length) {
  process.stderr.write('usage: node bench/quant-browser.mjs [--threads N] [--size PX] a.onnx b.onnx ...\n');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const ortDist = dirname(require.resolve('onnxruntime-web'));
const { chromium } = await import('playwright-core');

const page = `<!doctype html><meta charset="utf-8"><script type="module">
import * as ort from '/ort/ort.wasm.min.mjs';
ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = ${Number(a.threads)};
window.bench = async (names, size, reps1, reps8, batches) => {
  const sessions = [];
  for (const n of names) sessions.push(await ort.InferenceSession.create(new Uint8Array(await (await fetch('/models/' + n)).arrayBuffer())));
  const out = names.map(() => ({}));
  for (const [batch, reps] of [[1, reps1], [8, reps8]].filter(([b]) => batches.includes(b))) {
    const x = new Float32Array(batch * size * size * 3).map((_, i) => Math.sin(i * 0.37));
    const feeds = { input: new ort.Tensor('float32', x, [batch, size, size, 3]) };
    for (const s of sessions) await s.run(feeds);
    const times = names.map(() => []);
    for (let r = 0; r < reps; r++) for (let k = 0; k < sessions.length; k++) {
      const t0 = performance.now();
      await sessions[k].run(feeds);
      times[k].push((performance.now() - t0) / 1000);
    }
    times.forEach((t, k) => { t.sort((p, q) => p - q); out[k]['batch' + batch + '_per_image_s'] = Number((t[Math.floor(t.length / 2)] / batch).toPrecision(4)); });
  }
  return { crossOriginIsolated: self.crossOriginIsolated, results: out };
};
window.ready = true;
</script>`;

const byName = new Map(files.map((f) => [basename(f), f]));
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
  try {
    if (url.pathname === '/') return res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(page);
    if (url.pathname.startsWith('/ort/')) {
      const name = basename(url.pathname);
      const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      return res.writeHead(200, { ...headers, 'content-type': type }).end(readFileSync(join(ortDist, name)));
    }
    if (url.pathname.startsWith('/models/') && byName.has(basename(url.pathname))) {
      return res.writeHead(200, { ...headers, 'content-type': 'application/octet-stream' }).end(readFileSync(byName.get(basename(url.pathname))));
    }
  } catch {
    // fall through to 404
  }
  res.writeHead(404).end();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const loadStart = loadavg().map((l) => Number(l.toFixed(2)));
try {
  const p = await browser.newPage();
  await p.goto(`http://127.0.0.1:${port}/`);
  await p.waitForFunction(() => window.ready === true);
  const r = await p.evaluate(([names, size, r1, r8, bs]) => window.bench(names, size, r1, r8, bs), [[...byName.keys()], Number(a.size), Number(a.reps1), Number(a.reps8), a.batches.split(',').map(Number)]);
  const report = {
    browser: `chromium ${browser.version()}`,
    threads: Number(a.threads),
    cross_origin_isolated: r.crossOriginIsolated,
    load_start: loadStart,
    load_end: loadavg().map((l) => Number(l.toFixed(2))),
    files: Object.fromEntries([...byName.keys()].map((n, k) => [n, r.results[k]])),
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
} finally {
  await browser.close();
  server.close();
}
