/**
 * The page as an installable, offline web app, in real Chromium with a persistent profile (a user-data-dir, as a
 * browser on a device keeps one): `nextray app build` writes the folder, `nextray app serve` serves it. After one
 * online visit the page loads and classifies with the server gone — across a reload and a browser restart — to the
 * probability `nextray predict` gives; Chromium reports no installability errors; a new model on the server is
 * picked up on the next online visit with a notice. A static server without COOP/COEP still ends cross-origin
 * isolated (the service worker adds the headers); opened from file:// the page says how to serve the folder.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildSite, serveSite } from '../../src/cli/app.js';
import { defaultAppDir } from '../../src/serve/server.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writeImages, writeTinyModel } from '../serve/fixture.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumMissing, launch, offlinePage } from './browser.js';
import { cliProbabilities, pick, studyCards } from './fixture.js';

const skip = chromiumMissing() ?? (existsSync(join(defaultAppDir(), 'index.html')) ? null : 'dist/app not built (npm run build)');
const tmp = tempDir('nextray-offline-');
let modelA: string;
let modelB: string;
let images: Awaited<ReturnType<typeof writeImages>>;
let cliA = new Map<string, number>();
let cliB = new Map<string, number>();

before(async () => {
  if (skip) return;
  modelA = await writeTinyModel(tmp.dir, { seed: 7, fitOod: true, name: 'model-a.onnx' });
  modelB = await writeTinyModel(tmp.dir, { seed: 11, fitOod: true, name: 'model-b.onnx' });
  images = await writeImages(tmp.dir);
  cliA = cliProbabilities(modelA, [images.png1]);
  cliB = cliProbabilities(modelB, [images.png1]);
});
after(() => tmp.cleanup());

const near = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) <= 1e-4, `${what}: page ${a} vs nextray predict ${b}`);

async function persistent(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

async function ready(page: Page): Promise<void> {
  await page.waitForSelector('body[data-state=ready]', { timeout: 90_000 });
}

async function probabilityOf(page: Page, file: string): Promise<number> {
  await pick(page, [file]);
  return (await studyCards(page))[0]!.probability!;
}

test('after one online visit the page classifies offline across a reload and a browser restart; installable; a new model is picked up with a notice', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site');
  await buildSite(modelA, site);
  let server = await serveSite(site, 0);
  const url = server.url;
  const port = Number(new URL(url).port);
  const profile = mkdtempSync(join(tmpdir(), 'nextray-profile-'));
  let ctx = await persistent(profile);
  try {
    let page = ctx.pages()[0] ?? (await ctx.newPage());
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(url + '/') && !/^(blob|data):/.test(r.url())) outside.push(r.url());
    });
    await page.goto(url + '/');
    await ready(page);
    await page.waitForSelector('[data-testid=offline][data-ready=true]', { timeout: 120_000 });
    assert.match((await page.textContent('[data-testid=offline]')) ?? '', /^Available offline: .*\(\d+(\.\d)? MB used/, 'the storage used is shown');
    const cdp = await ctx.newCDPSession(page);
    const inst = (await cdp.send('Page.getInstallabilityErrors')) as { installabilityErrors: { errorId: string }[] };
    assert.deepEqual(inst.installabilityErrors, [], 'Chromium sees an installable web app');
    const manifest = (await cdp.send('Page.getAppManifest')) as { errors: unknown[]; url: string };
    assert.deepEqual(manifest.errors, []);
    assert.ok(manifest.url.endsWith('/manifest.webmanifest'));
    near(await probabilityOf(page, images.png1), cliA.get(images.png1)!, 'online');
    assert.deepEqual(outside, []);

    // The server is gone: reload.
    await server.close();
    await page.reload();
    await ready(page);
    assert.match((await page.textContent('[data-testid=status]')) ?? '', /offline: the stored model/);
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'isolated from the service worker cache');
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    assert.equal(await page.evaluate(() => (window as unknown as { nextray: { threads: number } }).nextray.threads), cores);
    near(await probabilityOf(page, images.png1), cliA.get(images.png1)!, 'offline reload');

    // Browser restart, same profile, still no server.
    await ctx.close();
    ctx = await persistent(profile);
    page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(url + '/');
    await ready(page);
    near(await probabilityOf(page, images.png1), cliA.get(images.png1)!, 'offline after a browser restart');
    assert.equal(await page.isVisible('[data-testid=update-notice]'), false);

    // A new model on the server: picked up on the next online visit, with a notice.
    await buildSite(modelB, site, { force: true });
    server = await serveSite(site, port);
    await page.reload();
    await ready(page);
    assert.equal(await page.isVisible('[data-testid=update-notice]'), true);
    const shaB = createHash('sha256').update(readFileSync(modelB)).digest('hex');
    const shaA = createHash('sha256').update(readFileSync(modelA)).digest('hex');
    assert.match((await page.textContent('[data-testid=update-notice]')) ?? '', new RegExp(`A new model was loaded: model-b \\(SHA-256 ${shaB.slice(0, 12)}…\\) replaces .*\\(${shaA.slice(0, 12)}…\\)`));
    near(await probabilityOf(page, images.png1), cliB.get(images.png1)!, 'the new model');
    // Only the new model stays stored.
    const stored = await page.evaluate(async () => (await (await caches.open('nextray-model')).keys()).map((r) => r.url.split('/').pop()));
    assert.deepEqual(stored, [shaB]);
  } finally {
    await ctx.close();
    await server.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  }
});

test('app build ships the page, one runtime build and the model with its description; --webgpu adds the WebGPU build', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site-build');
  const r = await buildSite(modelA, site);
  assert.deepEqual(readdirSync(join(site, 'ort')).sort(), ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']);
  assert.deepEqual(r.runtimes, ['wasm']);
  const d = JSON.parse(readFileSync(join(site, 'model.json'), 'utf8')) as { file: string; sha256: string; bytes: number; runtimes: string[] };
  assert.equal(d.file, 'model.onnx');
  assert.equal(d.sha256, createHash('sha256').update(readFileSync(modelA)).digest('hex'));
  assert.equal(d.bytes, statSync(modelA).size);
  assert.deepEqual(d.runtimes, ['wasm']);
  for (const f of ['index.html', 'sw.js', 'manifest.webmanifest', 'icons/icon-192.png', 'icons/icon-512.png', 'file-hint.js', '_headers', 'README.txt']) assert.ok(existsSync(join(site, f)), f);
  assert.equal(readFileSync(join(site, 'icons', 'icon-512.png')).readUInt32BE(16), 512, 'a 512 px PNG icon');
  const g = await buildSite(modelA, site, { force: true, webgpu: true });
  assert.deepEqual(g.runtimes, ['wasm', 'webgpu']);
  assert.equal(readdirSync(join(site, 'ort')).length, 4);
});

/** A static server that sends no COOP/COEP (as many hosts do). */
function plainServer(root: string): Promise<{ url: string; server: Server }> {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.png': 'image/png' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = join(root, path.endsWith('/') ? path + 'index.html' : path);
    if (!file.startsWith(root) || !existsSync(file) || statSync(file).isDirectory()) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server })));
}

