#!/usr/bin/env node
/**
 * Where a warm visit of the page goes, phase by phase, in real Chromium: the site `nextray app build` writes for
 * --model, served by `nextray app serve`'s server, one cold visit in a persistent profile (until the page says it is
 * available offline), then --visits warm visits, each recorded with a Chrome trace (CDP Tracing: devtools.timeline,
 * loading, ServiceWorker, v8.wasm, blink.user_timing) plus the page's Navigation / Resource Timing entries and its own
 * performance marks (`nextray:*`, app/src/engine.ts).
 *
 *   npm run build && node bench/trace-warm.mjs --model demo.onnx [--visits 3] [--out DIR] [--keep-traces]
 *       [--pause-ms 0]
 *   node bench/trace-warm.mjs --model demo.onnx --baseline-app OTHER/dist/app [--visits 8]
 *
 * --app DIR traces another build of the page (default: this checkout's dist/app). --pause-ms waits that long between visits. --stop-worker stops the service worker before each visit (CDP
 * ServiceWorker.stopAllWorkers), as the browser does after ~30 s idle: a visit on another day starts with it stopped. Prints one JSON document (stdout) and, per visit, a table of phases
 * (stderr): milliseconds from navigation start, on the page's clock. --keep-traces writes trace-N.json into --out
 * (open them in chrome://tracing or Perfetto).
 *
 * --baseline-app DIR (another build of the page, e.g. main's dist/app) compares instead of tracing: two sites, two
 * profiles, one cold visit each, then warm visits taking turns (baseline, this build, baseline, ...) so both see the
 * same machine load; per visit the time from navigation start to the page's ready state (on the page's clock, a
 * MutationObserver on body[data-state]) and from Playwright's goto to it. Prints medians per build.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stopWorkers } from './lib/service-workers.mjs';
import { median } from './lib/util.mjs';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    visits: { type: 'string', default: '3' },
    out: { type: 'string' },
    'keep-traces': { type: 'boolean', default: false },
    'pause-ms': { type: 'string', default: '0' },
    'baseline-app': { type: 'string' },
    'stop-worker': { type: 'boolean', default: false },
    app: { type: 'string' },
  },
});
if (!a.model) throw new Error('--model FILE.onnx is required');
const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;
const log = (s) => process.stderr.write(`${s}\n`);
const load = () => loadavg().map((x) => +x.toFixed(2));
const { buildSite, serveSite } = await import(dist('src/cli/app.js'));
const { chromium } = await import('playwright-core');

const work = mkdtempSync(join(tmpdir(), 'nextray-trace-warm-'));
const out = a.out ? resolve(a.out) : work;
mkdirSync(out, { recursive: true });
if (a['baseline-app']) {
  await compare();
  process.exit(0);
}
const site = join(work, 'site');
await buildSite(resolve(a.model), site, { force: true, ...(a.app ? { appDir: resolve(a.app) } : {}) });
const server = await serveSite(site, 0);
const profile = mkdtempSync(join(tmpdir(), 'nextray-trace-profile-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.NEXTRAY_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});

const CATEGORIES = ['devtools.timeline', 'loading', 'navigation', 'ServiceWorker', 'v8.wasm', 'blink.user_timing', 'v8', 'disabled-by-default-devtools.timeline'];

async function traced(page, fn) {
  const cdp = await ctx.newCDPSession(page);
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...e.value));
  await cdp.send('Tracing.start', { traceConfig: { includedCategories: CATEGORIES, recordMode: 'recordAsMuchAsPossible' }, transferMode: 'ReportEvents' });
  await fn();
  const done = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.end');
  await done;
  await cdp.detach();
  return events;
}

/** What the trace says, as times relative to the renderer's navigationStart (ms). */
function summarise(events) {
  const nav = events.find((e) => e.name === 'navigationStart' && e.args?.data?.isLoadingMainFrame !== false && e.args?.data?.documentLoaderURL?.startsWith('http'));
  const t0 = nav ? nav.ts : Math.min(...events.filter((e) => e.ts > 0).map((e) => e.ts));
  const rel = (ts) => Math.round((ts - t0) / 100) / 10;
  const byName = new Map();
  for (const e of events) {
    // Complete and begin events carry a duration; instant ones (V8's v8.wasm.cachedModule, v8.wasm.moduleCacheHit)
    // are counted with 0 ms, so the summary says whether the wasm code cache was written or hit.
    if (e.ph !== 'X' && e.ph !== 'B' && e.ph !== 'I' && e.ph !== 'i') continue;
    const k = e.name;
    const r = byName.get(k) ?? { count: 0, ms: 0, first: Infinity };
    r.count++;
    r.ms += (e.dur ?? 0) / 1000;
    r.first = Math.min(r.first, rel(e.ts));
    byName.set(k, r);
  }
  const wasm = Object.fromEntries([...byName].filter(([k]) => k.startsWith('wasm.') || k.startsWith('v8.wasm.') || k.includes('Wasm')).map(([k, v]) => [k, { count: v.count, ms: Math.round(v.ms), first: v.first }]));
  const sw = Object.fromEntries(
    [...byName]
      .filter(([k]) => /ServiceWorker|StartWorker|FetchEvent|EmbeddedWorker/i.test(k))
      .slice(0, 40)
      .map(([k, v]) => [k, { count: v.count, ms: Math.round(v.ms), first: v.first }]),
  );
  const scripts = events
    .filter((e) => (e.name === 'EvaluateScript' || e.name === 'v8.evaluateModule' || e.name === 'v8.compileModule' || e.name === 'CompileScript') && e.dur)
    .map((e) => ({ name: e.name, url: (e.args?.data?.url ?? e.args?.fileName ?? '').replace(/^.*\//, ''), at: rel(e.ts), ms: Math.round(e.dur / 100) / 10 }))
    .filter((s) => s.ms >= 1);
  const top = [...byName].sort((p, q) => q[1].ms - p[1].ms).slice(0, 25).map(([k, v]) => ({ name: k, count: v.count, ms: Math.round(v.ms), first: v.first }));
  return { wasm, sw, scripts, top };
}

const url = server.url + '/';
const result = { bench: 'trace-warm', model: a.model, date: new Date().toISOString(), load_start: load(), visits: [] };
try {
  let page = ctx.pages()[0] ?? (await ctx.newPage());
  let t = performance.now();
  await page.goto(url);
  await page.waitForSelector('body[data-state=ready]', { timeout: 600_000 });
  result.cold_ready_ms = Math.round(performance.now() - t);
  await page.waitForSelector('[data-testid=offline][data-ready=true]', { timeout: 600_000 });
  for (let v = 0; v < Number(a.visits); v++) {
    await page.close();
    if (Number(a['pause-ms']) > 0) await new Promise((r) => setTimeout(r, Number(a['pause-ms'])));
    page = await ctx.newPage();
    if (a['stop-worker']) await stopWorkers(ctx, page);
    let wall = 0;
    const events = await traced(page, async () => {
      t = performance.now();
      await page.goto(url);
      await page.waitForSelector('body[data-state=ready]', { timeout: 600_000 });
      wall = performance.now() - t;
      await new Promise((r) => setTimeout(r, 300));
    });
    const timing = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0];
      const pick = (e) => ({
        name: e.name.replace(location.origin + location.pathname.replace(/[^/]*$/, ''), ''),
        workerStart: Math.round(e.workerStart),
        fetchStart: Math.round(e.fetchStart),
        responseStart: Math.round(e.responseStart),
        responseEnd: Math.round(e.responseEnd),
        bytes: e.encodedBodySize,
        router: e.workerFinalSourceType || null,
      });
      return {
        navigation: { ...pick(n), domInteractive: Math.round(n.domInteractive), domContentLoaded: Math.round(n.domContentLoadedEventEnd), loadEnd: Math.round(n.loadEventEnd) },
        resources: performance.getEntriesByType('resource').map(pick),
        marks: performance.getEntriesByType('mark').filter((m) => m.name.startsWith('nextray:')).map((m) => ({ name: m.name, at: Math.round(m.startTime) })),
        measures: performance.getEntriesByType('measure').filter((m) => m.name.startsWith('nextray:')).map((m) => ({ name: m.name, at: Math.round(m.startTime), ms: Math.round(m.duration) })),
        readyMs: window.nextray?.readyMs,
        phases: window.nextray?.phases,
        controlled: !!navigator.serviceWorker.controller,
      };
    });
    if (a['keep-traces']) writeFileSync(join(out, `trace-${v + 2}.json`), JSON.stringify({ traceEvents: events }));
    const s = summarise(events);
    const visit = { visit: v + 2, wall_ms: Math.round(wall), load: load(), ...timing, trace: s };
    result.visits.push(visit);
    log(`\nvisit ${v + 2}: ${Math.round(wall)} ms from goto to ready (load ${visit.load[0]})`);
    const n = timing.navigation;
    log(`  navigation${n.router ? ` (route ${n.router})` : ''}: workerStart ${n.workerStart}, fetchStart ${n.fetchStart}, responseStart ${n.responseStart}, responseEnd ${n.responseEnd}, domInteractive ${n.domInteractive}, DCL ${n.domContentLoaded}`);
    for (const r of timing.resources) log(`  ${r.name.padEnd(48)} workerStart ${r.workerStart} fetch ${r.fetchStart} resp ${r.responseStart} end ${r.responseEnd}${r.router ? ` route ${r.router}` : ''}`);
    for (const m of timing.marks) log(`  mark ${m.name.padEnd(40)} ${m.at}`);
    for (const m of timing.measures) log(`  measure ${m.name.padEnd(37)} ${m.at} +${m.ms}`);
    log(`  wasm: ${JSON.stringify(s.wasm)}`);
    log(`  sw: ${JSON.stringify(s.sw)}`);
    for (const x of s.scripts) log(`  script ${x.name} ${x.url} at ${x.at} ${x.ms} ms`);
  }
} finally {
  await ctx.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
  if (!a.out) rmSync(work, { recursive: true, force: true });
}
result.load_end = load();
result.phases = phaseTable(result.visits);
process.stdout.write(JSON.stringify(result, null, 2) + '\n');

/** One row per phase: when it ended (ms from navigation start), median over the visits and each visit's value. */
function phaseTable(visits) {
  const rows = [
    ['HTML received (navigation responseEnd)', (v) => v.navigation.responseEnd],
    ["page's script running (nextray:script)", (v) => mark(v, 'script')],
    ['onnxruntime-web imported (nextray:runtime-imported)', (v) => mark(v, 'runtime-imported')],
    ['runtime wasm requested (fetched: a first visit, or no Cache Storage)', (v) => res(v, /ort-wasm[^/]*\.wasm$/)?.fetchStart],
    ['runtime wasm received (14 MB)', (v) => res(v, /ort-wasm[^/]*\.wasm$/)?.responseEnd],
    ["runtime wasm read from the worker's cache by the page (nextray:runtime-stored)", (v) => mark(v, 'runtime-stored')],
    ['wasm compiled (end of wasm.FinishStreaming)', (v) => (v.trace.wasm['wasm.FinishStreaming'] ? v.trace.wasm['wasm.FinishStreaming'].first + v.trace.wasm['wasm.FinishStreaming'].ms : null)],
    ['runtime instantiated (start of wasm.AsyncInstantiate)', (v) => v.trace.wasm['wasm.AsyncInstantiate']?.first ?? null],
    ['model.json answered (nextray:model-described)', (v) => mark(v, 'model-described')],
    ['model bytes read from Cache Storage (nextray:model-bytes)', (v) => mark(v, 'model-bytes')],
    ['runtime started: threads + identity session (nextray:runtime-started)', (v) => mark(v, 'runtime-started')],
    ["model's session (nextray:session)", (v) => mark(v, 'session')],
    ['ready (nextray:ready)', (v) => mark(v, 'ready')],
    ['lazy wasm compilations (wasm.CompileLazy: count / ms)', (v) => (v.trace.wasm['wasm.CompileLazy'] ? `${v.trace.wasm['wasm.CompileLazy'].count} / ${v.trace.wasm['wasm.CompileLazy'].ms}` : '0')],
  ];
  const out = rows.map(([name, f]) => {
    const xs = visits.map((v) => f(v) ?? null);
    const nums = xs.filter((x) => typeof x === 'number');
    return { phase: name, median: nums.length ? Math.round(median(nums)) : null, visits: xs.map((x) => (typeof x === 'number' ? Math.round(x) : x)) };
  });
  log('\n| phase (ms from navigation start) | median | visits |');
  log('|---|---|---|');
  for (const r of out) log(`| ${r.phase} | ${r.median ?? ''} | ${r.visits.join(', ')} |`);
  return out;
}
function mark(v, name) {
  return v.marks.find((m) => m.name === `nextray:${name}`)?.at ?? null;
}
function res(v, re) {
  return v.resources.find((r) => re.test(r.name));
}

/** --baseline-app: warm visits of the baseline build and this one, taking turns. */
async function compare() {
  const builds = [
    { name: 'baseline', appDir: resolve(a['baseline-app']) },
    { name: 'this build', appDir: undefined },
  ];
  const result = { bench: 'trace-warm --baseline-app', model: a.model, date: new Date().toISOString(), load_start: load(), builds: {} };
  try {
    for (const b of builds) {
      const site = join(work, `site-${b.name.replace(' ', '-')}`);
      await buildSite(resolve(a.model), site, { force: true, ...(b.appDir ? { appDir: b.appDir } : {}) });
      b.server = await serveSite(site, 0);
      b.profile = mkdtempSync(join(tmpdir(), 'nextray-trace-profile-'));
      b.ctx = await chromium.launchPersistentContext(b.profile, {
        executablePath: process.env.NEXTRAY_CHROMIUM ?? '/usr/bin/chromium',
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
      // The page's own clock at its ready state (both builds set body[data-state=ready]).
      await b.ctx.addInitScript(() => {
        new MutationObserver((_, o) => {
          if (document.body?.dataset.state === 'ready' && !window.__readyAt) {
            window.__readyAt = performance.now();
            o.disconnect();
          }
        }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
      });
      b.page = b.ctx.pages()[0] ?? (await b.ctx.newPage());
      await b.page.goto(b.server.url + '/');
      await b.page.waitForSelector('[data-testid=offline][data-ready=true]', { timeout: 600_000 });
      b.ready = [];
      b.wall = [];
    }
    for (let v = 0; v < Number(a.visits); v++) {
      for (const b of v % 2 ? [...builds].reverse() : builds) {
        await b.page.close();
        await new Promise((r) => setTimeout(r, 500 + Number(a['pause-ms'])));
        b.page = await b.ctx.newPage();
        if (a['stop-worker']) await stopWorkers(b.ctx, b.page);
        const t = performance.now();
        await b.page.goto(b.server.url + '/');
        await b.page.waitForSelector('body[data-state=ready]', { timeout: 600_000 });
        b.wall.push(Math.round(performance.now() - t));
        b.ready.push(Math.round(await b.page.evaluate(() => window.__readyAt)));
        (b.session ??= []).push(Math.round(await b.page.evaluate(() => window.nextray?.phases?.sessionMs ?? -1)));
        const p = await b.page.evaluate(() => window.nextray?.source?.from);
        if (p !== 'cache') throw new Error(`${b.name}: the model came from the ${p}`);
      }
      log(`visit ${v + 2} (load ${load()[0]}): ${builds.map((b) => `${b.name} ${b.ready.at(-1)} ms (goto ${b.wall.at(-1)}, session after the model ${b.session.at(-1)})`).join(', ')}`);
    }
    for (const b of builds) result.builds[b.name] = { ready_ms: b.ready, goto_to_ready_ms: b.wall, session_after_model_ms: b.session, median_ready_ms: median(b.ready), median_goto_to_ready_ms: median(b.wall) };
    for (const b of builds) log(`${b.name}: navigation to ready median ${median(b.ready)} ms, min ${Math.min(...b.ready)}; goto to ready median ${median(b.wall)} ms`);
  } finally {
    for (const b of builds) {
      await b.ctx?.close();
      await b.server?.close();
      if (b.profile) rmSync(b.profile, { recursive: true, force: true });
    }
    rmSync(work, { recursive: true, force: true });
  }
  result.load_end = load();
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
