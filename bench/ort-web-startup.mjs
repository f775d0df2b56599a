#!/usr/bin/env node
/**
 * Where onnxruntime-web's start-up goes in Chromium, without the page around it: a bare page (served with COOP/COEP,
 * so wasm threads work) imports onnxruntime-web, reads a model, and times
 *   init   WebAssembly.instantiateStreaming of the runtime's wasm (download from the HTTP cache + compile),
 *   first  the first InferenceSession.create after it (the runtime's one-time start-up: lazy wasm compilation),
 *   second a second InferenceSession.create of the same model (what the model itself costs),
 * for each variant, visits interleaved in one browser profile (so later visits may use any cache the browser keeps).
 *
 *   node bench/ort-web-startup.mjs --model demo.onnx [--variants all,disabled,identity] [--threads 2] [--rounds 6]
 *       [--extra model2.onnx:disabled ...] [--runs N]
 *
 * Variants: `all`, `extended`, `basic`, `disabled` (graphOptimizationLevel for --model), `identity` (a one-node
 * identity model is opened first, as the page's startRuntime() does, and `first` is the model's session after it).
 * `--extra FILE:LEVEL` adds another model file (e.g. one pre-optimised by onnxruntime-node) at that level.
 * `--runs N` also times N inference runs (batch 1, after one) per visit, and onnxruntime-node on the same input with
 * the same intra-op thread count and graphOptimizationLevel 'all', taking turns with the browser visit by visit.
 * `--profile` (with --runs) also turns on onnxruntime's own profiler on both sides (session option enableProfiling:
 * onnxruntime-web prints its events to the page's console, onnxruntime-node writes a JSON file) and prints, per
 * operator type, the kernel time per run in the page and in node (the runs after the first one of each session).
 * Prints median and minimum per variant, the probability output of each (must agree), and the load average.
 */
import { createServer } from 'node:http';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    variants: { type: 'string', default: 'all,disabled,identity' },
    extra: { type: 'string', multiple: true, default: [] },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '6' },
    runs: { type: 'string', default: '0' },
    profile: { type: 'boolean', default: false },
  },
});
if (!a.model) throw new Error('--model FILE.onnx is required');
const models = new Map([[basename(a.model), resolve(a.model)]]);
const runs = a.variants.split(',').filter(Boolean).map((v) => (v === 'identity' ? { model: basename(a.model), opt: 'all', identity: true } : { model: basename(a.model), opt: v }));
for (const e of a.extra) {
  const [file, opt] = e.split(':');
  models.set(basename(file), resolve(file));
  runs.push({ model: basename(file), opt: opt ?? 'disabled' });
}

const page = `<!doctype html><script type="module">
const q = new URLSearchParams(location.search);
const T = {}; const now = () => performance.now();
try {
  const real = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = async (...x) => { const t = now(); const r = await real(...x); T.init = now() - t; T.instantiated = now(); return r; };
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = '/ort/'; ort.env.wasm.numThreads = Number(q.get('threads')); ort.env.wasm.proxy = false;
  const bytes = new Uint8Array(await (await fetch('/m/' + q.get('model'))).arrayBuffer());
  const opt = { executionProviders: ['wasm'], graphOptimizationLevel: q.get('opt') };
  const opt2 = { ...opt, enableProfiling: q.get('profile') === '1' };
  if (q.get('identity')) {
    const { identityModel } = await import('/runtime-identity.mjs');
    await (await ort.InferenceSession.create(identityModel(), { executionProviders: ['wasm'] })).release();
  }
  const t1 = now(); const s1 = await ort.InferenceSession.create(bytes, opt); T.first = now() - t1; T.sinceInstantiated = now() - T.instantiated;
  const t2 = now(); const s2 = await ort.InferenceSession.create(bytes, opt2); T.second = now() - t2;
  const md = s2.inputMetadata?.[0]; const shape = md.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
  const x = new ort.Tensor('float32', new Float32Array(shape.reduce((p, d) => p * d, 1)).map((_, i) => ((i * 7919) % 255) / 128 - 1), shape);
  const out = await s2.run({ [s2.inputNames[0]]: x });
  T.p = (out.probability ?? out[s2.outputNames[0]]).data[0];
  T.runs = [];
  for (let i = 0; i < Number(q.get('runs')); i++) { const t = now(); await s2.run({ [s2.inputNames[0]]: x }); T.runs.push(now() - t); }
  if (opt2.enableProfiling) s2.endProfiling();
  await s1.release(); await s2.release();
  document.title = 'done';
} catch (err) { document.title = 'error: ' + err.message; }
window.T = T;
</script>`;