test('on a static server without COOP/COEP the service worker makes the page cross-origin isolated (every core) after one reload', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site-plain');
  await buildSite(modelA, site);
  const { url, server } = await plainServer(site);
  const browser = await launch();
  try {
    const { page, blocked, consoleErrors } = await offlinePage(browser, url);
    await page.goto(url + '/');
    // The first load is not isolated; the page reloads itself once the worker controls it.
    await page.waitForFunction(() => self.crossOriginIsolated && document.body.dataset.state === 'ready', null, { timeout: 120_000 });
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    assert.equal(await page.evaluate(() => (window as unknown as { nextray: { threads: number } }).nextray.threads), cores);
    near(await probabilityOf(page, images.png1), cliA.get(images.png1)!, 'static host');
    assert.deepEqual(blocked, [], 'nothing asked of any other address');
    assert.deepEqual(consoleErrors, []);
  } finally {
    await browser.close();
    server.close();
  }
});

/**
 * A static server with COOP/COEP whose model.json answers only when `release()` is called (while held): a slow
 * network's description, to see what the page does meanwhile.
 */
function holdingServer(root: string): Promise<{ url: string; server: Server; hold: () => void; release: () => void }> {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.png': 'image/png' };
  let held: (() => void)[] | null = null;
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = join(root, path.endsWith('/') ? path + 'index.html' : path);
    if (!file.startsWith(root) || !existsSync(file) || statSync(file).isDirectory()) return void res.writeHead(404).end();
    const send = (): void =>
      void res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }).end(readFileSync(file));
    if (held && path.endsWith('/model.json')) held.push(send);
    else send();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        server,
        hold: () => void (held = []),
        release: () => {
          const waiting = held ?? [];
          held = null;
          for (const send of waiting) send();
        },
      }),
    ),
  );
}

