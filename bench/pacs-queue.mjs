#!/usr/bin/env node
// Studies per second through the BullMQ queue with 1 and with 2 `nextray pacs work` processes on this machine.
//   A redis-server on a random port (temporary folder, no persistence) holds the queue; N synthetic studies (V DX
//   views of S x S pixels each, written from the synthetic generator's renderer) are put in a folder and enqueued
//   (`pacs enqueue --folder`); then K workers (`pacs work --folder --out --until-empty`, T ONNX Runtime threads each)
//   run until the queue is empty. Reported per K: wall seconds from the workers' start to the last exit (model load
//   included) and the queue's own span, first job start to last job finish (`pacs status`: model load excluded).
// Usage: node bench/pacs-queue.mjs [--studies 40] [--views 2] [--size 256] [--workers 1,2] [--threads 1]
//        [--model model.onnx] (default: a small resnet-slim exported here, input 64: the pipeline's own overhead)
// Needs `npm run build` and redis-server. Prints one JSON document; a Markdown table on stderr.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = new URL('../dist/', import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
const studies = Number(opt('studies', '40'));
const views = Number(opt('views', '2'));
const size = Number(opt('size', '256'));
const workerCounts = opt('workers', '1,2').split(',').map(Number);
const threads = opt('threads', '1');
const bin = join(root, 'bin', 'nextray.js');
const log = (s) => process.stderr.write(s + '\n');

const { startRedis, writeStudy } = await import(new URL('test/helpers/pacs.js', dist).href);
const work = mkdtempSync(join(tmpdir(), 'nextray-bench-pacs-'));
let model = opt('model', '');
if (!model) {
  const { initEngine } = await import(new URL('src/engine/index.js', dist).href);
  const { makePreprocessing } = await import(new URL('src/data/preprocess.js', dist).href);
  const { createModel } = await import(new URL('src/models/index.js', dist).href);
  const { exportOnnx } = await import(new URL('src/models/onnx/export.js', dist).href);
  const { saveOnnx } = await import(new URL('src/models/onnx/files.js', dist).href);
  await initEngine('cpu');
  const m = createModel('resnet-slim', { head: 'binary', seed: 1 });
  model = join(work, 'bench.onnx');
  saveOnnx(model, exportOnnx(m, { inputSize: 64, preprocessing: makePreprocessing({ size: 64 }), decisionThreshold: 0.5 }));
  m.dispose();
}

const run = (args) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code, out, err }));
  });

const redis = await startRedis(work);
try {
  const input = join(work, 'in');
  for (let n = 0; n < studies; n++) writeStudy(input, n, { views, size, prefix: '9' });
  const results = [];
  for (const k of workerCounts) {
    const queue = `bench-${k}`;
    const en = await run(['pacs', 'enqueue', '--redis', redis.url, '--queue', queue, '--folder', input]);
    if (en.code !== 0) throw new Error(en.err);
    const load0 = loadavg()[0];
    const t0 = performance.now();
    const ws = await Promise.all(
      Array.from({ length: k }, () => run(['pacs', 'work', '--redis', redis.url, '--queue', queue, '--folder', input, '--out', join(work, `out-${k}`), '--model', model, '--threads', threads, '--until-empty'])),
    );
    const wall = (performance.now() - t0) / 1000;
    for (const w of ws) if (w.code !== 0) throw new Error(w.err.slice(-2000));
    const st = JSON.parse((await run(['pacs', 'status', '--redis', redis.url, '--queue', queue, '--json'])).out);
    results.push({
      workers: k,
      studies,
      wall_seconds: Number(wall.toFixed(2)),
      studies_per_second_wall: Number((studies / wall).toFixed(3)),
      queue_span_seconds: Number(st.throughput.seconds.toFixed(2)),
      studies_per_second_queue: Number(st.throughput.perSecond.toFixed(3)),
      loadavg_1min_before: Number(load0.toFixed(2)),
      loadavg_1min_after: Number(loadavg()[0].toFixed(2)),
    });
  }
  const doc = { bench: 'pacs-queue', cores: cpus().length, model, views, size, threads_per_worker: Number(threads), results };
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  log('| workers | studies | wall s | studies/s (wall) | queue span s | studies/s (queue) | load before/after |');
  log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) log(`| ${r.workers} | ${r.studies} | ${r.wall_seconds} | ${r.studies_per_second_wall} | ${r.queue_span_seconds} | ${r.studies_per_second_queue} | ${r.loadavg_1min_before} / ${r.loadavg_1min_after} |`);
} finally {
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
}