// The identity model of the page's startRuntime() (app/src/runtime.ts identityModel()), the same bytes in plain JS.
const identitySource = `export function identityModel() {
  const utf8 = new TextEncoder();
  const varint = (n) => { const out = []; for (; n > 127; n >>>= 7) out.push((n & 127) | 128); out.push(n); return out; };
  const bytes = (f, b) => [...varint((f << 3) | 2), ...varint(b.length), ...b];
  const int = (f, v) => [...varint(f << 3), ...varint(v)];
  const text = (f, t) => bytes(f, [...utf8.encode(t)]);
  const value = (name) => [...text(1, name), ...bytes(2, bytes(1, [...int(1, 1), ...bytes(2, bytes(1, int(1, 1)))]))];
  const node = [...text(1, 'x'), ...text(2, 'y'), ...text(4, 'Identity')];
  const graph = [...bytes(1, node), ...text(2, 'start'), ...bytes(11, value('x')), ...bytes(12, value('y'))];
  return new Uint8Array([...int(1, 8), ...bytes(7, graph), ...bytes(8, int(2, 13))]);
}`;

const ortDir = join(root, 'node_modules', 'onnxruntime-web', 'dist');
const types = { '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cache-control': 'max-age=3600' };
  if (path === '/' || path === '/index.html') return void res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(page);
  if (path === '/runtime-identity.mjs') return void res.writeHead(200, { ...headers, 'content-type': 'text/javascript' }).end(identitySource);
  const file = path.startsWith('/ort/') ? join(ortDir, path.slice(5)) : path.startsWith('/m/') ? models.get(path.slice(3)) : undefined;
  if (!file || dirname(file) === file || !existsSync(file) || statSync(file).isDirectory()) return void res.writeHead(404).end();
  res.writeHead(200, { ...headers, 'content-type': types[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;
const profile = mkdtempSync(join(tmpdir(), 'nextray-ortweb-'));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: process.env.NEXTRAY_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
const results = new Map();
const nodeResults = new Map();
const nodeP = new Map();
/** onnxruntime-node on the bare page's input, same threads. */
async function nodeRuns(file) {
  const ort = (await import('onnxruntime-node')).default;
  const prefix = join(tmpdir(), `nextray-ortnode-profile-${process.pid}`);
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: Number(a.threads), interOpNumThreads: 1, graphOptimizationLevel: 'all', ...(a.profile ? { enableProfiling: true, profileFilePrefix: prefix } : {}) });
  const meta = s.inputMetadata?.[0];
  const shape = meta.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
  const x = new ort.Tensor('float32', new Float32Array(shape.reduce((p, d) => p * d, 1)).map((_, i) => ((i * 7919) % 255) / 128 - 1), shape);
  const feeds = { [s.inputNames[0]]: x };
  const out = await s.run(feeds);
  const runs = [];
  for (let i = 0; i < Number(a.runs); i++) {
    const t = performance.now();
    await s.run(feeds);
    runs.push(performance.now() - t);
  }
  let events = [];
  if (a.profile) {
    // onnxruntime-node writes the profile next to the prefix; its name is not returned by the JS binding.
    s.endProfiling();
    const dir = dirname(prefix);
    const mine = readdirSync(dir).filter((f) => f.startsWith(basename(prefix)) && f.endsWith('.json'));
    for (const f of mine) {
      events.push(...JSON.parse(readFileSync(join(dir, f), 'utf8')));
      rmSync(join(dir, f), { force: true });
    }
  }
  await s.release();
  return { runs, p: (out.probability ?? out[s.outputNames[0]]).data[0], events };
}
/**
 * Per operator type: kernel time (ms) in each profiled run after the session's first (kernel events are named
 * `<node>_kernel_time` with args.op_name; runs are `model_run` events), so that a median over runs can leave out the
 * runs another job on the machine preempted.
 */
const profiles = new Map();
function addProfile(key, events) {
  const runsAt = events.filter((e) => e.name === 'model_run').map((e) => e.ts).sort((x, y) => x - y);
  if (runsAt.length < 2) return;
  const p = profiles.get(key) ?? { runs: [] };
  for (let i = 1; i < runsAt.length; i++) {
    const ops = new Map();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < runsAt[i] || (i + 1 < runsAt.length && e.ts >= runsAt[i + 1])) continue;
      const op = e.args?.op_name ?? '?';
      ops.set(op, (ops.get(op) ?? 0) + e.dur / 1000);
    }
    p.runs.push(ops);
  }
  profiles.set(key, p);
}
const loadStart = loadavg()[0];
try {
  for (let r = 0; r < Number(a.rounds); r++) {
    for (const v of runs) {
      const key = `${v.model} ${v.identity ? 'identity first, then all' : v.opt}`;
      const p = await ctx.newPage();
      const events = [];
      // onnxruntime-web's profiler prints one JSON event per console line.
      p.on('console', (m) => {
        const t = m.text().trim().replace(/,$/, '');
        if (t.startsWith('{"cat"')) {
          try {
            events.push(JSON.parse(t));
          } catch {
            /* not an event */
          }
        }
      });
      await p.goto(`${url}?model=${encodeURIComponent(v.model)}&opt=${v.opt}&threads=${a.threads}&runs=${a.runs}&profile=${a.profile ? 1 : 0}${v.identity ? '&identity=1' : ''}`);
      await p.waitForFunction(() => document.title !== '', null, { timeout: 600_000 });
      const title = await p.title();
      if (title !== 'done') throw new Error(`${key}: ${title}`);
      const T = await p.evaluate(() => window.T);
      await p.close();
      results.set(key, [...(results.get(key) ?? []), T]);
      if (a.profile && !v.identity) addProfile(`${key} page`, events);
      if (Number(a.runs) > 0 && !v.identity) {
        const n = await nodeRuns(models.get(v.model));
        nodeResults.set(v.model, [...(nodeResults.get(v.model) ?? []), ...n.runs]);
        nodeP.set(v.model, n.p);
        if (a.profile) addProfile(`${key} node`, n.events);
      }
    }
  }
} finally {
  await ctx.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
const med = (xs) => { const s = [...xs].sort((x, y) => x - y); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const f = (xs) => `${Math.round(med(xs))} / ${Math.round(Math.min(...xs))}`;
console.log(`| variant (threads ${a.threads}, ${a.rounds} visits) | instantiate ms | first session ms | second session ms | probability |`);
console.log('|---|---|---|---|---|');
for (const [k, ts] of results) console.log(`| ${k} | ${f(ts.map((t) => t.init))} | ${f(ts.map((t) => t.first))} | ${f(ts.map((t) => t.second))} | ${[...new Set(ts.map((t) => t.p))].join(', ')} |`);
if (Number(a.runs) > 0) {
  console.log(`\n| model | variant | page ms/run | onnxruntime-node ms/run | page / node |\n|---|---|---|---|---|`);
  for (const [k, ts] of results) {
    const [model] = k.split(' ');
    const page = ts.flatMap((t) => t.runs);
    if (!page.length) continue;
    const node = nodeResults.get(model);
    console.log(`| ${model} | ${k.slice(model.length + 1)} | ${Math.round(med(page))} | ${Math.round(med(node))} (p ${nodeP.get(model)}) | ${(med(page) / med(node)).toFixed(2)} |`);
  }
}
if (a.profile) {
  for (const [k] of results) {
    const page = profiles.get(`${k} page`);
    const node = profiles.get(`${k} node`);
    if (!page || !node) continue;
    const ops = [...new Set([...page.runs, ...node.runs].flatMap((r) => [...r.keys()]))];
    const per = (p, op) => med(p.runs.map((r) => r.get(op) ?? 0));
    const total = (p) => med(p.runs.map((r) => [...r.values()].reduce((x, y) => x + y, 0)));
    console.log(`\n${k}: kernel time per run by operator type, median over runs (onnxruntime's profiler; page ${page.runs.length} runs, node ${node.runs.length})`);
    console.log('| operator | page ms | node ms | page / node | share of the page |\n|---|---|---|---|---|');
    for (const op of ops.sort((x, y) => per(page, y) - per(page, x))) {
      const pg = per(page, op);
      const nd = per(node, op);
      console.log(`| ${op} | ${pg.toFixed(1)} | ${nd.toFixed(1)} | ${nd > 0 ? (pg / nd).toFixed(2) : '-'} | ${((100 * pg) / total(page)).toFixed(1)}% |`);
    }
    console.log(`| all kernels (median run) | ${total(page).toFixed(1)} | ${total(node).toFixed(1)} | ${(total(page) / total(node)).toFixed(2)} | |`);
  }
}
console.log(`(median / minimum; load average ${loadStart.toFixed(2)} -> ${loadavg()[0].toFixed(2)})`);