test('on a later visit the runtime starts before model.json has answered (a slow network does not hold it up)', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site-slow');
  await buildSite(modelA, site);
  const { url, server, hold, release } = await holdingServer(site);
  const browser = await launch();
  try {
    const { page, consoleErrors } = await offlinePage(browser, url);
    await page.goto(url + '/');
    await ready(page);
    await page.waitForSelector('[data-testid=offline][data-ready=true]', { timeout: 120_000 });
    hold();
    await page.reload();
    // Released as soon as the page has read the runtime's wasm from the worker's cache, or after 3.5 s (within the
    // page's 4 s wait for model.json): a page that waits for model.json first reads the wasm only after the release.
    const wasmAsked = (): Promise<boolean> => page.evaluate(() => performance.getEntriesByName('nextray:runtime-stored').length > 0).catch(() => false);
    for (let i = 0; i < 35 && !(await wasmAsked()); i++) await new Promise((r) => setTimeout(r, 100));
    release();
    await ready(page);
    const t = await page.evaluate(() => {
      const es = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      return { wasm: performance.getEntriesByName('nextray:runtime-stored')[0]?.startTime ?? null, json: es.find((e) => e.name.endsWith('/model.json'))?.responseEnd ?? null };
    });
    assert.ok(t.wasm !== null && t.json !== null, `timings: ${JSON.stringify(t)}`);
    assert.ok(t.wasm! < t.json!, `the wasm was read at ${t.wasm} ms, after model.json answered (${t.json} ms)`);
    assert.equal(await page.evaluate(() => (window as unknown as { nextray: { source: { online: boolean } } }).nextray.source.online), true);
    near(await probabilityOf(page, images.png1), cliA.get(images.png1)!, 'after a slow model.json');
    assert.deepEqual(consoleErrors, []);
  } finally {
    release();
    await browser.close();
    server.close();
  }
});

