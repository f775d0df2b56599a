#!/usr/bin/env node
/**
 * ONNX Runtime session creation by graph optimisation level, and from a pre-optimised model.
 * Every measurement is a fresh process (nothing cached in memory, the file in the page cache after the first):
 *   - create:   InferenceSession.create(path) at graphOptimizationLevel disabled / basic / extended / all;
 *   - save:     the same at extended / all with optimizedModelFilePath (writes the optimised graph; timed with it);
 *   - reload:   the saved extended / all graph opened again with optimisation disabled and basic;
 * creation round after round over the configurations (so that a changing load hits all alike); then, per
 * configuration unless --no-infer, inference per image at batch 1 and 8 (median) and the largest difference of the
 * batch-8 logits from the level-'all' session (the product's default).
 *
 *   node bench/onnx-session.mjs --onnx model.onnx [--runs 5] [--reps1 3] [--reps8 2] [--threads 2] [--configs a,b]
 *   node bench/onnx-session.mjs --onnx model.onnx --interleave ROUNDS
 *
 * --interleave: steady-state inference only, all sessions open in one process and run in turn (batch 1, then
 * batch 8, round after round), so that a load that changes during the run (a shared machine) hits every level alike;
 * per configuration the median per image and its ratio to level 'all'.
 *
 * Session options as src/inference/node/onnx-session.ts sets them (sequential, inter-op 1, no spinning). Prints JSON.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { median } from './lib/util.mjs';

const self = fileURLToPath(import.meta.url);
const { values: a } = parseArgs({
  options: {
    onnx: { type: 'string' },
    runs: { type: 'string', default: '5' },
    reps1: { type: 'string', default: '3' },
    reps8: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    configs: { type: 'string' },
    child: { type: 'string' },
    interleave: { type: 'string' },
    'no-infer': { type: 'boolean', default: false },
  },
});

const r3 = (x) => Math.round(x * 1000) / 1000;

if (a.child) {
  // One configuration in this fresh process: { path, level, save?, threads, infer? }.
  const c = JSON.parse(a.child);
  const t0 = performance.now();
  const ort = await import('onnxruntime-node');
  const importSeconds = (performance.now() - t0) / 1000;
  const opts = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: c.level,
    executionMode: 'sequential',
    intraOpNumThreads: c.threads,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    ...(c.save ? { optimizedModelFilePath: c.save } : {}),
  };
  if (c.save?.endsWith('.ort')) opts.extra.session.save_model_format = 'ORT';
  if (c.bytes) Object.assign(opts.extra.session, { use_ort_model_bytes_directly: '1', use_ort_model_bytes_for_initializers: '1' });
  const t1 = performance.now();
  // c.bytes: the ORT-format file read into memory and used in place (the buffer must outlive the session).
  const keep = c.bytes ? readFileSync(c.path) : null;
  const session = await ort.InferenceSession.create(keep ?? c.path, opts);
  const createSeconds = (performance.now() - t1) / 1000;
  const out = { import_s: importSeconds, create_s: createSeconds };
  if (c.infer) {
    const name = session.inputNames[0];
    const meta = c.dims; // [h, w] NHWC
    const per = meta[0] * meta[1] * 3;
    // Deterministic input: a fixed pseudo-random pattern in [-2, 2].
    const x8 = new Float32Array(8 * per);
    let s = 12345;
    for (let i = 0; i < x8.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      x8[i] = (s / 2 ** 32) * 4 - 2;
    }
    const run = async (n) => {
      const t = new ort.Tensor('float32', x8.subarray(0, n * per), [n, meta[0], meta[1], 3]);
      const q = performance.now();
      const r = await session.run({ [name]: t }, ['logits']);
      const sec = (performance.now() - q) / 1000;
      const logits = Array.from(r.logits.data);
      return { sec, logits };
    };
    await run(1);
    const b1 = [];
    for (let i = 0; i < c.reps1; i++) b1.push((await run(1)).sec);
    await run(8);
    const b8 = [];
    let logits;
    for (let i = 0; i < c.reps8; i++) {
      const r = await run(8);
      b8.push(r.sec / 8);
      logits = r.logits;
    }
    Object.assign(out, { batch1_s_per_image: median(b1), batch8_s_per_image: median(b8), logits });
  }
  await session.release();
  // Read after release: keeps the in-place bytes alive as long as the session (a collected buffer crashes it).
  out.keep_bytes = keep ? keep.byteLength : 0;
  out.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

if (!a.onnx) {
  process.stderr.write('usage: node bench/onnx-session.mjs --onnx model.onnx [--runs 5]\n');
  process.exit(2);
}
// Input size from the exporter's metadata (input_size), read without ONNX Runtime.
const dist = new URL('../dist/src/', import.meta.url);
const { readModelSkeleton } = await import(new URL('models/onnx/skeleton.js', dist).href);
const { readModelInfo } = await import(new URL('models/onnx/graph.js', dist).href);
const info = readModelInfo(readModelSkeleton(a.onnx));
const size = Number(info.metadata.input_size);
const threads = Number(a.threads);
const tmp = mkdtempSync(join(tmpdir(), 'nextray-onnx-session-'));
const saved = { extended: join(tmp, 'opt-extended.onnx'), all: join(tmp, 'opt-all.onnx'), allOrt: join(tmp, 'opt-all.ort') };
const log = (s) => process.stderr.write(`bench onnx-session: ${s}\n`);

function child(cfg) {
  const r = spawnSync(process.execPath, [self, '--child', JSON.stringify({ threads, dims: [size, size], reps1: Number(a.reps1), reps8: Number(a.reps8), ...cfg })], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`child ${JSON.stringify(cfg)} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const configs = [
  { id: 'create-disabled', path: a.onnx, level: 'disabled' },
  { id: 'create-basic', path: a.onnx, level: 'basic' },
  { id: 'create-extended', path: a.onnx, level: 'extended' },
  { id: 'create-all', path: a.onnx, level: 'all' },
  { id: 'save-extended', path: a.onnx, level: 'extended', save: saved.extended },
  { id: 'save-all', path: a.onnx, level: 'all', save: saved.all },
  { id: 'reload-extended-disabled', path: saved.extended, level: 'disabled' },
  { id: 'reload-extended-basic', path: saved.extended, level: 'basic' },
  { id: 'reload-all-disabled', path: saved.all, level: 'disabled' },
  { id: 'reload-all-basic', path: saved.all, level: 'basic' },
  { id: 'save-all-ort', path: a.onnx, level: 'all', save: saved.allOrt },
  // The ORT-format graph read into memory and used in place (use_ort_model_bytes_directly / _for_initializers).
  { id: 'reload-all-ort-bytes', path: saved.allOrt, level: 'disabled', bytes: true },
].filter((c) => !a.configs || a.configs.split(',').includes(c.id));

if (a.interleave) {
  const rounds = Number(a.interleave);
  const ort = await import('onnxruntime-node');
  const keep = [];
  try {
    child({ path: a.onnx, level: 'extended', save: saved.extended });
    child({ path: a.onnx, level: 'all', save: saved.all });
    child({ path: a.onnx, level: 'all', save: saved.allOrt });
    const list = configs.filter((c) => !c.save);
    const sessions = [];
    for (const c of list) {
      const bytes = c.bytes ? readFileSync(c.path) : null;
      if (bytes) keep.push(bytes);
      sessions.push(await ort.InferenceSession.create(bytes ?? c.path, {
        executionProviders: ['cpu'], graphOptimizationLevel: c.level, executionMode: 'sequential', intraOpNumThreads: threads, interOpNumThreads: 1,
        extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' }, ...(bytes ? { use_ort_model_bytes_directly: '1', use_ort_model_bytes_for_initializers: '1' } : {}) } },
      }));
    }
    const per = size * size * 3;
    const x8 = new Float32Array(8 * per);
    let s = 12345;
    for (let i = 0; i < x8.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      x8[i] = (s / 2 ** 32) * 4 - 2;
    }
    const run = async (sess, n) => {
      const t = new ort.Tensor('float32', x8.subarray(0, n * per), [n, size, size, 3]);
      const q = performance.now();
      const r = await sess.run({ [sess.inputNames[0]]: t }, ['logits']);
      return { ms: (performance.now() - q) / n, logits: r.logits.data };
    };
    const times = list.map(() => ({ b1: [], b8: [] }));
    const logits = [];
    for (const [i, sess] of sessions.entries()) {
      await run(sess, 1);
      logits[i] = (await run(sess, 8)).logits;
    }
    const loads = [];
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round so that no configuration always follows the same one.
      for (let k = 0; k < sessions.length; k++) {
        const i = (k + r) % sessions.length;
        times[i].b1.push((await run(sessions[i], 1)).ms);
      }
      for (let k = 0; k < sessions.length; k++) {
        const i = (k + r) % sessions.length;
        times[i].b8.push((await run(sessions[i], 8)).ms);
      }
      loads.push(loadavg()[0]);
      log(`round ${r + 1}/${rounds} (load ${loadavg()[0].toFixed(2)})`);
    }
    const iAll = list.findIndex((c) => c.id === 'create-all');
    const ref = logits[iAll];
    const scale = Math.max(...Array.from(ref, Math.abs));
    const out = {};
    for (const [i, c] of list.entries()) {
      const b1 = median(times[i].b1), b8 = median(times[i].b8);
      const diff = Math.max(...Array.from(logits[i], (v, j) => Math.abs(v - ref[j])));
      out[c.id] = {
        batch1_ms_per_image: r3(b1), batch8_ms_per_image: r3(b8),
        batch1_vs_all: r3(b1 / median(times[iAll].b1)), batch8_vs_all: r3(b8 / median(times[iAll].b8)),
        logits_max_abs_diff_vs_all: diff, logits_max_rel_diff_vs_all: diff / scale,
      };
    }
    for (const sess of sessions) await sess.release();
    // Only now may the in-place bytes go (a buffer collected under its live session crashes the process).
    keep.length = 0;
    const require = createRequire(import.meta.url);
    process.stdout.write(JSON.stringify({
      onnx: a.onnx, arch: info.metadata.arch, input_size: size, threads, rounds, mode: 'interleaved steady state',
      onnxruntime_node: require('onnxruntime-node/package.json').version,
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadavg_1m_min: Math.min(...loads), loadavg_1m_max: Math.max(...loads) },
      results: out,
    }, null, 2) + '\n');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
}

const runs = Number(a.runs);
const results = {};
let ref = null;
let loadRange = null;
try {
  // Warm the page cache once (not counted); write the saved graphs the reload configurations open.
  child({ path: a.onnx, level: 'disabled' });
  child({ path: a.onnx, level: 'extended', save: saved.extended });
  child({ path: a.onnx, level: 'all', save: saved.all });
  child({ path: a.onnx, level: 'all', save: saved.allOrt });
  // Creation: round after round over all configurations (a fresh process each), so load changes hit all alike.
  const create = Object.fromEntries(configs.map((c) => [c.id, []]));
  const rss = Object.fromEntries(configs.map((c) => [c.id, []]));
  const imports = Object.fromEntries(configs.map((c) => [c.id, []]));
  const loads = [];
  for (let i = 0; i < runs; i++) {
    for (const c of configs) {
      const { id, ...cfg } = c;
      const r = child(cfg);
      create[id].push(r.create_s);
      imports[id].push(r.import_s);
      rss[id].push(r.peak_rss_mb);
    }
    loads.push(loadavg()[0]);
    log(`creation round ${i + 1}/${runs} (load ${loadavg()[0].toFixed(2)})`);
  }
  for (const c of configs) {
    const { id, ...cfg } = c;
    const inf = a['no-infer'] ? null : child({ ...cfg, infer: true });
    if (id === 'create-all' && inf) ref = inf.logits;
    results[id] = {
      level: cfg.level,
      file: cfg.path === a.onnx ? 'original' : cfg.path.endsWith('opt-extended.onnx') ? 'saved at extended' : cfg.path.endsWith('.ort') ? 'saved at all, ORT format, used in place' : 'saved at all',
      ...(cfg.save ? { writes: 'the optimised graph (timed with it)' } : {}),
      create_s_median: r3(median(create[id])),
      create_s: create[id].map(r3),
      ort_import_s_median: r3(median(imports[id])),
      peak_rss_mb_median: median(rss[id]),
      ...(inf ? { batch1_ms_per_image: r3(inf.batch1_s_per_image * 1000), batch8_ms_per_image: r3(inf.batch8_s_per_image * 1000), logits: inf.logits } : {}),
    };
    log(`${id}: create ${r3(median(create[id]))} s${inf ? `, b1 ${r3(inf.batch1_s_per_image * 1000)} ms/img, b8 ${r3(inf.batch8_s_per_image * 1000)} ms/img` : ''}`);
  }
  loadRange = [Math.min(...loads), Math.max(...loads)];
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const scale = ref ? Math.max(...ref.map(Math.abs)) : null;
for (const r of Object.values(results)) {
  if (!r.logits) continue;
  r.max_abs_diff_vs_all = ref ? Math.max(...r.logits.map((v, i) => Math.abs(v - ref[i]))) : null;
  r.max_rel_diff_vs_all = ref ? r.max_abs_diff_vs_all / scale : null;
  delete r.logits;
}
const require = createRequire(import.meta.url);
process.stdout.write(JSON.stringify({
  onnx: a.onnx, arch: info.metadata.arch, input_size: size, threads, runs,
  onnxruntime_node: require('onnxruntime-node/package.json').version,
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadavg_1m_during_creation: loadRange && loadRange.map((l) => Number(l.toFixed(2))) },
  results,
}, null, 2) + '\n');
