#!/usr/bin/env node
// How fast a page gets onnxruntime-web's 14 MB wasm onto V8's compiler on a later visit, by each way there is to read
// it from where a service worker keeps it (Cache Storage), in Chromium. It motivates app/src/runtime.ts storedWasm:
// the page reads the stored bytes itself (Cache.match -> Blob -> ArrayBuffer) and hands them to onnxruntime-web
// (env.wasm.wasmBinary), instead of onnxruntime-web's streaming fetch through the worker's static route.
//
//   node bench/runtime-read.mjs [--rounds 6] [--wasm node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm]
//
// A bare page (COOP/COEP, a service worker that stores the wasm at install and gives a static route to it) is visited
// in a persistent profile. Two cases, each way timed from the first call to the compiled module (ms):
//  - "new tab": a new tab of the running browser (the renderer's module cache already holds the compiled module);
//  - "browser restarted": the browser closed and started again before each visit (ways taking turns), as a visit on
//    another day.
// Ways: `route` WebAssembly.compileStreaming(fetch(url)) answered by the static route (what onnxruntime-web does);
// `fetch-handler` the same answered by the worker's fetch handler; `fetch-buffer` fetch(url).arrayBuffer() then
// WebAssembly.compile; `cache-blob` caches.match -> blob() -> arrayBuffer() then WebAssembly.compile (the page's way).
// "read" is the time until the bytes were in the page (buffer ways only). Prints one JSON document.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { median } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: a } = parseArgs({
  options: { rounds: { type: 'string', default: '6' }, wasm: { type: 'string', default: join(root, 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm') } },
});
const rounds = Number(a.rounds);
const { chromium } = await import('playwright-core');
const dir = mkdtempSync(join(tmpdir(), 'nextray-runtime-read-'));
const wasm = readFileSync(resolve(a.wasm));

const sw = `
self.addEventListener('install', (e) => e.waitUntil((async () => {
  const c = await caches.open('rt'); await c.add('r.wasm'); await c.add('f.wasm');
  if (e.addRoutes) await e.addRoutes([{ condition: { urlPattern: new URLPattern({ pathname: '/r.wasm' }) }, source: { cacheName: 'rt' } }]);
  await self.skipWaiting();
})()));
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => { if (new URL(e.request.url).pathname === '/f.wasm') e.respondWith(caches.match(e.request)); });`;
const html = `<!doctype html><script type=module>
window.way = async (how) => {
  const t0 = performance.now(); let read = null;
  if (how === 'route') await WebAssembly.compileStreaming(fetch('/r.wasm'));
  else if (how === 'fetch-handler') await WebAssembly.compileStreaming(fetch('/f.wasm'));
  else {
    const b = how === 'fetch-buffer' ? await (await fetch('/r.wasm')).arrayBuffer() : await (await (await (await caches.open('rt')).match('/r.wasm')).blob()).arrayBuffer();
    read = performance.now() - t0;
    await WebAssembly.compile(b);
  }
  return { ms: performance.now() - t0, read };
};
window.install = async () => { await navigator.serviceWorker.register('sw.js'); await navigator.serviceWorker.ready; };
</script>`;
writeFileSync(join(dir, 'sw.js'), sw);
writeFileSync(join(dir, 'index.html'), html);
const server = http.createServer((q, s) => {
  const p = q.url.split('?')[0];
  const body = p === '/' ? readFileSync(join(dir, 'index.html')) : p === '/sw.js' ? readFileSync(join(dir, 'sw.js')) : p.endsWith('.wasm') ? wasm : null;
  if (!body) {
    s.statusCode = 404;
    return s.end();
  }
  s.setHeader('content-type', p.endsWith('.wasm') ? 'application/wasm' : p.endsWith('.js') ? 'text/javascript' : 'text/html');
  s.setHeader('cross-origin-opener-policy', 'same-origin');
  s.setHeader('cross-origin-embedder-policy', 'require-corp');
  s.end(body);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;
const profile = mkdtempSync(join(tmpdir(), 'nextray-runtime-read-profile-'));
const launch = () => chromium.launchPersistentContext(profile, { executablePath: process.env.NEXTRAY_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
const WAYS = ['route', 'fetch-handler', 'fetch-buffer', 'cache-blob'];
const result = { bench: 'runtime-read', wasm_bytes: wasm.length, rounds, date: new Date().toISOString(), load_start: loadavg().map((x) => +x.toFixed(2)), new_tab: {}, restarted: {} };
try {
  let ctx = await launch();
  let page = await ctx.newPage();
  await page.goto(url);
  await page.evaluate(() => window.install());
  await page.close();
  const raw = { new_tab: {}, restarted: {} };
  for (let r = 0; r < rounds; r++) {
    page = await ctx.newPage();
    await page.goto(url);
    // Rotated order, so no way is always first in a tab.
    for (let i = 0; i < WAYS.length; i++) {
      const w = WAYS[(i + r) % WAYS.length];
      (raw.new_tab[w] ??= []).push(await page.evaluate((h) => window.way(h), w));
    }
    await page.close();
  }
  await ctx.close();
  for (let r = 0; r < rounds * 2; r++) {
    const w = r % 2 ? 'cache-blob' : 'route';
    ctx = await launch();
    page = await ctx.newPage();
    await page.goto(url);
    (raw.restarted[w] ??= []).push(await page.evaluate((h) => window.way(h), w));
    await ctx.close();
  }
  for (const k of ['new_tab', 'restarted']) {
    for (const [w, xs] of Object.entries(raw[k])) {
      result[k][w] = { median_ms: Math.round(median(xs.map((x) => x.ms))), read_median_ms: xs[0].read === null ? null : Math.round(median(xs.map((x) => x.read))), ms: xs.map((x) => Math.round(x.ms)) };
    }
  }
  result.load_end = loadavg().map((x) => +x.toFixed(2));
  console.log(JSON.stringify(result, null, 1));
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(profile, { recursive: true, force: true });
}