test('on a later visit the browser serves the page from Cache Storage by static routes, without the service worker, and the page reads the runtime from Cache Storage itself; model.json from the network; the load phases are marked in order', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site-routes');
  await buildSite(modelA, site);
  const server = await serveSite(site, 0);
  const browser = await launch();
  try {
    const { page, consoleErrors } = await offlinePage(browser, server.url);
    await page.goto(server.url + '/');
    await ready(page);
    await page.waitForSelector('[data-testid=offline][data-ready=true]', { timeout: 120_000 });
    // Stopped, as after ~30 s idle: the routes must answer without it.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    await page.reload();
    await ready(page);
    // Resource Timing says which source answered: 'cache' (a route to Cache Storage), 'network' (a route to the
    // network), 'fetch-event' (the worker's fetch handler).
    const sources = await page.evaluate(() => {
      const of = (e: PerformanceEntry | undefined): string | null => (e ? (e as PerformanceResourceTiming & { workerFinalSourceType?: string }).workerFinalSourceType ?? '' : null);
      const rs = performance.getEntriesByType('resource');
      return {
        page: of(performance.getEntriesByType('navigation')[0]),
        script: of(rs.find((e) => /\/assets\/index-[^/]*\.js$/.test(e.name))),
        wasm: of(rs.find((e) => /\/ort\/ort-wasm[^/]*\.wasm$/.test(e.name))),
        description: of(rs.find((e) => e.name.endsWith('/model.json'))),
      };
    });
    // The runtime's wasm is not fetched at all: the page reads it from the worker's cache (app/src/runtime.ts storedWasm:
    // a fetch of it, even by a route, took ~4x longer).
    assert.deepEqual(sources, { page: 'cache', script: 'cache', wasm: null, description: 'network' });
    // The load phases are on the browser's timeline (bench/trace-warm.mjs and bench/browser.mjs read them), in the
    // order the page's code runs them.
    const marks = new Map(await page.evaluate(() => performance.getEntriesByType('mark').filter((m) => m.name.startsWith('nextray:')).map((m) => [m.name.slice(8), m.startTime] as [string, number])));
    assert.deepEqual([...marks.keys()].sort(), ['model-bytes', 'model-described', 'ready', 'runtime-imported', 'runtime-started', 'runtime-stored', 'script', 'session']);
    const at = (k: string): number => marks.get(k)!;
    for (const [a, b] of [['script', 'runtime-imported'], ['runtime-imported', 'runtime-stored'], ['runtime-stored', 'runtime-started'], ['model-described', 'model-bytes'], ['model-bytes', 'session'], ['runtime-started', 'session'], ['session', 'ready']]) {
      assert.ok(at(a!) <= at(b!), `${a} (${at(a!)} ms) before ${b} (${at(b!)} ms)`);
    }
    // The runtime build's glue script is asked for alongside onnxruntime-web's own module (app/src/runtime.ts), not
    // once that module has loaded and the first session is being created: one round trip less before the wasm.
    const glue = await page.evaluate(() => performance.getEntriesByType('resource').filter((e) => /\/ort\/ort-wasm[^/]*\.mjs$/.test(e.name)).map((e) => e.startTime));
    assert.ok(glue.length > 0, 'the glue script was loaded');
    assert.ok(Math.min(...glue) < at('runtime-imported'), `the glue script was asked for at ${Math.min(...glue)} ms, after onnxruntime-web had loaded (${at('runtime-imported')} ms)`);
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'the cached page keeps its isolation headers');
    near(await probabilityOf(page, images.png1), cliA.get(images.png1)!, 'page and runtime from the routes');
    assert.deepEqual(consoleErrors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

test('opened from file:// the page says how to serve the folder', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site-file');
  await buildSite(modelA, site);
  const browser = await launch();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`file://${site}/index.html`);
    await page.waitForSelector('[data-testid=file-hint]:not([hidden])', { timeout: 30_000 });
    const hint = (await page.textContent('[data-testid=file-hint]')) ?? '';
    assert.match(hint, /nextray app serve ".*site-file\/"/);
    assert.match(hint, /python3 -m http\.server 8000/);
    assert.equal(await page.getAttribute('body', 'data-state'), 'file');
  } finally {
    await browser.close();
  }
});

test('nextray app serve DIR serves the folder on 127.0.0.1 with COOP/COEP, to loopback Host names only, stops on SIGTERM; a folder without a page is refused', { skip: skip ?? false }, async () => {
  const site = join(tmp.dir, 'site-serve');
  await buildSite(modelA, site);
  const bin = join(REPO_ROOT, 'bin', 'nextray.js');
  const child = spawn(process.execPath, [bin, 'app', 'serve', site, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(String(d)));
    child.once('exit', (c) => reject(new Error(`exited ${c}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await fetch(url + '/');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
  assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
  // Another Host name (a rebinding page's) gets nothing.
  const port = new URL(url).port;
  const rebound = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/model.onnx', headers: { host: `attacker.example:${port}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(rebound, 421);
  const wasm = await fetch(url + '/ort/ort-wasm-simd-threaded.wasm');
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  await wasm.arrayBuffer();
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGTERM');
  assert.equal(await exit, 0);
  const bad = spawn(process.execPath, [bin, 'app', 'serve', tmp.dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  bad.stderr.on('data', (d: Buffer) => (err += String(d)));
  assert.equal(await new Promise((r) => bad.once('exit', r)), 2);
  assert.match(err, /no index\.html: not a web app folder/);
  assert.match(err, /hint: write one with nextray app build --model model\.onnx --out DIR/);
});
